"""Building blocks shared by the transformation networks (paper, supplementary material)."""

from __future__ import annotations

from torch import nn


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


class ConvNormReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, norm: str | None) -> None:
        layers: list[nn.Module] = [ConvLayer(in_ch, out_ch, kernel, stride)]
        if norm:
            layers.append(norm_layer(norm, out_ch))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
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

    def forward(self, x):
        return x + self.body(x)


class Upsample2x(nn.Sequential):
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
