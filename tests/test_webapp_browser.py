"""End to end: `fastpercept serve` driven in a real headless browser (Debian's chromium and
chromium-driver, through Selenium). `.ci/run` installs what this needs."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and importlib.util.find_spec("gradio") and importlib.util.find_spec("selenium")),
    reason="needs fastpercept[ui], selenium and Debian's chromium + chromium-driver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except OSError:
        return 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(url, process, log file, its temporary folder)``: the server keeps its work folder and
    Gradio's copies of uploads in a temporary folder of its own (TMPDIR), to see them deleted."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("serve")
    log, tmp = folder / "serve.log", folder / "tmp"
    tmp.mkdir()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fastpercept", "serve", "--port", str(port),
                                 "--backend", "torch", "--precision", "fp32", "--max-upload-mb", "1"], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(tmp)})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while _status(url) != 200:
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(1)
    yield url, proc, log, tmp
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(fn, timeout=120, what="the page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _upload(browser, url, path):
    from selenium.webdriver.common.by import By

    browser.get(url)
    field = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-input input[type=file]"), what="upload")
    field[0].send_keys(str(path))
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-input img"), what="the uploaded image")


def test_upload_pick_a_style_and_get_a_stylized_image(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url = server[0]
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray((np.kron(rng.random((12, 16, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)).save(photo)
    _upload(browser, url, photo)
    # pick the_scream in the gallery: the style field follows
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#style-gallery button")
    scream = next(t for t in thumbs if "the_scream" in t.text)
    scream.click()
    _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#style-name input").get_attribute("value") == "the_scream",
          what="the style to be picked")
    browser.find_element(By.ID, "stylize-run").click()
    link = _wait(lambda: [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#stylize-file a")
                          if a.get_attribute("href")], what="the result")[0]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#stylize-result img")) == 2  # before and after
    with urllib.request.urlopen(link, timeout=30) as r:
        result = np.asarray(Image.open(BytesIO(r.read())).convert("RGB"), dtype=np.float32)
    source = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32)
    assert result.shape == source.shape
    assert np.abs(result - source).mean() > 10


def test_a_corrupt_file_is_a_message_in_the_page_and_the_server_goes_on(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, proc = server[:2]
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])
    browser.get(url)
    field = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-input input[type=file]"), what="upload")
    field[0].send_keys(str(corrupt))
    time.sleep(1)
    browser.find_element(By.ID, "stylize-run").click()
    message = _wait(lambda: "corrupt.png: cannot read image" in browser.find_element(By.TAG_NAME, "body").text,
                    what="the error message")
    assert message
    assert proc.poll() is None and _status(url) == 200
    # ... and the next job runs
    _upload(browser, url, good)
    browser.find_element(By.ID, "stylize-run").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-file a"), what="the next result")


def _post_file(url: str, name: str, data: bytes) -> tuple[int, str]:
    boundary = "fastpercept-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_uploads_above_the_limit_are_refused(server):
    url, proc = server[:2]
    status, text = _post_file(url + "gradio_api/upload", "big.png", bytes(1536 * 1024))  # 1.5 MB, limit 1 MB
    assert status >= 400 and "maximum allowed size" in text
    status, _ = _post_file(url + "gradio_api/upload", "small.png", bytes(1000))
    assert status == 200 and proc.poll() is None


def test_every_style_is_in_view_with_its_whole_name(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server[0])
    gallery = _wait(lambda: browser.find_elements(By.ID, "style-gallery"), what="the gallery")[0]
    thumbs = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#style-gallery button.thumbnail-item"),
                   what="the thumbnails")
    assert len(thumbs) >= 7

    def boxes() -> list[tuple[int, int]]:
        return [(t.location["x"], t.location["y"]) for t in thumbs]

    inside = browser.execute_script("""
        const g = arguments[0].getBoundingClientRect();
        return arguments[1].every(t => { const b = t.getBoundingClientRect();
            return b.left >= g.left && b.right <= g.right && b.top >= g.top && b.bottom <= g.bottom; });""",
                                    gallery, thumbs)
    assert inside, "a thumbnail is cut off or needs scrolling"
    cut = browser.execute_script("""
        return [...document.querySelectorAll('#style-gallery .caption-label')]
            .filter(c => c.scrollWidth > c.clientWidth).map(c => c.textContent);""")
    assert cut == []  # whole names, no "compositi…"
    before = boxes()
    thumbs[-1].click()
    _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#style-name input").get_attribute("value") ==
          thumbs[-1].text, what="the last style to be picked")
    assert boxes() == before  # picking a style scrolls nothing away


def test_a_non_image_named_jpg_is_one_clean_line(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, proc, _, tmp = server
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a photo at all")
    browser.get(url)
    field = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-input input[type=file]"), what="upload")
    field[0].send_keys(str(fake))
    time.sleep(1)
    browser.find_element(By.ID, "stylize-run").click()
    _wait(lambda: "holiday.jpg: not an image" in browser.find_element(By.TAG_NAME, "body").text,
          what="the error message")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert str(tmp) not in body and "/gradio/" not in body  # no server path
    assert proc.poll() is None


def _moving_clip(path, frames: int) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        ramp = np.linspace(0, 255, 160 * 2)
        for i in range(frames):
            row = ramp[i % 160:i % 160 + 160].astype(np.uint8)
            frame = np.broadcast_to(row[None, :, None], (120, 160, 3)).copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_closing_the_page_stops_its_video_job_and_the_next_job_runs(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, proc, log, _ = server
    clip = tmp_path / "long.mp4"
    _moving_clip(clip, frames=600)
    browser.get(url)
    _wait(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Video"],
          what="the Video tab")[0].click()
    field = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#video-input input[type=file]"), what="upload")
    field[0].send_keys(str(clip))
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#video-input video"), what="the uploaded clip")
    browser.find_element(By.ID, "video-run").click()
    progress = _wait(lambda: re.findall(r"(\d+)/600 frames", browser.find_element(By.TAG_NAME, "body").text),
                     what="the job's progress")
    browser.get("about:blank")  # the page is closed
    stopped = _wait(lambda: [line for line in log.read_text().splitlines() if "long.mp4: stopped after" in line],
                    what="the job to stop")
    assert int(progress[0]) <= int(stopped[0].split("stopped after ")[1].split()[0]) < 600
    # the next job runs at once (the slot is free) and the server is fine
    rng = np.random.default_rng(1)
    photo = tmp_path / "next.png"
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(photo)
    _upload(browser, url, photo)
    browser.find_element(By.ID, "stylize-run").click()
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#stylize-file a"), what="the next result")
    assert proc.poll() is None


def test_stopping_the_server_deletes_uploads_and_results(server):
    """Run last: SIGTERM stops the server (exit 143), and its work folder and the uploads go with it."""
    url, proc, log, tmp = server
    assert list(tmp.glob("fastpercept-serve-*/*/*"))  # the results of the jobs above
    proc.terminate()
    assert proc.wait(timeout=60) == 143, log.read_text()[-2000:]
    assert not list(tmp.glob("fastpercept-serve-*"))
    uploads = ("photo.png", "good.png", "corrupt.png", "holiday.jpg", "long.mp4", "next.png")
    assert [p.name for p in tmp.rglob("*") if p.name in uploads] == []
