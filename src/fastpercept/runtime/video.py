"""Video files in and out (PyAV, which bundles FFmpeg): frames through a network, audio kept.

:func:`transform_video` decodes in a thread while the caller's network runs on batches of frames
and the main thread encodes; a bounded queue between them keeps memory flat whatever the
clip's length. Every frame keeps its timestamp (variable frame rate included), so the output has
the input's frame count, frame rate and duration; the audio streams are copied packet for packet,
or transcoded (to Opus for .webm) where the output container cannot hold their codec; a display
rotation is applied to the pixels (the output plays upright without it). A damaged packet is
concealed (the previous frame repeated, with a warning), frames of another size mid-stream are
scaled to the first frame's size, and odd sizes are padded by one edge pixel where the encoder
needs even ones. The output is written to a temporary file and renamed: it is complete or
absent, also after Ctrl-C. A clip may also be a folder of frames, in or out. (Temporal
stability is the caller's: see :mod:`fastpercept.runtime.temporal`.)
"""

from __future__ import annotations

import bisect
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..atomic import atomic_folder, atomic_write
from ..errors import UserError
from .images import to_uint8

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
# Container (by suffix) -> (FFmpeg muxer, default video encoder).
_CONTAINERS = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
               ".webm": ("webm", "libvpx-vp9"), ".avi": ("avi", "libx264")}
# Video encoders offered when the chosen one does not fit the container, in this order.
_VIDEO_ENCODERS = ("libx264", "libvpx-vp9", "libsvtav1", "mpeg4")
# Audio encoders for a stream the output container cannot hold as it is, in order of preference.
_AUDIO_ENCODERS = ("libopus", "aac", "libvorbis")
# FFmpeg's default channel layouts, for audio whose channels are only counted (PCM in AVI or
# Matroska): MP4 refuses an unspecified layout when it writes its index, so one is guessed as
# FFmpeg's command line does.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
DEFAULT_CRF = 18  # visually lossless for x264; the encoder's quality knob (lower: better, larger)


FRAME_NAME = "{:06d}.png"  # frames written to a folder: 000001.png, 000002.png, ...
DEFAULT_FPS = 25.0  # the rate of a clip read from a folder of frames
# The frame rates a folder of frames may be read at: one frame per 1000 s up to 1000 per second
# (rates are kept as fractions with denominators up to 1001, so smaller ones would round to 0).
MIN_FPS, MAX_FPS = 0.001, 1000.0


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


def check_fps(fps: float) -> float:
    """``fps`` if it is a frame rate we can write (:data:`MIN_FPS` to :data:`MAX_FPS`), else UserError."""
    if not MIN_FPS <= fps <= MAX_FPS:  # also refuses NaN
        raise UserError(f"frame rate {fps:g}: give a rate from {MIN_FPS:g} to {MAX_FPS:g} frames per second")
    return fps


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


