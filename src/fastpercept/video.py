"""Video files in and out (PyAV, which bundles FFmpeg): frames through a network, audio untouched.

:func:`transform_video` decodes in a thread while the caller's network runs on batches of frames
and the main thread encodes; a bounded queue between them keeps memory flat whatever the
clip's length. Every frame keeps its timestamp (variable frame rate included), so the output has
the input's frame count, frame rate and duration; the audio streams are copied packet for packet;
a display rotation is applied to the pixels (the output plays upright without it). The output is
written to a temporary file and renamed: it is complete or absent, also after Ctrl-C. A clip may
also be a folder of frames, in or out. (Temporal stability is the caller's: see
:mod:`fastpercept.temporal`.)
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .atomic import atomic_folder, atomic_write
from .errors import UserError
from .images import to_uint8

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
# Container (by suffix) -> (FFmpeg muxer, default video encoder).
_CONTAINERS = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
               ".webm": ("webm", "libvpx-vp9"), ".avi": ("avi", "libx264")}
DEFAULT_CRF = 18  # visually lossless for x264; the encoder's quality knob (lower: better, larger)


FRAME_NAME = "{:06d}.png"  # frames written to a folder: 000001.png, 000002.png, ...
DEFAULT_FPS = 25.0  # the rate of a clip read from a folder of frames


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_frames_output(path: str | Path) -> bool:
    """Whether a clip's output ``path`` names a folder of frames (an existing folder, a name ending
    in ``/`` or one without a suffix) rather than a video file."""
    text = str(path)
    return Path(text).is_dir() or text.endswith(("/", os.sep)) or not Path(text).suffix


def frame_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in name order: a clip's frames."""
    from .images import IMAGE_SUFFIXES

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no image files to read as frames")
    return files


@dataclass
class VideoInfo:
    """What a clip is: size (as displayed), frames, average frame rate, duration (s), audio streams."""

    width: int
    height: int
    frames: int
    fps: float
    duration: float
    audio_streams: int
    rotation: int


def _open(path: Path):
    import av

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise UserError(f"{path}: not a video FFmpeg can read ({e})") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path}: has no video stream")
    return container


def _metadata_frames(stream) -> int:
    """A video stream's frame count from the container's metadata (0 where it does not say)."""
    if stream.frames:
        return int(stream.frames)
    seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
    return int(round(seconds * float(stream.average_rate or 0)))


