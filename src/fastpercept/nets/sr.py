"""The super-resolution network of Johnson et al. (2016), supplementary material.

c9s1-64, R64 x4, log2(scale) x2 upsampling stages of 64 channels, c9s1-3; batch norm as in
the paper; fractionally strided convolutions (the paper) or nearest + conv upsampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .blocks import ConvLayer, ConvNormReLU, ResidualBlock, Upsample2x


@dataclass(frozen=True)
class SRNetConfig:
    """Architecture of an :class:`SRNet`: ``scale`` 4 or 8 (any power of two works)."""

    scale: int = 4
    upsample: str = "deconv"
    norm: str = "batch"
    channels: int = 64
    residual_blocks: int = 4

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, not {self.scale}")

    def to_dict(self) -> dict:
        return asdict(self)


class SRNet(nn.Module):
    """Image super-resolution network.

    Input: RGB (N, 3, H, W) in [0, 1]. Output: RGB (N, 3, scale H, scale W) in [0, 1]
    (a scaled tanh, as in the paper).
    """

    def __init__(self, config: SRNetConfig = SRNetConfig()) -> None:
        super().__init__()
        self.config = config
        c, norm = config.channels, config.norm
        self.head = ConvNormReLU(3, c, 9, 1, norm)
        self.residuals = nn.Sequential(*[ResidualBlock(c, norm) for _ in range(config.residual_blocks)])
        stages = int(math.log2(config.scale))
        self.upsample = nn.Sequential(*[Upsample2x(c, c, config.upsample, norm) for _ in range(stages)])
        self.tail = ConvLayer(c, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tail(self.upsample(self.residuals(self.head(x))))
        return (torch.tanh(y) + 1) / 2
