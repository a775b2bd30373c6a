"""Real-world degradations for super-resolution training: Real-ESRGAN's high-order model.

Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data"
(ICCVW 2021), section 3: the LR input of a training pair is made from its HR patch by two
rounds of ``blur -> random resize -> noise -> JPEG``; the second round ends with the resize to
the LR size and a sinc filter (ringing and overshoot), in random order with its JPEG.
:func:`degrade_real` runs it; every operation is a function of its own here.

Conventions (kornia's): images are float tensors ``(N, 3, H, W)`` or ``(3, H, W)``, RGB in
``[0, 1]``; kernels are ``(k, k)`` float64 tensors. Every random choice is drawn from the
``numpy.random.Generator`` passed in, in a fixed order, so the same generator state gives the
same LR bit for bit (in training, :class:`fastpercept.training.data.RandomCrops` seeds one generator per
sample from ``(seed, sample index)``: resumed runs and loader workers see the same pairs).

JPEG is real JPEG (Pillow's libjpeg, 4:2:0 chroma), not Real-ESRGAN's differentiable
approximation: the artefacts are those of the files users upscale.

:func:`degrade_jpeg` is the simple, fixed evaluation setting: the benchmark's bicubic LR,
JPEG-compressed at one quality.
"""

from __future__ import annotations

import io
import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..runtime.images import to_uint8
from .resize import _mirror_index, imresize, mod_crop

__all__ = ["DegradationConfig", "PIPELINE_NAME", "KERNEL_TYPES", "RESIZE_MODES", "gaussian_kernel",
           "generalized_gaussian_kernel", "plateau_kernel", "sinc_kernel", "random_kernel", "filter2d",
           "random_resize", "add_gaussian_noise", "add_poisson_noise", "jpeg", "degrade_real", "degrade_jpeg",
           "eval_rng"]

PIPELINE_NAME = "real-esrgan"  # the card's ``degradation.name``
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")

Range = tuple[float, float]


