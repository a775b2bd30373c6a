"""The Python API: ``stylize``, ``upscale`` and ``load_model`` (the CLI is a thin layer over it).

Each function takes a PIL image, a path or a tensor — (N, 3, H, W) or (3, H, W), floats in
[0, 1] or uint8 — and returns the same kind (a path in, with ``output=`` given: the written
path; without: a PIL image; a tensor in: a tensor of the same shape convention and dtype, also
written to ``output=`` when given). ``output`` never replaces the input. Bad inputs raise
:class:`~fastpercept.errors.UserError` (a ``ValueError``; ``InputTypeError`` is also a ``TypeError``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Union

import torch
from PIL import Image

from .device import resolve_device, resolve_precision
from .errors import InputTypeError, UserError
from .images import LoadedImage, from_pil, load_image, save_image, to_pil, to_uint8
from .inference import blend_strength, match_histograms, preserve_color as _preserve_color, run_network
from .listing import check_image_output, refuse_overwriting_inputs
from .models import DEFAULT_STYLE, LoadedModel, load_model
from .video import DEFAULT_FPS, is_frames_output, is_video

ImageLike = Union[Image.Image, str, os.PathLike, torch.Tensor]


@functools.lru_cache(maxsize=32)
def _cached_model(name_or_path: str, device: str) -> LoadedModel:
    return load_model(name_or_path, device=device)


@functools.lru_cache(maxsize=32)
def _cached_runner(name_or_path: str, device: str, precision: str, backend: str):
    """The model's runner, built once per process (a server or a batch keeps it warm)."""
    from .backends import make_runner

    model = _cached_model(name_or_path, device)
    return make_runner(model.net, model.card, backend, torch.device(device), precision), model.task


def _as_loaded(image: ImageLike, max_size: int | None, scale: int) -> LoadedImage:
    if isinstance(image, Image.Image):
        return from_pil(image, max_size=max_size)
    return load_image(image, max_size=max_size, output_scale=scale)


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    """A tensor input as (N, 3, H, W) float32 in [0, 1]: (3, H, W) gains N = 1, uint8 is divided by 255.

    Floats outside [0, 1] are refused rather than clamped (0..255 floats would come out white).
    """
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] == 0 or min(image.shape[-2:]) == 0:
        raise InputTypeError(f"tensor of shape {tuple(image.shape)}: expected (N, 3, H, W) or (3, H, W) RGB with "
                             "N, H, W >= 1 (drop an alpha channel first; repeat a gray one 3 times)")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise InputTypeError(f"tensor of dtype {image.dtype}: expected floats in [0, 1] or uint8")
    x = image.float()
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also catches NaN
        raise UserError(f"tensor values range from {lo:g} to {hi:g}; expected [0, 1] (divide 8-bit values by 255)")
    return x.clamp(0, 1)


def _transform(image: ImageLike, model_name: str, task: str, *, output: str | os.PathLike | None, max_size: int | None,
               tile: int | None, device: str, precision: str, backend: str, post, crf: int | None = None,
               codec: str | None = None, stable: bool = False, fps: float = DEFAULT_FPS,
               progress: Callable[[int, int], None] | None = None) -> ImageLike:
    # Checked before the model loads: a wrong kind of input should not wait for (or pay for) it.
    if not isinstance(image, (Image.Image, str, os.PathLike, torch.Tensor)):
        raise InputTypeError(f"cannot take a {type(image).__module__}.{type(image).__name__}: pass a PIL image, a "
                             "path, or a torch tensor (N, 3, H, W) of floats in [0, 1] (uint8 also works)")
    if isinstance(image, torch.Tensor):
        image_batch = _as_batch(image)
    # A clip: a video file, or a folder of frames (read in name order at ``fps``).
    video = isinstance(image, (str, os.PathLike)) and (is_video(image) or Path(image).is_dir())
    if video and output is None:
        raise UserError(f"{image}: a clip is written to a video file or a folder of frames; give output=")
    if output is not None:
        if not (video and is_frames_output(output)):
            check_image_output(output, video=video)
        if isinstance(image, (str, os.PathLike)):
            refuse_overwriting_inputs(output, [image])
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    runner, model_task = _cached_runner(str(model_name), str(dev), prec, backend)
    if model_task != task:
        raise UserError(f"{model_name}: a {model_task} model, not a {task} model")
    scale = runner.scale
    if video:
        return _transform_video(Path(image), Path(output), runner, post, dev, tile, crf, codec, stable, fps, progress)
    if isinstance(image, torch.Tensor):
        x = image_batch.to(dev)
        if output is not None and x.shape[0] != 1:
            raise UserError(f"output= writes one image; the tensor holds a batch of {x.shape[0]}")
        y = post(run_network(runner, x, tile=tile), x)
        if output is not None:
            save_image(y.cpu(), output)
        if image.dtype == torch.uint8:
            y = to_uint8(y)
        return (y if image.dim() == 4 else y[0]).to(image.device)
    loaded = _as_loaded(image, max_size, scale)
    x = loaded.rgb.to(dev)
    y = post(run_network(runner, x, tile=tile), x).cpu()
    alpha = loaded.alpha
    if alpha is not None and scale != 1:
        alpha = torch.nn.functional.interpolate(alpha, scale_factor=scale, mode="bicubic").clamp(0, 1)
    if output is not None:
        return save_image(y, output, alpha=alpha)
    return to_pil(y, alpha)


