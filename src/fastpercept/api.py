"""The Python API: ``stylize``, ``upscale`` and ``load_model`` (the CLI is a thin layer over it).

Each function takes, and returns the same kind of:

- a NumPy array (H, W, 3), uint8 or float in [0, 1] (floats come back float32);
- a PIL image (alpha kept);
- a path (with ``output=``, the written path; without, a PIL image) — an image, a video file
  or a folder of frames (a clip needs ``output=``);
- a PyTorch tensor (N, 3, H, W) or (3, H, W), floats in [0, 1] or uint8, where PyTorch is
  installed (back on the tensor's device).

``model`` is a shipped model's name, a model file or a :class:`~fastpercept.models.LoadedModel`
(``style=`` is the former name of ``stylize``'s ``model``). ``output`` never replaces the
input. Bad inputs raise :class:`~fastpercept.errors.UserError` (a ``ValueError``;
``InputTypeError`` is also a ``TypeError``). Nothing is drawn on the terminal unless
``progress=True``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from .errors import InputTypeError, UserError
from .runtime.images import DecodedImage, decode_image, decode_pil, save_image, to_pil, to_uint8
from .runtime.listing import check_image_output, refuse_overwriting_inputs
from .models import DEFAULT_ANYSTYLE, DEFAULT_STYLE, LoadedModel, load_model
from .runtime.color import blend_strength, check_strength, match_histograms, preserve_color as _preserve_color
from .runtime.runner import Runner
from .runtime.tiling import resize_area, run_network
from .runtime.video import DEFAULT_FPS, is_frames_output, is_video

ImageLike = Union[np.ndarray, Image.Image, str, os.PathLike, Any]
DEFAULT_STYLE_SIZE = 512  # a painting's longest side, as style training reads a style image (--style-size)
Progress = Union[bool, Callable[[int, int], None], None]
Post = Callable[[np.ndarray, np.ndarray], np.ndarray]


@functools.lru_cache(maxsize=32)
def _cached_model(name_or_path: str) -> LoadedModel:
    """A model loaded once per process (a server or a batch keeps its runners warm)."""
    return load_model(name_or_path)


@functools.lru_cache(maxsize=8)
def _denoised_model(name_or_path: str, denoise: float | None) -> LoadedModel:
    from .models import with_denoise

    return with_denoise(name_or_path, denoise)


def _model(model: str | os.PathLike | LoadedModel, task: str) -> LoadedModel:
    loaded = model if isinstance(model, LoadedModel) else _cached_model(str(model))
    if loaded.task != task:
        kinds = {"style": "a style", "sr": "an SR", "multistyle": "a multi-style", "anystyle": "an any-painting"}
        # An any-painting model takes its style from an image: say how to give it one.
        hint = "; give the painting as style_image= (--style-image)" if loaded.task == "anystyle" else ""
        raise UserError(f"{loaded.name}: {kinds.get(loaded.task, 'a ' + loaded.task)} model, not "
                        f"{kinds.get(task, 'a ' + task)} model{hint}")
    return loaded


@functools.lru_cache(maxsize=4)
def _decoded_painting(path: str, mtime_ns: int, size: int, style_size: int) -> np.ndarray:
    """A painting file decoded once per version of it (a folder or a CLI run of many photos
    reads it once); read-only, since every caller shares it."""
    rgb = decode_image(path, max_size=style_size).rgb
    rgb.flags.writeable = False
    return rgb


def read_painting(style_image: ImageLike, style_size: int) -> np.ndarray:
    """A painting as (3, H, W) float32 in [0, 1], its longest side at most ``style_size``; a file
    is decoded once per version of it (read-only array). UserError for one that cannot be read."""
    if isinstance(style_image, (str, os.PathLike)):
        try:
            st = os.stat(style_image)
        except OSError:  # decode_image says what is wrong, in one line
            return decode_image(style_image, max_size=style_size).rgb
        return _decoded_painting(os.fspath(style_image), st.st_mtime_ns, st.st_size, style_size)
    if isinstance(style_image, Image.Image):
        return decode_pil(style_image, style_size).rgb
    if isinstance(style_image, np.ndarray):
        x = _array_batch(style_image)
        factor = style_size / max(x.shape[-2:])
        return (resize_area(x, factor) if factor < 1 else x)[0]
    raise InputTypeError(f"style_image: cannot take a {type(style_image).__name__}; pass a path, a PIL image or a "
                         "NumPy array (H, W, 3)")


def _is_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def _tensor_batch(image) -> np.ndarray:
    """A tensor input as (N, 3, H, W) float32 in [0, 1]: (3, H, W) gains N = 1, uint8 is divided by 255.

    Floats outside [0, 1] are refused rather than clamped (0..255 floats would come out white).
    """
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] == 0 or min(image.shape[-2:]) == 0:
        raise InputTypeError(f"tensor of shape {tuple(image.shape)}: expected (N, 3, H, W) or (3, H, W) RGB with "
                             "N, H, W >= 1 (drop an alpha channel first; repeat a gray one 3 times)")
    x = image.detach().cpu()
    if str(x.dtype) == "torch.uint8":
        return x.numpy().astype(np.float32) / np.float32(255.0)
    if not x.is_floating_point():
        raise InputTypeError(f"tensor of dtype {x.dtype}: expected floats in [0, 1] or uint8")
    return _checked_floats(x.float().numpy(), "tensor")


def _checked_floats(x: np.ndarray, what: str) -> np.ndarray:
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also catches NaN
        raise UserError(f"{what} values range from {lo:g} to {hi:g}; expected [0, 1] (divide 8-bit values by 255)")
    return np.clip(x, 0, 1).astype(np.float32)


def _array_batch(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) array, uint8 or float in [0, 1], as (1, 3, H, W) float32."""
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
        raise InputTypeError(f"array of shape {image.shape}: expected (H, W, 3) RGB with H, W >= 1 "
                             "(drop an alpha channel first; repeat a gray one 3 times)")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(image.dtype, np.floating):
        x = _checked_floats(image.astype(np.float32), "array")
    else:
        raise InputTypeError(f"array of dtype {image.dtype}: expected uint8 or floats in [0, 1]")
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _progress(progress: Progress, desc: str) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """``(callback, close)`` for a clip: the caller's callback, a progress bar on stderr
    (``progress=True``) or nothing."""
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(desc=desc, unit="frame", file=sys.stderr)

        def update(done: int, total: int) -> None:
            bar.total = total or None  # known from the first batch on: the bar shows the time left
            bar.update(done - bar.n)

        return update, bar.close
    return (progress or None), (lambda: None)


