"""The PyTorch backends (``torch``, ``compile``; extra ``fastpercept[train]``): the PyTorch
network as a :class:`~fastpercept.runtime.backends.Runner`, on the CPU or CUDA.

Takes NumPy arrays (and returns arrays) like every runner; training and evaluation, which hold
tensors, may also pass tensors on the runner's device and get tensors back.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

import numpy as np
import torch

from .device import autocast
from ..nets.blocks import TransformNet

if TYPE_CHECKING:
    from .runner import RunnableModel


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
    """A :class:`~fastpercept.nets.blocks.TransformNet` in inference mode.

    Args:
        net: the network, on its device, in eval mode. With ``layout=None`` it is used as it
            is (fp32 weights, autocast to ``precision``); :meth:`for_model` passes
            :func:`torch_layout`'s choice, which may convert a copy of the weights.
        precision: ``fp32``, ``bf16`` or ``fp16``.
    """

    def __init__(self, net: TransformNet, precision: str = "fp32", layout: tuple[str, bool] | None = None) -> None:
        self.precision = precision
        self.scale = int(getattr(net, "scale", 1))
        self.stride = net.stride
        self.receptive_radius = net.receptive_radius
        self._device = next(net.parameters(), torch.empty(0)).device
        self.device = self._device.type
        self._has_instance_norm = net.instance_norm_layers > 0
        weights, self.channels_last = layout or ("autocast", False)
        self._dtype = torch.bfloat16 if weights == "bf16" and precision == "bf16" else None
        if self._dtype is not None or self.channels_last:
            net = copy.deepcopy(net)  # the caller's network (a cached model) keeps its fp32 weights
            if self._dtype is not None:
                net = net.to(self._dtype)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
        self.net = net

    @classmethod
    def for_model(cls, model: RunnableModel, device: str, precision: str) -> "TorchRunner":
        dev = torch.device(device)
        return cls(model.net_on(device), precision, torch_layout(dev, precision))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._device)
        if self._dtype is not None:
            x = x.to(self._dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _context(self):
        # With bf16 weights there is nothing left for autocast to convert.
        return autocast(self._device, "fp32" if self._dtype is not None else self.precision)

    def __call__(self, x, norm_stats=None):
        arrays = isinstance(x, np.ndarray)
        if arrays:
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            norm_stats = None if norm_stats is None else [(torch.from_numpy(m), torch.from_numpy(v))
                                                          for m, v in norm_stats]
        if norm_stats is not None:
            norm_stats = [(m.to(self._device), v.to(self._device)) for m, v in norm_stats]
        with torch.inference_mode(), self._context():
            y = self.net(self._input(x), norm_stats).float().contiguous()
        return y.cpu().numpy() if arrays else y

    def norm_stats(self, x):
        if not self._has_instance_norm:
            return None
        arrays = isinstance(x, np.ndarray)
        if arrays:
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.inference_mode(), self._context():
            stats = self.net.instance_norm_stats(self._input(x))
        if arrays:
            return [(m.float().cpu().numpy(), v.float().cpu().numpy()) for m, v in stats]
        return stats


class CompiledRunner(TorchRunner):
    """``torch.compile`` of :class:`TorchRunner`'s network, with inductor's caches on disk
    (``$FASTPERCEPT_CACHE/inductor``) so a second process does not pay the compile again."""

    def __init__(self, net: TransformNet, precision: str = "fp32", layout: tuple[str, bool] | None = None) -> None:
        super().__init__(net, precision, layout)
        from ..cache import cache_dir

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
        self.net = torch.compile(self.net)
