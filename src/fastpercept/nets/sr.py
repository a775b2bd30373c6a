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

import torch
import torch.nn.functional as F
from torch import nn

from ..architectures import SRNetConfig
from .blocks import ConvLayer, ConvNormReLU, NormStatsFlow, ResidualBlock, TransformNet, Upsample2x, run_layers


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
        self.receptive_radius = config.receptive_radius
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
