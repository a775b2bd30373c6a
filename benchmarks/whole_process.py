"""Whole-process times of the commands users run, side by side in one run (the ratio is the figure).

Times ``fastpercept stylize`` of a 1024x1024 JPEG (made from the example photo) and ``import
fastpercept`` as separate processes, alternating the commands so a drift of the machine's speed
hits both; prints the median wall seconds of each and the CPU. Commands are given as the Python
interpreters of the installs to compare (the small install without PyTorch, the full one):

    python benchmarks/whole_process.py --python .venv/bin/python --vs-python .venv-full/bin/python

``--vs-backend torch`` runs the second install with ``--backend torch`` (the PyTorch path).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import cpu_name  # benchmarks/common.py (scripts run from this folder)
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src" / "fastpercept" / "assets" / "example.jpg"


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", required=True, help="interpreter of the install to measure")
    p.add_argument("--vs-python", default=None, help="interpreter of the install to compare with")
    p.add_argument("--vs-backend", default="auto", help="--backend for the second install (default auto)")
    p.add_argument("--runs", type=int, default=7)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo1024.jpg"
        Image.open(EXAMPLE).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(photo, quality=92)
        commands = {"import fastpercept": lambda py, _: [py, "-c", "import fastpercept"],
                    "stylize 1024x1024 JPEG": lambda py, backend: [py, "-m", "fastpercept", "stylize", str(photo),
                                                                    "-o", str(Path(tmp) / "out.jpg"),
                                                                    "--backend", backend]}
        installs = [(a.python, "auto")] + ([(a.vs_python, a.vs_backend)] if a.vs_python else [])
        print(f"CPU: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores; median of {a.runs} runs "
              "(one warm-up each), wall seconds")
        for what, make in commands.items():
            times: dict[int, list[float]] = {i: [] for i in range(len(installs))}
            for i, (py, backend) in enumerate(installs):
                wall(make(py, backend))  # warm-up: file cache, first compile of Python bytecode
            for _ in range(a.runs):
                for i, (py, backend) in enumerate(installs):
                    times[i].append(wall(make(py, backend)))
            medians = [statistics.median(times[i]) for i in range(len(installs))]
            row = "  ".join(f"{py} (backend {b}): {m:.2f} s" for (py, b), m in zip(installs, medians))
            ratio = f"  ratio {medians[1] / medians[0]:.2f}x" if len(medians) > 1 else ""
            print(f"{what:<24} {row}{ratio}")


if __name__ == "__main__":
    main()
