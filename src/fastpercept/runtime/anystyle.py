"""Any painting as the style: universal style transfer (Li et al. 2017) on the graph runtimes.

For each level ``L`` of the cascade (deepest first), the photo so far is encoded by VGG-16 to
``L``, its features ``f`` (C, n) get the painting's mean and covariance by the whitening and
colouring transform, and ``L``'s decoder turns them back into an image:

    f_cs = C_s W_c (f - m_c) + m_s,    W_c = E_c D_c^-1/2 E_c^T,   C_s = E_s D_s^1/2 E_s^T

with ``(m, E D E^T)`` the mean and eigendecomposed covariance (+ identity, as Li et al., which
keeps flat regions from blowing up) of the photo's (c) and the painting's (s) features. AdaIN
(``transform="adain"``, Huang & Belongie 2017; at the deepest level, the levels below WCT) is
the same map with diagonal matrices: each channel takes the painting's mean and standard
deviation (variance + 1e-5).
``strength`` a blends in feature space at every level: ``a f_cs + (1 - a) f``. The networks run
as graphs (:mod:`fastpercept.graphs.wct`); the transform is NumPy. The painting's statistics
are computed once per painting (:meth:`AnyStyleParts.painting`) and shared by every photo,
tile and frame.

:class:`PaintingRunner` is a :class:`~fastpercept.runtime.runner.Runner`: tiling, folders and
video take it as they take a style network. Its "normalization statistics" are the photo's
per-level mean and whitening matrix, so tiles of one photo share them and meet without seams.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..architectures import WCT_LEVELS, WCTConfig
from .runner import NormStats

PAINTING_CACHE = 8  # paintings whose statistics a model keeps
# Feature vectors the moments are taken from at most (every k-th one beyond): 2^18 estimate a
# 256 x 256 covariance to well under 1%; a 1024 x 1024 photo has 2^20 at relu1_1.
MOMENT_SAMPLES = 2 ** 18


@dataclass(frozen=True)
class Moments:
    """One image's features at one level: ``mean`` (C,) and a (C, C) ``matrix`` (float64) —
    the whitening matrix of a photo, the colouring matrix of a painting."""

    mean: np.ndarray
    matrix: np.ndarray


ADAIN_EPS = 1e-5  # added to AdaIN's variances (Huang & Belongie's epsilon)


def feature_moments(f: np.ndarray, transform: str = "wct") -> tuple[np.ndarray, np.ndarray]:
    """``(mean (C,), covariance (C, C))`` of features ``f`` (C, H, W), float64. For ``"wct"``
    the covariance has the identity added (Li et al.): every eigenvalue is at least 1; for
    ``"adain"`` it is diagonal, the variances + :data:`ADAIN_EPS`. Beyond
    :data:`MOMENT_SAMPLES` positions, from a regular subsample of them."""
    x = f.reshape(f.shape[0], -1)
    if x.shape[1] > MOMENT_SAMPLES:  # a regular subsample estimates C x C moments as well, for less
        x = x[:, ::x.shape[1] // MOMENT_SAMPLES]
    mean = x.mean(axis=1, dtype=np.float64)
    x = x - mean.astype(x.dtype)[:, None]
    if transform == "adain":
        return mean, np.diag(np.mean(np.square(x, dtype=np.float64), axis=1) + ADAIN_EPS)
    # The product in float32 (BLAS; 4x the float64 speed here), summed over H W values of
    # similar size: its relative error stays near 1e-6, far below what the transform needs.
    cov = (x @ x.T).astype(np.float64) / max(x.shape[1] - 1, 1) + np.eye(x.shape[0])
    return mean, cov


def _eigen_power(cov: np.ndarray, power: float, transform: str) -> np.ndarray:
    """``E diag(lambda^power) E^T`` of a symmetric positive definite matrix (diagonal for AdaIN:
    no decomposition needed)."""
    if transform == "adain":
        return np.diag(np.clip(np.diagonal(cov), 1e-8, None) ** power)
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.clip(values, 1e-8, None) ** power) @ vectors.T


def whitening(f: np.ndarray, transform: str = "wct") -> Moments:
    """The photo's side: mean and ``W = E D^-1/2 E^T`` of features ``f`` (C, H, W)."""
    mean, cov = feature_moments(f, transform)
    return Moments(mean, _eigen_power(cov, -0.5, transform))


def coloring(f: np.ndarray, transform: str = "wct") -> Moments:
    """The painting's side: mean and ``C = E D^1/2 E^T`` of features ``f`` (C, H, W)."""
    mean, cov = feature_moments(f, transform)
    return Moments(mean, _eigen_power(cov, 0.5, transform))


