"""What a runner is: the interface every inference backend implements, and what it needs of a model.

A runner runs one model on NumPy arrays: ``runner(x)`` maps (N, 3, H, W) float32 in [0, 1] to
(N, 3, scale H, scale W) float32 (not clamped); ``runner(x, norm_stats)`` normalizes every
instance-norm layer with given statistics (seamless tiles, :mod:`fastpercept.runtime.tiling`);
``runner.norm_stats(x)`` returns the statistics of one pass (``None`` without instance norm).
Runners are safe to call from several threads at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..nets.blocks import TransformNet

# Per instance-norm layer, in forward order: (mean, var) of its input over H and W, each
# (N, C, 1, 1) float32 (the biased variance, as instance norm uses).
NormStats = list[tuple[np.ndarray, np.ndarray]]


class Runner(Protocol):
    """What tiling, strength and colour need from a backend (see the module's docstring)."""

    scale: int  # output/input size ratio
    stride: int  # total downsampling inside the network: tiles start on multiples of it
    receptive_radius: int  # input pixels of context each output pixel depends on, each side
    device: str  # "cpu" or "cuda"
    precision: str  # what it computes in: "fp32", "bf16" or "fp16"

    def __call__(self, x: np.ndarray, norm_stats: NormStats | None = None) -> np.ndarray: ...

    def norm_stats(self, x: np.ndarray) -> NormStats | None: ...


class RunnableModel(Protocol):
    """What a runner needs of a model (:class:`fastpercept.models.LoadedModel` is one)."""

    @property
    def config(self): ...  # the architecture config: scale, stride, receptive_radius, norm

    def graph(self, kind: str) -> bytes: ...  # the serialized ONNX graph of a kind

    def net_on(self, device: str) -> TransformNet: ...  # the PyTorch network (fastpercept[train])
