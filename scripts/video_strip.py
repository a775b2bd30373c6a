#!/usr/bin/env python3
"""A frame strip of a stylized clip for the README: input frames above, the stylized clip's
(stable mode, the default) below, every ``--step`` frames.

    .venv/bin/python scripts/video_strip.py [--clip ../shared/data/video/bikes.mp4] [-o docs/video-strip.jpg]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
from PIL import Image

import fastpercept

REPO = Path(__file__).resolve().parents[1]


def frames(path: Path, count: int) -> list[Image.Image]:
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_image())
            if len(out) == count:
                break
    return out


def first_frames(src: Path, dst: Path, count: int) -> Path:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s = out.add_stream("libx264", rate=s_in.average_rate or 25, options={"crf": "16"})
        s.width, s.height, s.pix_fmt = s_in.width, s_in.height, "yuv420p"
        for i, frame in enumerate(inp.decode(s_in)):
            if i == count:
                break
            frame.pts = None
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=REPO.parent / "shared" / "data" / "video" / "bikes.mp4")
    p.add_argument("--style", default="mosaic")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--step", type=int, default=20)
    p.add_argument("--width", type=int, default=320, help="width of each frame in the strip")
    p.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "video-strip.jpg")
    a = p.parse_args()

    count = (a.columns - 1) * a.step + 1
    with tempfile.TemporaryDirectory() as tmp:
        clip = first_frames(a.clip, Path(tmp) / "in.mp4", count)
        out = fastpercept.stylize(clip, a.style, output=Path(tmp) / "out.mp4")
        rows = [frames(clip, count)[:: a.step], frames(out, count)[:: a.step]]
    w = a.width
    h = round(rows[0][0].height * w / rows[0][0].width)
    strip = Image.new("RGB", (w * a.columns, h * 2), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            strip.paste(im.resize((w, h), Image.Resampling.LANCZOS), (c * w, r * h))
    strip.save(a.output, quality=88)
    print(a.output)


if __name__ == "__main__":
    main()
