"""How much memory this process can use, and what processing one image needs of it.

The limit that matters on servers and CI is often a container's cgroup (``memory.max``), not
the host's free memory: past it the kernel's OOM killer ends the process with no message and
takes the whole batch with it. So an image is checked from its header, before decoding, against
the peak of the whole pipeline (:func:`image_pipeline_bytes`), and refused with one line when it
cannot fit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import torch

# cgroup v2 (unified) and v1 files: (limit, usage). "max" or a huge v1 value means no limit.
_CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
)
_NO_LIMIT = 1 << 62


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_available() -> int:
    """Bytes the container's memory limit leaves to this process (``1 << 62``: no limit found)."""
    for limit_file, usage_file in _CGROUP_FILES:
        limit = _read_int(limit_file)
        if limit is not None and limit < _NO_LIMIT:
            return max(0, limit - (_read_int(usage_file) or 0))
    return _NO_LIMIT


def system_available() -> int:
    """The kernel's ``MemAvailable`` (bytes), or ``1 << 62`` where it cannot be read (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _NO_LIMIT


def available_memory(device: "torch.device | str" = "cpu") -> int:
    """Bytes that work on ``device`` can allocate now: free GPU memory, or on the CPU the smaller
    of the system's available memory and what the cgroup limit leaves."""
    if str(device).startswith("cuda"):
        import torch  # only asked for CUDA memory: the CPU path runs without PyTorch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    return min(system_available(), cgroup_available())


# Peak memory of one whole-image pass per output pixel, measured as the growth of max RSS on
# CPU for the shipped networks (style: 1 -> 4 MP input; x4 SR: 0.06 -> 0.25 MP input): about
# 750-800 bytes under bf16 autocast; fp32 holds every activation at twice the size.
PASS_BYTES_PER_OUTPUT_PIXEL = {"bf16": 800, "fp16": 800, "fp32": 1600}
# A single pass (whole image or automatic tile) may use this share of the memory available.
MEMORY_SHARE = 0.5


def pass_budget(shape: tuple[int, ...], scale: int, precision: str, free: int) -> tuple[int, float]:
    """``(bytes per input pixel of a pass, bytes a pass may use)`` for an (N, 3, H, W) input.

    A pass over the whole image fits when ``H * W * per_pixel <= budget``. Raises UserError
    when even the input and output canvases (fp32) do not fit in ``free`` bytes.
    """
    n, _, h, w = shape
    canvas = n * h * w * (12 + 16 * scale * scale)  # fp32 input, output and blend weights
    if canvas > free:
        raise UserError(f"a {w}x{h} image needs {canvas / 2**30:.1f} GiB for its input and output alone and "
                        f"{free / 2**30:.1f} GiB is available; reduce it with max_size=")
    return n * PASS_BYTES_PER_OUTPUT_PIXEL[precision] * scale * scale, MEMORY_SHARE * (free - canvas)


# Below this side the networks' reflection padding has nothing to reflect: inputs are padded up to it.
MIN_SIDE = 8
# The smallest network pass tiling can fall back to: a tile of 216 px (the style networks' least,
# 4x their receptive radius; SR's is smaller), at ``pass_bytes_per_pixel`` per output pixel.
MIN_TILE_PASS_PIXELS = 216 * 216


def image_pipeline_bytes(source: tuple[int, int], size: tuple[int, int], scale: int = 1,
                         pass_bytes_per_pixel: int = 1600) -> int:
    """Peak bytes of processing one image: decode, float tensors, network (tiled if need be), output.

    Args:
        source: (width, height) as decoded (JPEG ``--max-size`` decodes at 1/2 to 1/8 of the file).
        size: (width, height) the network sees (after ``--max-size``).
        scale: output/input size ratio of the network.
        pass_bytes_per_pixel: activations of one network pass per output pixel (fp32 by default).
    Returns:
        The largest of the three phases: decoding (Pillow's 4 bytes per pixel, a converted copy,
        the float tensors), the network (input, output canvas and blend weights in fp32, and the
        smallest tile pass) and encoding (the float output, its clamped copy, 8-bit copies).
    """
    src = source[0] * source[1]
    inp = size[0] * size[1]
    out = inp * scale * scale
    decode = 8 * src + 20 * inp
    network = 16 * inp + 16 * out + MIN_TILE_PASS_PIXELS * scale * scale * pass_bytes_per_pixel
    encode = 16 * inp + 36 * out
    return max(decode, network, encode)
