"""``fastpercept eval style``: a style model's objective on real photos, vs the optimization baseline.

For every content image the model's output is scored with the very objective the model was
trained on (rebuilt from its card: weights, layers, style image and its size), and optionally
compared with L-BFGS optimization from noise on the same objective (Johnson et al. 2016,
Figure 5), recording the objective reached after each requested iteration count of one run.
The network's output is also checked for blobs (:func:`fastpercept.training.metrics.find_blobs`: smooth
near-white or near-black spots the photo does not have), counted per image.

Content images are loaded whole, downscaled so the longest side is at most ``size`` (Lanczos,
aspect ratio kept, never upscaled) — the same loading as ``stylize --max-size``: the objective
is defined on any size and the network and the optimization see the very same tensor. With
``crop`` each photo becomes its center ``size`` x ``size`` square instead, the shorter side
resized to ``size`` as in style training (:func:`fastpercept.training.data.center_crop`): the paper's
Figure 5 used square images, and a whole photo reduced to a 256 px longest side shows its
content at about 0.6x the scale a network trained on 256 px crops of the shorter side has seen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..runtime.batch import each_item
from .data import center_crop
from ..runtime.device import resolve_device, resolve_precision
from ..errors import UserError
from ..runtime.images import load_image
from ..runtime.listing import list_images
from ..runtime.torch_runner import TorchRunner
from ..runtime.tiling import TimedNetwork
from .losses import MIN_OBJECTIVE_SIZE, ObjectiveWeights, StyleObjective
from .metrics import count_blobs
from ..models import load_model, resolve_model_path
from .optimize import TERMS, optimize_image
from .vgg import VGG16Features
from .weights import resolve_vgg16

log = logging.getLogger("fastpercept")

Terms = dict[str, float]


def find_style_image(card_name: str, model_path: Path, explicit: str | Path | None = None) -> Path:
    """The style image a model was trained with.

    ``explicit`` (``--style-image``) when given, used as given (a missing file is then the
    user's error when reading it); else the card's file name beside the model file. Nothing
    else: a file of the same name that happens to be in the current folder is not evidence.

    Raises:
        UserError (one line) when it is not beside the model, asking for ``--style-image``.
    """
    if explicit is not None:
        return Path(explicit)
    if not card_name:
        raise UserError(f"{model_path}: the card names no style image; pass --style-image")
    beside = model_path.parent / Path(card_name).name
    if beside.is_file():
        return beside
    raise UserError(f"{model_path}: style image '{card_name}' is not beside the model file; pass --style-image "
                    "with the image it was trained on")


def objective_from_card(card: dict[str, Any], vgg: VGG16Features, style_path: Path) -> StyleObjective:
    """The training objective of a style model, from its card (weights, layers, style image)."""
    defaults = ObjectiveWeights()
    weights = ObjectiveWeights(
        content_weight=float(card.get("content_weight", defaults.content_weight)),
        style_weight=float(card.get("style_weight", defaults.style_weight)),
        tv_weight=float(card.get("tv_weight", defaults.tv_weight)),
        content_layer=card.get("content_layer", defaults.content_layer),
        style_layers=tuple(card.get("style_layers", defaults.style_layers)),
    )
    style_size = card.get("style_size")
    style = load_image(style_path, max_size=int(style_size) if style_size else None).rgb
    return StyleObjective(vgg, style.to(next(vgg.parameters()).device), weights)


def _terms(objective: StyleObjective, image: torch.Tensor, content_feat: torch.Tensor) -> Terms:
    """Objective terms of ``image`` (1, 3, H, W) in [0, 1], in float32, as plain floats."""
    with torch.no_grad():
        terms = objective(image.float(), content_feat)
    return {k: float(terms[k]) for k in TERMS}


def _blobs(output: torch.Tensor, photo: torch.Tensor) -> int:
    """Blobs of a network output (:func:`fastpercept.training.metrics.find_blobs`); both (1, 3, H, W) in [0, 1]."""
    def hwc(image: torch.Tensor) -> np.ndarray:
        return image[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return count_blobs(hwc(output), hwc(photo))


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
    crop: bool = False,
) -> dict[str, Any]:
    """Score a style model on every image of ``content_dir`` (optionally vs L-BFGS).

    Args:
        model_name_or_path: a shipped style model's name or a model file.
        content_dir: folder (searched recursively) or file of content photos.
        size: longest side the photos are reduced to (px); never upscaled.
        vs_optimize: L-BFGS iteration counts, e.g. ``(50, 100, 300)``: one run per image from
            seeded noise (seed 0) to the largest, with the objective recorded at each.
        vgg_weights: VGG-16 weights file (else resolved as :func:`fastpercept.training.weights.resolve_vgg16` says).
        device, precision: where the network runs and its inference precision; the objective
            (VGG) and the optimization are always float32.
        style_image: the model's style image, when it is not found from its card's file name.
        progress: progress bar on stderr; default: when stderr is a terminal.
        crop: score the center ``size`` x ``size`` square of each photo, its shorter side resized
            to ``size`` (see the module docstring), instead of the whole photo.
    Returns:
        ``{"model", "size", "crop", "images": [{"name", "network": terms, "lbfgs_N": terms...}],
        "mean": {"network": terms, "lbfgs_N": terms...}, "objective": {...},
        "seconds": {"network": s/image, "lbfgs_N": s/image...}, "skipped": [...], ...}``
        where terms are ``{"content", "style", "tv", "total"}`` (unweighted terms and the
        weighted total); the ``network`` terms also hold ``"blobs"``: the blob count of the
        image's output, and in ``mean`` the mean count per image; ``seconds`` are per-image
        means (``lbfgs_N``: time to reach N iterations within the run). With ``vs_optimize``
        also ``"lbfgs_curve"``: the mean total after each iteration ``0 .. max(vs_optimize)``
        (the paper's Figure 5 curve), and
        ``"lbfgs_iterations_to_match"``: the first iteration at which that mean is at or below
        the network's mean total (``None``: not within ``max(vs_optimize)`` iterations).
    """
    counts = _check_counts(vs_optimize)
    if size < MIN_OBJECTIVE_SIZE:
        raise UserError(f"--size must be at least {MIN_OBJECTIVE_SIZE} px, not {size}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model_path = resolve_model_path(model_name_or_path)
    model = load_model(model_path, device=dev)
    runner = TorchRunner(model.net, prec)
    card = model.card
    if card.get("task") != "style":
        raise UserError(f"{model_name_or_path}: not a style model (task {card.get('task')!r})")
    style_path = find_style_image(card.get("style_image", ""), model_path, style_image)
    log.info("%s: style image %s", model.name, style_path)
    weights = resolve_vgg16(vgg_weights)
    if card.get("vgg_sha256") and card["vgg_sha256"] != weights.sha256:
        log.warning("%s: trained with other VGG-16 weights (sha256 %s…, here %s…); the objective differs",
                    model_path, card["vgg_sha256"][:12], weights.sha256[:12])
    vgg = VGG16Features(weights).to(dev)
    objective = objective_from_card(card, vgg, style_path)
    files = list_images([content_dir])
    keys = ["network", *(f"lbfgs_{n}" for n in counts)]

    curves: list[list[float]] = []  # per image: L-BFGS total after each iteration
    seconds: dict[str, list[float]] = {f"lbfgs_{n}": [] for n in counts}
    failed: list[tuple[Path, str]] = []
    root = Path(content_dir)
    timed = TimedNetwork(runner)

    def name_of(path: Path) -> str:
        return path.relative_to(root).as_posix() if root.is_dir() else path.name

    def load(path: Path) -> torch.Tensor:
        if crop:  # full resolution first: center_crop resizes the shorter side itself
            return center_crop(load_image(path).rgb, size).to(dev)
        return load_image(path, max_size=size).rgb.to(dev)

    images: list[dict[str, Any]] = []
    for path, x in each_item(files, load, failed, desc="eval style", progress=progress):
        y = timed(x)
        content_feat = objective.content_features(x)
        row: dict[str, Any] = {"name": name_of(path),
                               "network": {**_terms(objective, y, content_feat), "blobs": _blobs(y, x)}}
        if counts:
            run = optimize_image(objective, x, counts[-1], optimizer="lbfgs", init="noise", seed=0, progress=False)
            for n in counts:
                row[f"lbfgs_{n}"] = run.history[n]
                seconds[f"lbfgs_{n}"].append(run.seconds[n])
            curves.append([terms["total"] for terms in run.history])
        images.append(row)
    skipped = [name_of(path) for path, _ in failed]
    if not images:
        raise UserError(f"{content_dir}: none of the {len(files)} image(s) could be read")

    mean = {k: _mean([r[k] for r in images]) for k in keys}
    mean["network"]["blobs"] = sum(r["network"]["blobs"] for r in images) / len(images)
    comparison: dict[str, Any] = {}
    if counts:
        curve = [sum(at_k) / len(at_k) for at_k in zip(*curves)]  # iterations 0 .. max(counts)
        network = mean["network"]["total"]
        comparison = {"lbfgs_curve": curve, "lbfgs_iterations_to_match": iterations_to_match(curve, network)}
    w = objective.weights
    return {
        "model": model.name,
        "size": size,
        "crop": crop,
        "images": images,
        "mean": mean,
        **comparison,
        "objective": {
            "content_weight": w.content_weight, "style_weight": w.style_weight, "tv_weight": w.tv_weight,
            "content_layer": w.content_layer, "style_layers": list(w.style_layers),
            "style_image": str(style_path), "style_size": card.get("style_size"), "vgg_sha256": weights.sha256,
        },
        "seconds": {k: sum(v) / len(v) for k, v in {"network": timed.seconds, **seconds}.items()},
        "model_file": str(model_path),
        "device": str(dev),
        "precision": prec,
        "skipped": skipped,
    }


def iterations_to_match(curve: Sequence[float], total: float) -> int | None:
    """The first iteration ``k`` with ``curve[k] <= total`` (``None`` if there is none).

    ``curve[k]`` is the optimization's objective after ``k`` iterations; L-BFGS without a line
    search is not monotone, so this is the first time it gets there, not where it stays.
    """
    return next((k for k, v in enumerate(curve) if v <= total), None)


def format_style_table(result: dict[str, Any]) -> str:
    """The mean terms of each row (network, lbfgs_N, ...) as a plain text table.

    Columns: the unweighted ``content``, ``style`` and ``tv`` terms, the weighted ``total``,
    seconds per image, and blobs per image (the network's row only).
    """
    mean, secs = result["mean"], result["seconds"]
    n = len(result["images"])
    shape = f"{result['size']}x{result['size']} center crops" if result.get("crop") else \
        f"longest side {result['size']} px"
    lines = [f"model {result['model']}: mean over {n} image(s), {shape}",
             f"{'':<12}{'content':>12}{'style':>12}{'tv':>12}{'total':>12}{'s/image':>10}{'blobs':>8}"]
    for key, terms in mean.items():
        blobs = f"{terms['blobs']:>8.2f}" if "blobs" in terms else ""
        lines.append(f"{key:<12}" + "".join(f"{terms[t]:>12.4g}" for t in TERMS) + f"{secs[key]:>10.3f}" + blobs)
    if "lbfgs_iterations_to_match" in result:
        k, most = result["lbfgs_iterations_to_match"], len(result["lbfgs_curve"]) - 1
        lines.append(f"L-BFGS reaches the network's total after {k} iteration(s)" if k is not None else
                     f"L-BFGS does not reach the network's total within {most} iterations")
    if result.get("skipped"):
        lines.append(f"skipped (unreadable): {', '.join(result['skipped'])}")
    return "\n".join(lines)