@dataclass(frozen=True)
class DegradationConfig:
    """Every parameter of :func:`degrade_real`. Pairs ``(first, second)`` are per stage; ranges
    ``(low, high)`` are sampled uniformly.

    Defaults: Real-ESRGAN's ``train_realesrgan_x4plus.yml`` (gt_size 256), except the two resize
    ranges, whose lower bounds are raised for our smaller patches (x4's card: 96 px HR, 24 px
    LR). Real-ESRGAN's 0.15 shrinks a 256 px patch to 38 px in the first stage; a 96 px patch
    would become 14 px, smaller than the 21-tap kernels of the second stage, and most of the
    pair would be border padding. 0.3 keeps it at 29 px. Likewise the second stage's 0.3 of the
    LR size (19 px from 64 px there, 7 px from our 24 px) becomes 0.5 (12 px).

    Attributes:
        kernel_sizes: odd kernel sides to draw from (Real-ESRGAN: 7 .. 21; both stages).
        kernel_probs: probabilities of :data:`KERNEL_TYPES` (both stages).
        generalized_beta: shape of the generalized Gaussian, drawn from ``(low, 1)`` or ``(1, high)``
            with equal odds (Real-ESRGAN's ``betag_range``).
        plateau_beta: shape of the plateau kernel, drawn the same way (``betap_range``).
        blur_prob: odds that a stage blurs (Real-ESRGAN: always, then ``second_blur_prob`` 0.8).
        blur_sigma: standard deviations of the Gaussian-family kernels, HR pixels of the stage's input.
        sinc_prob: odds that a stage's blur is a sinc (ringing) filter instead.
        resize_probs: odds of scaling up, down, or keeping the size.
        resize_range: scale factors: ``(low, 1)`` down, ``(1, high)`` up. Stage one scales its
            input; stage two sets the size relative to the final LR size (as Real-ESRGAN does).
        gaussian_noise_prob: odds of Gaussian noise; otherwise Poisson noise.
        noise_sigma: Gaussian noise standard deviation, in 8-bit levels.
        poisson_scale: Poisson noise multiplier (1: the shot noise of an 8-bit image).
        gray_noise_prob: odds that the noise is the same in all three channels (luminance noise).
        jpeg_quality: JPEG quality (Pillow's 1..95 scale), both ends included.
        final_sinc_prob: odds of the sinc filter at the final resize (otherwise none).
        jpeg_only_prob: odds that a pair skips the high-order model for the simplest real case, a
            photo shrunk with bicubic and saved once as JPEG (:func:`degrade_jpeg`): a web or
            messenger picture. Not in Real-ESRGAN (0 by default); the high-order model alone
            teaches the network to smooth everything, which costs detail on lightly compressed
            photos.
        jpeg_only_quality: the JPEG quality of those pairs, both ends included.
    """

    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    generalized_beta: Range = (0.5, 4.0)
    plateau_beta: Range = (1.0, 2.0)
    blur_prob: tuple[float, float] = (1.0, 0.8)
    blur_sigma: tuple[Range, Range] = ((0.2, 3.0), (0.2, 1.5))
    sinc_prob: tuple[float, float] = (0.1, 0.1)
    resize_probs: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.2, 0.7, 0.1), (0.3, 0.4, 0.3))
    resize_range: tuple[Range, Range] = ((0.3, 1.5), (0.5, 1.2))
    gaussian_noise_prob: tuple[float, float] = (0.5, 0.5)
    noise_sigma: tuple[Range, Range] = ((1.0, 30.0), (1.0, 25.0))
    poisson_scale: tuple[Range, Range] = ((0.05, 3.0), (0.05, 2.5))
    gray_noise_prob: tuple[float, float] = (0.4, 0.4)
    jpeg_quality: tuple[tuple[int, int], tuple[int, int]] = ((30, 95), (30, 95))
    final_sinc_prob: float = 0.8
    jpeg_only_prob: float = 0.0
    jpeg_only_quality: tuple[int, int] = (30, 95)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists for tuples): the card's ``degradation.config``."""
        return json_ready(asdict(self))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_ready(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- kernels


def _quadratic_form(size: int, sigma_x: float, sigma_y: float | None, angle: float) -> torch.Tensor:
    """``x^T Sigma^-1 x`` over a ``size`` x ``size`` grid centred on the middle tap, where
    ``Sigma = R(angle) diag(sigma_x^2, sigma_y^2) R(angle)^T`` (``sigma_y`` None: ``sigma_x``).
    (size, size) float64."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y  # coordinates along the kernel's own axes
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalized(kernel: torch.Tensor) -> torch.Tensor:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> torch.Tensor:
    """Bivariate Gaussian ``exp(-q / 2)`` (isotropic when ``sigma_y`` is None), rotated by
    ``angle`` radians; (size, size) float64 summing to 1."""
    return _normalized(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, angle)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0,
                                beta: float = 1.0) -> torch.Tensor:
    """Generalized Gaussian ``exp(-q^beta / 2)``: beta < 1 has heavier tails, beta > 1 a flatter top.
    (size, size) float64 summing to 1."""
    return _normalized(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, angle) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0,
                   beta: float = 1.0) -> torch.Tensor:
    """Plateau-shaped ``1 / (1 + q^beta)`` (Real-ESRGAN's): a flat top and slow tails.
    (size, size) float64 summing to 1."""
    return _normalized(1.0 / (_quadratic_form(size, sigma_x, sigma_y, angle) ** beta + 1.0))


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """The ideal circular low-pass filter of angular cutoff ``cutoff`` (radians per pixel, at most
    pi), truncated to ``size`` x ``size``: ``cutoff J1(cutoff r) / (2 pi r)``. Its negative lobes
    make the ringing and overshoot artefacts of sharpened or resampled photos. (size, size)
    float64 summing to 1 (``size`` odd)."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    r = torch.hypot(x, y)
    # r = 0 is the limit cutoff^2 / (4 pi) (J1(t) ~ t / 2).
    kernel = torch.where(r > 0, cutoff * torch.special.bessel_j1(cutoff * r) / (2 * math.pi * r.clamp(min=1e-12)),
                         torch.tensor(cutoff ** 2 / (4 * math.pi), dtype=torch.float64))
    return _normalized(kernel)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _shape_beta(rng: np.random.Generator, bounds: Range) -> float:
    """Real-ESRGAN's draw: below and above 1 with equal odds, uniform on each side."""
    return _uniform(rng, (bounds[0], 1.0)) if rng.random() < 0.5 else _uniform(rng, (1.0, bounds[1]))


def random_kernel(rng: np.random.Generator, config: DegradationConfig, stage: int) -> torch.Tensor:
    """A blur kernel for ``stage`` (0 or 1), drawn as Real-ESRGAN does: a sinc with odds
    ``sinc_prob`` (cutoff in ``(pi/3, pi)``, ``(pi/5, pi)`` for sizes 13 and up), else one of
    :data:`KERNEL_TYPES` with ``kernel_probs``. (k, k) float64 summing to 1."""
    size = int(rng.choice(config.kernel_sizes))
    if rng.random() < config.sinc_prob[stage]:
        return sinc_kernel(size, _uniform(rng, (math.pi / (3 if size < 13 else 5), math.pi)))
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=np.asarray(config.kernel_probs)))]
    sigma = config.blur_sigma[stage]
    if "aniso" not in kind:
        sigma_x = sigma_y = _uniform(rng, sigma)
        angle = 0.0
    else:
        sigma_x, sigma_y, angle = _uniform(rng, sigma), _uniform(rng, sigma), _uniform(rng, (-math.pi, math.pi))
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sigma_x, sigma_y, angle, _shape_beta(rng, config.generalized_beta))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sigma_x, sigma_y, angle, _shape_beta(rng, config.plateau_beta))
    return gaussian_kernel(size, sigma_x, sigma_y, angle)


