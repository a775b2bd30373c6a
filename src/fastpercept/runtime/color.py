"""What runs after the network: strength, colour preservation and histogram matching.

Arrays are NumPy (N, C, H, W) float32; every function is pure.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

# RGB <-> YIQ (NTSC), as in Gatys et al. 2016, "Preserving color in neural artistic style transfer".
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def preserve_color(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance-only transfer: Y from ``stylized``, I and Q (colour) from ``content``.

    Args:
        stylized, content: (N, 3, H, W) in [0, 1], same size.
    Returns:
        (N, 3, H, W) in [0, 1].
    """
    yiq = np.einsum("ij,njhw->nihw", _RGB_TO_YIQ, content)
    yiq[:, :1] = np.einsum("j,njhw->nhw", _RGB_TO_YIQ[0], stylized)[:, None]
    return np.clip(np.einsum("ij,njhw->nihw", _YIQ_TO_RGB, yiq), 0, 1).astype(np.float32)


def match_histograms(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Give each channel of ``image`` the value distribution of the same channel of ``reference``.

    The post-processing of Johnson et al. (2016) for super-resolution: the output's colour
    histograms are matched to the low-resolution input's, undoing colour shifts the network
    introduced. Exact histogram specification by quantiles: equal input values map to equal
    outputs (``skimage.exposure.match_histograms``'s convention), so flat regions stay flat.

    Args:
        image: (N, C, H, W) float, any range.
        reference: (N, C, h, w) float, any size (e.g. the LR input).
    Returns:
        (N, C, H, W), each channel's values drawn from the reference's range.
    """
    if image.shape[:2] != reference.shape[:2]:
        raise ValueError(f"image {image.shape} and reference {reference.shape} differ in N or C")
    out = np.empty_like(image)
    for n in range(image.shape[0]):
        for c in range(image.shape[1]):
            values, inverse, counts = np.unique(image[n, c].astype(np.float64), return_inverse=True,
                                                return_counts=True)
            ref_values, ref_counts = np.unique(reference[n, c].astype(np.float64), return_counts=True)
            quantiles = np.cumsum(counts) / counts.sum()
            ref_quantiles = np.cumsum(ref_counts) / ref_counts.sum()
            mapped = np.interp(quantiles, ref_quantiles, ref_values)
            out[n, c] = mapped[inverse.reshape(image.shape[2:])].astype(image.dtype)
    return out


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1]; :class:`UserError` otherwise (checked before any work)."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise UserError(f"strength must be a number in [0, 1], not {strength!r}") from None
    if not 0.0 <= value <= 1.0:
        raise UserError(f"strength must be in [0, 1], not {strength}")
    return value


def blend_strength(stylized: np.ndarray, content: np.ndarray, strength: float) -> np.ndarray:
    """``strength * stylized + (1 - strength) * content``; 0 gives the input, 1 the full style."""
    strength = check_strength(strength)
    if strength == 1.0:
        return stylized
    return (content + np.float32(strength) * (stylized - content)).astype(np.float32)
