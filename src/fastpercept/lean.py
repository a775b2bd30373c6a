"""The lean start: a one-off ``stylize`` or ``upscale`` of photos without importing PyTorch.

Importing PyTorch alone takes about 1.3 s on a 2-core CPU, longer than OpenVINO's whole pass
over a 1024 px photo. So when OpenVINO is the backend (``auto`` on a CPU where the extra is
installed) and the model's ONNX graph is already in the cache (the first run of a model on a
machine exports it), the command decodes, runs and writes each photo with Pillow, NumPy and
OpenVINO alone. The result is the full path's, byte for byte: the same decoding, the same
graph compiled the same way, the same 8-bit rounding and encoder.

Everything else takes the full path, which imports PyTorch when it is first needed: a video,
``--tile`` or an image too big for one pass, strength below 1, color options, transparency
with upscaling, images below the networks' smallest side, a model not exported yet, a CUDA
machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .graphs import Graph, graph_path, load_openvino, model_key, openvino_bf16
from .images import decode_image, to_uint8, write_image
from .listing import check_image_output, refuse_overwriting_inputs
from .memory import MIN_SIDE, available_memory, pass_budget
from .models import read_card, resolve_model_path, split_style_choice


@dataclass
class LeanRunner:
    """One model's cached graph, compiled by OpenVINO, over image files."""

    graph: Graph
    scale: int
    precision: str  # "bf16" or "fp32", as the full path's OpenVINO runner resolves it

    def transform(self, src: Path, dst: Path, max_size: int | None) -> bool:
        """Write the model's output for the image ``src`` to ``dst``; False (nothing written)
        when the image needs what only the full path does (see the module's docstring)."""
        check_image_output(dst)
        refuse_overwriting_inputs(dst, [src])
        image = decode_image(src, max_size=max_size, output_scale=self.scale)
        h, w = image.rgb.shape[-2:]
        if image.alpha is not None or min(h, w) < MIN_SIDE:
            return False
        per_pixel, budget = pass_budget((1, 3, h, w), self.scale, self.precision, available_memory("cpu"))
        if h * w * per_pixel > budget:  # the full path tiles it
            return False
        y = self.graph([image.rgb[None]])[0][0]  # to_uint8 clamps to [0, 1], as the full path's clamp
        write_image(Image.fromarray(np.ascontiguousarray(to_uint8(y).transpose(1, 2, 0))), dst)
        return True


def lean_runner(model: str, task: str, *, backend: str, device: str, precision: str) -> LeanRunner | None:
    """The lean runner of ``model`` (a ``task`` model) for these flags, or None where the full
    path must run: another backend or device, no OpenVINO, or no cached graph of this model."""
    if backend not in ("auto", "openvino") or device not in ("auto", "cpu"):
        return None
    if precision not in ("auto", "bf16", "fp32"):
        return None
    if device == "auto" and Path("/proc/driver/nvidia/version").exists():
        return None  # a CUDA machine: `auto` means the GPU
    if importlib.util.find_spec("openvino") is None:
        return None
    from safetensors.numpy import load_file

    if split_style_choice(model)[1] is not None:
        return None  # a style of a multi-style model: baked by the full path
    path = resolve_model_path(model)
    card = read_card(path)
    if card.get("task") != task:
        return None  # the full path says what is wrong
    graph = graph_path(model_key(load_file(str(path)), card), "plain")
    if not graph.is_file():
        return None
    bf16 = precision != "fp32" and openvino_bf16()
    return LeanRunner(load_openvino(graph, bf16), int(card.get("scale", 1)), "bf16" if bf16 else "fp32")
