"""Reading and writing image files, with every bad-input problem turned into a UserError.

(Finding the inputs of a batch and planning its outputs is :mod:`fastpercept.runtime.listing`.)

Tensors here follow one convention: RGB float32 in [0, 1], shape (1, 3, H, W); an optional
alpha channel is float32 in [0, 1], shape (1, 1, H, W) and is *straight* (not premultiplied).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..atomic import atomic_write
from ..errors import UserError
from .memory import available_memory, image_pipeline_bytes

if TYPE_CHECKING:  # imported where tensors are made: decoding and writing arrays run without PyTorch
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# Pillow's own bomb limit (~89 megapixels) rejects ordinary panoramas and scans. We decode up
# to about a gigapixel; beyond that an RGB float tensor alone needs > 12 GB.
MAX_PIXELS = 1_000_000_000

# Suffix -> Pillow format name for writing.
IMAGE_WRITE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Formats whose files we write without an alpha channel (alpha is composited onto white).
_NO_ALPHA_FORMATS = {"JPEG", "BMP"}

# Modes holding one channel of more than 8 bits; they are scaled by 65535 (F is taken as-is).
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


@dataclass
class LoadedImage:
    """A decoded image.

    rgb: (1, 3, H, W) float32 in [0, 1].
    alpha: (1, 1, H, W) float32 in [0, 1] (straight alpha), or None when the file has none.
    path: the file it came from, or None when built from an in-memory image.
    source_mode: the Pillow mode of the decoded file, e.g. "RGB", "P", "I;16", "CMYK".
    bit_depth: precision of the decoded samples: 16 for 16-bit, 32-bit integer and float
        grayscale sources, otherwise 8. Pillow itself reduces 16-bit RGB/RGBA PNGs to 8 bits,
        so those report 8.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    path: Path | None
    source_mode: str
    bit_depth: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[-1]), int(self.rgb.shape[-2])


# ----------------------------------------------------------------------------------- loading


