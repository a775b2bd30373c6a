"""Running a transformation network on images of any size: tiling, strength, color.

Tiling with instance norm is the hard part: each tile would normalize with its own statistics
and the tiles would disagree in color and contrast (visible seams). :func:`run_network` first
runs the whole image at a reduced size to record every instance-norm layer's statistics, then
runs the full-size tiles with those fixed statistics, so the network becomes a purely local
operator and overlapping tiles blend without seams. The same path bounds memory: an image
whose one-pass activations would not fit in the memory available is tiled automatically.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import torch
import torch.nn.functional as F

from .memory import MIN_SIDE, available_memory, pass_budget
from .device import wall_clock
from .nets.blocks import NormStats

log = logging.getLogger(__name__)

# Context each tile carries on every side (the style network's receptive field is ~±60 px).
DEFAULT_OVERLAP = 64
AUTO_TILE_MAX = 2048  # automatic tiles are no larger: beyond this, bigger tiles save nothing


class Runner(Protocol):
    """What tiling, strength and color need from an inference backend (:mod:`fastpercept.backends`).

    ``runner(x)``: (N, 3, H, W) in [0, 1] -> (N, 3, scale H, scale W) float32 (not clamped).
    ``runner(x, norm_stats)``: the same with the instance-norm statistics given (see
    :class:`fastpercept.nets.blocks.NormStatsFlow`), which makes the network a local operator.
    ``runner.norm_stats(x)``: the statistics of one pass over ``x``; ``None`` when the network
    has no instance norm (tiles then need no shared statistics).
    """

    scale: int
    stride: int  # total downsampling inside the network: tiles start on multiples of it
    receptive_radius: int  # input pixels of context each output pixel depends on, each side
    device: torch.device

    def __call__(self, x: torch.Tensor, norm_stats: NormStats | None = None) -> torch.Tensor: ...

    def norm_stats(self, x: torch.Tensor) -> NormStats | None: ...


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Blend weights along one axis of a tile.

    Neighbouring tiles share ``2 * overlap`` pixels. Pixels closer than ``overlap / 2`` to a
    tile's inner edge see reflection padding instead of real context, so they get weight 0;
    the weight then rises linearly to 1 at ``3 * overlap / 2``. The mirrored ramp of the
    neighbour makes the two weights sum to 1 everywhere. Image borders get full weight.
    """
    dist = torch.arange(n, dtype=torch.float32) + 0.5
    a = overlap / 2

    def rise(d: torch.Tensor) -> torch.Tensor:
        return ((d - a) / max(2 * overlap - 2 * a, 1e-6)).clamp(0, 1)

    w = torch.ones(n)
    if not at_start:
        w = torch.minimum(w, rise(dist))
    if not at_end:
        w = torch.minimum(w, rise(n - dist))
    return w


