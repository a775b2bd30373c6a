"""Short clips for the video benchmarks and scripts: the first frames of a clip, as a new clip
(optionally resized) or as arrays. Run from ``benchmarks/`` (scripts add it to ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def cut_clip(src: Path, dst: Path, frames: int | None = None, size: tuple[int, int] | None = None,
             crf: int = 18) -> int:
    """Write ``src``'s first ``frames`` frames (all: None), resized to ``size`` (width, height; as
    is: None), as H.264 at ``crf`` without audio; returns how many frames were written."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=stream_in.average_rate or 25, options={"crf": str(crf)})
        stream.width, stream.height = size or (stream_in.width, stream_in.height)
        stream.pix_fmt = "yuv420p"
        for frame in inp.decode(stream_in):
            if frames is not None and n == frames:
                break
            if size:
                frame = frame.reformat(width=size[0], height=size[1])
            frame.pts = None  # the encoder numbers the frames afresh
            for packet in stream.encode(frame):
                out.mux(packet)
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    return n


def read_frames(path: Path, count: int | None = None) -> list[np.ndarray]:
    """The first ``count`` frames (all: None) of a clip as (H, W, 3) uint8 RGB arrays."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if count is not None and len(out) == count:
                break
            out.append(frame.to_ndarray(format="rgb24"))
    return out