@contextlib.contextmanager
def _bomb_check_lifted() -> Iterator[None]:
    """Switch off Pillow's decompression-bomb check while one image opens; we apply MAX_PIXELS.

    Pillow reads the module-level Image.MAX_IMAGE_PIXELS, so this briefly changes that global
    (and restores it); loading from several threads at once may see the lifted value.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_readable_file(path: Path) -> None:
    """Raise UserError for the problems we can name precisely before Pillow sees the file."""
    import os
    import stat

    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an image file")
    info = path.stat()
    if stat.S_ISFIFO(info.st_mode):
        return  # a pipe (``/dev/stdin`` fed by one) has no size: the decoder reads what comes
    if stat.S_ISREG(info.st_mode):
        if info.st_size == 0:
            raise UserError(f"{path}: empty file")
        return
    if os.path.samefile(path, os.devnull):
        raise UserError(f"{path}: empty file")
    # A terminal, another device or a socket: reading it as an image would wait on a keyboard or
    # never end (/dev/zero).
    raise UserError(f"{path}: not a regular file (a device or socket); give an image file or a pipe")


def target_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """The (width, height) that fits the longest side into max_size; never larger than now."""
    if max_size is None or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    # Round half up (not Python's half-to-even) so sizes are predictable: 12.5 -> 13.
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def _too_large_message(path: object, width: int, height: int) -> str:
    return (
        f"{path}: image too large ({width}x{height}, {width * height / 1e6:.0f} megapixels; "
        f"the limit is {MAX_PIXELS / 1e6:.0f}); shrink it beforehand, or use max_size= "
        f"(JPEG files are then decoded at reduced size) and tile= to bound memory"
    )


def _check_memory(path: Path, source: tuple[int, int], max_size: int | None, output_scale: int,
                  is_jpeg: bool) -> None:
    """UserError, before decoding, when processing this image would not fit in the memory available.

    Says how large the image is, what fits, and which option helps (``--max-size``, which for
    JPEG also shrinks the decode itself; otherwise the file must be shrunk beforehand).
    """
    free = int(0.9 * available_memory("cpu"))  # a margin for the interpreter and the model
    size = target_size(*source, max_size)
    need = image_pipeline_bytes(source, size, output_scale)
    if need <= free:
        return
    gib = 2**30
    longest = max(source)
    fits = None
    for side in range(64 * (longest // 64), 0, -64):
        target = target_size(*source, side)
        # JPEG decodes at 1/2..1/8 scale, never below the target: at most twice its size.
        decoded = tuple(min(s, 2 * t) for s, t in zip(source, target)) if is_jpeg else source
        if image_pipeline_bytes(decoded, target, output_scale) <= free:
            fits = side
            break
    hint = (f"max_size={fits} fits" + ("" if is_jpeg else " once decoded")) if fits else \
        "decoding it alone does not fit: shrink the file beforehand"
    if fits and not is_jpeg and 8 * source[0] * source[1] > free:
        hint = "decoding it alone does not fit (only JPEG decodes at reduced size): shrink the file beforehand"
    raise UserError(f"{path}: {source[0]}x{source[1]} image needs about {need / gib:.1f} GiB to process and "
                    f"{free / gib:.1f} GiB is available; {hint} (tile= bounds only the network's share)")


def _decode(path: Path, max_size: int | None, output_scale: int = 1) -> Image.Image:
    """Open and fully decode the file, upright (EXIF orientation applied).

    The size is checked from the header first (MAX_PIXELS, then the memory the whole pipeline
    would need at ``output_scale``), so an image that cannot be processed is never decoded.
    """
    try:
        # We own the file object: Pillow then leaves it to us, and the decoded image stays
        # usable after the file is closed (closing a PIL image itself discards its pixels).
        with open(path, "rb") as f, _bomb_check_lifted():
            im = Image.open(f)
            if max_size is not None and im.format == "JPEG":
                # JPEG can decode at 1/2, 1/4 or 1/8 scale: a huge photo then never exists
                # at full size in memory. draft() keeps the result >= the requested size,
                # so the Lanczos pass afterwards still does the final, high-quality step.
                im.draft(None, target_size(*im.size, max_size))
            if im.width * im.height > MAX_PIXELS:
                raise UserError(_too_large_message(path, im.width, im.height))
            _check_memory(path, im.size, max_size, output_scale, im.format == "JPEG")
            if getattr(im, "n_frames", 1) > 1:
                log.warning("%s: animated (%d frames); using the first frame", path, im.n_frames)
            # Decode now, so a truncated file fails here and not halfway through a batch.
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            return im
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image, or a format Pillow cannot read") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except MemoryError:
        raise UserError(f"{path}: not enough memory to decode; try max_size=") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on bad data
        # OSError ("image file is truncated"), SyntaxError, ValueError, struct.error, ...:
        # all mean the bytes are not a valid image.
        detail = str(exc).strip() or type(exc).__name__
        raise UserError(f"{path}: cannot read image (truncated or corrupt file: {detail})") from None


# Float images carry no range: (bright values up to, white). 0..1 with some overshoot (clamped),
# 8-bit and 16-bit scales (a 0..255 float TIFF would otherwise come out all white).
_FLOAT_RANGES = ((2.0, 1.0), (255.0, 255.0), (65535.0, 65535.0))
# What "bright values" are: the 99.9th percentile, not the maximum, so that a few hot pixels (a
# 0..1 render with one pixel at 3.0, or 1e6) are clipped instead of darkening the whole image.
_FLOAT_RANGE_PERCENTILE = 99.9


def _high_depth_to_float(im: Image.Image) -> np.ndarray:
    """A single-channel 16-bit, 32-bit integer or float image as (H, W) float32 in [0, 1]."""
    values = np.nan_to_num(np.asarray(im).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if im.mode == "F":
        # "higher": a value of the image, never one interpolated towards an outlier; in an image
        # of under 1,000 pixels that is its maximum (too few pixels to call one an outlier).
        bright = float(np.percentile(values, _FLOAT_RANGE_PERCENTILE, method="higher")) if values.size else 0.0
        white = next((w for top, w in _FLOAT_RANGES if bright <= top), None)
        if white is None:
            raise UserError(f"float image with values up to {bright:g} (99.9% of its pixels); "
                            "expected a range of 0..1, 0..255 or 0..65535")
        values /= white
    else:
        # 16-bit sources use the full 0..65535 range; dividing by 255 would blow them out.
        values /= 65535.0
    return np.clip(values, 0.0, 1.0)


def _to_rgb_or_rgba(im: Image.Image) -> Image.Image:
    """Convert any 8-bit-per-sample mode to "RGB" or, when it carries transparency, "RGBA"."""
    mode = im.mode
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if mode == "P" and im.palette is not None and im.palette.mode == "RGBA":
        has_alpha = True  # a palette with its own alpha column
    target = "RGBA" if has_alpha else "RGB"
    # "1", L, P, CMYK, YCbCr, LAB, HSV, ...: Pillow's convert handles them. CMYK uses
    # Pillow's naive formula (embedded ICC profiles are ignored).
    return im if mode == target else im.convert(target)


@dataclass
class DecodedImage:
    """A decoded image as arrays (what :class:`LoadedImage` holds as tensors; no PyTorch needed).

    rgb: (3, H, W) float32 in [0, 1]; alpha: (1, H, W) float32 in [0, 1] or None; source_mode
    and bit_depth as in :class:`LoadedImage`.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: Path | None
    source_mode: str
    bit_depth: int

    def tensors(self) -> LoadedImage:
        """The same image as (1, C, H, W) tensors (sharing the arrays' memory)."""
        import torch

        alpha = None if self.alpha is None else torch.from_numpy(self.alpha).unsqueeze(0)
        return LoadedImage(torch.from_numpy(self.rgb).unsqueeze(0), alpha, self.path, self.source_mode, self.bit_depth)


