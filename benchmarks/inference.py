"""Inference speed of every backend, side by side in one run, against fp32 eager PyTorch.

    python benchmarks/inference.py [--model mosaic] [--sizes 256,512,1024,1920x1080] [--batch 8]
                                   [--backends torch,onnxruntime,openvino] [--compile] [--json]

Input: the bundled example photo mirrored to each size (its texture at its native scale). For
each size (batch 1) and for a batch of ``--batch`` images at 256 px: each backend's ms per
image (median of ``--reps`` calls after one warm-up call), its speed-up over fp32 eager PyTorch
measured in the same run on the same input, the PSNR of its output against fp32 eager's, and
its first-call latency (a fresh runner of :func:`fastpercept.runtime.backends.make_runner`:
building its graph from the model's card and weights, compiling it, and the first inference).
Every backend runs at its own ``auto`` precision (each cell says which). The runners get the
input as they take it on the device: NumPy arrays on the CPU, tensors already on the GPU on CUDA
(so the CUDA timings leave out host-device copies). The machine (CPU model, threads, torch and
runtime versions, date) heads the output. Backends that are not installed, or do not run on the
device, are skipped with a note. ``--compile`` adds torch.compile (its first call compiles).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from common import cpu_name  # benchmarks/common.py (scripts run from this folder)

from fastpercept.models import load_model
from fastpercept.runtime.backends import BACKENDS, backend_available, make_runner, resolve_device
from fastpercept.runtime.device import wall_clock
from fastpercept.runtime.images import decode_image
from fastpercept.runtime.torch_runner import TorchRunner

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "fastpercept" / "assets" / "example.jpg"


def machine(device: torch.device) -> dict:
    import importlib.metadata as md

    versions = {"torch": torch.__version__}
    for pkg in ("onnxruntime", "openvino"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"device": name, "threads": torch.get_num_threads(), "versions": versions,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def image(h: int, w: int, batch: int, device: torch.device) -> np.ndarray | torch.Tensor:
    """The bundled photo mirrored (not resized) to fill (batch, 3, h, w): a photo's texture at its
    native scale. Resizing the 451x300 photo up to 1024 px would make it smooth, which is the worst
    case for bf16: there the instance norms divide small variations by a small spread, and bf16
    outputs measured 28 dB against fp32 at 1024 px, against 43 dB on this mirrored image and 42.9
    dB on chicago.jpg (712x474) in its own size.

    A NumPy array on the CPU, a tensor on ``device`` on CUDA (where only PyTorch runners run)."""
    e = decode_image(EXAMPLE).rgb
    row = np.concatenate([e, e[..., ::-1]] * (w // (2 * e.shape[-1]) + 1), axis=-1)
    full = np.concatenate([row, row[..., ::-1, :]] * (h // (2 * e.shape[-2]) + 1), axis=-2)
    x = np.ascontiguousarray(np.broadcast_to(full[..., :h, :w], (batch, 3, h, w)), dtype=np.float32)
    return torch.from_numpy(x).to(device) if device.type == "cuda" else x


def as_array(y: np.ndarray | torch.Tensor) -> np.ndarray:
    return y if isinstance(y, np.ndarray) else y.float().cpu().numpy()


def seconds(runner, x: np.ndarray | torch.Tensor, device: torch.device, reps: int
            ) -> tuple[float, np.ndarray]:
    """Median wall time of ``reps`` calls after one warm-up call, and the output."""
    y = runner(x)
    times = []
    for _ in range(reps):
        start = wall_clock(device)
        y = runner(x)
        times.append(wall_clock(device) - start)
    return statistics.median(times), as_array(y)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(1 / mse))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mosaic")
    p.add_argument("--sizes", default="256,512,1024,1920x1080", help="S (square) or WxH, comma-separated")
    p.add_argument("--batch", type=int, default=8, help="images in the batched 256 px case (0: none)")
    p.add_argument("--backends", default="torch,onnxruntime,openvino")
    p.add_argument("--compile", action="store_true", help="also torch.compile (slow first calls)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    device = torch.device(resolve_device(a.device))
    model = load_model(a.model, device=device.type)
    backends = [b for b in a.backends.split(",") if b] + (["compile"] if a.compile else [])
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        p.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    # The graph runtimes run on the CPU only: on CUDA the table compares torch and compile.
    skipped = [b for b in backends if not backend_available(b) or device.type not in BACKENDS[b].devices]
    backends = [b for b in backends if b not in skipped]
    cases = []
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.split("x")) if "x" in size else (int(size), int(size))
        cases.append((f"{w}x{h}", h, w, 1))
    if a.batch:
        cases.append((f"256x256 x{a.batch}", 256, 256, a.batch))

    rows = []
    for label, h, w, n in cases:
        x = image(h, w, n, device)
        base_s, reference = seconds(TorchRunner(model.net_on(device.type), "fp32"), x, device, a.reps)
        row = {"case": label, "fp32_eager_ms": 1000 * base_s / n, "backends": {}}
        for backend in backends:
            start = wall_clock(device)
            runner = make_runner(model, backend, device.type, "auto")
            runner(x)
            first = wall_clock(device) - start
            s, y = seconds(runner, x, device, a.reps)
            row["backends"][backend] = {"ms_per_image": 1000 * s / n, "speedup": base_s / s,
                                        "psnr_db": psnr(y, reference), "first_call_s": first,
                                        "precision": runner.precision}
            print(f"{label} {backend}: {1000 * s / n:.1f} ms/image", file=sys.stderr)
        rows.append(row)

    doc = {"machine": machine(device), "model": a.model, "skipped": skipped, "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    m = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    print(f"{a.model} on {m['device']}, {m['threads']} threads, {versions}, {m['date']}")
    cols = [f"{b} ms/img (x, dB, first s, precision)" for b in backends]
    head = "| case | fp32 eager ms/img | " + " | ".join(cols) + " |"
    print(head)
    print("|" + "---|" * (2 + len(backends)))
    for r in rows:
        cells = [f"{b['ms_per_image']:.0f} ({b['speedup']:.2f}x, {b['psnr_db']:.1f}, {b['first_call_s']:.2f}, "
                 f"{b['precision']})"
                 for b in r["backends"].values()]
        print(f"| {r['case']} | {r['fp32_eager_ms']:.0f} | " + " | ".join(cells) + " |")
    if skipped:
        print(f"skipped (not installed, or a CPU runtime on CUDA): {', '.join(skipped)}")


if __name__ == "__main__":
    main()