def _transform_video(src: Path, dst: Path, runner, post, dev: torch.device, tile: int | None, crf: int | None,
                     codec: str | None, stable: bool, fps: float, progress: Callable[[int, int], None] | None) -> Path:
    """Every frame of a clip through the runner and ``post``, in batches; see :mod:`fastpercept.video`.

    ``stable``: frames calmed along their motion before the network and settled after it
    (:class:`~fastpercept.temporal.StableFrames`) instead of standing alone.
    """
    import sys

    import numpy as np
    from tqdm import tqdm

    from .temporal import StableFrames
    from .video import DEFAULT_CRF, transform_video

    stable_frames = StableFrames() if stable else None

    def frames(x: torch.Tensor) -> torch.Tensor:
        if stable_frames is not None:
            pixels = to_uint8(x).permute(0, 2, 3, 1).numpy()
            x = torch.from_numpy(np.stack([stable_frames.calm(f) for f in pixels])).permute(0, 3, 1, 2)
        x = x.to(dev)
        y = post(run_network(runner, x, tile=tile), x).cpu()
        if stable_frames is None:
            return y
        settled = [stable_frames.settle(o) for o in y.permute(0, 2, 3, 1).numpy()]
        return torch.from_numpy(np.stack(settled)).permute(0, 3, 1, 2)

    with tqdm(desc=src.name, unit="frame", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        def done(n: int, total: int) -> None:
            bar.total = total or None  # known from the first batch on: the bar shows the time left
            bar.update(n - bar.n)
            if progress:
                progress(n, total)

        return transform_video(src, dst, frames, codec=codec, crf=DEFAULT_CRF if crf is None else crf,
                               progress=done, fps=fps)


def stylize(image: ImageLike, style: str | os.PathLike = DEFAULT_STYLE, *, strength: float = 1.0,
            preserve_color: bool = False, tile: int | None = None, max_size: int | None = None,
            device: str = "auto", precision: str = "auto", output: str | os.PathLike | None = None,
            backend: str = "auto", crf: int | None = None, codec: str | None = None, stable: bool = True,
            fps: float = DEFAULT_FPS, progress: Callable[[int, int], None] | None = None) -> ImageLike:
    """Stylize an image (or a video file, frame by frame, audio kept) with a trained style model.

    Args:
        image: PIL image, path, or tensor (N, 3, H, W) in [0, 1].
        style: shipped style name or a model file.
        strength: 0 returns the input, 1 the full style (a linear blend in between).
        preserve_color: keep the input's colors, transfer luminance only (Gatys et al. 2016).
        tile: process in overlapping tiles of this many pixels (for images too big for memory).
        max_size: downscale so the longest side is at most this (not applied to tensors).
        output: with a path input, write the result here and return its path.
        backend: ``auto``, ``torch``, ``compile``, ``onnxruntime`` or ``openvino``
            (:mod:`fastpercept.backends`; ``auto`` takes the fastest installed one).
        crf, codec: for a video (a path ending in .mp4 .mov .mkv .webm .avi, with ``output``):
            the encoder's quality and the encoder (default: x264 at crf 18; VP9 for .webm).
            A clip may also be a folder of frames (image files in name order, at ``fps``), and
            ``output`` a folder (no suffix, or ending in "/"): the frames are written there as
            PNG files ``000001.png``, ... (without audio). ``progress(done, total)`` follows the
            frames (total from the container's metadata; 0 where it does not say).
        stable: for a video, calm the frames along their motion before the network and settle
            the outputs after it (no flicker; :class:`~fastpercept.temporal.StableFrames`);
            False stylizes each frame on its own.
    Returns:
        The same kind as ``image``: PIL image (alpha kept), or tensor (N, 3, H, W) in [0, 1].
    """

    def post(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if preserve_color:
            y = _preserve_color(y, x)
        return blend_strength(y, x, strength)

    return _transform(image, str(style), "style", output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, backend=backend, post=post, crf=crf, codec=codec, stable=stable,
                      fps=fps, progress=progress)


def upscale(image: ImageLike, model: str | os.PathLike = "x4", *, match_colors: bool = False, tile: int | None = None,
            max_size: int | None = None, device: str = "auto", precision: str = "auto",
            output: str | os.PathLike | None = None, backend: str = "auto", crf: int | None = None,
            codec: str | None = None, fps: float = DEFAULT_FPS,
            progress: Callable[[int, int], None] | None = None) -> ImageLike:
    """Super-resolve an image x4 or x8 with a trained SR model (same conventions as :func:`stylize`).

    ``match_colors``: match each color channel's histogram to the input's (the paper's
    post-processing; see :func:`fastpercept.inference.match_histograms`).
    """

    def post(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return match_histograms(y, x) if match_colors else y

    return _transform(image, str(model), "sr", output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, backend=backend, post=post, crf=crf, codec=codec, fps=fps,
                      progress=progress)