def _transform(image: ImageLike, model: LoadedModel, post: Post, *, output: str | os.PathLike | None,
               max_size: int | None, tile: int | None, device: str, precision: str, backend: str,
               crf: int | None = None, codec: str | None = None, stable: bool = False, fps: float = DEFAULT_FPS,
               progress: Progress = None, runner: Runner | None = None) -> ImageLike:
    is_path = isinstance(image, (str, os.PathLike))
    if not (is_path or isinstance(image, (Image.Image, np.ndarray)) or _is_tensor(image)):
        raise InputTypeError(f"cannot take a {type(image).__module__}.{type(image).__name__}: pass a PIL image, a "
                             "NumPy array (H, W, 3), a path, or a torch tensor (N, 3, H, W) of floats in [0, 1]")
    # A clip: a video file, or a folder of frames (read in name order at ``fps``).
    video = is_path and (is_video(image) or Path(image).is_dir())
    if video and output is None:
        raise UserError(f"{image}: a clip is written to a video file or a folder of frames; give output=")
    if output is not None:
        if not (video and is_frames_output(output)):
            check_image_output(output, video=video)
        source = image if is_path else getattr(image, "filename", None)  # a PIL image opened from a file
        if source:
            refuse_overwriting_inputs(output, [source])
    runner = runner or model.runner(backend, device, precision)
    if video:
        return _transform_video(Path(image), Path(output), runner, post, tile, crf, codec, stable, fps, max_size,
                                progress)
    if _is_tensor(image):
        x = _tensor_batch(image)
        if output is not None and x.shape[0] != 1:
            raise UserError(f"output= writes one image; the tensor holds a batch of {x.shape[0]}")
        y = post(run_network(runner, x, tile=tile), x)
        if output is not None:
            save_image(y, output)
        import torch

        out = torch.from_numpy(to_uint8(y) if image.dtype == torch.uint8 else y)
        return (out if image.dim() == 4 else out[0]).to(image.device)
    if isinstance(image, np.ndarray):
        x = _array_batch(image)
        y = post(run_network(runner, x, tile=tile), x)
        if output is not None:
            save_image(y, output)
        return to_uint8(y[0]).transpose(1, 2, 0) if image.dtype == np.uint8 else np.ascontiguousarray(
            y[0].transpose(1, 2, 0))
    decoded = decode_pil(image, max_size) if isinstance(image, Image.Image) else \
        decode_image(image, max_size=max_size, output_scale=model.scale)
    return _write_or_return(decoded, post(run_network(runner, decoded.rgb[None], tile=tile), decoded.rgb[None]),
                            model.scale, output)


