"""Inference backends: one registry of runtimes, and the runners that run a model's graphs.

Every backend makes a :class:`~fastpercept.runtime.runner.Runner` of a model: NumPy arrays in
and out, safe to call from several threads at once.

The backends (:data:`BACKENDS`):

- ``openvino`` (the small install's default on the CPU): the model's graphs, built from its card
  and weights (:mod:`fastpercept.graphs`), compiled by OpenVINO; bf16 where the CPU runs it
  natively (AMX, AVX512-BF16).
- ``onnxruntime`` (extra ``fastpercept[onnx]``; the default where OpenVINO has no wheel): the
  same graphs in ONNX Runtime, fp32.
- ``torch`` and ``compile`` (extra ``fastpercept[train]``): the PyTorch network, plain or under
  ``torch.compile`` (:mod:`fastpercept.runtime.torch_runner`); the only ones on CUDA.

``auto`` (:func:`choose_backend`): on CUDA ``torch``; on the CPU the first installed of
``openvino``, ``onnxruntime``, ``torch`` (measured in that order of speed, docs/performance.md).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .hardware import DEVICES, cuda_available, resolve_device, torch_available
from .runner import NormStats, RunnableModel, Runner

__all__ = ["BACKENDS", "BACKEND_NAMES", "DEVICES", "PRECISIONS", "Backend", "GraphRunner", "backend_available",
           "choose_backend", "cuda_available", "make_runner", "resolve_device", "resolve_precision",
           "resolve_runtime", "torch_available"]


log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Backend:
    """One runtime.

    Attributes:
        name: what ``backend=`` / ``--backend`` takes.
        module: the import it needs (``None``: none beyond the small install).
        extra: the pip extra that installs it.
        devices: where it runs.
        runner: ``runner(model, device, precision)`` -> :class:`Runner`.
    """

    name: str
    module: str
    extra: str
    devices: tuple[str, ...]
    runner: Callable[[RunnableModel, str, str], Runner]


# ------------------------------------------------------------------------------ graph runtimes


Graph = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


@functools.lru_cache(maxsize=1)
def _openvino_core():
    import openvino as ov

    return ov.Core()


@functools.lru_cache(maxsize=1)
def openvino_bf16() -> bool:
    """Whether OpenVINO runs bf16 natively on this CPU (AMX or AVX512-BF16: its ``BF16`` capability)."""
    return "BF16" in _openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_openvino(onnx_model: bytes, bf16: bool) -> Graph:
    """A serialized ONNX model compiled by OpenVINO for the CPU (latency first; bf16 inference
    precision when ``bf16``, else fp32), callable from several threads at once.

    One compiled model serves every thread; each call takes an idle infer request (made when none
    is idle), so concurrent calls run side by side and never share an output buffer.
    """
    core = _openvino_core()
    compiled = core.compile_model(core.read_model(onnx_model), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY"})
    idle: queue.SimpleQueue = queue.SimpleQueue()

    def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        try:
            request = idle.get_nowait()
        except queue.Empty:
            request = compiled.create_infer_request()
        try:
            results = request.infer(list(arrays))
            # Copies: the request's output buffers are reused by its next inference.
            return [np.array(results[out], copy=True) for out in compiled.outputs]
        finally:
            idle.put(request)

    return run


def compile_onnxruntime(onnx_model: bytes) -> Graph:
    """A serialized ONNX model in an ONNX Runtime session on the CPU (fp32; ``run`` is thread-safe)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda arrays: [np.ascontiguousarray(a) for a in session.run(None, dict(zip(names, arrays)))]


class GraphRunner:
    """A model's three graphs (:data:`fastpercept.graphs.GRAPH_KINDS`) in one runtime, each built
    and compiled on first use.

    Args:
        model: the loaded model (card and weights).
        compile: serialized ONNX -> :data:`Graph`.
        precision: what ``compile`` computes in.
    """

    device = "cpu"

    def __init__(self, model: RunnableModel, compile: Callable[[bytes], Graph], precision: str = "fp32") -> None:
        config = model.config
        self.scale, self.stride, self.receptive_radius = config.scale, config.stride, config.receptive_radius
        self.precision = precision
        self._model, self._compile = model, compile
        self._has_instance_norm = config.norm == "instance"
        self._graphs: dict[str, Graph] = {}
        self._lock = threading.Lock()

    def _graph(self, kind: str) -> Graph:
        with self._lock:  # two threads asking at once compile once
            if kind not in self._graphs:
                self._graphs[kind] = self._compile(self._model.graph(kind))
            return self._graphs[kind]

    def __call__(self, x: np.ndarray, norm_stats: NormStats | None = None) -> np.ndarray:
        image = np.ascontiguousarray(x, dtype=np.float32)
        if norm_stats is None or not self._has_instance_norm:
            return self._graph("plain")([image])[0]
        stats = [np.ascontiguousarray(t, dtype=np.float32) for pair in norm_stats for t in pair]
        return self._graph("given_stats")([image, *stats])[0]

    def norm_stats(self, x: np.ndarray) -> NormStats | None:
        if not self._has_instance_norm:
            return None
        out = self._graph("stats")([np.ascontiguousarray(x, dtype=np.float32)])
        return [(out[i], out[i + 1]) for i in range(0, len(out), 2)]


