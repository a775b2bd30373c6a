"""Super-resolution metrics on the luma channel: PSNR-Y and SSIM-Y (BasicSR / MATLAB conventions).

Conventions (those of BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``, which reproduce the SR literature's MATLAB numbers):

- Inputs are RGB images ``(1, 3, H, W)`` (or ``(3, H, W)``) in ``[0, 1]`` that are **already
  quantized to 8-bit levels** (``k / 255``), as they would be after saving a PNG. Quantizing is
  the caller's job (:func:`quantize` does it); these functions do not round the inputs, so an
  unquantized network output scores slightly differently from the saved image.
- Y is BT.601 luma with MATLAB's ``rgb2ycbcr`` coefficients,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in ``[0, 1]``: a float on the
  ``[0, 255]`` scale whose range is ``[16, 235]``. Y itself is **not** rounded (BasicSR's
  ``to_y_channel``; MATLAB's ``rgb2ycbcr`` on ``uint8`` would round it).
- ``border`` pixels are cropped from every side before measuring (the SR convention is
  ``border = scale``).
- Arithmetic is float64, like BasicSR's numpy code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .images import to_uint8

__all__ = ["rgb_to_y", "quantize", "psnr_y", "ssim_y"]

# MATLAB rgb2ycbcr, luma row, for R, G, B in [0, 1] giving Y on the [0, 255] scale.
_Y_COEFFS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

# SSIM constants (Wang et al. 2004) for 8-bit dynamic range.
_SSIM_L = 255.0
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma with MATLAB's ``rgb2ycbcr`` coefficients.

    Args:
        x: ``(..., 3, H, W)`` RGB in ``[0, 1]``; a single channel ``(..., 1, H, W)`` is taken as
            grey (R = G = B).

    Returns:
        ``(..., 1, H, W)`` Y on the ``[0, 255]`` scale, in ``[16, 235]`` for inputs in ``[0, 1]``,
        in the input's dtype, not rounded.
    """
    if x.dim() < 3 or x.shape[-3] not in (1, 3):
        raise ValueError(f"rgb_to_y expects (..., 3, H, W) or (..., 1, H, W), got {tuple(x.shape)}")
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    r, g, b = x.unbind(dim=-3)
    y = _Y_OFFSET + _Y_COEFFS[0] * r + _Y_COEFFS[1] * g + _Y_COEFFS[2] * b
    return y.unsqueeze(-3)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to ``[0, 1]`` and round to the nearest of the 256 8-bit levels, half up (what saving does:
    :func:`fastpercept.images.to_uint8`)."""
    return to_uint8(x).to(x.dtype if x.is_floating_point() else torch.float32) / 255.0


def _luma_pair(a: torch.Tensor, b: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Y of both images, float64 ``(1, 1, H - 2*border, W - 2*border)``, after validation."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.dim() != 4 or a.shape[0] != 1:
        raise ValueError(f"expected one image (1, C, H, W) or (C, H, W), got {tuple(a.shape)}")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    h, w = a.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"image {h}x{w} is too small for a border of {border}")
    ya = rgb_to_y(a.to(torch.float64))
    yb = rgb_to_y(b.to(torch.float64))
    if border:
        ya = ya[..., border:-border, border:-border]
        yb = yb[..., border:-border, border:-border]
    return ya, yb


def psnr_y(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    """PSNR in dB between the Y channels of two 8-bit-quantized RGB images.

    Args:
        a, b: ``(1, 3, H, W)`` or ``(3, H, W)`` RGB in ``[0, 1]``, quantized to ``k / 255``.
        border: pixels cropped from each side before measuring (the SR scale, by convention).

    Returns:
        ``10 * log10(255^2 / MSE)`` with the MSE over the cropped Y (``[0, 255]`` scale);
        ``math.inf`` for identical images (BasicSR's convention, no cap).
    """
    ya, yb = _luma_pair(a, b, border)
    mse = torch.mean((ya - yb) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(_SSIM_L**2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    # The 1-D factor of OpenCV's getGaussianKernel(11, 1.5) outer product (BasicSR) and of
    # MATLAB's fspecial('gaussian', 11, 1.5).
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_y(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    """SSIM (Wang et al. 2004) between the Y channels of two 8-bit-quantized RGB images.

    Args:
        a, b: ``(1, 3, H, W)`` or ``(3, H, W)`` RGB in ``[0, 1]``, quantized to ``k / 255``.
        border: pixels cropped from each side before measuring.

    Returns:
        The mean of the SSIM map, 1.0 for identical images. Computed on unrounded Y in
        ``[0, 255]`` with an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``,
        ``L = 255``, over the *valid* window positions only (no padding: the map is 10 pixels
        smaller each way), exactly as BasicSR's ``calculate_ssim`` and the MATLAB reference
        ``ssim_index``. The cropped image must be at least 11x11.
    """
    ya, yb = _luma_pair(a, b, border)
    if min(ya.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after the border crop")
    g = _gaussian_window(_SSIM_WINDOW, _SSIM_SIGMA)
    c1 = (_SSIM_K1 * _SSIM_L) ** 2
    c2 = (_SSIM_K2 * _SSIM_L) ** 2
    # The five local moments in one batch, filtered separably (the 2-D window is an outer
    # product): float64 11x11 convolutions are slow on CPU, two 11-tap passes are not.
    stack = torch.cat([ya, yb, ya * ya, yb * yb, ya * yb], dim=0)
    stack = F.conv2d(F.conv2d(stack, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    mu_a, mu_b, e_aa, e_bb, e_ab = stack.unbind(dim=0)
    var_a = e_aa - mu_a**2
    var_b = e_bb - mu_b**2
    cov = e_ab - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean().item()
