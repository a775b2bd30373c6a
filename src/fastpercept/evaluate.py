"""``fastpercept eval style``: a style model's objective on real photos, vs the optimization baseline.

For every content image the model's output is scored with the very objective the model was
trained on (rebuilt from its card: weights, layers, style image and its size), and optionally
compared with L-BFGS optimization from noise on the same objective (Johnson et al. 2016,
Figure 5), recording the objective reached after each requested iteration count of one run.

Content images are loaded whole, downscaled so the longest side is at most ``size`` (Lanczos,
aspect ratio kept, never upscaled) — the same loading as ``stylize --max-size``. No crop: the
objective is defined on any size, the network and the optimization see the very same tensor,
and a crop would score only part of each photo.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from .device import resolve_device, resolve_precision
from .errors import UserError
from .images import list_images, load_image
from .inference import run_network
from .losses import ObjectiveWeights, StyleObjective
from .models import load_model, resolve_model_path
from .optimize import TERMS, optimize_image
from .vgg import VGG16Features
from .weights import resolve_vgg16

log = logging.getLogger("fastpercept")

REPO_ROOT = Path(__file__).resolve().parents[2]
STYLE_DIRS = (REPO_ROOT.parent / "shared" / "data" / "styles", Path("/work/shared/data/styles"))

Terms = dict[str, float]


def find_style_image(card_name: str, model_path: Path, explicit: str | Path | None = None) -> Path:
    """The style image a model was trained with.

    The card keeps only its file name, so look, in order: ``explicit`` (``--style-image``; used
    as given, a missing file is the user's error when reading it), the name relative to the
    current folder, beside the model file, in ``../shared/data/styles`` relative to the
    repository root and in ``/work/shared/data/styles``.

    Raises:
        UserError (one line) when it is nowhere, asking for ``--style-image``.
    """
    if explicit is not None:
        return Path(explicit)
    if not card_name:
        raise UserError(f"{model_path}: the card names no style image; pass --style-image")
    name = Path(card_name)
    candidates = [name, model_path.parent / name.name, *(d / name.name for d in STYLE_DIRS)]
    for c in candidates:
        if c.is_file():
            return c
    raise UserError(f"{model_path}: style image '{card_name}' not found (looked in the current folder, "
                    f"beside the model and {', '.join(map(str, STYLE_DIRS))}); pass --style-image")


def objective_from_card(card: dict[str, Any], vgg: VGG16Features, style_path: Path) -> StyleObjective:
    """The training objective of a style model, from its card (weights, layers, style image)."""
    weights = ObjectiveWeights(
        content_weight=float(card.get("content_weight", 1.0)),
        style_weight=float(card.get("style_weight", 5.0)),
        tv_weight=float(card.get("tv_weight", 1e-6)),
        content_layer=card.get("content_layer", "relu2_2"),
        style_layers=tuple(card.get("style_layers", ObjectiveWeights().style_layers)),
    )
    style_size = card.get("style_size")
    style = load_image(style_path, max_size=int(style_size) if style_size else None).rgb
    return StyleObjective(vgg, style.to(next(vgg.parameters()).device), weights)


def _terms(objective: StyleObjective, image: torch.Tensor, content_feat: torch.Tensor) -> Terms:
    """Objective terms of ``image`` (1, 3, H, W) in [0, 1], in float32, as plain floats."""
    with torch.no_grad():
        terms = objective(image.float(), content_feat)
    return {k: float(terms[k]) for k in TERMS}


def _timed_network(model: torch.nn.Module, x: torch.Tensor, precision: str) -> tuple[torch.Tensor, float]:
    """The network's fp32 output (1, 3, H, W) in [0, 1] and its wall-clock seconds."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    y = run_network(model, x, precision=precision)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return y, time.perf_counter() - start


def _mean(rows: list[Terms]) -> Terms:
    return {k: sum(r[k] for r in rows) / len(rows) for k in TERMS}


def _check_counts(vs_optimize: Sequence[int]) -> list[int]:
    counts = sorted({int(n) for n in vs_optimize})
    if any(n < 1 for n in counts):
        raise UserError(f"--vs-optimize: iteration counts must be positive, got {list(vs_optimize)}")
    return counts


def eval_style(
    model_name_or_path: str | Path,
    content_dir: str | Path,
    size: int = 256,
    vs_optimize: Sequence[int] = (),
    vgg_weights: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    style_image: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a style model on every image of ``content_dir`` (optionally vs L-BFGS).

    Args:
        model_name_or_path: a shipped style model's name or a model file.
        content_dir: folder (searched recursively) or file of content photos.
        size: longest side the photos are reduced to (px); never upscaled.
        vs_optimize: L-BFGS iteration counts, e.g. ``(50, 100, 300)``: one run per image from
            seeded noise (seed 0) to the largest, with the objective recorded at each.
        vgg_weights: VGG-16 weights file (else resolved per SPEC).
        device, precision: where the network runs and its inference precision; the objective
            (VGG) and the optimization are always float32.
        style_image: the model's style image, when it is not found from its card's file name.
        progress: progress bar on stderr; default: when stderr is a terminal.
    Returns:
        ``{"model", "size", "images": [{"name", "network": terms, "lbfgs_N": terms...}],
        "mean": {"network": terms, "lbfgs_N": terms...}, "objective": {...},
        "seconds": {"network": s/image, "lbfgs_N": s/image...}, "skipped": [...], ...}``
        where terms are ``{"content", "style", "tv", "total"}`` (unweighted terms and the
        weighted total); ``seconds`` are per-image means (``lbfgs_N``: time to reach N
        iterations within the run).
    """
    counts = _check_counts(vs_optimize)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model_path = resolve_model_path(model_name_or_path)
    model = load_model(model_path, device=dev)
    card = model.card
    if card.get("task") != "style":
        raise UserError(f"{model_name_or_path}: not a style model (task {card.get('task')!r})")
    style_path = find_style_image(card.get("style_image", ""), model_path, style_image)
    weights = resolve_vgg16(vgg_weights)
    if card.get("vgg_sha256") and card["vgg_sha256"] != weights.sha256:
        log.warning("%s: trained with other VGG-16 weights (sha256 %s…, here %s…); the objective differs",
                    model_path, card["vgg_sha256"][:12], weights.sha256[:12])
    vgg = VGG16Features(weights).to(dev)
    objective = objective_from_card(card, vgg, style_path)
    files = list_images([content_dir])
    keys = ["network", *(f"lbfgs_{n}" for n in counts)]

    images: list[dict[str, Any]] = []
    seconds: dict[str, list[float]] = {k: [] for k in keys}
    skipped: list[str] = []
    root = Path(content_dir)
    warm = False
    if progress is None:
        progress = sys.stderr.isatty()
    for path in tqdm(files, desc="eval style", unit="img", file=sys.stderr, disable=not progress):
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            x = load_image(path, max_size=size).rgb.to(dev)
        except UserError as e:  # a batch goes on past a bad file (SPEC)
            tqdm.write(f"fastpercept: error: {e}", file=sys.stderr)
            skipped.append(name)
            continue
        if not warm:  # one untimed pass: lazy initialization is not the network's speed
            run_network(model, x, precision=prec)
            warm = True
        y, sec = _timed_network(model, x, prec)
        content_feat = objective.content_features(x)
        row: dict[str, Any] = {"name": name, "network": _terms(objective, y, content_feat)}
        seconds["network"].append(sec)
        if counts:
            run = optimize_image(objective, x, counts[-1], optimizer="lbfgs", init="noise", seed=0,
                                 record_at=counts, progress=False)
            for n in counts:
                row[f"lbfgs_{n}"] = run.snapshots[n]
                seconds[f"lbfgs_{n}"].append(run.seconds[n])
        images.append(row)
    if not images:
        raise UserError(f"{content_dir}: none of the {len(files)} image(s) could be read")

    w = objective.weights
    return {
        "model": model.name,
        "size": size,
        "images": images,
        "mean": {k: _mean([r[k] for r in images]) for k in keys},
        "objective": {
            "content_weight": w.content_weight, "style_weight": w.style_weight, "tv_weight": w.tv_weight,
            "content_layer": w.content_layer, "style_layers": list(w.style_layers),
            "style_image": str(style_path), "style_size": card.get("style_size"), "vgg_sha256": weights.sha256,
        },
        "seconds": {k: sum(v) / len(v) for k, v in seconds.items()},
        "model_file": str(model_path),
        "device": str(dev),
        "precision": prec,
        "skipped": skipped,
    }


def format_style_table(result: dict[str, Any]) -> str:
    """The mean terms of each row (network, lbfgs_N, ...) as a plain text table.

    Columns: the unweighted ``content``, ``style`` and ``tv`` terms, the weighted ``total``,
    and seconds per image.
    """
    mean, secs = result["mean"], result["seconds"]
    n = len(result["images"])
    lines = [f"model {result['model']}: mean over {n} image(s), longest side {result['size']} px",
             f"{'':<12}{'content':>12}{'style':>12}{'tv':>12}{'total':>12}{'s/image':>10}"]
    for key, terms in mean.items():
        lines.append(f"{key:<12}" + "".join(f"{terms[t]:>12.4g}" for t in TERMS) + f"{secs[key]:>10.3f}")
    if result.get("skipped"):
        lines.append(f"skipped (unreadable): {', '.join(result['skipped'])}")
    return "\n".join(lines)
