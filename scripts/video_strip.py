#!/usr/bin/env python3
"""A frame strip of a stylized clip for the README: input frames above, the stylized clip's
(stable mode, the default) below, every ``--step`` frames.

    .venv/bin/python scripts/video_strip.py [--clip ../shared/data/video/bikes.mp4] [-o docs/video-strip.jpg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

import fastpercept

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from clips import cut_clip, read_frames  # noqa: E402


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
        clip = Path(tmp) / "in.mp4"
        cut_clip(a.clip, clip, count, crf=16)
        out = fastpercept.stylize(clip, a.style, output=Path(tmp) / "out.mp4")
        rows = [[Image.fromarray(f) for f in read_frames(path)[:: a.step]] for path in (clip, out)]
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