def _openvino_runner(model: RunnableModel, device: str, precision: str) -> Runner:
    bf16 = precision == "bf16" and openvino_bf16()
    return GraphRunner(model, lambda onnx_model: compile_openvino(onnx_model, bf16), "bf16" if bf16 else "fp32")


def _onnxruntime_runner(model: RunnableModel, device: str, precision: str) -> Runner:
    return GraphRunner(model, compile_onnxruntime, "fp32")


def _torch_runner(model: RunnableModel, device: str, precision: str) -> Runner:
    from .torch_runner import TorchRunner

    return TorchRunner.for_model(model, device, precision)


def _compiled_runner(model: RunnableModel, device: str, precision: str) -> Runner:
    from .torch_runner import CompiledRunner

    return CompiledRunner.for_model(model, device, precision)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("openvino", "openvino", "openvino", ("cpu",), _openvino_runner),
    Backend("onnxruntime", "onnxruntime", "onnx", ("cpu",), _onnxruntime_runner),
    Backend("torch", "torch", "train", ("cpu", "cuda"), _torch_runner),
    Backend("compile", "torch", "train", ("cpu", "cuda"), _compiled_runner),
)}
BACKEND_NAMES = ("auto", *BACKENDS)
# auto on the CPU: the first installed, fastest first (docs/performance.md).
_CPU_PREFERENCE = ("openvino", "onnxruntime", "torch")


def backend_available(name: str) -> bool:
    """Whether the runtime a backend needs is installed."""
    return importlib.util.find_spec(BACKENDS[name].module) is not None


def choose_backend(device: str) -> str:
    """``auto``: ``torch`` on CUDA; on the CPU the first installed of ``openvino``,
    ``onnxruntime``, ``torch``."""
    if device == "cuda":
        return "torch"
    for name in _CPU_PREFERENCE:
        if backend_available(name):
            return name
    raise UserError("no inference runtime is installed: pip install fastpercept (OpenVINO) or "
                    "'fastpercept[onnx]'")


def resolve_precision(name: str, device: str, backend: str) -> str:
    """``auto`` -> bf16 where the device and backend run it fast, else fp32 (fp16/bf16 on CUDA)."""
    if name not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if device == "cuda" or backend in ("torch", "compile"):
        from .device import resolve_precision as torch_precision

        import torch

        return torch_precision(name, torch.device(device))
    if name == "fp16":
        raise UserError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if name == "auto":
        return "bf16" if backend == "openvino" and openvino_bf16() else "fp32"
    return name


def resolve_runtime(backend: str = "auto", device: str = "auto", precision: str = "auto") -> tuple[str, str, str]:
    """``(backend, device, precision)`` with every ``auto`` decided: what a runner is made for.

    Raises :class:`UserError` for an unknown backend, device or precision, a backend that is not
    installed (naming the extra) or one that does not run on the device.
    """
    if backend not in BACKEND_NAMES:
        raise UserError(f"backend must be one of {', '.join(BACKEND_NAMES)}, not {backend!r}")
    dev = resolve_device(device)
    if backend == "auto":
        backend = choose_backend(dev)
    spec = BACKENDS[backend]
    if not backend_available(backend):
        raise UserError(f"backend {backend}: not installed; pip install 'fastpercept[{spec.extra}]'")
    if dev not in spec.devices:
        raise UserError(f"backend {backend} runs on the {' or '.join(spec.devices)}, not {dev}; "
                        "use the torch backend there")
    return backend, dev, resolve_precision(precision, dev, backend)


def make_runner(model: RunnableModel, backend: str = "auto", device: str = "auto", precision: str = "auto") -> Runner:
    """The :class:`Runner` of ``model`` on ``backend`` (a name of :data:`BACKEND_NAMES`; see
    :func:`resolve_runtime` for what is refused)."""
    backend, device, precision = resolve_runtime(backend, device, precision)
    return BACKENDS[backend].runner(model, device, precision)
