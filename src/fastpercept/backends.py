"""Inference backends: one :class:`~fastpercept.inference.Runner` per runtime, behind one switch.

- ``torch``: the PyTorch network in the fastest form measured for the device (see
  :func:`torch_layout`), under ``inference_mode``.
- ``compile``: the same under ``torch.compile``, its compiled kernels cached on disk
  (``$FASTPERCEPT_CACHE/inductor``) so a second process does not pay the compile again. Worth it
  for many images of one size (video, batches); each new size compiles anew.
- ``onnxruntime`` and ``openvino``: the network exported to ONNX (cached on disk per model file
  and graph kind), run by those runtimes (extras: ``fastpercept[onnx]``, ``fastpercept[openvino]``).
  OpenVINO runs in bf16 where the CPU has native bf16 (AMX, AVX512-BF16).

Instance norm with given statistics (seamless tiles): every runtime gets three graphs, built
on first use: the plain network (``image -> output``), the statistics pass (``image -> mean_i,
var_i`` of every instance-norm layer) and the network normalizing with given statistics
(``image, mean_i, var_i -> output``). The statistics are explicit graph inputs, so no runtime
needs hooks; tiling, strength and color preservation run unchanged over any of them.

``auto`` (:func:`choose_backend`) takes what measured fastest end to end on the device, falling
back with one log line when an extra is not installed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from .device import autocast
from .errors import UserError
from .graphs import Graph, graph_path, load_onnxruntime, load_openvino, model_key, openvino_bf16
from .nets.blocks import NormStats, TransformNet

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "compile", "onnxruntime", "openvino")
# Which module each optional runtime needs, and the extra that installs it.
_EXTRAS = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}


def cpu_has_amx() -> bool:
    """True on CPUs with AMX tiles (Intel Xeon 4th generation and later), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def torch_layout(device: torch.device, precision: str) -> tuple[str, bool]:
    """``(weights, channels_last)`` for the ``torch`` backend: ``weights`` is ``"bf16"`` (the weights
    themselves converted) or ``"autocast"`` (fp32 weights, bf16/fp16 convolutions).

    Measured at 1024x1024 on the shipped style network: on a 2-core AMX Xeon bf16 weights in
    channels_last ran 1.76 s against 3.85 s under autocast; on a 2-core EPYC with AVX512-BF16 but
    no AMX the same took 7.2 s against 4.3 s under autocast with contiguous tensors (channels_last
    was slower there in every precision). On CUDA channels_last with autocast is the usual best.
    """
    if device.type == "cuda":
        return "autocast", True
    if precision == "bf16" and cpu_has_amx():
        return "bf16", True
    return "autocast", False


