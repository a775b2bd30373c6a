"""Load check of `fastpercept serve`: N concurrent stylize requests through Gradio's API.

Starts the server on a free port, fires ``--requests`` requests at once (Gradio's Python client,
one thread each), and reports how many came back with an image, the wall time, each request's
latency, and the server's resident memory (VmRSS) before, at its peak (sampled every 0.2 s) and
after. The server runs one job at a time: the others wait in its queue, none is lost.

    python benchmarks/serve_load.py [--requests 20] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--size", type=int, default=512, help="side of the square test photo (px)")
    p.add_argument("--style", default="mosaic")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    rng = np.random.default_rng(0)
    photo = work / "photo.png"
    Image.fromarray((np.kron(rng.random((a.size // 16, a.size // 16, 3)), np.ones((16, 16, 1))) * 255)
                    .astype(np.uint8)).save(photo)
    server = subprocess.Popen([sys.executable, "-m", "fastpercept", "serve", "--port", str(port)],
                              stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    sys.exit(f"server did not start: {(work / 'serve.log').read_text()[-2000:]}")
                time.sleep(1)
        client = Client(url, verbose=False)
        client.predict(handle_file(str(photo)), a.style, 1.0, False, 0, api_name="/stylize")  # warm the model
        before = rss_mb(server.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.2)

        def one(i: int) -> dict:
            start = time.perf_counter()
            try:
                (pair, file) = Client(url, verbose=False).predict(handle_file(str(photo)), a.style, 1.0, False, 0,
                                                                  api_name="/stylize")
                with Image.open(file) as im:
                    ok = im.size == (a.size, a.size)
                return {"ok": ok, "seconds": time.perf_counter() - start}
            except Exception as e:  # noqa: BLE001 - a lost request is the measurement
                return {"ok": False, "seconds": time.perf_counter() - start, "error": str(e)[:200]}

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(a.requests) as pool:
            results = list(pool.map(one, range(a.requests)))
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    seconds = sorted(r["seconds"] for r in results)
    doc = {"requests": a.requests, "succeeded": sum(r["ok"] for r in results), "wall_s": wall,
           "latency_s": {"min": seconds[0], "median": seconds[len(seconds) // 2], "max": seconds[-1]},
           "rss_mb": {"before": before, "peak": max(peak), "after": after}, "size": a.size,
           "cpu": platform.processor() or platform.machine(),
           "errors": [r["error"] for r in results if "error" in r][:3]}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{doc['succeeded']}/{a.requests} requests succeeded ({a.size}x{a.size} photo, style {a.style}) in "
          f"{wall:.1f} s; latency min {seconds[0]:.1f} s, median {doc['latency_s']['median']:.1f} s, "
          f"max {seconds[-1]:.1f} s; server RSS {before:.0f} MB before, {max(peak):.0f} MB peak, {after:.0f} MB after")
    for e in doc["errors"]:
        print("error:", e)


if __name__ == "__main__":
    main()
