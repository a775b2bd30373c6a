"""Universal style transfer's network (Li et al. 2017): VGG-16's encoder and one decoder per level.

The encoder is ImageNet VGG-16 up to a ``relu{k}_1`` (torchvision's ``features`` layout, so the
loss network's weights load as they are; zero padding, as VGG was trained); it is frozen. Each
decoder mirrors the encoder to its level (3x3 convolutions with reflection padding, nearest x2
upsampling where VGG pools, no ReLU after the last convolution) and is trained to invert it:
``decode(encode(x, L), L) ~ x`` — or, for the deepest level of an AdaIN model, trained on the
paper's objective with paintings (:mod:`fastpercept.training.tasks.anystyle`). The style enters
at inference, as the transform between the two (:mod:`fastpercept.runtime.anystyle`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..architectures import (IMAGENET_MEAN, IMAGENET_STD, WCTConfig, relu_index, wct_decoder_layers,
                             wct_encoder_layers)
from .blocks import ConvLayer

def _module(layer: tuple, conv, **conv_args) -> nn.Module:
    """The module of one entry of :func:`~fastpercept.architectures.wct_encoder_layers` (or decoder)."""
    kind = layer[0]
    if kind == "conv":
        return conv(layer[1], layer[2], 3, **conv_args)
    return {"relu": nn.ReLU, "pool": lambda: nn.MaxPool2d(2, 2),
            "up": lambda: nn.Upsample(scale_factor=2, mode="nearest")}[kind]()


class VGGEncoder(nn.Module):
    """Frozen VGG-16 up to ``deepest``: [0, 1] RGB (N, 3, H, W) -> the relu of any level up to it,
    (N, C, H / 2^pools, W / 2^pools). ImageNet normalization happens inside."""

    def __init__(self, deepest: str) -> None:
        super().__init__()
        self.features = nn.Sequential(*(_module(layer, nn.Conv2d, padding=1) for layer in wct_encoder_layers(deepest)))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, level: str) -> torch.Tensor:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.features[:relu_index(level) + 1](x)


class Decoder(nn.Module):
    """The mirror of VGG-16 up to ``level``: (N, C, h, w) features -> (N, 3, h 2^pools, w 2^pools)
    RGB, about [0, 1] (not clamped)."""

    def __init__(self, level: str) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(_module(layer, ConvLayer) for layer in wct_decoder_layers(level)))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.layers(f)


class WCTNet(nn.Module):
    """The encoder to ``config.deepest`` and a decoder per level (``decoders[level]``)."""

    def __init__(self, config: WCTConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = VGGEncoder(config.deepest)
        self.decoders = nn.ModuleDict({level: Decoder(level) for level in config.levels})

    def encode(self, x: torch.Tensor, level: str) -> torch.Tensor:
        return self.encoder(x, level)

    def decode(self, f: torch.Tensor, level: str) -> torch.Tensor:
        return self.decoders[level](f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the deepest level (what training checks first)."""
        return self.decode(self.encode(x, self.config.deepest), self.config.deepest)
