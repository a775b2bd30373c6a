"""The Python API: ``stylize``, ``upscale`` and ``load_model`` (the CLI is a thin layer over it).

Each function takes a PIL image, a path or a float tensor in [0, 1] of shape (N, 3, H, W) and
returns the same kind (a path in, with ``output=`` given: the written path; without: a PIL image).
"""

from __future__ import annotations

import functools
import os
from typing import Union

import torch
from PIL import Image

from .device import resolve_device, resolve_precision
from .images import LoadedImage, from_pil, load_image, save_image, to_pil
from .errors import UserError
from .inference import (MIN_TILE, TorchRunner, blend_strength, match_histograms, preserve_color as _preserve_color,
                        run_network)
from .models import LoadedModel, load_model

ImageLike = Union[Image.Image, str, os.PathLike, torch.Tensor]
DEFAULT_STYLE = "mosaic"


@functools.lru_cache(maxsize=8)
def _cached_model(name_or_path: str, device: str) -> LoadedModel:
    return load_model(name_or_path, device=device)


def _as_loaded(image: ImageLike, max_size: int | None) -> LoadedImage:
    if isinstance(image, torch.Tensor):
        raise TypeError("tensor inputs are handled directly")
    if isinstance(image, Image.Image):
        return from_pil(image, max_size=max_size)
    return load_image(image, max_size=max_size)


def _transform(image: ImageLike, model_name: str, task: str, *, output: str | os.PathLike | None, max_size: int | None,
               tile: int | None, device: str, precision: str, post) -> ImageLike:
    if tile is not None and tile < MIN_TILE:
        raise UserError(f"--tile must be at least {MIN_TILE} px, not {tile}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = _cached_model(str(model_name), str(dev))
    if model.task != task:
        raise UserError(f"{model_name}: a {model.task} model, not a {task} model")
    runner = TorchRunner(model.net, prec)
    scale = runner.scale
    if isinstance(image, torch.Tensor):
        x = image.to(dev, torch.float32)
        y = run_network(runner, x, tile=tile)
        return post(y, x).to(image.device)
    loaded = _as_loaded(image, max_size)
    x = loaded.rgb.to(dev)
    y = post(run_network(runner, x, tile=tile), x).cpu()
    alpha = loaded.alpha
    if alpha is not None and scale != 1:
        alpha = torch.nn.functional.interpolate(alpha, scale_factor=scale, mode="bicubic").clamp(0, 1)
    if output is not None:
        return save_image(y, output, alpha=alpha)
    return to_pil(y, alpha)


def stylize(image: ImageLike, style: str | os.PathLike = DEFAULT_STYLE, *, strength: float = 1.0,
            preserve_color: bool = False, tile: int | None = None, max_size: int | None = None,
            device: str = "auto", precision: str = "auto", output: str | os.PathLike | None = None) -> ImageLike:
    """Stylize an image with a trained style model.

    Args:
        image: PIL image, path, or tensor (N, 3, H, W) in [0, 1].
        style: shipped style name or a model file.
        strength: 0 returns the input, 1 the full style (a linear blend in between).
        preserve_color: keep the input's colors, transfer luminance only (Gatys et al. 2016).
        tile: process in overlapping tiles of this many pixels (for images too big for memory).
        max_size: downscale so the longest side is at most this (not applied to tensors).
        output: with a path input, write the result here and return its path.
    Returns:
        The same kind as ``image``: PIL image (alpha kept), or tensor (N, 3, H, W) in [0, 1].
    """

    def post(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if preserve_color:
            y = _preserve_color(y, x)
        return blend_strength(y, x, strength)

    return _transform(image, str(style), "style", output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, post=post)


def upscale(image: ImageLike, model: str | os.PathLike = "x4", *, match_colors: bool = False, tile: int | None = None,
            max_size: int | None = None, device: str = "auto", precision: str = "auto",
            output: str | os.PathLike | None = None) -> ImageLike:
    """Super-resolve an image x4 or x8 with a trained SR model (same conventions as :func:`stylize`).

    ``match_colors``: match each color channel's histogram to the input's (the paper's
    post-processing; see :func:`fastpercept.inference.match_histograms`).
    """

    def post(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return match_histograms(y, x) if match_colors else y

    return _transform(image, str(model), "sr", output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, post=post)
