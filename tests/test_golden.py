"""Golden outputs of the shipped models: a change that alters what users get is caught here.

Each shipped model runs, in fp32, on a small fixed input made from the bundled example photos;
the result, quantized to 8 bits as a saved file would be, is compared with a reference PNG in
``tests/golden/``. fp32 convolutions differ in their last bits between CPUs (AMX, AVX512,
AVX2 kernels), so a pixel may land one 8-bit level away on another machine: the test allows
that, and nothing more. Regenerate the references (only for an intended change of outputs) with
``python tests/test_golden.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastpercept
from fastpercept.runtime.images import decode_image
from fastpercept.models import shipped_models
from fastpercept.runtime.backends import backend_available

GOLDEN = Path(__file__).parent / "golden"
ASSETS = Path(fastpercept.__file__).parent / "assets"
# (case name, model, tile): the tiled case covers the shared-statistics tiling path (3 x 2 tiles
# of 216 px over 320x240, starts on multiples of the network's stride).
CASES = [(m["name"], m["name"], None) for m in shipped_models()] + [("mosaic-tiled", "mosaic", 216)]


def _input(task: str, tile: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]."""
    if task in ("style", "anystyle"):
        rgb = decode_image(ASSETS / "example.jpg", max_size=320 if tile else 96).rgb  # 320x240 or 96x72
    else:
        rgb = decode_image(ASSETS / "example-lr.png").rgb[:, 20:44, 16:40]  # 24x24 crop of the face
    return np.ascontiguousarray(rgb.transpose(1, 2, 0))


def _output(model: str, tile: int | None, backend: str = "torch") -> np.ndarray:
    card = next(m["card"] for m in shipped_models() if m["name"] == model)
    x = _input(card["task"], tile)
    if card["task"] == "style":
        y = fastpercept.stylize(x, model, tile=tile, device="cpu", precision="fp32", backend=backend)
    elif card["task"] == "anystyle":  # the bundled portrait as the painting
        y = fastpercept.stylize(x, model, style_image=ASSETS / "example-lr.png", tile=tile, device="cpu",
                                precision="fp32", backend=backend)
    else:  # the model file's own output: no blend with a real-photo twin
        y = fastpercept.upscale(x, model, denoise=0, tile=tile, device="cpu", precision="fp32", backend=backend)
    return np.floor(np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)


# The PyTorch network (where installed) and the runtime of the small install run every case.
BACKENDS = [b for b in ("torch", "openvino", "onnxruntime") if backend_available(b)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case,model,tile", CASES, ids=[c[0] for c in CASES])
def test_shipped_model_output_matches_its_golden_reference(case, model, tile, backend):
    reference = np.asarray(Image.open(GOLDEN / f"{case}.png").convert("RGB"))
    out = _output(model, tile, backend)
    assert out.shape == reference.shape
    diff = np.abs(out.astype(int) - reference.astype(int))
    assert diff.max() <= 1, f"{case}: {int((diff > 1).sum())} pixels differ by more than one level"
    assert (diff > 0).mean() < 0.02, f"{case}: {(diff > 0).mean():.1%} of the values differ"


if __name__ == "__main__":
    for case, model, tile in CASES:
        Image.fromarray(_output(model, tile)).save(GOLDEN / f"{case}.png")
        print(GOLDEN / f"{case}.png", file=sys.stderr)