def _decoded(packets):
    """The frames of ``packets``, those of damaged packets left out (:func:`transform_video` conceals them)."""
    import av

    for packet in packets:
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def probe_video(path: str | Path) -> VideoInfo:
    """The clip's :class:`VideoInfo`, counting its frames by decoding (exact, also for VFR; the
    frames of damaged packets are not counted)."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        frames, rotation, first, last = 0, 0, None, None
        for frame in _decoded(container.demux(stream)):
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


def _to_array(frame, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame as (3, H, W) float32 in [0, 1], at ``size`` (width, height, before the
    rotation; FFmpeg's area filter, as the frame is converted to RGB), then turned upright."""
    width, height = size
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    # FFmpeg's rotation is counter-clockwise in degrees; rot90 with k > 0 turns counter-clockwise.
    quarter_turns = (rotation // 90) % 4
    if quarter_turns:
        rgb = np.rot90(rgb, k=quarter_turns, axes=(0, 1))
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


@dataclass
class _Repeat:
    """A frame lost to a damaged packet: the previous frame is shown again at this timestamp."""

    pts: int
    time_base: Fraction


def _seconds(pts: int | None, time_base) -> str:
    return "an unknown time" if pts is None or time_base is None else f"{float(pts * time_base):.2f} s"


def _clip_items(src: Path, packets) -> Iterator[tuple[str, object]]:
    """``("audio", packet)`` and ``("video", frame)`` in the order of demuxed ``packets``; a video
    packet that cannot be decoded becomes ``("video", _Repeat)`` in display order (the previous
    frame shown again at its timestamp; lost before any frame, it is left out), with one warning."""
    import av

    lost: list[int] = []  # timestamps of damaged packets, until the next frame shown after them
    damaged, first_damage, previous = 0, None, None
    for packet in packets:
        if packet.stream.type == "audio":
            if packet.dts is not None:
                yield "audio", packet
            continue
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            damaged += 1
            first_damage = first_damage or _seconds(packet.pts, packet.time_base)
            if packet.pts is not None:
                bisect.insort(lost, packet.pts)
            continue
        for frame in frames:
            while lost and previous is not None and frame.pts is not None and lost[0] < frame.pts:
                yield "video", _Repeat(lost.pop(0), previous.time_base)
            yield "video", frame
            previous = frame
    if previous is None:
        return  # nothing decoded at all: the clip is refused, no concealment to speak of
    for pts in lost:
        yield "video", _Repeat(pts, previous.time_base)
    if damaged:
        log.warning("%s: %d damaged video packet(s) (the first at %s) could not be decoded; the previous "
                    "frame is shown in their place", src, damaged, first_damage)


def _muxer_codecs(muxer: str) -> set[str]:
    """The codec and encoder names FFmpeg's ``muxer`` can hold."""
    import io

    import av

    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        return set(probe.supported_codecs)


def _check_encoder(dst: Path, codec: str, muxer_codecs: set[str]) -> None:
    """UserError unless ``codec`` is a video encoder of this FFmpeg build that ``dst``'s container holds."""
    import av

    try:
        kind = av.Codec(codec, "w").type
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError too
        kind = None
    if kind != "video":
        raise UserError(f"video codec {codec}: not a video encoder of this FFmpeg build "
                        f"(e.g. {', '.join(c for c in _VIDEO_ENCODERS if c in av.codecs_available)})")
    if codec not in muxer_codecs:
        fits = [c for c in _VIDEO_ENCODERS if c in muxer_codecs and c in av.codecs_available]
        raise UserError(f"{dst}: a {dst.suffix} file cannot hold {codec} video; use {' or '.join(fits)}, "
                        "or another container")


def _layout(stream) -> str:
    """The name of an audio stream's channel layout, a default one where its channels are only counted."""
    layout = stream.codec_context.layout
    if layout is None or not layout.channels:
        return "stereo"
    if all(c.name == "NONE" for c in layout.channels):
        return _DEFAULT_LAYOUTS.get(len(layout.channels), layout.name)
    return layout.name


def _audio_encoder(muxer_codecs: set[str]) -> str | None:
    """The encoder for audio the container cannot hold as it is (None: no encoder fits)."""
    import av

    return next((c for c in _AUDIO_ENCODERS if c in muxer_codecs and c in av.codecs_available), None)


class _AudioTranscoder:
    """One input audio stream decoded, resampled and encoded into an output stream."""

    def __init__(self, output, source, encoder: str, clip: Path) -> None:
        import av

        codec = av.Codec(encoder, "w")
        rate = source.codec_context.sample_rate or 48000
        rates = codec.audio_rates
        if rates and rate not in rates:
            rate = min(rates, key=lambda r: (r < rate, abs(r - rate)))  # the nearest rate, higher first
        formats = [f.name for f in (codec.audio_formats or [])]
        sample_format = "flt" if "flt" in formats or not formats else formats[0]
        layout = _layout(source)
        self.source, self.clip = source, clip
        self.stream = output.add_stream(encoder, rate=rate)
        self.stream.codec_context.layout = layout
        self.stream.codec_context.format = sample_format
        self.resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
        self.damaged = False

    def packets(self, packet) -> list:
        """The output packets for one input packet (None: the end, flush everything)."""
        import av

        frames: list = []
        try:
            frames = list(self.source.codec_context.decode(packet))
        except av.error.InvalidDataError:  # a damaged audio packet: a short gap, not a refused clip
            if not self.damaged:
                where = _seconds(packet.pts, packet.time_base) if packet is not None else "the end"
                log.warning("%s: a damaged audio packet at %s could not be decoded and is left out", self.clip, where)
            self.damaged = True
        if packet is None:
            frames.append(None)  # the resampler's samples held back, then the encoder's
        out = []
        for frame in frames:
            for resampled in self.resampler.resample(frame):
                out.extend(self.stream.encode(resampled))
        if packet is None:
            out.extend(self.stream.encode(None))
        return out


def _even_size(codec: str, width: int, height: int) -> tuple[int, int]:
    """The size ``codec`` encodes (width, height) frames at in yuv420p: as they are where it takes
    odd sizes, else one pixel more where odd (x264 needs even sizes for 4:2:0)."""
    import av

    if width % 2 == 0 and height % 2 == 0:
        return width, height
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.time_base, context.framerate = Fraction(1, 25), Fraction(25)
    try:
        context.open()
        return width, height
    except av.error.FFmpegError:
        return width + width % 2, height + height % 2


def transform_video(src: str | Path, dst: str | Path, frames_fn: Callable[[np.ndarray], np.ndarray], *,
                    batch: int = 4, codec: str | None = None, crf: int = DEFAULT_CRF,
                    progress: Callable[[int, int], None] | None = None, fps: float = DEFAULT_FPS,
                    max_size: int | None = None) -> Path:
    """Write ``dst``: every frame of ``src`` through ``frames_fn``, timestamps and audio kept.

    ``src`` is a video file, or a folder of frames (image files in name order, at ``fps``);
    ``dst`` is a video file, or a folder (:func:`is_frames_output`) that receives the frames as
    PNG files (``000001.png``, ...; a clip's audio is then left out, with a warning).

    A video's audio is copied, or where ``dst``'s container cannot hold its codec (AAC or PCM in
    .webm) transcoded (Opus for .webm), or where no encoder fits left out with a warning. A damaged
    video packet is concealed: the previous frame is shown again at its timestamp (one warning
    says where). Frames whose size changes mid-clip are scaled to the first frame's size (one
    warning). Where the encoder needs even sizes (x264), odd ones are padded by repeating the
    last row or column (one warning).

    Args:
        frames_fn: (N, 3, H, W) float32 in [0, 1] -> (N, 3, sH, sW) in [0, 1] (a network over a batch).
        batch: frames per ``frames_fn`` call.
        codec: video encoder (default by container: libx264, or libvpx-vp9 for .webm).
        crf: the encoder's constant-quality setting.
        progress: called after each batch with ``(frames written, frames in all)``; the total
            comes from the container's metadata (0 where it does not say) or the frames folder.
        fps: the frame rate of a folder of frames (:data:`MIN_FPS` to :data:`MAX_FPS`).
        max_size: reduce every frame so its longest side is at most this many pixels.
    Raises:
        UserError: unreadable or truncated input, an output container we do not write, an
        unknown encoder or one the container cannot hold, frames of different sizes in a folder,
        an output that cannot be written. Whatever happens, ``dst`` is never left half-written.
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
    muxer_codecs = set() if to_frames else _muxer_codecs(muxer)
    if not to_frames:
        _check_encoder(dst, codec, muxer_codecs)
    check_fps(fps)
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
            in_audio = []
    # Decided before decoding starts: each audio stream is copied, transcoded (to this encoder) or left out.
    audio_encoders: dict[int, str | None] = {}
    if not to_frames:
        for stream in in_audio:
            if stream.codec_context.name not in muxer_codecs:
                audio_encoders[stream.index] = _audio_encoder(muxer_codecs)
                if audio_encoders[stream.index] is None:
                    log.warning("%s: a %s file cannot hold its %s audio and no encoder here can convert it; "
                                "the audio is left out", src, dst.suffix, stream.codec_context.name)
    in_audio = [s for s in in_audio if audio_encoders.get(s.index, "copy") is not None]

    def decode_clip() -> None:
        for item in _clip_items(src, container.demux(in_video, *in_audio)):
            if stop.is_set():
                return
            items.put(item)

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
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastpercept-network")
    written = 0
    try:
        with (atomic_folder(dst) if to_frames else atomic_write(dst)) as tmp:
            output = None if to_frames else av.open(str(tmp), "w", format=muxer)
            try:
                out_audio, transcoders = {}, {}
                for s in in_audio if output else []:
                    if audio_encoders.get(s.index) is None:
                        out_audio[s.index] = output.add_stream_from_template(s)
                        out_audio[s.index].codec_context.layout = _layout(s)
                    else:
                        transcoders[s.index] = _AudioTranscoder(output, s, audio_encoders[s.index], src)
                        log.info("%s: a %s file cannot hold %s audio; it is converted with %s", src,
                                    dst.suffix, s.codec_context.name, audio_encoders[s.index])
                out_video = None
                pending: list = []
                held: list = []  # audio before the video stream exists (its size comes with the first batch)
                # Set by the first frame: its rotation, and the size (before the rotation) every frame is read at.
                clip: dict = {}
                last: list[np.ndarray] = []  # the latest frame read, shown again for a lost one

                def frame_array(frame) -> np.ndarray:
                    if isinstance(frame, _Repeat):
                        return last[0]
                    if not clip:
                        from .images import target_size

                        clip["rotation"] = int(getattr(frame, "rotation", 0) or 0)
                        clip["source"] = (frame.width, frame.height)
                        clip["size"] = target_size(frame.width, frame.height, max_size)
                    elif (frame.width, frame.height) != clip["source"] and not clip.get("resized"):
                        clip["resized"] = True
                        log.warning("%s: the frame size changes from %dx%d to %dx%d at %s; such frames are "
                                    "scaled to %dx%d", src, *clip["source"], frame.width, frame.height,
                                    _seconds(frame.pts, frame.time_base), *clip["size"])
                    last[:] = [_to_array(frame, clip["rotation"], clip["size"])]
                    return last[0]

                def mux(packets) -> None:
                    if out_video is None:
                        held.extend(packets)
                    else:
                        for packet in packets:
                            output.mux(packet)

                def process(frames: list) -> tuple[list, np.ndarray]:
                    """A batch through ``frames_fn`` (on the worker thread): (frames, (N, H, W, 3) uint8)."""
                    return frames, to_uint8(frames_fn(np.stack([frame_array(f) for f in frames]))).transpose(0, 2, 3, 1)

                def write(frames: list, pixels: np.ndarray) -> None:
                    """A processed batch into the output (on this thread), frames in order."""
                    nonlocal out_video, written
                    if output is None:  # a folder of frames
                        from PIL import Image

                        from .images import write_image

                        for k, rgb in enumerate(pixels):
                            write_image(Image.fromarray(rgb), tmp / FRAME_NAME.format(written + k + 1))
                    else:
                        height, width = pixels.shape[1:3]
                        if out_video is None:
                            out_video = output.add_stream(codec, rate=rate)
                            out_video.width, out_video.height = _even_size(codec, width, height)
                            if (out_video.width, out_video.height) != (width, height):
                                log.warning("%s: %s needs even frame sizes; the %dx%d frames are padded to %dx%d "
                                            "(last row or column repeated)", dst, codec, width, height,
                                            out_video.width, out_video.height)
                            out_video.pix_fmt = "yuv420p"
                            out_video.time_base = time_base
                            out_video.codec_context.time_base = time_base
                            out_video.options = {"crf": str(crf)}
                            for packet in held:
                                output.mux(packet)
                            held.clear()
                        pad = ((0, out_video.height - height), (0, out_video.width - width), (0, 0))
                        for frame, rgb in zip(frames, pixels):
                            rgb = np.pad(rgb, pad, mode="edge") if any(pad[0] + pad[1]) else rgb
                            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                            out.pts, out.time_base = frame.pts, frame.time_base
                            for packet in out_video.encode(out):
                                output.mux(packet)
                    written += len(frames)
                    if progress:
                        progress(written, total)

                # The network works on one batch while this thread encodes the one before it (and the
                # reader decodes the next): decoding, the network (with the stable mode's optical flow)
                # and encoding overlap. One worker keeps the batches, and frames_fn's state, in order.
                in_flight: list[Future] = []

                def flush(last: bool = False) -> None:
                    if pending:
                        in_flight.append(worker.submit(process, list(pending)))
                        pending.clear()
                    while len(in_flight) > (0 if last else 1):
                        write(*in_flight.pop(0).result())

                reader.start()
                while (item := items.get()) is not None:
                    kind, payload = item
                    if kind == "audio":
                        if output is None:
                            continue
                        if payload.stream.index in transcoders:
                            mux(transcoders[payload.stream.index].packets(payload))
                        else:
                            payload.stream = out_audio[payload.stream.index]
                            mux([payload])
                    else:
                        pending.append(payload)
                        if len(pending) == batch:
                            flush()
                if failure:
                    raise failure[0]
                flush(last=True)
                if not written:
                    raise UserError(f"{src}: no video frame could be decoded")
                if output is not None:
                    for packet in out_video.encode():
                        output.mux(packet)
                    for transcoder in transcoders.values():
                        for packet in transcoder.packets(None):
                            output.mux(packet)
            finally:
                if output is not None:
                    output.close()
    except av.error.FFmpegError as e:
        raise UserError(f"{src}: cannot decode the video, or encode {dst.name} ({e})") from None
    except OSError as e:  # the output's folder: read-only, full, a name too long...
        raise UserError(f"{dst}: cannot write ({e.strerror or e})") from None
    finally:
        stop.set()
        worker.shutdown(wait=True, cancel_futures=True)  # the batch being computed ends; no other starts
        while reader.is_alive():  # unblock a reader waiting on the full queue
            try:
                items.get_nowait()
            except queue.Empty:
                reader.join(timeout=0.1)
        if container is not None:
            container.close()
    return dst