class TorchRunner:
    """The PyTorch backend: a :class:`~fastpercept.nets.blocks.TransformNet` in inference mode.

    Args:
        net: the network, on its device, in eval mode. With ``layout=None`` it is used as it
            is (fp32 weights, autocast to ``precision``); :func:`make_runner` passes
            :func:`torch_layout`'s choice, which may convert a copy of the weights.
        precision: ``fp32``, ``bf16`` or ``fp16``.
    """

    def __init__(self, net: TransformNet, precision: str = "fp32", layout: tuple[str, bool] | None = None) -> None:
        self.precision = precision
        self.scale = int(getattr(net, "scale", 1))
        self.stride = net.stride
        self.receptive_radius = net.receptive_radius
        self.device = next(net.parameters(), torch.empty(0)).device
        self._has_instance_norm = net.instance_norm_layers > 0
        weights, self.channels_last = layout or ("autocast", False)
        self._dtype = torch.bfloat16 if weights == "bf16" and precision == "bf16" else None
        if self._dtype is not None or self.channels_last:
            import copy

            net = copy.deepcopy(net)  # the caller's network (a cached model) keeps its fp32 weights
            if self._dtype is not None:
                net = net.to(self._dtype)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
        self.net = net

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if self._dtype is not None:
            x = x.to(self._dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _context(self):
        # With bf16 weights there is nothing left for autocast to convert.
        return autocast(self.device, "fp32" if self._dtype is not None else self.precision)

    def __call__(self, x: torch.Tensor, norm_stats: NormStats | None = None) -> torch.Tensor:
        with torch.inference_mode(), self._context():
            return self.net(self._input(x), norm_stats).float().contiguous()

    def norm_stats(self, x: torch.Tensor) -> NormStats | None:
        if not self._has_instance_norm:
            return None
        with torch.inference_mode(), self._context():
            return self.net.instance_norm_stats(self._input(x))


class CompiledRunner(TorchRunner):
    """``torch.compile`` of :class:`TorchRunner`'s network, with inductor's caches on disk."""

    def __init__(self, net: TransformNet, precision: str = "fp32", layout: tuple[str, bool] | None = None) -> None:
        super().__init__(net, precision, layout)
        from .cache import cache_dir

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
        self.net = torch.compile(self.net)


# ------------------------------------------------------------------------------ exported graphs


def _cached_onnx(net: TransformNet, key: str, kind: str) -> Path:
    """The ONNX graph of ``kind`` for this model, exported once into the cache."""
    path = graph_path(key, kind)
    if not path.is_file():
        from .export import export_onnx

        export_onnx(net.float().cpu().eval(), path, kind)
    return path


def net_key(net: TransformNet, card: dict[str, Any]) -> str:
    """:func:`~fastpercept.graphs.model_key` of a network's weights and card."""
    return model_key({k: v.detach().cpu().float().numpy() for k, v in net.state_dict().items()}, card)


class _GraphRunner:
    """What the ONNX Runtime and OpenVINO runners share: the three graphs, made on first use."""

    def __init__(self, net: TransformNet, key: str, precision: str = "fp32") -> None:
        self.scale = int(getattr(net, "scale", 1))
        self.stride = net.stride
        self.receptive_radius = net.receptive_radius
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self._net, self._key = net, key
        self._layers = net.instance_norm_layers
        self._graphs: dict[str, Graph] = {}

    def _load(self, path: Path) -> Graph:
        raise NotImplementedError

    def _graph(self, kind: str) -> Graph:
        if kind not in self._graphs:
            self._graphs[kind] = self._load(_cached_onnx(self._net, self._key, kind))
        return self._graphs[kind]

    def __call__(self, x: torch.Tensor, norm_stats: NormStats | None = None) -> torch.Tensor:
        image = x.detach().cpu().float().numpy()
        if norm_stats is None or not self._layers:
            return torch.from_numpy(self._graph("plain")([image])[0])
        stats = [t.detach().cpu().float().numpy() for pair in norm_stats for t in pair]
        return torch.from_numpy(self._graph("given_stats")([image, *stats])[0])

    def norm_stats(self, x: torch.Tensor) -> NormStats | None:
        if not self._layers:
            return None
        out = [torch.from_numpy(a) for a in self._graph("stats")([x.detach().cpu().float().numpy()])]
        return [(out[i], out[i + 1]) for i in range(0, len(out), 2)]


class OnnxRuntimeRunner(_GraphRunner):
    """ONNX Runtime on the CPU (fp32)."""

    def _load(self, path: Path) -> Graph:
        return load_onnxruntime(path)


class OpenVINORunner(_GraphRunner):
    """OpenVINO on the CPU: bf16 inference precision when asked for (``auto`` resolves to it where the
    CPU runs bf16 natively: AMX, AVX512-BF16), else fp32."""

    def __init__(self, net: TransformNet, key: str, precision: str = "fp32") -> None:
        super().__init__(net, key)
        self.precision = "bf16" if precision == "bf16" and openvino_bf16() else "fp32"

    def _load(self, path: Path) -> Graph:
        return load_openvino(path, self.precision == "bf16")


# ---------------------------------------------------------------------------------------- choice


def backend_available(name: str) -> bool:
    """Whether the runtime a backend needs is installed (``torch`` and ``compile`` always are)."""
    if name not in _EXTRAS:
        return True
    import importlib.util

    return importlib.util.find_spec(_EXTRAS[name][0]) is not None


def choose_backend(device: torch.device) -> str:
    """``auto``: OpenVINO on the CPU when installed (measured fastest there, see the README's
    inference table), else ``torch``; ``torch`` on CUDA."""
    if device.type == "cpu" and backend_available("openvino"):
        return "openvino"
    if device.type == "cpu":
        log.info("backend auto: openvino is not installed (pip install 'fastpercept[openvino]' runs faster "
                 "on the CPU); using torch")
    return "torch"


def make_runner(net: TransformNet, card: dict[str, Any], backend: str, device: torch.device, precision: str):
    """The :class:`~fastpercept.inference.Runner` of ``backend`` for ``net`` on ``device``.

    Args:
        net: the network (fp32, eval mode) on ``device``.
        card: its model card (with the weights, it names the model's cached exports).
        backend: one of :data:`BACKENDS`.
        precision: resolved (``fp32``, ``bf16``, ``fp16``). OpenVINO runs bf16 only when it is
            ``bf16``; ONNX Runtime always runs fp32.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        backend = choose_backend(device)
    if backend in _EXTRAS:
        if device.type != "cpu":
            raise UserError(f"--backend {backend} runs on the CPU; use --device cpu or --backend torch")
        if not backend_available(backend):
            raise UserError(f"--backend {backend}: not installed; pip install 'fastpercept[{_EXTRAS[backend][1]}]'")
        key = net_key(net, card)
        return (OnnxRuntimeRunner if backend == "onnxruntime" else OpenVINORunner)(net, key, precision)
    runner = CompiledRunner if backend == "compile" else TorchRunner
    return runner(net, precision, torch_layout(device, precision))
