"""Any painting as the style: how far the any-painting network gets, painting by painting.

    python benchmarks/anystyle.py [--model anystyle [MODEL ...]] [--paintings NAME ...] [--photos NAME ...]
                                  [--size 256] [--lbfgs 50] [--style-weight 5] [--times 512 1024]
                                  [--reference-style mosaic] [--gallery FILE] [--json FILE]

For each painting and photo (the photo's center ``--size`` square, as ``eval style --crop``):

- ``objective``: the paper's objective (content relu2_2, Gram matrices at relu1_2, relu2_2,
  relu3_3, relu4_3; content weight 1, ``--style-weight``, TV 1e-6: a shipped style's weights) of
  the network's output, and of ``--lbfgs`` L-BFGS iterations from seeded noise (the paper's
  baseline, Fig. 5); ``ratio`` = network / L-BFGS.
- ``gram``: how far the style moved: 1 - style term of the output / style term of the photo
  (0: the photo's statistics, 1: the painting's).
- ``content``: the content term (relu2_2 feature distance to the photo): the layout kept.
- ``blobs``: :func:`fastpercept.training.metrics.count_blobs` of the output against the photo.

``--times``: whole ``stylize`` calls (painting included: its statistics recomputed each time) on
a photo resized to each side, median of 3, with the CPU named, and the same for
``--reference-style`` (a per-style network) in the same run: the ratio is the speed figure.
The default paintings are held out of ``scripts/train_adain.sh``'s training paintings; the
universal-style-transfer decoders never saw any painting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from common import cpu_name, median_seconds  # benchmarks/common.py (scripts run from this folder)
from PIL import Image

import fastpercept
from fastpercept.runtime.images import load_image
from fastpercept.training.data import center_crop
from fastpercept.training.losses import ObjectiveWeights, StyleObjective
from fastpercept.training.metrics import count_blobs
from fastpercept.training.optimize import optimize_image
from fastpercept.training.vgg import VGG16Features

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Paintings of every kind: flat colour fields (mondrian, composition_vii), fine brushwork
# (starry_night_crop, la_muse), a line drawing (sketch), patterns (feathers, candy).
PAINTINGS = ("mondrian", "sketch", "starry_night_crop", "la_muse", "feathers", "candy", "woman_in_peasant_dress",
             "composition_vii")
PHOTOS = ("chicago", "amber")


def find(name: str, folders: tuple[str, ...]) -> Path:
    for folder in folders:
        for path in sorted((DATA / folder).glob(f"{name}.*")):
            return path
    raise SystemExit(f"{name}: not found in {', '.join(folders)} under {DATA}")


def score(objective: StyleObjective, image: torch.Tensor, content_feat: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v) for k, v in objective(image, content_feat).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["anystyle"], help="any-painting models, side by side")
    p.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    p.add_argument("--photos", nargs="+", default=list(PHOTOS))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--lbfgs", type=int, default=50, help="L-BFGS iterations of the baseline (0: none)")
    p.add_argument("--style-weight", type=float, default=ObjectiveWeights.style_weight)
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--times", type=int, nargs="*", default=[512, 1024])
    p.add_argument("--reference-style", default="mosaic",
                   help="a per-style network timed beside the models (the ratio to it is the speed figure)")
    p.add_argument("--gallery", type=Path, default=None, help="write photo x painting outputs side by side here")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)

    vgg = VGG16Features()
    weights = ObjectiveWeights(style_weight=a.style_weight)
    models = {name: fastpercept.load_model(name) for name in a.model}
    rows, tiles = [], []
    for painting_name in a.paintings:
        painting_path = find(painting_name, ("styles", "styles-extra"))
        painting = load_image(painting_path, max_size=a.style_size).rgb
        objective = StyleObjective(vgg, painting, weights)
        strip = []
        for photo_name in a.photos:
            photo = center_crop(load_image(find(photo_name, ("content",))).rgb, a.size)
            content_feat = objective.content_features(photo)
            base = score(objective, photo, content_feat)
            lbfgs = None
            if a.lbfgs:
                run = optimize_image(objective, photo, a.lbfgs, optimizer="lbfgs", init="noise", seed=0,
                                     progress=False)
                lbfgs = run.history[a.lbfgs]
            for model_name, model in models.items():
                out = fastpercept.stylize(photo, model, style_image=painting_path, style_size=a.style_size,
                                          strength=a.strength)
                net = score(objective, out, content_feat)
                row = {"model": model_name, "painting": painting_name, "photo": photo_name, "network": net,
                       "gram": 1 - net["style"] / base["style"], "content": net["content"],
                       "blobs": count_blobs(out[0].permute(1, 2, 0).numpy(), photo[0].permute(1, 2, 0).numpy())}
                if lbfgs:
                    row["lbfgs"], row["ratio"] = lbfgs, net["total"] / lbfgs["total"]
                rows.append(row)
                strip.append(out[0])
                print(f"{model_name:>12} {painting_name:>24} on {photo_name:<10} total {net['total']:9.3f}"
                      + (f"  L-BFGS-{a.lbfgs} {lbfgs['total']:9.3f}  ratio {row['ratio']:.2f}" if lbfgs else "")
                      + f"  gram moved {row['gram']:.0%}  content {row['content']:.3f}  blobs {row['blobs']}",
                      file=sys.stderr)
        tiles.append(torch.cat([painting_thumb(painting, a.size), *strip], dim=2))

    print(f"| model | painting | photo | network total | L-BFGS-{a.lbfgs} total | ratio | Gram moved | content "
          "| blobs |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lb = f"{r['lbfgs']['total']:.3f} | {r['ratio']:.2f}" if a.lbfgs else "— | —"
        print(f"| {r['model']} | {r['painting']} | {r['photo']} | {r['network']['total']:.3f} | {lb} | "
              f"{r['gram']:.0%} | {r['content']:.3f} | {r['blobs']} |")
    for model_name in models:
        mine = [r for r in rows if r["model"] == model_name]
        summary = (f"Gram moved: min {min(r['gram'] for r in mine):.0%}; blobs: {sum(r['blobs'] for r in mine)}")
        if a.lbfgs:
            ratios = [r["ratio"] for r in mine]
            summary = f"ratio: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}; " + summary
        print(f"\n{model_name}: {summary}")

    times: dict[str, dict[int, float]] = {}
    photo_path = find(a.photos[0], ("content",))
    painting_path = find(a.paintings[0], ("styles", "styles-extra"))
    reference = fastpercept.load_model(a.reference_style) if a.reference_style and a.times else None
    for side in a.times:
        photo = np.asarray(Image.open(photo_path).convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
        for model_name, model in models.items():
            def call(model=model):
                model.runner().forget_paintings()  # the painting's statistics are part of the time
                fastpercept.stylize(photo, model, style_image=painting_path, style_size=a.style_size)
            times.setdefault(model_name, {})[side] = median_seconds(call)
        if reference is not None:
            times.setdefault(a.reference_style, {})[side] = median_seconds(
                lambda: fastpercept.stylize(photo, reference))
    if times:
        print(f"\nstylize, whole call in process (a model's painting included), median of 3 ({cpu_name()}, "
              f"{torch.get_num_threads()} threads):")
        for name, by_side in times.items():
            ratio = "".join(f", {by_side[s] / times[a.reference_style][s]:.2f}x {a.reference_style}"
                            for s in by_side if reference is not None and name != a.reference_style)
            print(f"  {name}: " + ", ".join(f"{s}x{s} {t:.2f} s" for s, t in by_side.items()) + ratio)
    if a.gallery:
        grid = torch.cat(tiles, dim=1).clamp(0, 1)
        Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(a.gallery, quality=90)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "times": times, "cpu": cpu_name()}, indent=2))
    return 0


def painting_thumb(painting: torch.Tensor, size: int) -> torch.Tensor:
    """The painting as a (3, size, size) tile: its center square."""
    return center_crop(painting, size)[0]


if __name__ == "__main__":
    sys.exit(main())
