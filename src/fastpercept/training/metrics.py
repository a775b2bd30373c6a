"""Image metrics: PSNR-Y and SSIM-Y for super-resolution, and blobs (style artifacts).

PSNR-Y and SSIM-Y follow BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``, which reproduce the SR literature's MATLAB numbers:

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

Blobs (:func:`find_blobs`) are measured on NumPy images ``(H, W, 3)`` in ``[0, 1]``: the smooth
near-white or near-black spots that instance-normalized style networks paint where the photo
has nothing (docs/style-artifacts.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.images import to_uint8

__all__ = ["rgb_to_y", "quantize", "psnr_y", "ssim_y", "Blob", "find_blobs", "count_blobs"]

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
    :func:`fastpercept.runtime.images.to_uint8`)."""
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


# --- Style artifacts: blobs ------------------------------------------------------------------
# Thresholds chosen on the shipped styles' outputs of 12 held-out photos at 512 px, where they
# find every smooth white/black spot seen by eye and nothing on starry_night_crop or mosaic-half
# (docs/style-artifacts.md). Pixel sizes are absolute: a blob's size is set by the network
# (its receptive field), not by the photo's size.
BLOB_WHITE = 0.9  # near-white: every channel at least this
BLOB_BLACK = 0.1  # near-black: every channel at most this
BLOB_SMOOTH_WINDOW = 7  # px, square window of the local luma standard deviation
BLOB_SMOOTH_STD = 0.05  # smooth: local luma standard deviation at most this
BLOB_MIN_AREA = 0.001  # fraction of the image's area
BLOB_MIN_RADIUS = 6.0  # px: the region holds a disc of this radius (a spot, not a stroke)
BLOB_RING_GAP = 3  # px between a region and the ring it is compared with (its soft edge)
BLOB_MIN_CONTRAST = 0.1  # luma, region vs ring in the output, towards white (black)
BLOB_MAX_PHOTO_CONTRAST = 0.2  # luma, the same in the photo: at most a faint version of the spot

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601


@dataclass(frozen=True)
class Blob:
    """One blob of :func:`find_blobs`.

    ``kind``: ``"white"`` or ``"black"``; ``area``: pixels; ``box``: ``(x, y, width, height)``;
    ``radius``: px of the largest disc inside it (the image border counts as inside: a blob cut
    by the border is measured as if it went on); ``contrast`` and ``photo_contrast``: luma of the
    region minus luma of the ring around it in the output and in the photo, signed so that
    positive means towards the blob's extreme (brighter for white, darker for black).
    """

    kind: str
    area: int
    box: tuple[int, int, int, int]
    radius: float
    contrast: float
    photo_contrast: float


def _luma(image: np.ndarray) -> np.ndarray:
    return (image @ _LUMA).astype(np.float32)


def _local_std(luma: np.ndarray, window: int) -> np.ndarray:
    mean = cv2.blur(luma, (window, window))
    return np.sqrt(np.maximum(cv2.blur(luma * luma, (window, window)) - mean * mean, 0.0))


def _inscribed_radius(region: np.ndarray) -> float:
    """Radius (px) of the largest disc inside ``region`` (H, W) bool, the image mirrored at its border."""
    pad = max(region.shape)
    mirrored = cv2.copyMakeBorder(region.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    return float(cv2.distanceTransform(mirrored, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).max())


def _ring(region: np.ndarray, width: float) -> np.ndarray:
    """The pixels more than BLOB_RING_GAP and at most BLOB_RING_GAP + ``width`` px from ``region``."""
    outside = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (outside > BLOB_RING_GAP) & (outside <= BLOB_RING_GAP + width)


def find_blobs(output: np.ndarray, photo: np.ndarray) -> list[Blob]:
    """The blobs of a stylized image: smooth near-white or near-black spots the photo does not have.

    The known failure of instance-normalized feed-forward style networks (a few huge activations
    paint a flat saturated disc into sky, walls or an edge). A blob is an 8-connected region of

    1. near-white pixels (every channel >= ``BLOB_WHITE``) or near-black ones (every channel
       <= ``BLOB_BLACK``) that are smooth (luma std in the ``BLOB_SMOOTH_WINDOW`` square around
       the pixel <= ``BLOB_SMOOTH_STD``),
    2. of at least ``BLOB_MIN_AREA`` of the image's area,
    3. holding a disc of radius ``BLOB_MIN_RADIUS`` px (a spot, not a stroke or a thin shard),
    4. standing out from the output around it: its mean luma minus that of the ring
       ``BLOB_RING_GAP`` to ``BLOB_RING_GAP + max(4, r/2)`` px away (``r``: the radius of a disc of
       its area) is at least ``BLOB_MIN_CONTRAST`` towards white (black),
    5. while the photo under it does not: the same difference in the photo, towards white
       (black), is below ``BLOB_MAX_PHOTO_CONTRAST``.

    Luma is BT.601 (0.299 R + 0.587 G + 0.114 B). Condition 5 is a contrast, not a flatness test:
    a white disc painted over dark trees is a blob, a white disc the photo has is not.

    Args:
        output: the stylized image, ``(H, W, 3)`` float RGB in ``[0, 1]``.
        photo: the content photo it was made from, the same shape and range.

    Returns:
        The blobs, largest first.
    """
    if output.shape != photo.shape or output.ndim != 3 or output.shape[2] != 3:
        raise ValueError(f"find_blobs expects two (H, W, 3) images of one shape, got {output.shape} and {photo.shape}")
    output, photo = output.astype(np.float32), photo.astype(np.float32)
    out_luma, photo_luma = _luma(output), _luma(photo)
    smooth = _local_std(out_luma, BLOB_SMOOTH_WINDOW) <= BLOB_SMOOTH_STD
    height, width = out_luma.shape
    blobs = []
    for kind, extreme, sign in (("white", output.min(axis=2) >= BLOB_WHITE, 1.0),
                                ("black", output.max(axis=2) <= BLOB_BLACK, -1.0)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats((extreme & smooth).astype(np.uint8), connectivity=8)
        for label in range(1, count):
            area = int(stats[label, cv2.CC_STAT_AREA])
            if area < BLOB_MIN_AREA * height * width:
                continue
            region = labels == label
            radius = _inscribed_radius(region)
            if radius < BLOB_MIN_RADIUS:
                continue
            ring = _ring(region, max(4.0, math.sqrt(area / math.pi) / 2))
            if not ring.any():  # the region fills the image: nothing to stand out from
                continue
            contrast = sign * float(out_luma[region].mean() - out_luma[ring].mean())
            photo_contrast = sign * float(photo_luma[region].mean() - photo_luma[ring].mean())
            if contrast >= BLOB_MIN_CONTRAST and photo_contrast < BLOB_MAX_PHOTO_CONTRAST:
                x, y, w, h = (int(v) for v in stats[label, :4])
                blobs.append(Blob(kind, area, (x, y, w, h), radius, contrast, photo_contrast))
    return sorted(blobs, key=lambda b: -b.area)


def count_blobs(output: np.ndarray, photo: np.ndarray) -> int:
    """How many blobs :func:`find_blobs` finds (same arguments)."""
    return len(find_blobs(output, photo))
