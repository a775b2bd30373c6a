"""``fastpercept eval sr``: PSNR/SSIM on Y and LPIPS of a super-resolution model, or of bicubic.

On a benchmark folder (``HR/`` with ``LR_x{s}/``), by the SR literature's conventions (see
:func:`eval_sr`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..runtime.batch import each_item
from ..runtime.device import resolve_device, resolve_precision
from ..errors import UserError
from ..runtime.images import load_image, to_uint8
from ..runtime.listing import list_images
from ..runtime.torch_runner import TorchRunner
from ..runtime.tiling import TimedNetwork
from .metrics import psnr_y, quantize, ssim_y
from ..models import LoadedModel, load_model, resolve_model_path
from .resize import imresize, mod_crop

SR_METRICS = ("psnr", "ssim", "lpips")
BICUBIC = "bicubic"


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The benchmark LR input of an HR image, as the MATLAB benchmark files were made.

    ``hr`` (1, 3, H, W) in [0, 1] is quantized to 8 bits, mod-cropped to a multiple of ``scale``
    and shrunk by ``1/scale`` with MATLAB's antialiased bicubic in 8-bit arithmetic
    (``imresize(mod_crop(hr_u8, s), scale=1/s)``, which reproduces the shared ``LR_x4`` files
    bit for bit). Returns (1, 3, H // s, W // s) float32 on 8-bit levels.
    """
    lr = imresize(mod_crop(to_uint8(hr), scale), scale=1.0 / scale)
    return lr.to(torch.float32) / 255.0


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: MATLAB-compatible bicubic upscaling by ``scale`` (float, not clamped)."""
    return imresize(lr, scale=float(scale))


def score_sr(sr: torch.Tensor, hr: torch.Tensor, scale: int, lpips: torch.nn.Module) -> dict[str, float]:
    """PSNR, SSIM and LPIPS of one super-resolved image against its HR image.

    Args:
        sr: (1, 3, H, W) in [0, 1]; quantized to 8 bits here (:func:`fastpercept.training.metrics.quantize`),
            as the saved output would be.
        hr: (1, 3, H, W) in [0, 1] on 8-bit levels, already mod-cropped (same size as ``sr``).
        scale: the SR factor; also the border cropped before PSNR and SSIM.
        lpips: an :class:`fastpercept.training.lpips.LPIPS` metric (on ``hr``'s device).
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


DEGRADATIONS = ("clean", "real")


def load_sr_pair(hr_path: Path, lr_path: Path | None, scale: int, degradation: str = "clean",
                 jpeg_quality: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, hr)`` of one benchmark image, as :func:`eval_sr` scores it.

    hr: (1, 3, H, W) on 8-bit levels, mod-cropped to a multiple of ``scale``. lr: the LR file,
    or (``lr_path`` None) made from the 8-bit HR with MATLAB bicubic (:func:`make_lr`); then, with
    ``jpeg_quality``, JPEG-compressed at that quality. With ``degradation="real"`` the LR is made
    from HR by the training pipeline (:func:`fastpercept.training.degradation.degrade_real`) with a
    generator of ``(seed, HR file name)`` alone, so anyone reproduces it (the LR file is unused).
    Raises UserError (one line) for an unreadable file or an HR image too small to measure.
    """
    from . import degradation as deg

    hr_full = quantize(load_image(hr_path).rgb)
    h, w = hr_full.shape[-2:]
    if min(h, w) < max(32, 2 * scale + 11):  # LPIPS's AlexNet; SSIM's window past the border
        raise UserError(f"{hr_path}: {w}x{h} px is too small to measure at x{scale}")
    hr = mod_crop(hr_full, scale)
    if degradation == "real":
        return deg.degrade_real(hr, scale, deg.eval_rng(seed, hr_path.name)), hr
    lr = load_image(lr_path).rgb if lr_path is not None else make_lr(hr_full, scale)
    if jpeg_quality is not None:
        lr = deg.jpeg(lr, jpeg_quality)
    return lr, hr


def eval_sr(
    model: str | Path | LoadedModel,
    data_dir: str | Path,
    scale: int | None = None,
    tile: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    lpips_net: str = "alex",
    progress: bool | None = None,
    degradation: str = "clean",
    jpeg_quality: int | None = None,
    seed: int = 0,
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
        model: a shipped SR model's name, a model file, the literal ``"bicubic"`` or a
            :class:`~fastpercept.models.LoadedModel` (``task: "sr"``).
        data_dir: the benchmark folder (``HR/`` and optionally ``LR_x{s}/``).
        scale: required for ``bicubic``; for a model it comes from its card and a different
            value here is an error.
        tile: run the network in tiles of this many input pixels (``None``: whole images).
        device, precision: where and how the network runs; metrics are float32/float64.
        lpips_net: LPIPS backbone, ``"alex"`` (default) or ``"vgg"``.
        progress: progress bar on stderr; default: when stderr is a terminal.
        degradation, jpeg_quality, seed: the LR as real photos are (see :func:`load_sr_pair`):
            ``"real"`` degrades each HR with the training pipeline at ``seed``; ``jpeg_quality``
            compresses the clean LR as JPEG at that quality.
    Returns:
        ``{"model", "scale", "images": [{"name", "psnr", "ssim", "lpips"}],
        "mean": {"psnr", "ssim", "lpips"}, "data", "lr": "files"|"made from HR",
        "lpips_net", "seconds" (network s/image), "device", "precision", "skipped"}``.
        PSNR of an exact reconstruction is ``inf``.
    Raises:
        UserError: bad model/scale combination, bad folder layout, or no pair measurable (a pair
        that cannot be read or measured, e.g. an LR/HR size mismatch, is reported and skipped).
    """
    from .lpips import LPIPS

    if degradation not in DEGRADATIONS:
        raise UserError(f"degradation must be one of {', '.join(DEGRADATIONS)}, not {degradation!r}")
    if degradation == "real" and jpeg_quality is not None:
        raise UserError("choose one degradation: real (the training pipeline) or a JPEG quality, not both")
    if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
        raise UserError(f"JPEG quality must be between 1 and 100, not {jpeg_quality}")
    dev = resolve_device(device)
    loaded: LoadedModel | None = None
    if isinstance(model, LoadedModel):
        loaded, name = model, model.name
    elif str(model) == BICUBIC:
        if scale is None:
            raise UserError("--model bicubic needs --scale (4 or 8)")
        name = BICUBIC
    else:
        loaded = load_model(resolve_model_path(model), device=dev)
        name = loaded.name
    runner: TorchRunner | None = None
    if loaded is not None:
        if loaded.card.get("task") != "sr":
            raise UserError(f"{model}: not a super-resolution model (task {loaded.card.get('task')!r})")
        if scale is not None and int(scale) != loaded.scale:
            raise UserError(f"{model}: an x{loaded.scale} model; --scale {scale} conflicts with it")
        scale = loaded.scale
        runner = TorchRunner(loaded.net.to(dev).eval(), resolve_precision(precision, dev))
    scale = int(scale)  # type: ignore[arg-type]
    if scale < 2:
        raise UserError(f"--scale must be at least 2, got {scale}")
    prec = runner.precision if runner is not None else "fp32"

    pairs, lr_dir = sr_pairs(data_dir, scale)
    metric = LPIPS(lpips_net).to(dev)
    network = TimedNetwork(runner, tile) if runner is not None else None

    def score(pair: tuple[str, Path, Path | None]) -> dict[str, Any]:
        img_name, hr_path, lr_path = pair
        lr, hr = load_sr_pair(hr_path, lr_path, scale, degradation, jpeg_quality, seed)
        where = lr_path or hr_path
        if runner is not None and min(lr.shape[-2:]) < 5:  # the 9x9 reflection-padded first layer
            raise UserError(f"{where}: {lr.shape[-1]}x{lr.shape[-2]} px is too small for the network (5 px at least)")
        lr = lr.to(dev)
        sr = bicubic_upscale(lr, scale) if network is None else network(lr)
        if sr.shape[-2:] != hr.shape[-2:]:
            raise UserError(f"{where}: x{scale} output is {sr.shape[-1]}x{sr.shape[-2]} px but the mod-cropped HR "
                            f"{hr_path.name} is {hr.shape[-1]}x{hr.shape[-2]}; is LR_x{scale} really x{scale}?")
        return {"name": img_name, **score_sr(sr, hr.to(dev), scale, metric)}

    failed: list[tuple[tuple[str, Path, Path | None], str]] = []
    images = [row for _, row in each_item(pairs, score, failed, desc=f"eval sr {name}", progress=progress)]
    skipped = [pair[0] for pair, _ in failed]
    if not images:
        raise UserError(f"{data_dir}: none of the {len(pairs)} image pair(s) could be measured")
    return {
        "model": name,
        "scale": scale,
        "images": images,
        "mean": {k: sum(im[k] for im in images) / len(images) for k in SR_METRICS},
        "data": str(data_dir),
        "lr": _lr_source(lr_dir is not None, degradation),
        "degradation": {"name": degradation, "seed": seed} if degradation == "real" else
                       {"name": "jpeg", "quality": jpeg_quality} if jpeg_quality is not None else {"name": "clean"},
        "lpips_net": lpips_net,
        "seconds": sum(network.seconds) / len(network.seconds) if network and network.seconds else 0.0,
        "device": str(dev),
        "precision": prec,
        "tile": tile,
        "skipped": skipped,
    }


def _lr_source(files: bool, degradation: str) -> str:
    if degradation == "real":
        return "made from HR (real-photo degradations)"
    return "files" if files else "made from HR (MATLAB bicubic, uint8)"


def format_sr_table(result: dict[str, Any]) -> str:
    """Per-image rows and the mean: PSNR (dB, Y), SSIM (Y), LPIPS, as a plain text table."""
    rows = result["images"]
    width = max([len("mean"), *(len(im["name"]) for im in rows)]) + 2
    how = result.get("degradation", {"name": "clean"})
    inputs = {"clean": "", "jpeg": f", LR as JPEG q{how.get('quality')}",
              "real": f", LR degraded as real photos (seed {how.get('seed')})"}[how["name"]]
    title = (f"model {result['model']} x{result['scale']} on {result.get('data', '?')} ({len(rows)} image(s){inputs}; "
             f"PSNR/SSIM on Y, border {result['scale']}; LPIPS {result.get('lpips_net', 'alex')})")
    lines = [title, f"{'image':<{width}}{'PSNR dB':>10}{'SSIM':>9}{'LPIPS':>9}"]

    def row(label: str, m: dict[str, float]) -> str:
        return f"{label:<{width}}{m['psnr']:>10.2f}{m['ssim']:>9.4f}{m['lpips']:>9.4f}"

    lines += [row(im["name"], im) for im in rows]
    lines.append(row("mean", result["mean"]))
    if result.get("skipped"):
        lines.append(f"skipped (unreadable): {', '.join(result['skipped'])}")
    return "\n".join(lines)