# ----------------------------------------------------------------------------------- operations


def _batched(img: torch.Tensor) -> torch.Tensor:
    if img.dim() not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"expected an image (3, H, W) or (N, 3, H, W), got {tuple(img.shape)}")
    return img if img.dim() == 4 else img[None]


def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of ``img`` ((N, C, H, W) or (C, H, W), float) filtered with ``kernel`` ((k, k),
    k odd), borders mirrored (``... 2 1 | 0 1 2 ...``) at any image size. Same shape and dtype;
    values are not clamped (a sinc overshoots)."""
    x = img if img.dim() == 4 else img[None]
    r = kernel.shape[-1] // 2
    h, w = x.shape[-2:]
    rows = _mirror_index(torch.arange(-r, h + r), h, repeat_edge=False)
    cols = _mirror_index(torch.arange(-r, w + r), w, repeat_edge=False)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    channels = x.shape[1]
    weight = kernel.to(x.dtype).expand(channels, 1, *kernel.shape)
    out = F.conv2d(padded, weight, groups=channels)
    return out if img.dim() == 4 else out[0]


def random_resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``img`` (N, 3, H, W) resized to ``size`` (h, w) with ``F.interpolate`` (``area``,
    ``bilinear`` or ``bicubic``; no antialiasing, as Real-ESRGAN: aliasing is part of the
    damage). Not clamped (bicubic overshoots)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, not {mode!r}")
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))


def add_gaussian_noise(img: torch.Tensor, sigma: float, gray: bool, rng: np.random.Generator) -> torch.Tensor:
    """``img`` ((N, 3, H, W) or (3, H, W), [0, 1]) plus white Gaussian noise of standard deviation
    ``sigma`` (in [0, 1] units), the same in all channels when ``gray``; clamped to [0, 1]."""
    x = _batched(img)
    n, c, h, w = x.shape
    noise = torch.from_numpy(rng.standard_normal((n, 1 if gray else c, h, w), dtype=np.float32)) * sigma
    return (x + noise.to(x.dtype)).clamp(0.0, 1.0).reshape(img.shape)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W), ITU-R BT.601 weights (torchvision's rgb_to_grayscale)."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def add_poisson_noise(img: torch.Tensor, scale: float, gray: bool, rng: np.random.Generator) -> torch.Tensor:
    """``img`` ((N, 3, H, W) or (3, H, W), [0, 1]) plus ``scale`` times shot noise, clamped to [0, 1].

    As Real-ESRGAN (BasicSR's ``generate_poisson_noise_pt``): the image (or its luma, ``gray``)
    is rounded to 8-bit levels, counted as ``v = 2^ceil(log2(distinct levels))`` photons at full
    scale (256 for most photos), and the noise is ``Poisson(v x) / v - x``; brighter is noisier.
    """
    x = _batched(img)
    source = _luma(x) if gray else x
    source = to_uint8(source).double() / 255.0
    noisy = []
    for s in source.numpy():
        levels = 2.0 ** math.ceil(math.log2(len(np.unique(s))))
        noisy.append(rng.poisson(s * levels) / levels)
    noise = (torch.from_numpy(np.stack(noisy)) - source) * scale
    return (x + noise.to(x.dtype)).clamp(0.0, 1.0).reshape(img.shape)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """``img`` ((N, 3, H, W) or (3, H, W), [0, 1]) through a real JPEG encode and decode at
    ``quality`` (Pillow, 1..95; 4:2:0 chroma subsampling, libjpeg's default). float32 on 8-bit
    levels, same shape."""
    x = _batched(img)
    out = []
    for frame in to_uint8(x.detach().cpu()).permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as decoded:
            out.append(np.asarray(decoded.convert("RGB")))
    return (torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0).reshape(img.shape)


# ------------------------------------------------------------------------------------- pipelines


def _resize_factor(rng: np.random.Generator, probs: tuple[float, float, float], bounds: Range) -> float:
    direction = int(rng.choice(3, p=np.asarray(probs)))  # up, down, keep
    if direction == 0:
        return _uniform(rng, (1.0, bounds[1]))
    if direction == 1:
        return _uniform(rng, (bounds[0], 1.0))
    return 1.0


def _noise(x: torch.Tensor, rng: np.random.Generator, config: DegradationConfig, stage: int) -> torch.Tensor:
    gaussian = rng.random() < config.gaussian_noise_prob[stage]
    gray = rng.random() < config.gray_noise_prob[stage]
    if gaussian:
        return add_gaussian_noise(x, _uniform(rng, config.noise_sigma[stage]) / 255.0, gray, rng)
    return add_poisson_noise(x, _uniform(rng, config.poisson_scale[stage]), gray, rng)


def _random_quality(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _degrade_one(hr: torch.Tensor, scale: int, rng: np.random.Generator, config: DegradationConfig) -> torch.Tensor:
    """One image (1, 3, H, W), H and W multiples of ``scale`` -> (1, 3, H/scale, W/scale)."""
    lr_h, lr_w = hr.shape[-2] // scale, hr.shape[-1] // scale
    # Drawn only when asked for: with 0 the generator's sequence is the plain pipeline's.
    if config.jpeg_only_prob > 0 and rng.random() < config.jpeg_only_prob:
        return degrade_jpeg(hr, scale, _random_quality(rng, config.jpeg_only_quality))
    x = hr.float()
    for stage in (0, 1):
        if rng.random() < config.blur_prob[stage]:
            x = filter2d(x, random_kernel(rng, config, stage))
        factor = _resize_factor(rng, config.resize_probs[stage], config.resize_range[stage])
        mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
        # Stage one scales what it is given; stage two sizes relative to the LR (Real-ESRGAN's choice).
        base_h, base_w = (x.shape[-2], x.shape[-1]) if stage == 0 else (lr_h, lr_w)
        x = random_resize(x, (max(1, int(base_h * factor)), max(1, int(base_w * factor))), mode)
        x = _noise(x, rng, config, stage)
        if stage == 0:
            x = jpeg(x, _random_quality(rng, config.jpeg_quality[0]))
    # The final step: back to the LR size with a sinc filter (or none), and JPEG, in either order.
    sinc = None
    if rng.random() < config.final_sinc_prob:
        size = int(rng.choice(config.kernel_sizes))
        sinc = sinc_kernel(size, _uniform(rng, (math.pi / 3, math.pi)))
    mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
    quality = _random_quality(rng, config.jpeg_quality[1])
    jpeg_first = rng.random() < 0.5
    if jpeg_first:
        x = jpeg(x, quality)
    x = random_resize(x, (lr_h, lr_w), mode)
    if sinc is not None:
        x = filter2d(x, sinc)
    if not jpeg_first:
        x = jpeg(x, quality)
    return to_uint8(x).float() / 255.0


def degrade_real(hr: torch.Tensor, scale: int, rng: np.random.Generator,
                 config: DegradationConfig = DegradationConfig()) -> torch.Tensor:
    """The LR input of ``hr`` under Real-ESRGAN's high-order degradation model.

    Args:
        hr: (3, H, W) or (N, 3, H, W) float in [0, 1]; mod-cropped to multiples of ``scale``.
        scale: the SR factor (the LR is ``scale`` times smaller).
        rng: draws every random choice, in a fixed order (images of a batch one after another):
            the same generator state gives the same LR bit for bit.
        config: the ranges and odds (defaults: Real-ESRGAN's, see :class:`DegradationConfig`).

    Returns:
        (3, H // scale, W // scale) or (N, 3, ...) float32 on 8-bit levels (as a saved LR file).

    HR is not sharpened (Real-ESRGAN trains on an unsharp-masked HR): the perceptual loss
    compares against the photo as it is.
    """
    x = mod_crop(_batched(hr), scale)
    lr = torch.cat([_degrade_one(x[i:i + 1], scale, rng, config) for i in range(x.shape[0])])
    return lr if hr.dim() == 4 else lr[0]


def degrade_jpeg(hr: torch.Tensor, scale: int, quality: int) -> torch.Tensor:
    """The fixed evaluation degradation: the benchmark's bicubic LR, then JPEG at ``quality``.

    ``hr`` ((3, H, W) or (N, 3, H, W), [0, 1]) is quantized to 8 bits, mod-cropped and shrunk by
    MATLAB's bicubic in 8-bit arithmetic (exactly :func:`fastpercept.training.eval_sr.make_lr`, which
    reproduces the ``LR_x4`` files), then encoded and decoded as JPEG. Returns
    (..., 3, H // scale, W // scale) float32 on 8-bit levels. With an LR file at hand,
    ``jpeg(lr, quality)`` is the same.
    """
    lr = imresize(mod_crop(to_uint8(hr), scale), scale=1.0 / scale)
    return jpeg(lr.float() / 255.0, quality)


def eval_rng(seed: int, name: str) -> np.random.Generator:
    """The generator for one evaluation image: a function of ``(seed, image name)`` alone, so an
    image's degraded LR does not depend on which other images are evaluated, or in what order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