def _tile_spans(size: int, tile: int, overlap: int, align: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the tiles along one axis.

    Starts are multiples of ``align`` (the network's total downsampling): a tile starting
    elsewhere would see its strided convolutions sample the image on another grid than the whole
    image does, and its result would differ (measured: 9/255 on average at 512x341, tile 256).
    The last tile runs to the end, up to ``align - 1`` pixels longer than ``tile``.
    """
    if size <= tile:
        return [(0, size)]
    step = max(align, (tile - 2 * overlap) // align * align)
    last = (size - tile) // align * align
    starts = sorted({*range(0, last, step), last})
    return [(s, (size - s) if s == last else tile) for s in starts]


def auto_tile(shape: torch.Size | tuple[int, ...], scale: int, precision: str, device: torch.device) -> int | None:
    """The tile side for :func:`run_network` when none is given: ``None`` if the whole image fits.

    Args:
        shape: the input's (N, 3, H, W).
        scale: output/input size ratio.
        precision: ``fp32``, ``bf16`` or ``fp16``.
    Returns:
        ``None`` when one pass over the whole image needs at most ``memory.MEMORY_SHARE`` of the memory
        available, else the largest tile side (multiple of 64, at most ``AUTO_TILE_MAX``) that does.
    Raises:
        UserError: when even the input and output canvases (fp32) do not fit.
    """
    h, w = shape[-2:]
    per_pixel, budget = pass_budget(tuple(shape), scale, precision, available_memory(device))
    if h * w * per_pixel <= budget:
        return None
    side = int(math.sqrt(budget / per_pixel)) // 64 * 64
    return max(2 * DEFAULT_OVERLAP + 64, min(side, AUTO_TILE_MAX))


def run_network(runner: Runner, x: torch.Tensor, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                stats_size: int = 1024) -> torch.Tensor:
    """The runner's network on ``x``, optionally in overlapping tiles.

    Args:
        runner: any backend (:class:`Runner`), e.g. :class:`TorchRunner`.
        x: (N, 3, H, W) in [0, 1], on the runner's device.
        tile: tile side in input pixels (``None``: the whole image at once when it fits in
            memory, else tiles of :func:`auto_tile`'s size).
        overlap: input pixels of context shared by neighbouring tiles (blended linearly).
        stats_size: longest side of the reduced image whose instance-norm statistics all
            tiles share (unused when the network has no instance norm).
    Returns:
        (N, 3, scale H, scale W) float32 in [0, 1].
    """
    device, scale = x.device, runner.scale
    precision = getattr(runner, "precision", "fp32")
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        # Tiny images: replicate the border up to MIN_SIDE, run, and crop the result back.
        x = F.pad(x, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate")
        y = run_network(runner, x, tile=None, stats_size=stats_size)
        return y[..., : h * scale, : w * scale]
    # Tiles much smaller than the receptive field lose the context the style lives in (measured:
    # --tile 16 left photos nearly unstylized): no tile is smaller than this.
    least = -(-4 * runner.receptive_radius // runner.stride) * runner.stride
    if tile is not None and tile < least:
        log.warning("--tile %d is below what the network needs (receptive field +-%d px); using %d px tiles",
                    tile, runner.receptive_radius, least)
        tile = least
    if tile is None:
        tile = auto_tile(x.shape, scale, precision, device)
        if tile is not None:
            tile = max(tile, least)
            log.warning("%dx%d image: too big for one pass in the memory available; running in %d px tiles "
                        "(--tile sets the size)", w, h, tile)
    if tile is not None:
        tile -= tile % runner.stride
    if tile is None or (h <= tile and w <= tile):
        return runner(x).clamp(0, 1)
    if tile <= 2 * overlap:
        overlap = max(tile // 4, 1)
    factor = min(1.0, stats_size / max(h, w))
    with torch.inference_mode():
        small = F.interpolate(x, scale_factor=factor, mode="bilinear", antialias=True) if factor < 1 else x
    stats = runner.norm_stats(small)
    out = torch.zeros(x.shape[0], 3, h * scale, w * scale, device=device)
    weight = torch.zeros(1, 1, h * scale, w * scale, device=device)
    align = runner.stride
    for top, th in _tile_spans(h, tile, overlap, align):
        for left, tw in _tile_spans(w, tile, overlap, align):
            y = runner(x[..., top:top + th, left:left + tw], stats)
            wy = _ramp(th * scale, overlap * scale, top == 0, top + th == h)
            wx = _ramp(tw * scale, overlap * scale, left == 0, left + tw == w)
            wt = (wy[:, None] * wx[None, :]).to(device)
            out[..., top * scale:(top + th) * scale, left * scale:(left + tw) * scale] += y * wt
            weight[..., top * scale:(top + th) * scale, left * scale:(left + tw) * scale] += wt
    return (out / weight).clamp(0, 1)


class TimedNetwork:
    """:func:`run_network` with its wall-clock seconds per call kept in ``seconds`` (evaluation).

    The first call runs once untimed before the timed pass: lazy initialization (kernel choice,
    graph compilation, allocation) is not the network's speed.
    """

    def __init__(self, runner: Runner, tile: int | None = None) -> None:
        self.runner, self.tile = runner, tile
        self.seconds: list[float] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.seconds:
            run_network(self.runner, x, tile=self.tile)
        start = wall_clock(x.device)
        y = run_network(self.runner, x, tile=self.tile)
        self.seconds.append(wall_clock(x.device) - start)
        return y


# RGB <-> YIQ (NTSC), as in Gatys et al. 2016, "Preserving color in neural artistic style transfer".
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer: Y from ``stylized``, I and Q (color) from ``content``.

    Args:
        stylized, content: (N, 3, H, W) in [0, 1], same size.
    Returns:
        (N, 3, H, W) in [0, 1].
    """
    m = _RGB_TO_YIQ.to(stylized)
    yiq_s = torch.einsum("ij,njhw->nihw", m, stylized)
    yiq_c = torch.einsum("ij,njhw->nihw", m, content)
    yiq = torch.cat([yiq_s[:, :1], yiq_c[:, 1:]], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), yiq).clamp(0, 1)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(x)`` through the increasing points ``xp`` (``numpy.interp``)."""
    i = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return f0 + w * (f1 - f0)


def match_histograms(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give each channel of ``image`` the value distribution of the same channel of ``reference``.

    The post-processing of Johnson et al. (2016) for super-resolution: the output's color
    histograms are matched to the low-resolution input's, undoing color shifts the network
    introduced. Exact histogram specification by quantiles: equal input values map to equal
    outputs (``skimage.exposure.match_histograms``'s convention), so flat regions stay flat.

    Args:
        image: (N, C, H, W) float, any range.
        reference: (N, C, h, w) float, any size (e.g. the LR input).
    Returns:
        (N, C, H, W), each channel's values drawn from the reference's range.
    """
    if image.shape[:2] != reference.shape[:2]:
        raise ValueError(f"image {tuple(image.shape)} and reference {tuple(reference.shape)} differ in N or C")
    out = torch.empty_like(image)
    for n in range(image.shape[0]):
        for c in range(image.shape[1]):
            values, inverse, counts = torch.unique(image[n, c].double(), return_inverse=True, return_counts=True)
            ref_values, ref_counts = torch.unique(reference[n, c].double(), return_counts=True)
            quantiles = torch.cumsum(counts, 0) / counts.sum()
            ref_quantiles = torch.cumsum(ref_counts, 0) / ref_counts.sum()
            if len(ref_values) > 1:
                mapped = _interp(quantiles, ref_quantiles, ref_values)
            else:
                mapped = ref_values.expand_as(values)
            out[n, c] = mapped[inverse].to(image.dtype)
    return out


def blend_strength(stylized: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength * stylized + (1 - strength) * content``; 0 gives the input, 1 the full style."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], not {strength}")
    return torch.lerp(content, stylized, strength)
