"""Issue 17c: one multi-style network (conditional instance norm) vs single-style networks at
equal total compute, judged per style on the held-out objective.

Each style's network and the multi-style network's baked copy of that style (``MODEL@style``,
:func:`fastpercept.models.load_model`, written to a temporary model file) are scored by
``eval style`` on the same photos (each with the style's own objective, from the cards).

    python benchmarks/multistyle.py --single DIR --multi multi.safetensors --content PHOTOS [--size 256]

``DIR`` holds ``single-<style>.safetensors`` for every style of the multi-style model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fastpercept.training.eval_style import eval_style
from fastpercept.models import load_model, read_card, save_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--single", type=Path, required=True)
    p.add_argument("--multi", type=Path, required=True)
    p.add_argument("--content", type=Path, required=True)
    p.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    card = read_card(a.multi)  # a multi-style model loads only with a style chosen: MODEL@style
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, image in zip(card["style_names"], card["style_images"]):
            baked = load_model(f"{a.multi}@{name}")
            baked_path = save_model(baked.net, Path(tmp) / f"multi-{name}.safetensors", baked.card)
            scores = {}
            for kind, path in (("single", a.single / f"single-{name}.safetensors"), ("multi", baked_path)):
                result = eval_style(path, a.content, size=a.size, style_image=a.styles_dir / image, progress=False)
                scores[kind] = result["mean"]["network"]["total"]
            rows.append({"style": name, **scores, "ratio": scores["multi"] / scores["single"]})
    doc = {"multi": str(a.multi), "multi_iterations": card.get("iterations"), "content": str(a.content),
           "size": a.size, "rows": rows}
    if a.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"held-out objective ({a.content}, {a.size} px); multi-style: {a.multi.name}, "
          f"{doc['multi_iterations']} iterations")
    print("| style | single-style network | multi-style network | multi / single |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['style']} | {r['single']:.3f} | {r['multi']:.3f} | {r['ratio']:.3f} |")


if __name__ == "__main__":
    main()