def color_map(photo: Moments, painting: Moments, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(A (C, C), b (C,))``, float32: the affine map ``f -> A (f - m_c) + b`` that gives
    features with the photo's moments the painting's, blended with the identity by ``strength``."""
    c = photo.mean.shape[0]
    a = strength * (painting.matrix @ photo.matrix) + (1 - strength) * np.eye(c)
    b = strength * painting.mean + (1 - strength) * photo.mean
    return a.astype(np.float32), b.astype(np.float32)


def whiten_color(f: np.ndarray, photo: Moments, painting: Moments, strength: float = 1.0) -> np.ndarray:
    """The features ``f`` (C, H, W) with the painting's statistics, blended with ``f`` by
    ``strength`` in [0, 1]; float32 (C, H, W): :func:`color_map` applied."""
    a, b = color_map(photo, painting, strength)
    x = f.reshape(f.shape[0], -1)
    y = a @ (x - photo.mean.astype(np.float32)[:, None]) + b[:, None]
    return y.reshape(f.shape)


@dataclass(frozen=True)
class _PartConfig:
    """What a runner needs to know of one encoder or decoder: no instance norm, its stride."""

    stride: int
    receptive_radius: int
    scale: int = 1
    norm: str = "none"


class _Part:
    """One encoder level or one decoder of a model, as a :class:`~fastpercept.runtime.runner.RunnableModel`."""

    def __init__(self, model: Any, part: str, level: str) -> None:
        self.model, self.part, self.level = model, part, level
        pools = WCT_LEVELS[level][1]
        self.config = _PartConfig(stride=2 ** pools, receptive_radius=5 * 2 ** pools)

    def graph(self, kind: str = "plain") -> bytes:
        from ..graphs.wct import wct_decoder_graph, wct_encoder_graph

        build = wct_encoder_graph if self.part == "encoder" else wct_decoder_graph
        return build(self.model.config, self.model.weights, self.level)

    def net_on(self, device: str):
        from torch import nn

        net, part, level, config = self.model.net_on(device), self.part, self.level, self.config

        class Part(nn.Module):
            """The attributes :class:`~fastpercept.runtime.torch_runner.TorchRunner` reads of a network."""

            scale, stride, receptive_radius, instance_norm_layers = 1, config.stride, config.receptive_radius, 0

            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, x, norm_stats=None):
                return net.encode(x, level) if part == "encoder" else net.decode(x, level)

        return Part()


class AnyStyleParts:
    """An any-style model's encoder levels and decoders on one backend, device and precision,
    and the statistics of the paintings it has met (at most :data:`PAINTING_CACHE`).

    Args:
        model: a :class:`~fastpercept.models.LoadedModel` of task ``anystyle``.
        backend, device, precision: resolved (:func:`fastpercept.runtime.backends.resolve_runtime`).
    """

    def __init__(self, model: Any, backend: str, device: str, precision: str) -> None:
        from .backends import BACKENDS

        self.config: WCTConfig = model.config
        make = BACKENDS[backend].runner
        self.encoders = {lv: make(_Part(model, "encoder", lv), device, precision) for lv in self.config.levels}
        self.decoders = {lv: make(_Part(model, "decoder", lv), device, precision) for lv in self.config.levels}
        first = self.encoders[self.config.deepest]
        self.device, self.precision = first.device, first.precision
        self._paintings: OrderedDict[str, list[Moments]] = OrderedDict()
        self._lock = threading.Lock()

    def painting(self, image: np.ndarray) -> list[Moments]:
        """The colouring statistics of a painting (3, H, W) float32 in [0, 1] at every level,
        deepest first; computed once per painting (by its pixels)."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        key = hashlib.sha1(image.tobytes()).hexdigest() + str(image.shape)
        with self._lock:
            if key in self._paintings:
                self._paintings.move_to_end(key)
                return self._paintings[key]
        moments = [coloring(self.encoders[lv](image[None])[0], self.config.level_transform(lv))
                   for lv in self.config.levels]
        with self._lock:
            self._paintings[key] = moments
            while len(self._paintings) > PAINTING_CACHE:
                self._paintings.popitem(last=False)
        return moments

    def forget_paintings(self) -> None:
        """Drop every painting's statistics (the next call computes them again)."""
        with self._lock:
            self._paintings.clear()

    def with_painting(self, painting: np.ndarray, strength: float = 1.0) -> PaintingRunner:
        """A :class:`PaintingRunner` that paints photos in ``painting``'s style at ``strength``."""
        return PaintingRunner(self, self.painting(painting), strength)


class PaintingRunner:
    """A :class:`~fastpercept.runtime.runner.Runner` for one painting: (N, 3, H, W) float32 in
    [0, 1] -> (N, 3, H, W), unclamped (see the module docstring)."""

    scale = 1

    def __init__(self, parts: AnyStyleParts, painting: list[Moments], strength: float) -> None:
        self.parts, self.painting, self.strength = parts, painting, float(strength)
        self.stride = parts.config.stride
        self.receptive_radius = parts.config.receptive_radius
        self.device, self.precision = parts.device, parts.precision

    def _cascade(self, x: np.ndarray, given: list[Moments] | None) -> tuple[np.ndarray, list[Moments]]:
        """One image (1, 3, H, W), H and W multiples of the stride: the output and the photo's
        moments at each level (``given`` ones, when given, are used instead of its own)."""
        seen = []
        for i, level in enumerate(self.parts.config.levels):
            f = self.parts.encoders[level](x)[0]
            photo = given[i] if given is not None else whitening(f, self.parts.config.level_transform(level))
            seen.append(photo)
            x = self.parts.decoders[level](whiten_color(f, photo, self.painting[i], self.strength)[None])
        return x, seen

    def _padded(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        s = self.stride
        return np.pad(x, ((0, 0), (0, 0), (0, -h % s), (0, -w % s)), mode="reflect")

    def __call__(self, x: np.ndarray, norm_stats: NormStats | None = None) -> np.ndarray:
        h, w = x.shape[-2:]
        outs = []
        for n in range(x.shape[0]):
            given = None if norm_stats is None else [Moments(m[n], w_[n]) for m, w_ in norm_stats]
            outs.append(self._cascade(self._padded(x[n:n + 1]), given)[0][..., :h, :w])
        return np.concatenate(outs)

    def norm_stats(self, x: np.ndarray) -> NormStats:
        """The photo's moments at each level, per image: ``[(mean (N, C), whitening (N, C, C))]``."""
        per_image = [self._cascade(self._padded(x[n:n + 1]), None)[1] for n in range(x.shape[0])]
        return [(np.stack([m[i].mean for m in per_image]), np.stack([m[i].matrix for m in per_image]))
                for i in range(len(self.parts.config.levels))]
