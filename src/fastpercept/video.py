"""Video files in and out (PyAV, which bundles FFmpeg): frames through a network, audio untouched.

:func:`transform_video` decodes in a thread while the caller's network runs on batches of frames
and the main thread encodes; a bounded queue between them keeps memory flat whatever the
clip's length. Every frame keeps its timestamp (variable frame rate included), so the output has
the input's frame count, frame rate and duration; the audio streams are copied packet for packet;
a display rotation is applied to the pixels (the output plays upright without it). The output is
written to a temporary file and renamed: it is complete or absent, also after Ctrl-C.

Per-frame stylization only (no temporal smoothing yet).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import UserError
from .images import to_uint8

if TYPE_CHECKING:  # frames become tensors only once a clip is transformed
    import torch

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
# Container (by suffix) -> (FFmpeg muxer, default video encoder).
_CONTAINERS = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
               ".webm": ("webm", "libvpx-vp9"), ".avi": ("avi", "libx264")}
DEFAULT_CRF = 18  # visually lossless for x264; the encoder's quality knob (lower: better, larger)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


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


def _to_tensor(frame, rotation: int) -> torch.Tensor:
    import torch

    """A decoded frame as (3, H, W) float32 in [0, 1], turned upright."""
    rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255.0
    quarter_turns = (rotation // 90) % 4
    # FFmpeg's rotation is counter-clockwise in degrees; rot90 with k > 0 turns counter-clockwise.
    return torch.rot90(rgb, k=quarter_turns, dims=(1, 2)).contiguous() if quarter_turns else rgb


def transform_video(src: str | Path, dst: str | Path, frames_fn: Callable[[torch.Tensor], torch.Tensor], *,
                    batch: int = 4, codec: str | None = None, crf: int = DEFAULT_CRF,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Write ``dst``: every frame of ``src`` through ``frames_fn``, timestamps and audio kept.

    Args:
        frames_fn: (N, 3, H, W) in [0, 1] -> (N, 3, sH, sW) in [0, 1] (a network over a batch).
        batch: frames per ``frames_fn`` call.
        codec: video encoder (default by container: libx264, or libvpx-vp9 for .webm).
        crf: the encoder's constant-quality setting.
        progress: called with the number of frames written so far.
    Raises:
        UserError: unreadable or truncated input, an output container we do not write, an
        unknown encoder. Whatever happens, ``dst`` is never left half-written.
    """
    import torch

    import av

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in _CONTAINERS:
        raise UserError(f"{dst}: cannot write '{dst.suffix}' videos; use one of {', '.join(_CONTAINERS)}")
    muxer, default_codec = _CONTAINERS[dst.suffix.lower()]
    codec = codec or default_codec
    if codec not in av.codecs_available:
        raise UserError(f"--codec {codec}: not an encoder of this FFmpeg build")
    container = _open(src)
    items: queue.Queue = queue.Queue(maxsize=4 * batch)  # bounded: decoding waits for the network
    stop = threading.Event()
    failure: list[BaseException] = []
    in_video = container.streams.video[0]
    in_audio = list(container.streams.audio)

    def decode() -> None:
        try:
            for packet in container.demux(in_video, *in_audio):
                if stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        items.put(("audio", packet))
                    continue
                for frame in packet.decode():
                    items.put(("video", frame))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(e)
        finally:
            items.put(None)

    reader = threading.Thread(target=decode, name="fastpercept-decode", daemon=True)
    written = 0
    try:
        with atomic_write(dst) as tmp:
            output = av.open(str(tmp), "w", format=muxer)
            try:
                out_audio = {s.index: output.add_stream_from_template(s) for s in in_audio}
                out_video = None
                pending: list = []
                held: list = []  # audio before the video stream exists (its size comes with the first batch)

                def flush() -> None:
                    nonlocal out_video, written
                    if not pending:
                        return
                    rotation = int(getattr(pending[0], "rotation", 0) or 0)
                    x = torch.stack([_to_tensor(f, rotation) for f in pending])
                    y = frames_fn(x).clamp(0, 1)
                    if out_video is None:
                        out_video = output.add_stream(codec, rate=in_video.average_rate or 25)
                        out_video.width, out_video.height = int(y.shape[-1]) // 2 * 2, int(y.shape[-2]) // 2 * 2
                        out_video.pix_fmt = "yuv420p"
                        out_video.time_base = in_video.time_base
                        out_video.codec_context.time_base = in_video.time_base
                        out_video.options = {"crf": str(crf)}
                        for packet in held:
                            output.mux(packet)
                        held.clear()
                    pixels = to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()
                    for frame, rgb in zip(pending, pixels):
                        rgb = np.ascontiguousarray(rgb[: out_video.height, : out_video.width])
                        out = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                        out.pts, out.time_base = frame.pts, frame.time_base
                        for packet in out_video.encode(out):
                            output.mux(packet)
                    written += len(pending)
                    pending.clear()
                    if progress:
                        progress(written)

                reader.start()
                while (item := items.get()) is not None:
                    kind, payload = item
                    if kind == "audio":
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
                if out_video is None:
                    raise UserError(f"{src}: no video frame could be decoded")
                for packet in out_video.encode():
                    output.mux(packet)
            finally:
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
        container.close()
    return dst
