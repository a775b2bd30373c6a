"""Issue 24: blobs (smooth near-white / near-black spots the photo does not have) of style models
on 12 held-out photos, counted by :func:`fastpercept.training.metrics.find_blobs`.

    python benchmarks/style_blobs.py [--models NAME|FILE,...] [--max-size 512] [--save DIR] [--json]

Without ``--models``: every shipped style model. The photos are none that a shipped model was
trained on: the three content photos of ../shared/data/content and nine benchmark photos with
sky, walls or other flat regions (BSD100 is the BSDS300 test split; the style training set holds
its train and val splits). Each photo is reduced to ``--max-size`` on its longest side (Lanczos,
never enlarged) and stylized at that size; the blob count compares the output with that photo.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import fastpercept
from fastpercept.training.metrics import find_blobs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Short name -> file. Chosen for sky (castle, church, lake, tree, plane, hawk, skyline), snow and
# plain walls (vase, helmet, arcade): where blobs show.
HELD_OUT = {
    "amber": DATA / "content" / "amber.jpg",
    "chicago": DATA / "content" / "chicago.jpg",
    "hoovertowernight": DATA / "content" / "hoovertowernight.jpg",
    **{f"bsd100_{n}": DATA / "bench" / "BSD100" / "HR" / f"img_{n}.png"
       for n in ("003", "014", "018", "020", "029", "046", "067", "079")},
    "set14_008": DATA / "bench" / "Set14" / "HR" / "img_008.png",
}


def shipped_styles() -> list[str]:
    """Names of the shipped style models (from ``fastpercept models --json``)."""
    listing = subprocess.run([sys.executable, "-m", "fastpercept", "models", "--json"], capture_output=True,
                             text=True, check=True).stdout
    return [m["name"] for m in json.loads(listing) if m["task"] == "style"]


def load_photo(path: Path, max_size: int) -> Image.Image:
    """The photo as RGB, its longest side at most ``max_size`` (Lanczos, never enlarged)."""
    photo = Image.open(path).convert("RGB")
    photo.thumbnail((max_size, max_size), Image.LANCZOS)
    return photo


def as_float(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]."""
    return np.asarray(image, dtype=np.float32) / 255.0


def count_model(model: str, photos: dict[str, Image.Image], save: Path | None) -> dict[str, int]:
    """Blobs per photo of one model (a shipped name or a model file)."""
    counts = {}
    for name, photo in photos.items():
        output = fastpercept.stylize(photo, style=model)
        counts[name] = len(find_blobs(as_float(output), as_float(photo)))
        if save is not None:
            folder = save / Path(model).stem
            folder.mkdir(parents=True, exist_ok=True)
            output.save(folder / f"{name}.png")
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated model names or files (default: every shipped style)")
    p.add_argument("--max-size", type=int, default=512, help="longest side of the photos (px; default 512)")
    p.add_argument("--save", type=Path, help="also write every output here, DIR/MODEL/PHOTO.png")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    models = a.models.split(",") if a.models else shipped_styles()
    photos = {name: load_photo(path, a.max_size) for name, path in HELD_OUT.items()}
    rows = [{"model": m, "blobs": count_model(m, photos, a.save)} for m in models]
    for row in rows:
        row["total"] = sum(row["blobs"].values())
    if a.json:
        print(json.dumps({"max_size": a.max_size, "photos": {k: str(v) for k, v in HELD_OUT.items()},
                          "rows": rows}, indent=2))
        return
    print(f"blobs per photo, {len(photos)} held-out photos at {a.max_size} px "
          "(fastpercept.training.metrics.find_blobs)")
    print("| model | " + " | ".join(photos) + " | total |")
    print("| --- |" + " ---: |" * (len(photos) + 1))
    for row in rows:
        print(f"| {row['model']} | " + " | ".join(str(n) for n in row["blobs"].values()) + f" | {row['total']} |")


if __name__ == "__main__":
    main()
