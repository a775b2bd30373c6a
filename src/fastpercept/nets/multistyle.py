"""A multi-style network: the :class:`~fastpercept.nets.style.StyleNet` architecture with
conditional instance norm (Dumoulin, Shlens & Kudlur, "A Learned Representation for Artistic
Style", ICLR 2017).

Every convolution is shared by all styles; each instance-norm layer has one (scale, shift) per
style. A pass takes weights over the styles: one-hot for one style, other weights for a blend.
:func:`fastpercept.models.bake_style` bakes one choice into the weights of a plain
:class:`StyleNet`, which every runner, the tiling and the exporters already serve.
"""

from __future__ import annotations


import torch
from torch import nn

from .blocks import ConditionalInstanceNorm2d, NormStats, NormStatsFlow
from ..architectures import MultiStyleNetConfig
from .style import StyleNet


class MultiStyleNet(StyleNet):
    """:class:`StyleNet` whose instance norms are :class:`ConditionalInstanceNorm2d`.

    Input: RGB (N, 3, H, W) in [0, 1] and ``style`` weights, (S,) for the whole batch or (N, S)
    per image. Output: RGB (N, 3, H, W) in [0, 1].
    """

    def __init__(self, config: MultiStyleNetConfig = MultiStyleNetConfig()) -> None:
        super().__init__(config)
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.InstanceNorm2d:
                    setattr(parent, name, ConditionalInstanceNorm2d(child.num_features, config.styles))

    def forward(self, x: torch.Tensor, norm_stats: NormStats | None = None,
                style: torch.Tensor | None = None) -> torch.Tensor:
        if style is None:
            raise ValueError("MultiStyleNet needs style= weights over its styles")
        style = style.to(x.device, torch.float32)
        if style.dim() == 1:
            style = style.expand(x.shape[0], -1)
        if style.shape != (x.shape[0], self.config.styles):
            raise ValueError(f"style weights of shape {tuple(style.shape)}; expected ({self.config.styles},) "
                             f"or ({x.shape[0]}, {self.config.styles})")
        return self.transform(x, NormStatsFlow(norm_stats, style=style, record=False))
