#!/usr/bin/env python3
"""Screenshots of the web app's three tabs for the README, taken by headless Chromium.

Starts `fastpercept serve` on a free port, runs one job per tab (the bundled example photo in
mosaic, the bundled 64 px image x4, the first second of a clip stylized) and saves
``docs/webapp-stylize.jpg``, ``docs/webapp-upscale.jpg`` and ``docs/webapp-video.jpg``.

    .venv/bin/python scripts/webapp_screenshots.py [--clip ../shared/data/video/bikes.mp4]

Needs fastpercept[ui], selenium and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "src" / "fastpercept" / "assets"
sys.path.insert(0, str(REPO / "benchmarks"))
from clips import cut_clip  # noqa: E402


def wait(fn, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := fn():
            return value
        time.sleep(0.5)
    raise TimeoutError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=REPO.parent / "shared" / "data" / "video" / "bikes.mp4")
    p.add_argument("--out", type=Path, default=REPO / "docs")
    a = p.parse_args()

    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="shots-"))
    server = subprocess.Popen([sys.executable, "-m", "fastpercept", "serve", "--port", str(port)],
                              stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = None
    try:
        wait(lambda: _up(url) or (server.poll() is not None and sys.exit((work / "serve.log").read_text())))
        import shutil

        options.binary_location = shutil.which("chromium") or ""  # Debian's: selenium must not download one
        driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
        driver.get(url)

        def tab(name: str) -> None:
            wait(lambda: [b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == name])[0] \
                .click()
            time.sleep(1)

        def run(input_id: str, path: Path, button: str, done_css: str, shot: str) -> None:
            wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"#{input_id} input[type=file]"))[0] \
                .send_keys(str(path))
            time.sleep(2)
            driver.find_element(By.ID, button).click()
            wait(lambda: driver.find_elements(By.CSS_SELECTOR, done_css))
            time.sleep(2)
            driver.execute_script("window.scrollTo(0, 0)")
            # The window as tall as the page (the whole style gallery and every control in view).
            driver.set_window_size(1400, 900)
            time.sleep(1)
            chrome, page = driver.execute_script(
                "return [window.outerHeight - window.innerHeight, document.documentElement.scrollHeight]")
            driver.set_window_size(1400, chrome + page)
            ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()  # no hover
            time.sleep(1)
            png = work / "shot.png"
            driver.save_screenshot(str(png))
            from PIL import Image

            with Image.open(png) as im:  # JPEG: a fifth of the PNG's bytes in the repository
                im.convert("RGB").save(a.out / shot, quality=85)
            print(a.out / shot)

        a.out.mkdir(exist_ok=True)
        run("stylize-input", ASSETS / "example.jpg", "stylize-run", "#stylize-file a", "webapp-stylize.jpg")
        tab("Upscale")
        run("upscale-input", ASSETS / "example-lr.png", "upscale-run", "#upscale-result img", "webapp-upscale.jpg")
        tab("Video")
        cut_clip(a.clip, work / "clip.mp4", frames=25)  # the first second, no audio
        run("video-input", work / "clip.mp4", "video-run", "#video-result video", "webapp-video.jpg")
    finally:
        if driver:
            driver.quit()
        server.terminate()


def _up(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
