"""The super-resolution network of Johnson et al. (2016), supplementary material.

c9s1-64, R64 x4, log2(scale) x2 upsampling stages of 64 channels, c9s1-3; batch norm as in
the paper; nearest + conv upsampling (our default) or fractionally strided convolutions (the paper).

``skip="bicubic"`` (our default) adds a global skip: the network predicts the difference from a
bicubic upscaling of its input, and its last convolution starts at zero, so an untrained network
*is* bicubic. The paper's network (``skip="none"``, a scaled tanh) starts from grey and needs
tens of thousands of steps to get back above bicubic; with the skip a few thousand CPU steps do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvLayer, ConvNormReLU, NormStatsFlow, ResidualBlock, TransformNet, Upsample2x, run_layers


@dataclass(frozen=True)
class SRNetConfig:
    """Architecture of an :class:`SRNet`: ``scale`` 4 or 8 (any power of two works)."""

    scale: int = 4
    # nearest + conv: at x4 under l_feat the paper's deconv leaves a colored grain at the
    # output's pixel pitch; nearest reached the same Set5 LPIPS (0.181) in a third of the steps.
    upsample: str = "nearest"
    norm: str = "batch"
    channels: int = 64
    residual_blocks: int = 4
    skip: str = "bicubic"

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, not {self.scale}")
        if self.skip not in ("bicubic", "none"):
            raise ValueError(f"skip must be 'bicubic' or 'none', not {self.skip!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class SRNet(TransformNet):
    """Image super-resolution network.

    Input: RGB (N, 3, H, W) in [0, 1]. Output: RGB (N, 3, scale H, scale W), fp32:
    with ``skip="none"`` in [0, 1] (a scaled tanh, as in the paper); with ``skip="bicubic"``
    bicubic(input) + the network's correction, unclamped (callers clamp when they quantize).
    """

    def __init__(self, config: SRNetConfig = SRNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.scale = config.scale
        # In input pixels: 9x9 head (4) + 2 x 3x3 per residual block (2 each) + the upsampling
        # convolutions and the 9x9 tail at higher resolution (under 2 more): 14 with 4 blocks.
        self.receptive_radius = 6 + 2 * config.residual_blocks
        c, norm = config.channels, config.norm
        self.head = ConvNormReLU(3, c, 9, 1, norm)
        self.residuals = nn.Sequential(*[ResidualBlock(c, norm) for _ in range(config.residual_blocks)])
        stages = int(math.log2(config.scale))
        self.upsample = nn.Sequential(*[Upsample2x(c, c, config.upsample, norm) for _ in range(stages)])
        self.tail = ConvLayer(c, 3, 9)
        if config.skip == "bicubic":
            nn.init.zeros_(self.tail[1].weight)
            nn.init.zeros_(self.tail[1].bias)

    def transform(self, x: torch.Tensor, flow: NormStatsFlow | None) -> torch.Tensor:
        y = run_layers([self.head, *self.residuals, *self.upsample, self.tail], x, flow)
        if self.config.skip == "none":
            return (torch.tanh(y) + 1) / 2
        # The skip path stays in fp32 under autocast: a bf16 base image alone would cap PSNR.
        with torch.autocast(x.device.type, enabled=False):
            base = F.interpolate(x.float(), scale_factor=self.config.scale, mode="bicubic", align_corners=False)
            return base + y.float()
