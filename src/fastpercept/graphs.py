"""Exported graphs: the on-disk cache of a model's ONNX graphs and the runtimes that run them.

Arrays in, arrays out, and no PyTorch: what :mod:`fastpercept.backends` wraps into runners, and
what :mod:`fastpercept.lean` runs a one-off command with (importing PyTorch alone takes longer
than a whole OpenVINO pass over a photo).

A model's graphs are cached under ``$FASTPERCEPT_CACHE/onnx/<key>-<kind>.onnx``: ``key`` is a
hash of the weights and card (:func:`model_key`), ``kind`` one of :data:`GRAPH_KINDS`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# plain: image -> output; stats: image -> (mean_i, var_i) of every instance-norm layer;
# given_stats: image, mean_i, var_i -> output (the network normalizing with given statistics).
GRAPH_KINDS = ("plain", "stats", "given_stats")

Graph = Callable[[list[np.ndarray]], list[np.ndarray]]


def model_key(state: Mapping[str, np.ndarray], card: Mapping[str, Any]) -> str:
    """A short content hash of a model: its weights as float32 (``state``) and its card."""
    h = hashlib.sha256(repr(sorted(card.items())).encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.ascontiguousarray(state[k], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def graph_path(key: str, kind: str) -> Path:
    """Where the ``kind`` graph of the model ``key`` is cached (it may not exist yet)."""
    from .cache import cache_dir

    return cache_dir() / "onnx" / f"{key}-{kind}.onnx"


@functools.lru_cache(maxsize=1)
def openvino_bf16() -> bool:
    """Whether OpenVINO runs bf16 natively on this CPU (AMX or AVX512-BF16: its ``BF16`` capability)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def load_openvino(path: Path, bf16: bool) -> Graph:
    """An ONNX file compiled by OpenVINO for the CPU (latency first; bf16 inference precision
    when ``bf16``, else fp32)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        results = request.infer(arrays)
        return [np.array(results[out], copy=True) for out in compiled.outputs]

    return run


def load_onnxruntime(path: Path) -> Graph:
    """An ONNX file in an ONNX Runtime session on the CPU (fp32)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda arrays: [np.ascontiguousarray(a) for a in session.run(None, dict(zip(names, arrays)))]