def _write_or_return(decoded: DecodedImage, y: np.ndarray, scale: int, output: str | os.PathLike | None):
    alpha = decoded.alpha
    if alpha is not None and scale != 1:
        size = (alpha.shape[2] * scale, alpha.shape[1] * scale)
        alpha = np.clip(np.asarray(Image.fromarray(alpha[0], mode="F").resize(size, Image.Resampling.BICUBIC)),
                        0, 1)[None]
    if output is not None:
        return save_image(y, output, alpha=alpha)
    return to_pil(y, alpha)


def _transform_video(src: Path, dst: Path, runner, post: Post, tile: int | None, crf: int | None, codec: str | None,
                     stable: bool, fps: float, max_size: int | None, progress: Progress) -> Path:
    """Every frame of a clip through the runner and ``post``, in batches; see :mod:`fastpercept.runtime.video`.

    ``stable``: frames calmed along their motion before the network and settled after it
    (:class:`~fastpercept.runtime.temporal.StableFrames`) instead of standing alone.
    """
    from .runtime.temporal import StableFrames
    from .runtime.video import DEFAULT_CRF, transform_video

    stable_frames = StableFrames() if stable else None

    def frames(x: np.ndarray) -> np.ndarray:
        if stable_frames is not None:
            pixels = to_uint8(x).transpose(0, 2, 3, 1)
            x = np.stack([stable_frames.calm(f) for f in pixels]).transpose(0, 3, 1, 2)
        y = post(run_network(runner, x, tile=tile), x)
        if stable_frames is None:
            return y
        return np.stack([stable_frames.settle(o) for o in y.transpose(0, 2, 3, 1)]).transpose(0, 3, 1, 2)

    callback, close = _progress(progress, src.name)
    try:
        return transform_video(src, dst, frames, codec=codec, crf=DEFAULT_CRF if crf is None else crf,
                               progress=callback, fps=fps, max_size=max_size)
    finally:
        close()