def probe_video(path: str | Path) -> VideoInfo:
    """The clip's :class:`VideoInfo`, counting its frames by decoding (exact, also for VFR)."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        frames, rotation, first, last = 0, 0, None, None
        for frame in container.decode(stream):
            frames += 1
            rotation = int(getattr(frame, "rotation", 0) or 0)
            t = float(frame.pts * frame.time_base) if frame.pts is not None else None
            first = t if first is None else first
            last = t
        rate = float(stream.average_rate or 0)
        duration = (last - first + 1 / rate) if (frames and rate and last is not None) else 0.0
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            w, h = h, w
        return VideoInfo(w, h, frames, rate, duration, len(container.streams.audio), rotation)
    except av.error.FFmpegError as e:
        raise UserError(f"{path}: cannot decode the video ({e})") from None
    finally:
        container.close()


def _to_array(frame, rotation: int, max_size: int | None) -> np.ndarray:
    """A decoded frame as (3, H, W) float32 in [0, 1], turned upright, its longest side reduced to
    ``max_size`` (FFmpeg's area filter, as the frame is converted to RGB)."""
    quarter_turns = (rotation // 90) % 4
    width, height = frame.width, frame.height
    if max_size is not None and max(width, height) > max_size:
        from .images import target_size

        width, height = target_size(width, height, max_size)
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    # FFmpeg's rotation is counter-clockwise in degrees; rot90 with k > 0 turns counter-clockwise.
    if quarter_turns:
        rgb = np.rot90(rgb, k=quarter_turns, axes=(0, 1))
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def transform_video(src: str | Path, dst: str | Path, frames_fn: Callable[[np.ndarray], np.ndarray], *,
                    batch: int = 4, codec: str | None = None, crf: int = DEFAULT_CRF,
                    progress: Callable[[int, int], None] | None = None, fps: float = DEFAULT_FPS,
                    max_size: int | None = None) -> Path:
    """Write ``dst``: every frame of ``src`` through ``frames_fn``, timestamps and audio kept.

    ``src`` is a video file, or a folder of frames (image files in name order, at ``fps``);
    ``dst`` is a video file, or a folder (:func:`is_frames_output`) that receives the frames as
    PNG files (``000001.png``, ...; a clip's audio is then left out, with a warning).

    Args:
        frames_fn: (N, 3, H, W) float32 in [0, 1] -> (N, 3, sH, sW) in [0, 1] (a network over a batch).
        batch: frames per ``frames_fn`` call.
        codec: video encoder (default by container: libx264, or libvpx-vp9 for .webm).
        crf: the encoder's constant-quality setting.
        progress: called after each batch with ``(frames written, frames in all)``; the total
            comes from the container's metadata (0 where it does not say) or the frames folder.
        fps: the frame rate of a folder of frames.
        max_size: reduce every frame so its longest side is at most this many pixels.
    Raises:
        UserError: unreadable or truncated input, an output container we do not write, an
        unknown encoder, frames of different sizes. Whatever happens, ``dst`` is never left
        half-written.
    """
    import av

    src, dst = Path(src), Path(dst)
    to_frames = is_frames_output(dst)
    if not to_frames and dst.suffix.lower() not in _CONTAINERS:
        raise UserError(f"{dst}: cannot write '{dst.suffix}' videos; use one of {', '.join(_CONTAINERS)}")
    if to_frames and dst.is_dir() and any(dst.iterdir()):
        raise UserError(f"{dst}: folder is not empty; frames go to a new or empty folder")
    muxer, default_codec = _CONTAINERS.get(dst.suffix.lower(), ("", "libx264"))
    codec = codec or default_codec
    if not to_frames and codec not in av.codecs_available:
        raise UserError(f"--codec {codec}: not an encoder of this FFmpeg build")
    if not fps > 0:
        raise UserError(f"--fps must be above 0, not {fps}")
    items: queue.Queue = queue.Queue(maxsize=4 * batch)  # bounded: decoding waits for the network
    stop = threading.Event()
    failure: list[BaseException] = []
    if src.is_dir():
        files, container, in_audio = frame_files(src), None, []
        rate = Fraction(fps).limit_denominator(1001)
        time_base = 1 / rate
        total = len(files)
    else:
        container = _open(src)
        in_video = container.streams.video[0]
        in_audio = list(container.streams.audio)
        rate, time_base = in_video.average_rate or 25, in_video.time_base
        total = _metadata_frames(in_video)
        if to_frames and in_audio:
            log.warning("%s: frames carry no audio; the clip's audio is not written", src)

    def decode_clip() -> None:
        for packet in container.demux(in_video, *in_audio):
            if stop.is_set():
                return
            if packet.stream.type == "audio":
                if packet.dts is not None:
                    items.put(("audio", packet))
                continue
            for frame in packet.decode():
                items.put(("video", frame))

    def decode_folder() -> None:
        from .images import decode_image

        size = None
        for i, path in enumerate(files):
            if stop.is_set():
                return
            rgb = to_uint8(decode_image(path, max_size=max_size).rgb).transpose(1, 2, 0)
            if size is not None and rgb.shape != size:
                raise UserError(f"{path}: a {rgb.shape[1]}x{rgb.shape[0]} frame among frames of "
                                f"{size[1]}x{size[0]}; a clip's frames share one size")
            size = rgb.shape
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, time_base
            items.put(("video", frame))

    def decode() -> None:
        try:
            decode_folder() if container is None else decode_clip()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(e)
        finally:
            items.put(None)

    reader = threading.Thread(target=decode, name="fastpercept-decode", daemon=True)
    written = 0
    try:
        with (atomic_folder(dst) if to_frames else atomic_write(dst)) as tmp:
            output = None if to_frames else av.open(str(tmp), "w", format=muxer)
            try:
                out_audio = {s.index: output.add_stream_from_template(s) for s in in_audio} if output else {}
                out_video = None
                pending: list = []
                held: list = []  # audio before the video stream exists (its size comes with the first batch)

                def flush() -> None:
                    nonlocal out_video, written
                    if not pending:
                        return
                    rotation = int(getattr(pending[0], "rotation", 0) or 0)
                    x = np.stack([_to_array(f, rotation, max_size) for f in pending])
                    y = frames_fn(x)
                    pixels = to_uint8(y).transpose(0, 2, 3, 1)
                    if output is None:  # a folder of frames
                        from PIL import Image

                        from .images import write_image

                        for k, rgb in enumerate(pixels):
                            write_image(Image.fromarray(rgb), tmp / FRAME_NAME.format(written + k + 1))
                    else:
                        if out_video is None:
                            out_video = output.add_stream(codec, rate=rate)
                            out_video.width, out_video.height = int(y.shape[-1]) // 2 * 2, int(y.shape[-2]) // 2 * 2
                            out_video.pix_fmt = "yuv420p"
                            out_video.time_base = time_base
                            out_video.codec_context.time_base = time_base
                            out_video.options = {"crf": str(crf)}
                            for packet in held:
                                output.mux(packet)
                            held.clear()
                        for frame, rgb in zip(pending, pixels):
                            rgb = np.ascontiguousarray(rgb[: out_video.height, : out_video.width])
                            out = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                            out.pts, out.time_base = frame.pts, frame.time_base
                            for packet in out_video.encode(out):
                                output.mux(packet)
                    written += len(pending)
                    pending.clear()
                    if progress:
                        progress(written, total)

                reader.start()
                while (item := items.get()) is not None:
                    kind, payload = item
                    if kind == "audio":
                        if output is None:
                            continue
                        payload.stream = out_audio[payload.stream.index]
                        if out_video is None:
                            held.append(payload)
                        else:
                            output.mux(payload)
                    else:
                        pending.append(payload)
                        if len(pending) == batch:
                            flush()
                if failure:
                    raise failure[0]
                flush()
                if not written:
                    raise UserError(f"{src}: no video frame could be decoded")
                if output is not None:
                    for packet in out_video.encode():
                        output.mux(packet)
            finally:
                if output is not None:
                    output.close()
    except av.error.FFmpegError as e:
        raise UserError(f"{src}: cannot decode the video, or encode {dst.name} ({e})") from None
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on the full queue
            try:
                items.get_nowait()
            except queue.Empty:
                reader.join(timeout=0.1)
        if container is not None:
            container.close()
    return dst