def decode_pil(image: Image.Image, max_size: int | None = None, path: Path | None = None) -> DecodedImage:
    """A decoded PIL image of any mode as arrays: rgb (3, H, W) float32 in [0, 1], alpha (1, H, W)
    or None. With ``max_size`` the longest side is reduced to it (Lanczos, aspect ratio kept,
    never enlarged)."""
    if max_size is not None and max_size < 1:
        raise UserError(f"max_size= must be at least 1 pixel, got {max_size}")
    size = target_size(image.width, image.height, max_size)
    source_mode = image.mode

    if source_mode in _HIGH_DEPTH_MODES:
        gray = Image.fromarray(_high_depth_to_float(image))  # mode "F": resize keeps precision
        if gray.size != size:
            gray = gray.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        # Lanczos overshoots around edges; keep the promise of [0, 1].
        values = np.clip(np.asarray(gray, dtype=np.float32), 0.0, 1.0)
        return DecodedImage(np.ascontiguousarray(np.broadcast_to(values, (3, *values.shape))), None, path,
                            source_mode, 16)

    im = _to_rgb_or_rgba(image)
    if im.size != size:
        # Pillow premultiplies RGBA before resampling, so transparent pixels don't bleed.
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.array(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    alpha = np.ascontiguousarray(pixels[3:4]) if im.mode == "RGBA" else None
    return DecodedImage(np.ascontiguousarray(pixels[:3]), alpha, path, source_mode, 8)


def decode_image(path: str | Path, max_size: int | None = None, output_scale: int = 1) -> DecodedImage:
    """:func:`load_image` as arrays (no PyTorch needed)."""
    path = Path(path)
    _check_readable_file(path)
    image = _decode(path, max_size, output_scale)
    try:
        return decode_pil(image, max_size=max_size, path=path)
    except MemoryError:
        raise UserError(f"{path}: not enough memory to convert the image; try max_size=") from None
    finally:
        image.close()


def load_image(path: str | Path, max_size: int | None = None, output_scale: int = 1) -> LoadedImage:
    """Read an image file of any common format and mode.

    Returns rgb (1, 3, H, W) float32 in [0, 1] and alpha (1, 1, H, W) float32 in [0, 1] or None
    (present for RGBA, LA, PA and palette images with transparency). The whole file is
    decoded here, EXIF orientation is applied, and with max_size the longest side is reduced
    to at most max_size pixels (Lanczos, aspect ratio kept, never upscaled).

    ``output_scale`` is the size ratio of what will be made of it (4 for x4 SR): with it the
    memory check (before decoding) covers the whole pipeline, output included.

    Raises UserError naming the file for a missing path, a folder, an empty, non-image,
    truncated or corrupt file, an image above MAX_PIXELS or one whose processing would not fit
    in the memory available (cgroup limit included).
    """
    return decode_image(path, max_size, output_scale).tensors()


# ------------------------------------------------------------------------------------ saving


def _as_chw(t: Array, channels: int, name: str) -> np.ndarray:
    """Accept (1, C, H, W) or (C, H, W), an array or a tensor; return a (C, H, W) float32 array."""
    if not isinstance(t, np.ndarray):  # a PyTorch tensor
        t = t.detach().float().cpu().numpy()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != channels:
        raise ValueError(f"{name} must have shape (1, {channels}, H, W) or ({channels}, H, W), got {tuple(t.shape)}")
    return t.astype(np.float32, copy=False)


Array = Union["torch.Tensor", np.ndarray]


def to_uint8(x: Array) -> Array:
    """Float in [0, 1] (any shape; a tensor or an array) -> uint8 levels: clamped, ``x * 255``
    rounded half up.

    The one 8-bit quantization of the package (saved files, metrics, SR benchmark inputs,
    training pairs): half up as MATLAB's ``im2uint8``, which the SR literature's numbers use.
    Exact for inputs already on the levels ``k / 255``. float32 arrays and tensors give the same
    levels (the same IEEE operations).
    """
    if isinstance(x, np.ndarray):
        return np.floor(np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    import torch

    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def to_pil(rgb: Array, alpha: Array | None = None) -> Image.Image:
    """An image as arrays (or tensors) -> PIL image.

    rgb: (1, 3, H, W) or (3, H, W), values clamped to [0, 1] and rounded to 8 bits.
    alpha: None, or (1, 1, H, W) / (1, H, W) in [0, 1], giving an "RGBA" image; else "RGB".
    """
    rgb = _as_chw(rgb, 3, "rgb")
    if alpha is not None:
        alpha = _as_chw(alpha, 1, "alpha")
        if alpha.shape[1:] != rgb.shape[1:]:
            raise ValueError(f"alpha is {tuple(alpha.shape[1:])} but rgb is {tuple(rgb.shape[1:])}")
        rgb = np.concatenate([rgb, alpha], axis=0)
    return Image.fromarray(np.ascontiguousarray(to_uint8(rgb).transpose(1, 2, 0)))


def _save_format(path: Path) -> str:
    fmt = IMAGE_WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(IMAGE_SUFFIXES)
        raise UserError(f"{path}: cannot write '{path.suffix or '(no suffix)'}' images; use one of {supported}")
    return fmt


def _write_error(path: Path, exc: OSError) -> UserError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UserError(f"{path}: cannot write image ({reason})")


def save_image(rgb: Array, path: str | Path, alpha: Array | None = None, quality: int = 95) -> Path:
    """Write rgb (1, 3, H, W) or (3, H, W) in [0, 1] to path, replacing any file atomically.

    The format follows the suffix (.jpg/.jpeg/.png/.webp/.bmp/.tif/.tiff, any case). alpha
    ((1, 1, H, W) in [0, 1]) is kept for PNG, WebP and TIFF; JPEG and BMP have none, so the
    image is composited onto white there. quality (1..100) applies to JPEG and WebP.

    The image goes to a hidden temporary file in the same folder, which is then renamed over
    path: readers never see a half-written file, and on failure nothing is left behind and
    an existing file is unchanged. Missing parent folders are created. Returns the path.
    """
    path = Path(path)
    fmt = _save_format(path)
    if not 1 <= quality <= 100:
        raise UserError(f"quality must be between 1 and 100, got {quality}")
    if alpha is not None and fmt in _NO_ALPHA_FORMATS:
        a = _as_chw(alpha, 1, "alpha")
        rgb = _as_chw(rgb, 3, "rgb") * a + (1.0 - a)
        alpha = None
    return write_image(to_pil(rgb, alpha), path, quality)


def write_image(image: Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write a PIL image as :func:`save_image` does (format by suffix, atomically); returns the path."""
    path = Path(path)
    fmt = _save_format(path)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name to write")
    try:
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            image.save(f, format=fmt, **options)
    except FileExistsError:
        raise UserError(f"{path}: cannot write image (a file is in the way of its folder)") from None
    except OSError as exc:
        raise _write_error(path, exc) from None
    return path
