"""End-to-end video speed: `fastpercept stylize clip.mp4 -o out.mp4` timed from outside.

Makes the clips (the bikes clip as it is, and its first ``--frames`` frames resized to 640x480 and
1280x720), then runs the whole command (decode + network + encode, process start included) for
each model and mode and prints frames per second.

    python benchmarks/video_fps.py [--models mosaic,half.safetensors] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clips import cut_clip

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=SHARED / "video" / "bikes.mp4")
    p.add_argument("--models", default="mosaic", help="comma-separated style names or model files")
    p.add_argument("--frames", type=int, default=60, help="frames of the resized clips")
    p.add_argument("--modes", default="stable,no-stable")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="video-fps-"))
    clips = []
    for label, size, frames in ((f"{a.clip.name} (as is)", None, None), ("640x480", (640, 480), a.frames),
                                ("1280x720", (1280, 720), a.frames)):
        path = work / f"{label.split()[0]}.mp4"
        clips.append((label, path, cut_clip(a.clip, path, frames, size)))
    rows = []
    for model in a.models.split(","):
        for mode in a.modes.split(","):
            for label, path, frames in clips:
                cmd = [sys.executable, "-m", "fastpercept", "stylize", str(path), "-o", str(work / "out.mp4"),
                       "--overwrite", "--style", model, f"--{mode}"]
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.perf_counter() - start
                if proc.returncode:
                    sys.exit(proc.stderr)
                rows.append({"model": Path(model).stem, "mode": mode, "clip": label, "frames": frames,
                             "wall_s": wall, "fps": frames / wall})
                print(f"{model} {mode} {label}: {frames / wall:.2f} fps", file=sys.stderr)
    doc = {"cpu": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    print("| model | mode | clip | frames | wall | frames/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['mode']} | {r['clip']} | {r['frames']} | {r['wall_s']:.1f} s | {r['fps']:.2f} |")


if __name__ == "__main__":
    main()
