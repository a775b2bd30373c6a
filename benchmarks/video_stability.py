"""Temporal stability of stylized video: per-frame stylization vs the stable mode.

For the first frames of a clip, each mode's warping error (Lai et al. 2018; fastpercept.runtime.temporal)
and the mean training objective of its frames (the model card's weights, on each output frame
against its input frame), both as ratios to per-frame stylization of the same model, measured
in one run. The stable mode (fastpercept.runtime.temporal.StableFrames) blends each input frame, then
each output frame, with the previous one carried along the input's optical flow (the weights are
the previous frame's shares; 0 switches a blend off); ``--norm-momenta`` also tries instance-norm
statistics smoothed over time (an exponential moving average, momentum = the newest frame's
share), a candidate that was measured and not kept. The network runs on ``--backend``
(:func:`fastpercept.runtime.backends.make_runner`, its ``auto`` precision) on NumPy frames, as
``stylize`` runs a clip.

    python benchmarks/video_stability.py [--clip ../shared/data/video/bikes.mp4] [--frames 60]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastpercept.training.eval_style import objective_from_card
from fastpercept.runtime.images import to_uint8
from fastpercept.models import load_model
from fastpercept.runtime.backends import make_runner
from fastpercept.runtime.tiling import run_network
from fastpercept.runtime.temporal import STABLE_INPUT_WEIGHT, STABLE_OUTPUT_WEIGHT, StableFrames, warping_error
from fastpercept.training.vgg import VGG16Features
from fastpercept.training.weights import resolve_vgg16

from clips import read_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def stylize_clip(runner, frames: list[np.ndarray], weights: tuple[float, float] | None = None,
                 norm_momentum: float | None = None, batch: int = 4) -> tuple[list, float]:
    """Outputs (H, W, 3) float in [0, 1] quantized to 8 bits (as written), and seconds per frame.

    ``weights``: the stable mode's (input, output) weights; ``norm_momentum``: instead, each frame
    normalized with instance-norm statistics averaged over the frames so far.
    """
    stable = StableFrames(*weights) if weights else None
    state: list | None = None
    outputs, start = [], time.perf_counter()
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        if stable:
            x = np.stack([stable.calm(f).transpose(2, 0, 1) for f in chunk])
        else:
            x = np.stack([f.transpose(2, 0, 1) for f in chunk]).astype(np.float32) / np.float32(255)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if norm_momentum is None:
            y = run_network(runner, x)
        else:
            ys = []
            for k in range(len(chunk)):
                now = runner.norm_stats(x[k:k + 1])
                state = now if state is None else [((1 - norm_momentum) * m + norm_momentum * nm,
                                                    (1 - norm_momentum) * v + norm_momentum * nv)
                                                   for (m, v), (nm, nv) in zip(state, now)]
                ys.append(np.clip(runner(x[k:k + 1], state), 0, 1))
            y = np.concatenate(ys)
        for o in y:
            o = to_uint8(o).transpose(1, 2, 0).astype(np.float32) / np.float32(255)
            outputs.append(stable.settle(o) if stable else o)
    return outputs, (time.perf_counter() - start) / len(frames)


def mean_objective(objective, frames: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    totals = []
    with torch.no_grad():
        for f, o in zip(frames, outputs):
            x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
            y = torch.from_numpy(o).permute(2, 0, 1)[None]
            totals.append(float(objective(y, objective.content_features(x))["total"]))
    return float(np.mean(totals))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=SHARED / "video" / "bikes.mp4")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--model", default="mosaic")
    p.add_argument("--weights", default=f"{STABLE_INPUT_WEIGHT}:{STABLE_OUTPUT_WEIGHT},0.9:0.1,0.9:0.15,0.8:0,0:0.4",
                   help="stable-mode input:output weight pairs to compare")
    p.add_argument("--norm-momenta", default="0.1", help="instance-norm smoothing momenta to compare ('': none)")
    p.add_argument("--style-image", type=Path, default=None, help="default: the card's file in ../shared/data/styles")
    p.add_argument("--backend", default="auto", help="auto, openvino, onnxruntime, torch or compile")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    model = load_model(a.model)
    runner = make_runner(model, a.backend, a.device, "auto")
    frames = read_frames(a.clip, a.frames)
    style = a.style_image or SHARED / "styles" / model.card["style_image"]
    objective = objective_from_card(model.card, VGG16Features(resolve_vgg16()), style)
    modes = [("per-frame", {})]
    for pair in a.weights.split(","):
        if pair:
            i, o = (float(v) for v in pair.split(":"))
            label = "stable (default)" if (i, o) == (STABLE_INPUT_WEIGHT, STABLE_OUTPUT_WEIGHT) else "stable"
            modes.append((f"{label}: input weight {i:g}, output weight {o:g}", {"weights": (i, o)}))
    modes += [(f"instance-norm statistics smoothed, momentum {float(m):g}", {"norm_momentum": float(m)})
              for m in a.norm_momenta.split(",") if m]
    rows = []
    for name, mode in modes:
        outputs, seconds = stylize_clip(runner, frames, **mode)
        rows.append({"mode": name, **mode, "warping_error": warping_error(frames, outputs),
                     "objective": mean_objective(objective, frames, outputs), "seconds_per_frame": seconds})
        print(f"{name}: warping error {rows[-1]['warping_error']:.5f}, objective {rows[-1]['objective']:.3f}",
              file=sys.stderr)
    base = rows[0]
    for r in rows:
        r["warping_vs_per_frame"] = r["warping_error"] / base["warping_error"]
        r["objective_vs_per_frame"] = r["objective"] / base["objective"]
    h, w = frames[0].shape[:2]
    doc = {"clip": str(a.clip), "frames": len(frames), "size": f"{w}x{h}", "model": a.model,
           "backend": a.backend, "device": runner.device, "precision": runner.precision,
           "cpu": platform.processor() or platform.machine(),
           "date": datetime.date.today().isoformat(), "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{a.model} on {Path(a.clip).name} ({w}x{h}, first {len(frames)} frames), {a.backend} backend "
          f"({runner.device}, {runner.precision}), {doc['date']}")
    print("| mode | warping error | vs per-frame | objective | vs per-frame | s/frame |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['mode']} | {r['warping_error']:.5f} | {r['warping_vs_per_frame']:.2f} | {r['objective']:.3f} | "
              f"{r['objective_vs_per_frame']:.3f} | {r['seconds_per_frame']:.3f} |")


if __name__ == "__main__":
    main()
