"""Int8 post-training quantization of a style network with OpenVINO NNCF, evaluated (issue 13.4).

    python benchmarks/int8.py [--model mosaic] [--calibration ../shared/data/train/t91] [--heldout DIR]
                              [--style-image ../shared/data/styles/mosaic.jpg] [--size 1024] [--json]

Quantizes the model's ONNX graph (the one the OpenVINO backend runs, built from its card and
weights: :meth:`fastpercept.models.LoadedModel.graph`) with ``nncf.quantize`` (calibrated on
``--calibration-count`` training photos, 256 px center crops) and compares, against fp32 eager
PyTorch in the same run: ms per image at ``--size`` (OpenVINO int8 vs OpenVINO bf16/fp32, each
compiled as the backend compiles: latency first), the PSNR of the output, and the
model's own training objective on the held-out photos (256 px, whole) — the criterion of the issue
being: faster, >= 30 dB, and an objective within 2% of fp32's. Needs ``pip install nncf``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from common import median_seconds  # benchmarks/common.py (scripts run from this folder)

from fastpercept.models import load_model
from fastpercept.runtime.backends import openvino_bf16
from fastpercept.runtime.images import load_image
from fastpercept.runtime.listing import list_images
from fastpercept.training.data import center_crop
from fastpercept.training.eval_style import objective_from_card
from fastpercept.training.vgg import VGG16Features
from fastpercept.training.weights import resolve_vgg16

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2).mean())
    return 10 * np.log10(1 / mse) if mse else float("inf")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mosaic")
    p.add_argument("--calibration", type=Path, default=SHARED / "train" / "t91")
    p.add_argument("--calibration-count", type=int, default=64)
    p.add_argument("--heldout", type=Path, default=SHARED / "bench" / "BSD100" / "HR")
    p.add_argument("--heldout-count", type=int, default=10)
    p.add_argument("--style-image", type=Path, default=None)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    import nncf
    import openvino as ov

    model = load_model(a.model)
    net = model.net.float().eval()
    style = a.style_image or SHARED / "styles" / f"{model.card['style_image']}"
    core = ov.Core()
    fp = core.read_model(model.graph("plain"))
    calib = [center_crop(load_image(f).rgb, 256).numpy()
             for f in list_images([a.calibration])[: a.calibration_count]]
    quantized = nncf.quantize(fp, nncf.Dataset(calib), subset_size=len(calib))
    bf16 = "bf16" if openvino_bf16() else "f32"

    def compile_(m, precision: str):  # as fastpercept.runtime.backends.compile_openvino compiles
        return core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})

    compiled = {
        "openvino fp32": compile_(fp, "f32"),
        f"openvino {bf16}": compile_(fp, bf16),
        f"openvino int8 (+{bf16})": compile_(quantized, bf16),
    }
    x = center_crop(load_image(SHARED / "content" / "chicago.jpg").rgb, a.size)
    with torch.inference_mode():
        reference = net(x).numpy()
    eager = median_seconds(lambda: net(x), warmup=True)
    vgg = VGG16Features(resolve_vgg16())
    objective = objective_from_card(model.card, vgg, style)
    photos = [load_image(f, max_size=256).rgb for f in list_images([a.heldout])[: a.heldout_count]]

    def mean_objective(run) -> float:
        totals = []
        for ph in photos:
            with torch.no_grad():
                y = torch.from_numpy(np.asarray(run(ph))).clamp(0, 1)
                totals.append(float(objective(y, objective.content_features(ph))["total"]))
        return statistics.fmean(totals)

    with torch.inference_mode():
        fp32_objective = mean_objective(lambda ph: net(ph).numpy())
    rows = {"fp32 eager": {"ms": 1000 * eager, "psnr_db": float("inf"), "objective": fp32_objective}}
    for name, cm in compiled.items():
        run = (lambda c: lambda t: c([t.numpy()])[c.outputs[0]])(cm)
        seconds = median_seconds(lambda: run(x), warmup=True)
        rows[name] = {"ms": 1000 * seconds, "speedup": eager / seconds, "psnr_db": psnr(run(x), reference),
                      "objective": mean_objective(run)}
        rows[name]["objective_vs_fp32"] = rows[name]["objective"] / fp32_objective - 1
    doc = {"model": a.model, "size": a.size, "calibration": f"{a.calibration} ({len(calib)} photos, 256 px)",
           "heldout": f"{a.heldout} ({len(photos)} photos, 256 px)", "threads": torch.get_num_threads(),
           "nncf": nncf.__version__, "openvino": ov.__version__, "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2, default=float))
        return
    print(f"{a.model} at {a.size}x{a.size} (chicago.jpg crop); objective on {doc['heldout']}; "
          f"calibration {doc['calibration']}")
    print("| runtime | ms | speed-up | PSNR vs fp32 (dB) | objective | vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['ms']:.0f} | {r.get('speedup', 1):.2f}x | {r['psnr_db']:.1f} | {r['objective']:.3f} | "
              f"{100 * r.get('objective_vs_fp32', 0):+.1f}% |")


if __name__ == "__main__":
    sys.exit(main())
