"""The loss network: a frozen ImageNet VGG-16 returning named relu activations.

Only the layers up to the deepest one asked for are computed, so a content loss at relu2_2
costs the first four convolutions, not all thirteen. Weights holding only the first
convolutions (``weights.save_vgg16_prefix``) build only those layers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..architectures import IMAGENET_MEAN, IMAGENET_STD, VGG16_BLOCKS
from .weights import VGG16_CONV_INDICES, ResolvedWeights, resolve_vgg16

VGG16_LAYERS: tuple[str, ...] = (
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
    "relu4_1", "relu4_2", "relu4_3", "relu5_1", "relu5_2", "relu5_3",
)


def _build_features(convs: int = len(VGG16_CONV_INDICES)) -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (same indices, so state dicts load as-is),
    up to the relu of convolution number ``convs``."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG16_BLOCKS:
        if len(layers) == VGG16_CONV_INDICES[convs - 1] + 2:  # that conv and its relu are in
            break
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """Frozen VGG-16 feature extractor.

    Input: RGB images in [0, 1], shape (N, 3, H, W); ImageNet normalization happens inside.
    Output: a dict from each requested layer name (``relu1_1`` … ``relu5_3``) to its
    activation, shape (N, C_j, H_j, W_j).

    Args:
        weights: resolved weights; ``None`` resolves them (:func:`~fastpercept.training.weights.resolve_vgg16`;
            no random fallback).
    """

    def __init__(self, weights: ResolvedWeights | None = None) -> None:
        super().__init__()
        weights = weights or resolve_vgg16()
        convs = sum(f"features.{i}.weight" in weights.state_dict for i in VGG16_CONV_INDICES)
        self.features = _build_features(convs)
        self.deepest = VGG16_LAYERS[convs - 1]  # the deepest relu these weights can compute
        self.load_state_dict(weights.state_dict, strict=True)
        self.sha256 = weights.sha256
        self.source = weights.source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # features index of each relu, by name
        self._relu_index = {name: idx + 1 for name, idx in zip(VGG16_LAYERS, VGG16_CONV_INDICES)}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG16Features":
        # Frozen: never leaves eval mode (it has no dropout/batch norm, but be explicit).
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
        unknown = [name for name in layers if name not in self._relu_index]
        if unknown:
            raise ValueError(f"unknown VGG-16 layer(s) {unknown}; choose from {', '.join(VGG16_LAYERS)}")
        missing = [name for name in layers if self._relu_index[name] >= len(self.features)]
        if missing:
            raise ValueError(f"VGG-16 layer(s) {missing} need convolutions that these weights lack "
                             f"({self.source}: up to {self.deepest} only)")
        wanted = {self._relu_index[name]: name for name in layers}
        last = max(wanted)
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features[: last + 1]):
            h = layer(h)
            if i in wanted:
                out[wanted[i]] = h
        return out
