"""The style transfer network of Johnson et al. (2016), supplementary Table 1.

c9s1-32, d64, d128, R128 x5, u64, u32, c9s1-3 — with reflection padding, instance norm by
default (batch norm as in the paper on request) and nearest+conv upsampling by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..architectures import StyleNetConfig
from .blocks import ConvLayer, ConvNormReLU, NormStatsFlow, ResidualBlock, TransformNet, Upsample2x, run_layers


class StyleNet(TransformNet):
    """Image transformation network for fast style transfer.

    Input: RGB (N, 3, H, W) in [0, 1], any H and W (odd sizes too).
    Output: RGB (N, 3, H, W) in [0, 1] (a scaled tanh, as in the paper).
    """

    def __init__(self, config: StyleNetConfig = StyleNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.stride = config.stride
        self.receptive_radius = config.receptive_radius
        w, norm = config.width, config.norm
        self.encoder = nn.Sequential(
            ConvNormReLU(3, w, 9, 1, norm),
            ConvNormReLU(w, 2 * w, 3, 2, norm),
            ConvNormReLU(2 * w, 4 * w, 3, 2, norm),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w, norm) for _ in range(config.residual_blocks)])
        self.decoder = nn.Sequential(
            Upsample2x(4 * w, 2 * w, config.upsample, norm),
            Upsample2x(2 * w, w, config.upsample, norm),
            ConvLayer(w, 3, 9),
        )

    def transform(self, x: torch.Tensor, flow: NormStatsFlow | None) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Two stride-2 stages: pad to a multiple of 4 (reflect), crop back afterwards, so any
        # size maps to the same size.
        # Always padded (by 0 where nothing is missing), never behind a branch on the size: a
        # traced or exported graph must pad every size it meets, not only the example's.
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > 3 else "replicate")
        y = run_layers([*self.encoder, *self.residuals, *self.decoder], x, flow)
        y = (torch.tanh(y) + 1) / 2
        return y[..., :h, :w]
