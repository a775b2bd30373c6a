"""``fastpercept eval style`` and ``eval sr``: measuring trained models.

``eval sr`` (:func:`eval_sr`): PSNR/SSIM on Y and LPIPS of a super-resolution model, or of
bicubic upscaling, on a benchmark folder (``HR/`` with ``LR_x{s}/``), by the SR literature's
conventions (see :func:`eval_sr`).

``eval style`` (:func:`eval_style`): a style model's objective on real photos, vs the
optimization baseline. For every content image the model's output is scored with the very
objective the model was trained on (rebuilt from its card: weights, layers, style image and its
size), and optionally compared with L-BFGS optimization from noise on the same objective
(Johnson et al. 2016, Figure 5), recording the objective reached after each requested
iteration count of one run.

``eval style`` loads content images whole, downscaled so the longest side is at most ``size``
(Lanczos, aspect ratio kept, never upscaled) — the same loading as ``stylize --max-size``: the
objective is defined on any size and the network and the optimization see the very same tensor.
With ``crop`` each photo becomes its centre ``size`` x ``size`` square instead, the shorter side
resized to ``size`` as in style training (:func:`fastpercept.data.centre_crop`): the paper's
Figure 5 used square images, and a whole photo reduced to a 256 px longest side shows its
content at about 0.6x the scale a network trained on 256 px crops of the shorter side has seen.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from .data import centre_crop
from .device import resolve_device, resolve_precision
from .errors import UserError
from .images import list_images, load_image
from .inference import run_network
from .losses import ObjectiveWeights, StyleObjective
from .metrics import psnr_y, quantize, ssim_y
from .models import load_model, resolve_model_path
from .optimize import TERMS, optimize_image
from .resize import imresize, mod_crop
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


def _timed_run(model: torch.nn.Module, x: torch.Tensor, precision: str, tile: int | None = None,
               scale: int = 1) -> tuple[torch.Tensor, float]:
    """The network's fp32 output (1, 3, scale H, scale W) in [0, 1] and its wall-clock seconds."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    y = run_network(model, x, tile=tile, scale=scale, precision=precision)
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
    crop: bool = False,
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
        crop: score the centre ``size`` x ``size`` square of each photo, its shorter side resized
            to ``size`` (see the module docstring), instead of the whole photo.
    Returns:
        ``{"model", "size", "crop", "images": [{"name", "network": terms, "lbfgs_N": terms...}],
        "mean": {"network": terms, "lbfgs_N": terms...}, "objective": {...},
        "seconds": {"network": s/image, "lbfgs_N": s/image...}, "skipped": [...], ...}``
        where terms are ``{"content", "style", "tv", "total"}`` (unweighted terms and the
        weighted total); ``seconds`` are per-image means (``lbfgs_N``: time to reach N
        iterations within the run). With ``vs_optimize`` also ``"lbfgs_curve"``: the mean total
        after each iteration ``0 .. max(vs_optimize)`` (the paper's Figure 5 curve), and
        ``"lbfgs_iterations_to_match"``: the first iteration at which that mean is at or below
        the network's mean total (``None``: not within ``max(vs_optimize)`` iterations).
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
    curves: list[list[float]] = []  # per image: L-BFGS total after each iteration
    seconds: dict[str, list[float]] = {k: [] for k in keys}
    skipped: list[str] = []
    root = Path(content_dir)
    warm = False
    if progress is None:
        progress = sys.stderr.isatty()
    for path in tqdm(files, desc="eval style", unit="img", file=sys.stderr, disable=not progress):
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            if crop:  # full resolution first: centre_crop resizes the shorter side itself
                x = centre_crop(load_image(path).rgb, size).to(dev)
            else:
                x = load_image(path, max_size=size).rgb.to(dev)
        except UserError as e:  # a batch goes on past a bad file (SPEC)
            tqdm.write(f"fastpercept: error: {e}", file=sys.stderr)
            skipped.append(name)
            continue
        if not warm:  # one untimed pass: lazy initialization is not the network's speed
            run_network(model, x, precision=prec)
            warm = True
        y, sec = _timed_run(model, x, prec)
        content_feat = objective.content_features(x)
        row: dict[str, Any] = {"name": name, "network": _terms(objective, y, content_feat)}
        seconds["network"].append(sec)
        if counts:
            run = optimize_image(objective, x, counts[-1], optimizer="lbfgs", init="noise", seed=0, progress=False)
            for n in counts:
                row[f"lbfgs_{n}"] = run.history[n]
                seconds[f"lbfgs_{n}"].append(run.seconds[n])
            curves.append([terms["total"] for terms in run.history])
        images.append(row)
    if not images:
        raise UserError(f"{content_dir}: none of the {len(files)} image(s) could be read")

    mean = {k: _mean([r[k] for r in images]) for k in keys}
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
        "seconds": {k: sum(v) / len(v) for k, v in seconds.items()},
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
    and seconds per image.
    """
    mean, secs = result["mean"], result["seconds"]
    n = len(result["images"])
    shape = f"{result['size']}x{result['size']} centre crops" if result.get("crop") else \
        f"longest side {result['size']} px"
    lines = [f"model {result['model']}: mean over {n} image(s), {shape}",
             f"{'':<12}{'content':>12}{'style':>12}{'tv':>12}{'total':>12}{'s/image':>10}"]
    for key, terms in mean.items():
        lines.append(f"{key:<12}" + "".join(f"{terms[t]:>12.4g}" for t in TERMS) + f"{secs[key]:>10.3f}")
    if "lbfgs_iterations_to_match" in result:
        k, most = result["lbfgs_iterations_to_match"], len(result["lbfgs_curve"]) - 1
        lines.append(f"L-BFGS reaches the network's total after {k} iteration(s)" if k is not None else
                     f"L-BFGS does not reach the network's total within {most} iterations")
    if result.get("skipped"):
        lines.append(f"skipped (unreadable): {', '.join(result['skipped'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ eval sr

SR_METRICS = ("psnr", "ssim", "lpips")
BICUBIC = "bicubic"


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` float in [0, 1] -> uint8 levels (clamped, rounded; exact for k / 255 input)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The benchmark LR input of an HR image, as the MATLAB benchmark files were made.

    ``hr`` (1, 3, H, W) in [0, 1] is quantized to 8 bits, mod-cropped to a multiple of ``scale``
    and shrunk by ``1/scale`` with MATLAB's antialiased bicubic in 8-bit arithmetic
    (``imresize(mod_crop(hr_u8, s), scale=1/s)``, which reproduces the shared ``LR_x4`` files
    bit for bit). Returns (1, 3, H // s, W // s) float32 on 8-bit levels.
    """
    lr = imresize(mod_crop(_to_uint8(hr), scale), scale=1.0 / scale)
    return lr.to(torch.float32) / 255.0


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: MATLAB-compatible bicubic upscaling by ``scale`` (float, not clamped)."""
    return imresize(lr, scale=float(scale))


def score_sr(sr: torch.Tensor, hr: torch.Tensor, scale: int, lpips: torch.nn.Module) -> dict[str, float]:
    """PSNR, SSIM and LPIPS of one super-resolved image against its HR image.

    Args:
        sr: (1, 3, H, W) in [0, 1]; quantized to 8 bits here (:func:`fastpercept.metrics.quantize`),
            as the saved output would be.
        hr: (1, 3, H, W) in [0, 1] on 8-bit levels, already mod-cropped (same size as ``sr``).
        scale: the SR factor; also the border cropped before PSNR and SSIM.
        lpips: an :class:`fastpercept.lpips.LPIPS` metric (on ``hr``'s device).
    Returns:
        ``{"psnr": dB on Y (inf when identical), "ssim": on Y, "lpips": on RGB, whole image}``.
    """
    if sr.shape != hr.shape:
        raise ValueError(f"SR output {tuple(sr.shape[-2:])} differs from HR {tuple(hr.shape[-2:])}")
    sr = quantize(sr.float())
    hr = hr.float()
    sr_cpu, hr_cpu = sr.cpu(), hr.cpu()
    with torch.no_grad():
        d = float(lpips(sr, hr)[0])
    return {"psnr": psnr_y(sr_cpu, hr_cpu, scale), "ssim": ssim_y(sr_cpu, hr_cpu, scale), "lpips": d}


def _lr_folder(root: Path, scale: int) -> Path:
    for name in (f"LR_x{scale}", f"LR_bicubic/X{scale}", f"LR_X{scale}"):
        if (root / name).is_dir():
            return root / name
    return root / f"LR_x{scale}"


def _lr_file(lr_dir: Path, hr_name: str, scale: int) -> Path | None:
    """The LR file of ``hr_name``: the same name, or ``STEMx{s}.EXT`` (DIV2K's naming)."""
    same = lr_dir / hr_name
    if same.is_file():
        return same
    p = Path(hr_name)
    for cand in lr_dir.glob(f"{p.stem}x{scale}.*"):
        return cand
    return None


def sr_pairs(data_dir: str | Path, scale: int) -> tuple[list[tuple[str, Path, Path | None]], Path | None]:
    """``([(name, hr_file, lr_file or None)], lr_dir or None)`` for an SR benchmark folder.

    Layout: ``DIR/HR/NAME.png`` and ``DIR/LR_x{s}/NAME.png`` (same names). Without an
    ``LR_x{s}`` folder every lr_file is None (LR is then made from HR, :func:`make_lr`).

    Raises:
        UserError (one line): no such folder, no ``HR`` folder or no images in it, or an
        ``LR_x{s}`` folder whose names do not match those of ``HR``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    hr_dir = root / "HR"
    if not hr_dir.is_dir():
        raise UserError(f"{root}: no HR folder (expected {root}/HR/NAME.png and {root}/LR_x{scale}/NAME.png)")
    try:
        hr_files = list_images([hr_dir], recursive=False)
    except UserError:
        raise UserError(f"{hr_dir}: no images") from None
    lr_dir = _lr_folder(root, scale)
    if not lr_dir.is_dir():
        return [(p.name, p, None) for p in hr_files], None
    pairs = [(p.name, p, _lr_file(lr_dir, p.name, scale)) for p in hr_files]
    missing = [name for name, _, lr in pairs if lr is None]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(f"{lr_dir}: no LR image for {len(missing)} of the {len(pairs)} HR image(s) ({shown}); "
                        f"names must match those in {hr_dir}")
    return pairs, lr_dir


def load_sr_pair(hr_path: Path, lr_path: Path | None, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, hr)`` of one benchmark image, as :func:`eval_sr` scores it.

    hr: (1, 3, H, W) on 8-bit levels, mod-cropped to a multiple of ``scale``. lr: the LR file,
    or (``lr_path`` None) made from the 8-bit HR with MATLAB bicubic (:func:`make_lr`).
    Raises UserError (one line) for an unreadable file.
    """
    hr_full = quantize(load_image(hr_path).rgb)
    lr = load_image(lr_path).rgb if lr_path is not None else make_lr(hr_full, scale)
    return lr, mod_crop(hr_full, scale)


def eval_sr(
    model: str | Path | torch.nn.Module,
    data_dir: str | Path,
    scale: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    lpips_net: str = "alex",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score a super-resolution model (or bicubic) on a benchmark folder: PSNR, SSIM, LPIPS.

    Conventions (those of the SR literature, BasicSR's ``test_y_channel=True``):

    - ``DIR/HR/NAME`` is mod-cropped (bottom/right) to a multiple of the scale;
      ``DIR/LR_x{s}/NAME`` is the network's input. Without an ``LR_x{s}`` folder the LR is
      made from the mod-cropped 8-bit HR with MATLAB's bicubic in 8-bit arithmetic, exactly as
      the MATLAB benchmark files were (:func:`make_lr`).
    - The SR output is quantized to 8 bits, then PSNR and SSIM are measured on Y (BT.601,
      MATLAB coefficients) with a border of ``scale`` pixels cropped, and LPIPS v0.1 on the whole
      RGB image. ``bicubic`` is MATLAB-compatible bicubic upscaling of the LR.

    Args:
        model: a shipped SR model's name, a model file, the literal ``"bicubic"`` or an
            ``nn.Module`` with a ``.card`` (``task: "sr"``, ``scale``).
        data_dir: the benchmark folder (``HR/`` and optionally ``LR_x{s}/``).
        scale: required for ``bicubic``; for a model it comes from its card and a different
            value here is an error.
        tile: run the network in tiles of this many input pixels (``None``: whole images).
        device, precision: where and how the network runs; metrics are float32/float64.
        lpips_net: LPIPS backbone, ``"alex"`` (default) or ``"vgg"``.
        progress: progress bar on stderr; default: when stderr is a terminal.
    Returns:
        ``{"model", "scale", "images": [{"name", "psnr", "ssim", "lpips"}],
        "mean": {"psnr", "ssim", "lpips"}, "data", "lr": "files"|"made from HR",
        "lpips_net", "seconds" (network s/image), "device", "precision", "skipped"}``.
        PSNR of an exact reconstruction is ``inf``.
    Raises:
        UserError: bad model/scale combination, bad folder layout, an LR/HR size mismatch.
    """
    from .lpips import LPIPS

    dev = resolve_device(device)
    net: torch.nn.Module | None = None
    if isinstance(model, torch.nn.Module):
        net, name = model, getattr(model, "name", type(model).__name__)
    elif str(model) == BICUBIC:
        if scale is None:
            raise UserError("--model bicubic needs --scale (4 or 8)")
        name = BICUBIC
    else:
        net = load_model(resolve_model_path(model), device=dev)
        name = net.name
    if net is not None:
        card = getattr(net, "card", {})
        if card.get("task") != "sr":
            raise UserError(f"{model}: not a super-resolution model (task {card.get('task')!r})")
        card_scale = int(card["scale"])
        if scale is not None and int(scale) != card_scale:
            raise UserError(f"{model}: an x{card_scale} model; --scale {scale} conflicts with it")
        scale = card_scale
        net = net.to(dev).eval()
    scale = int(scale)  # type: ignore[arg-type]
    if scale < 2:
        raise UserError(f"--scale must be at least 2, got {scale}")
    prec = resolve_precision(precision, dev) if net is not None else "fp32"

    pairs, lr_dir = sr_pairs(data_dir, scale)
    metric = LPIPS(lpips_net).to(dev)
    if progress is None:
        progress = sys.stderr.isatty()
    images: list[dict[str, Any]] = []
    skipped: list[str] = []
    seconds: list[float] = []
    warm = False
    for img_name, hr_path, lr_path in tqdm(pairs, desc=f"eval sr {name}", unit="img", file=sys.stderr,
                                           disable=not progress):
        try:
            lr, hr = load_sr_pair(hr_path, lr_path, scale)
        except UserError as e:  # a batch goes on past a bad file (SPEC)
            tqdm.write(f"fastpercept: error: {e}", file=sys.stderr)
            skipped.append(img_name)
            continue
        where = lr_path or hr_path
        if min(hr.shape[-2:]) < max(32, 2 * scale + 11):  # LPIPS's AlexNet; SSIM's window past the border
            raise UserError(f"{hr_path}: {hr.shape[-1]}x{hr.shape[-2]} px is too small to measure at x{scale}")
        if net is not None and min(lr.shape[-2:]) < 5:  # the 9x9 reflection-padded first layer
            raise UserError(f"{where}: {lr.shape[-1]}x{lr.shape[-2]} px is too small for the network (5 px at least)")
        lr = lr.to(dev)
        if net is None:
            sr = bicubic_upscale(lr, scale)
        else:
            if not warm:  # one untimed pass: lazy initialization is not the network's speed
                run_network(net, lr, tile=tile, scale=scale, precision=prec)
                warm = True
            sr, sec = _timed_run(net, lr, prec, tile=tile, scale=scale)
            seconds.append(sec)
        if sr.shape[-2:] != hr.shape[-2:]:
            raise UserError(f"{where}: x{scale} output is {sr.shape[-1]}x{sr.shape[-2]} px but the mod-cropped HR "
                            f"{hr_path.name} is {hr.shape[-1]}x{hr.shape[-2]}; is LR_x{scale} really x{scale}?")
        images.append({"name": img_name, **score_sr(sr, hr.to(dev), scale, metric)})
    if not images:
        raise UserError(f"{data_dir}: none of the {len(pairs)} image pair(s) could be read")
    return {
        "model": name,
        "scale": scale,
        "images": images,
        "mean": {k: sum(im[k] for im in images) / len(images) for k in SR_METRICS},
        "data": str(data_dir),
        "lr": "files" if lr_dir is not None else "made from HR (MATLAB bicubic, uint8)",
        "lpips_net": lpips_net,
        "seconds": sum(seconds) / len(seconds) if seconds else 0.0,
        "device": str(dev),
        "precision": prec,
        "tile": tile,
        "skipped": skipped,
    }


def format_sr_table(result: dict[str, Any]) -> str:
    """Per-image rows and the mean: PSNR (dB, Y), SSIM (Y), LPIPS, as a plain text table."""
    rows = result["images"]
    width = max([len("mean"), *(len(im["name"]) for im in rows)]) + 2
    title = (f"model {result['model']} x{result['scale']} on {result.get('data', '?')} ({len(rows)} image(s); "
             f"PSNR/SSIM on Y, border {result['scale']}; LPIPS {result.get('lpips_net', 'alex')})")
    lines = [title, f"{'image':<{width}}{'PSNR dB':>10}{'SSIM':>9}{'LPIPS':>9}"]

    def row(label: str, m: dict[str, float]) -> str:
        return f"{label:<{width}}{m['psnr']:>10.2f}{m['ssim']:>9.4f}{m['lpips']:>9.4f}"

    lines += [row(im["name"], im) for im in rows]
    lines.append(row("mean", result["mean"]))
    if result.get("skipped"):
        lines.append(f"skipped (unreadable): {', '.join(result['skipped'])}")
    return "\n".join(lines)
