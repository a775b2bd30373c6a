"""A multi-style network: the :class:`~fastpercept.nets.style.StyleNet` architecture with
conditional instance norm (Dumoulin, Shlens & Kudlur, "A Learned Representation for Artistic
Style", ICLR 2017).

Every convolution is shared by all styles; each instance-norm layer has one (scale, shift) per
style. A pass takes weights over the styles: one-hot for one style, other weights for a blend.
:meth:`MultiStyleNet.style_net` bakes one choice into a plain :class:`StyleNet`, which every
runner, the tiling and the exporters already serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import ConditionalInstanceNorm2d, NormStats, NormStatsFlow
from .style import StyleNet, StyleNetConfig


@dataclass(frozen=True)
class MultiStyleNetConfig(StyleNetConfig):
    """A :class:`StyleNetConfig` (instance norm only) and the number of styles it holds."""

    styles: int = 1


class MultiStyleNet(StyleNet):
    """:class:`StyleNet` whose instance norms are :class:`ConditionalInstanceNorm2d`.

    Input: RGB (N, 3, H, W) in [0, 1] and ``style`` weights, (S,) for the whole batch or (N, S)
    per image. Output: RGB (N, 3, H, W) in [0, 1].
    """

    def __init__(self, config: MultiStyleNetConfig = MultiStyleNetConfig()) -> None:
        if config.norm != "instance":
            raise ValueError(f"a multi-style network conditions instance norm; norm must be 'instance', "
                             f"not {config.norm!r}")
        if config.styles < 1:
            raise ValueError(f"styles must be at least 1, not {config.styles}")
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

    def style_net(self, weights: Sequence[float] | torch.Tensor) -> StyleNet:
        """A plain :class:`StyleNet` (fp32, eval) for the style blend ``weights`` (S,): its
        instance norms' scale and shift are the weighted sums of the styles'."""
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (self.config.styles,):
            raise ValueError(f"{len(w)} style weights for a network of {self.config.styles} styles")
        c = self.config
        net = StyleNet(StyleNetConfig(arch=c.arch, norm=c.norm, upsample=c.upsample,
                                      residual_blocks=c.residual_blocks))
        state = {}
        for key, value in self.state_dict().items():
            value = value.detach().float().cpu()
            if key.endswith(".scale"):
                state[key.removesuffix(".scale") + ".weight"] = w @ value
            elif key.endswith(".shift"):
                state[key.removesuffix(".shift") + ".bias"] = w @ value
            else:
                state[key] = value
        net.load_state_dict(state)
        return net.eval()
