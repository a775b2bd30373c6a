"""Running a network on images of any size: whole, or in tiles with shared instance-norm statistics.

Tiling with instance norm is the hard part: each tile would normalize with its own statistics
and the tiles would disagree in colour and contrast (visible seams). :func:`run_network` first
runs the whole image at a reduced size to record every instance-norm layer's statistics, then
runs the full-size tiles with those fixed statistics, so the network becomes a purely local
operator and overlapping tiles blend without seams. The same path bounds memory: an image
whose one-pass activations would not fit in the memory available is tiled automatically.

Arrays are NumPy, (N, 3, H, W) float32 in [0, 1]; training and evaluation may pass PyTorch
tensors (they get tensors back, on the same device).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from PIL import Image

from .memory import MIN_SIDE, available_memory, pass_budget
from .runner import Runner

log = logging.getLogger(__name__)

# Context each tile carries on every side (the style network's receptive field is ~±60 px).
DEFAULT_OVERLAP = 64
AUTO_TILE_MAX = 2048  # automatic tiles are no larger: beyond this, bigger tiles save nothing


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blend weights (n,) along one axis of a tile.

    Neighbouring tiles share ``2 * overlap`` pixels. Pixels closer than ``overlap / 2`` to a
    tile's inner edge see reflection padding instead of real context, so they get weight 0;
    the weight then rises linearly to 1 at ``3 * overlap / 2``. The mirrored ramp of the
    neighbour makes the two weights sum to 1 everywhere. Image borders get full weight.
    """
    dist = np.arange(n, dtype=np.float32) + 0.5
    a = overlap / 2

    def rise(d: np.ndarray) -> np.ndarray:
        return np.clip((d - a) / max(2 * overlap - 2 * a, 1e-6), 0, 1)

    w = np.ones(n, dtype=np.float32)
    if not at_start:
        w = np.minimum(w, rise(dist))
    if not at_end:
        w = np.minimum(w, rise(n - dist))
    return w.astype(np.float32)


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


def auto_tile(shape: tuple[int, ...], scale: int, precision: str, device: str = "cpu") -> int | None:
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


def resize_area(x: np.ndarray, factor: float) -> np.ndarray:
    """(N, C, H, W) float32 reduced by ``factor`` < 1 with Pillow's antialiased bilinear filter."""
    n, c, h, w = x.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    out = np.empty((n, c, size[1], size[0]), dtype=np.float32)
    for i in range(n):
        for k in range(c):
            out[i, k] = np.asarray(Image.fromarray(x[i, k], mode="F").resize(size, Image.Resampling.BILINEAR))
    return out


def _is_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def run_network(runner: Runner, x: np.ndarray, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                stats_size: int = 1024) -> np.ndarray:
    """The runner's network on ``x``, optionally in overlapping tiles.

    Args:
        runner: any backend's :class:`~fastpercept.runtime.backends.Runner`.
        x: (N, 3, H, W) float32 in [0, 1] (a PyTorch tensor gives a tensor back).
        tile: tile side in input pixels (``None``: the whole image at once when it fits in
            memory, else tiles of :func:`auto_tile`'s size).
        overlap: input pixels of context shared by neighbouring tiles (blended linearly).
        stats_size: longest side of the reduced image whose instance-norm statistics all
            tiles share (unused when the network has no instance norm).
    Returns:
        (N, 3, scale H, scale W) float32 in [0, 1].
    """
    if _is_tensor(x):
        import torch

        y = run_network(runner, x.detach().float().cpu().numpy(), tile, overlap, stats_size)
        return torch.from_numpy(y).to(x.device)
    x = np.ascontiguousarray(x, dtype=np.float32)
    scale = runner.scale
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        # Tiny images: repeat the border up to MIN_SIDE, run, and crop the result back.
        x = np.pad(x, ((0, 0), (0, 0), (0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w))), mode="edge")
        return run_network(runner, x, tile=None, stats_size=stats_size)[..., : h * scale, : w * scale]
    # Tiles much smaller than the receptive field lose the context the style lives in (measured:
    # tiles of 16 px left photos nearly unstylized): no tile is smaller than this.
    least = -(-4 * runner.receptive_radius // runner.stride) * runner.stride
    if tile is not None and tile < least:
        log.warning("tile %d is below what the network needs (receptive field +-%d px); using %d px tiles",
                    tile, runner.receptive_radius, least)
        tile = least
    if tile is None:
        tile = auto_tile(x.shape, scale, runner.precision, runner.device)
        if tile is not None:
            tile = max(tile, least)
            log.warning("%dx%d image: too big for one pass in the memory available; running in %d px tiles",
                        w, h, tile)
    if tile is not None:
        tile -= tile % runner.stride
    if tile is None or (h <= tile and w <= tile):
        return np.clip(runner(x), 0, 1)
    if tile <= 2 * overlap:
        overlap = max(tile // 4, 1)
    factor = min(1.0, stats_size / max(h, w))
    stats = runner.norm_stats(resize_area(x, factor) if factor < 1 else x)
    out = np.zeros((x.shape[0], 3, h * scale, w * scale), dtype=np.float32)
    weight = np.zeros((h * scale, w * scale), dtype=np.float32)
    align = runner.stride
    for top, th in _tile_spans(h, tile, overlap, align):
        wy = _ramp(th * scale, overlap * scale, top == 0, top + th == h)
        for left, tw in _tile_spans(w, tile, overlap, align):
            y = runner(x[..., top:top + th, left:left + tw], stats)
            wx = _ramp(tw * scale, overlap * scale, left == 0, left + tw == w)
            wt = wy[:, None] * wx[None, :]
            rows, cols = slice(top * scale, (top + th) * scale), slice(left * scale, (left + tw) * scale)
            out[..., rows, cols] += y * wt
            weight[rows, cols] += wt
    return np.clip(out / weight, 0, 1)


class TimedNetwork:
    """:func:`run_network` with its wall-clock seconds per call kept in ``seconds`` (evaluation).

    The first call runs once untimed before the timed pass: lazy initialization (kernel choice,
    graph compilation, allocation) is not the network's speed. Results come back as the input
    came (arrays or tensors); CUDA work has finished when a call returns.
    """

    def __init__(self, runner: Runner, tile: int | None = None) -> None:
        self.runner, self.tile = runner, tile
        self.seconds: list[float] = []

    def __call__(self, x):
        if not self.seconds:
            run_network(self.runner, x, tile=self.tile)
        start = time.perf_counter()
        y = run_network(self.runner, x, tile=self.tile)
        self.seconds.append(time.perf_counter() - start)
        return y
