"""LPIPS v0.1 (Zhang et al., CVPR 2018): the learned perceptual image patch similarity.

A re-implementation of the reference ``lpips`` package's ``LPIPS(net=..., version="0.1")``
without torchvision: the same backbone layouts (torchvision's ``alexnet().features`` and
``vgg16().features``), taps, normalization and linear layers, so the official weights load
unchanged (they come from :func:`fastpercept.training.weights.resolve_lpips`). The per-image distance is

    d(a, b) = sum_l mean_hw( w_l . (n_l(a) - n_l(b))^2 )

where ``n_l`` are the backbone activations at tap ``l`` divided by their channel-wise L2 norm
(``eps = 1e-10``) and ``w_l`` the non-negative 1x1 linear weights. Lower is more similar;
identical images score exactly 0.
"""

from __future__ import annotations

import torch
from torch import nn

from .vgg import _build_features as _vgg16_features
from .weights import resolve_lpips

__all__ = ["LPIPS"]

# LPIPS's ScalingLayer: the ImageNet mean/std re-expressed for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10

# features index of the ReLU after which each of the five taps is read, and its channels.
_TAPS = {
    "alex": ((1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    # VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    "vgg": ((3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layout (indices 0..11; state dicts load as-is)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
    )


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


class LPIPS(nn.Module):
    """LPIPS v0.1 distance, frozen and in eval mode.

    Args:
        net: ``"alex"`` (the default of the paper and of SR evaluation) or ``"vgg"``.
        weights: ``(backbone_state_dict, lin_state_dict)`` to use instead of resolving them
            (keys ``features.N.{weight,bias}`` and ``lin{0..4}.weight``).

    Call with two RGB batches ``(N, 3, H, W)`` in ``[0, 1]`` (mapped to ``[-1, 1]`` inside, the
    range LPIPS was trained on); returns ``(N,)`` distances. Gradients flow to the inputs, so it
    also serves as a loss. Images must be large enough for the backbone (AlexNet: >= 31 px).
    """

    def __init__(
        self,
        net: str = "alex",
        weights: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        if weights is None:
            backbone_sd, lin_sd, self.source = resolve_lpips(net)
        else:
            (backbone_sd, lin_sd), self.source = weights, "given"
        self.net = net
        taps, channels = _TAPS[net]
        self.features = _alexnet_features() if net == "alex" else _vgg16_features()[: taps[-1] + 1]
        self.features.load_state_dict(_strip_prefix(backbone_sd, "features."), strict=True)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in channels)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(lin_sd[f"lin{i}.weight"].reshape(lin.weight.shape))
        self._taps = taps
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        # A fixed metric: never leaves eval mode.
        return super().train(False)

    def _normalized_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x * 2.0 - 1.0 - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._taps:
                norm = torch.sqrt(torch.sum(h * h, dim=1, keepdim=True))
                out.append(h / (norm + _EPS))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances ``(N,)`` between ``a`` and ``b``, both ``(N, 3, H, W)`` RGB in ``[0, 1]``."""
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS expects two (N, 3, H, W) batches of one shape, "
                             f"got {tuple(a.shape)} and {tuple(b.shape)}")
        # One pass over both batches: half the Python overhead, same numbers.
        feats = self._normalized_taps(torch.cat([a, b], dim=0))
        n = a.shape[0]
        total = a.new_zeros(n)
        for lin, f in zip(self.lins, feats):
            diff = (f[:n] - f[n:]) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total