def stylize(image: ImageLike, model: str | os.PathLike | LoadedModel | None = None, *, strength: float = 1.0,
            preserve_color: bool = False, tile: int | None = None, max_size: int | None = None,
            device: str = "auto", precision: str = "auto", output: str | os.PathLike | None = None,
            backend: str = "auto", crf: int | None = None, codec: str | None = None, stable: bool = True,
            fps: float = DEFAULT_FPS, progress: Progress = None,
            style: str | os.PathLike | LoadedModel | None = None, style_image: ImageLike | None = None,
            style_size: int = DEFAULT_STYLE_SIZE) -> ImageLike:
    """Stylize an image (or a video file, frame by frame, audio kept) with a trained style model,
    or in the style of any painting (``style_image=``).

    Args:
        image: NumPy array (H, W, 3), PIL image, path, or tensor (N, 3, H, W) in [0, 1].
        model: shipped style name, model file or loaded model (default: mosaic); ``style`` is
            its former name. A multi-style model takes ``MODEL@style`` or ``MODEL@a:0.7,b:0.3``.
            With ``style_image``: the any-painting model (default: the shipped ``anystyle``).
        style_image: a painting (path, PIL image or array) whose style is taken without training
            (AdaIN and universal style transfer, :mod:`fastpercept.runtime.anystyle`); its statistics are
            computed once and reused for every image, tile and frame.
        style_size: the painting's longest side as it is read (px; never enlarged): larger
            paints finer strokes.
        strength: 0 returns the input, 1 the full style (a linear blend in between).
        preserve_color: keep the input's colours, transfer luminance only (Gatys et al. 2016).
        tile: process in overlapping tiles of this many pixels (memory; automatic when needed).
        max_size: downscale so the longest side is at most this (paths, PIL images, videos).
        output: write the result here (an image, or for a clip a video file or a folder).
        backend: ``auto``, ``openvino``, ``onnxruntime``, ``torch`` or ``compile``
            (:mod:`fastpercept.runtime.backends`; ``auto`` takes the fastest installed one).
        crf, codec: for a video: the encoder's quality and the encoder (default: x264 at crf 18;
            VP9 for .webm). A clip may also be a folder of frames (image files in name order, at
            ``fps``), and ``output`` a folder (no suffix, or ending in "/"): the frames are
            written there as PNG files ``000001.png``, ... (without audio).
        stable: for a video, calm the frames along their motion before the network and settle
            the outputs after it (no flicker; :class:`~fastpercept.runtime.temporal.StableFrames`);
            False stylizes each frame on its own.
        progress: for a clip, ``True`` draws a progress bar on stderr; a callable gets
            ``(frames done, frames in all)`` (0 where the container does not say).
    Returns:
        The same kind as ``image``.
    """
    if model is not None and style is not None:
        raise UserError("give the style model once: model= (style= is its former name)")
    chosen = model if model is not None else style
    strength = check_strength(strength)
    runner = None
    if style_image is not None:
        loaded = _model(chosen if chosen is not None else DEFAULT_ANYSTYLE, "anystyle")
        if output is not None and isinstance(style_image, (str, os.PathLike)):
            refuse_overwriting_inputs(output, [style_image])
        runner = loaded.runner(backend, device, precision).with_painting(read_painting(style_image, style_size))
    else:
        loaded = _model(chosen if chosen is not None else DEFAULT_STYLE, "style")

    def post(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        if preserve_color:
            y = _preserve_color(y, x)
        return blend_strength(y, x, strength)

    return _transform(image, loaded, post, output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, backend=backend, crf=crf, codec=codec, stable=stable, fps=fps,
                      progress=progress, runner=runner)


def upscale(image: ImageLike, model: str | os.PathLike | LoadedModel = "x4", *, denoise: float | None = None,
            match_colors: bool = False, tile: int | None = None, max_size: int | None = None, device: str = "auto",
            precision: str = "auto", output: str | os.PathLike | None = None, backend: str = "auto",
            crf: int | None = None, codec: str | None = None, fps: float = DEFAULT_FPS,
            progress: Progress = None) -> ImageLike:
    """Super-resolve an image x4 or x8 with a trained SR model (same conventions as :func:`stylize`).

    ``denoise``: for real photos (JPEG, noise, blur), 0..1: the model's weights interpolated
    toward its twin trained on real-photo degradations (``x4`` -> ``x4-real``; 0 is the model,
    1 the twin). Default: :data:`~fastpercept.models.DEFAULT_DENOISE` for a model whose twin is
    installed (``x4``), the model as named otherwise; ``denoise=0`` for clean, bicubic-made inputs
    (benchmarks). ``match_colors``: match each colour channel's histogram to the input's (the
    paper's post-processing; see :func:`fastpercept.runtime.color.match_histograms`).
    """
    if isinstance(model, LoadedModel):
        if denoise is not None:
            raise UserError("denoise= takes a model by name or file, not a loaded model")
    else:
        model = _denoised_model(str(model), None if denoise is None else float(denoise))

    def post(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return match_histograms(y, x) if match_colors else y

    return _transform(image, _model(model, "sr"), post, output=output, max_size=max_size, tile=tile, device=device,
                      precision=precision, backend=backend, crf=crf, codec=codec, fps=fps, progress=progress)
