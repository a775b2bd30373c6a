"""Building blocks shared by the transformation networks (paper, supplementary material).

Every block's ``forward`` takes an optional :class:`NormStatsFlow`: the instance-norm statistics
of one forward pass, either recorded as the pass computes them or given from outside. Given
statistics make the network a purely local operator (what seamless tiling needs), and being an
explicit argument rather than a hook, they survive export to runtimes that cannot be hooked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Per instance-norm layer, in forward order: (mean, var) of its input over H and W, each
# (N, C, 1, 1) float32 (the biased variance, as instance norm uses).
NormStats = list[tuple[torch.Tensor, torch.Tensor]]


class NormStatsFlow:
    """What the normalization layers of one forward pass share: instance-norm statistics and,
    for a multi-style network, the style.

    ``given=None``: each instance-norm layer normalizes its own input, as usual, and (with
    ``record``) its statistics are appended to :attr:`recorded`. ``given``: the layers normalize
    with these statistics instead (one (mean, var) per layer, in forward order). ``style``:
    weights over the styles of :class:`ConditionalInstanceNorm2d` layers, shape (N, S) (a row
    per image: one-hot picks a style, other rows blend styles).
    """

    def __init__(self, given: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
                 style: torch.Tensor | None = None, record: bool = True) -> None:
        self.given = list(given) if given is not None else None
        self.style = style
        self.record = record
        self.recorded: NormStats = []
        self._next = 0

    def normalize(self, norm: nn.InstanceNorm2d, x: torch.Tensor) -> torch.Tensor:
        conditional = isinstance(norm, ConditionalInstanceNorm2d)
        if self.given is None:
            if self.record:
                xf = x.float()
                self.recorded.append((xf.mean(dim=(2, 3), keepdim=True),
                                      xf.var(dim=(2, 3), keepdim=True, unbiased=False)))
            if not conditional:
                return norm(x)
            y = F.instance_norm(x, eps=norm.eps)
        else:
            if self._next >= len(self.given):
                raise ValueError(f"norm_stats holds {len(self.given)} layers' statistics; the network has more")
            mean, var = (s.to(x.dtype) for s in self.given[self._next])
            self._next += 1
            y = (x - mean) * torch.rsqrt(var + norm.eps)
            if norm.affine:
                return y * norm.weight.view(1, -1, 1, 1).to(x.dtype) + norm.bias.view(1, -1, 1, 1).to(x.dtype)
        if conditional:
            if self.style is None:
                raise ValueError("a multi-style network needs style weights for its pass")
            scale, shift = norm.affine_for(self.style)
            return y * scale.to(y.dtype) + shift.to(y.dtype)
        return y


class ConditionalInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm with a (scale, shift) per style: conditional instance normalization
    (Dumoulin, Shlens & Kudlur, ICLR 2017). One network then holds several styles; the style of
    a pass comes with its :class:`NormStatsFlow` as weights over the styles (a blend of styles
    is a blend of their scales and shifts).
    """

    def __init__(self, channels: int, styles: int) -> None:
        super().__init__(channels, affine=False)
        self.scale = nn.Parameter(torch.ones(styles, channels))
        self.shift = nn.Parameter(torch.zeros(styles, channels))

    def affine_for(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``style`` (N, S) weights -> the (N, C, 1, 1) scale and shift of each image."""
        style = style.to(self.scale.dtype)
        return (style @ self.scale)[..., None, None], (style @ self.shift)[..., None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("ConditionalInstanceNorm2d runs inside a network pass that gives the style "
                           "(NormStatsFlow(style=...))")


def run_layers(layers: Iterable[nn.Module], x: torch.Tensor, flow: NormStatsFlow | None) -> torch.Tensor:
    """``x`` through ``layers`` in order, with the statistics ``flow`` (if any) reaching every norm."""
    for layer in layers:
        if flow is not None and isinstance(layer, nn.InstanceNorm2d):
            x = flow.normalize(layer, x)
        elif isinstance(layer, _StatsAware):
            x = layer(x, flow)
        else:
            x = layer(x)
    return x


class _StatsAware:
    """Marks blocks whose ``forward(x, flow)`` passes instance-norm statistics on."""


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``instance`` (Ulyanov et al.; affine) or ``batch`` (the paper) normalization."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'instance' or 'batch', not {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection-padded convolution (no zero borders, so no dark frame in outputs)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride))


class ConvNormReLU(_StatsAware, nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, norm: str | None) -> None:
        layers: list[nn.Module] = [ConvLayer(in_ch, out_ch, kernel, stride)]
        if norm:
            layers.append(norm_layer(norm, out_ch))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor, flow: NormStatsFlow | None = None) -> torch.Tensor:
        return run_layers(self, x, flow)


class ResidualBlock(_StatsAware, nn.Module):
    """Two 3x3 convolutions with a skip connection (Gross & Wilber), padded so sizes stay."""

    def __init__(self, channels: int, norm: str | None) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvLayer(channels, channels, 3)]
        if norm:
            layers.append(norm_layer(norm, channels))
        layers += [nn.ReLU(inplace=True), ConvLayer(channels, channels, 3)]
        if norm:
            layers.append(norm_layer(norm, channels))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, flow: NormStatsFlow | None = None) -> torch.Tensor:
        return x + run_layers(self.body, x, flow)


class Upsample2x(_StatsAware, nn.Sequential):
    """A x2 upsampling stage followed by norm and ReLU.

    ``nearest``: nearest-neighbour x2 then a 3x3 convolution — no checkerboard artifacts
    (Odena et al., 2016). ``deconv``: a fractionally strided 3x3 convolution, as in the paper.
    """

    def __init__(self, in_ch: int, out_ch: int, mode: str, norm: str | None) -> None:
        if mode == "nearest":
            up: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(in_ch, out_ch, 3)]
        elif mode == "deconv":
            up = [nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)]
        else:
            raise ValueError(f"upsample must be 'nearest' or 'deconv', not {mode!r}")
        if norm:
            up.append(norm_layer(norm, out_ch))
        up.append(nn.ReLU(inplace=True))
        super().__init__(*up)

    def forward(self, x: torch.Tensor, flow: NormStatsFlow | None = None) -> torch.Tensor:
        return run_layers(self, x, flow)


class TransformNet(nn.Module):
    """What every image transformation network offers its runners (tiling, export, backends).

    Subclasses implement :meth:`transform`; ``forward(x)`` is the plain network, and
    ``forward(x, norm_stats)`` the same network normalizing with given instance-norm statistics.
    ``scale`` is the output/input size ratio (1 for style transfer); ``stride`` and
    ``receptive_radius`` tell tiling where tiles may start and how much context they need.
    """

    scale: int = 1
    stride: int = 1  # total downsampling inside the network
    receptive_radius: int = 0  # input pixels each output pixel depends on, on each side

    def transform(self, x: torch.Tensor, flow: NormStatsFlow | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, norm_stats: NormStats | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, scale H, scale W); ``norm_stats`` as :class:`NormStatsFlow`."""
        return self.transform(x, None if norm_stats is None else NormStatsFlow(norm_stats))

    def instance_norm_stats(self, x: torch.Tensor) -> NormStats:
        """The statistics every instance-norm layer sees when the network runs on ``x`` (one pass)."""
        flow = NormStatsFlow()
        self.transform(x, flow)
        return flow.recorded

    @property
    def instance_norm_layers(self) -> int:
        """How many (mean, var) pairs ``norm_stats`` holds: one per instance-norm layer."""
        return sum(isinstance(m, nn.InstanceNorm2d) for m in self.modules())
