"""The paper's loss functions (Johnson et al. 2016, section 3), each defined where it is written.

All images are RGB in [0, 1], shape (N, 3, H, W); features are (N, C, H, W), the relu
activations of the frozen ImageNet VGG-16 (:class:`~fastpercept.training.vgg.VGG16Features`, which
normalizes its input with the ImageNet mean and std). Each loss returns a scalar averaged over
the batch. The style-transfer objective is
``content_weight * l_feat(content_layer) + style_weight * sum_j l_style(j) + tv_weight * l_tv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import UserError
from .vgg import VGG16_LAYERS, VGG16Features


def feature_reconstruction_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||phi(a) - phi(b)||^2 / (C H W)``, i.e. the mean squared error, averaged over the batch.

    Args:
        a, b: features, shape (N, C, H, W).
    """
    return F.mse_loss(a.float(), b.float())


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``G = psi psi^T / (C H W)`` with ``psi`` the features reshaped to (C, H W).

    Args:
        features: shape (N, C, H, W).
    Returns:
        shape (N, C, C), float32 (computed in float32 whatever the input dtype: the sums over
        H W lose too much in bf16).
    """
    n, c, h, w = features.shape
    psi = features.float().reshape(n, c, h * w)
    return torch.bmm(psi, psi.transpose(1, 2)) / (c * h * w)


def style_reconstruction_loss(gram_a: torch.Tensor, gram_s: torch.Tensor) -> torch.Tensor:
    """``||G(a) - G(s)||_F^2``: a sum of squares (not a mean), averaged over the batch.

    Args:
        gram_a: shape (N, C, C); gram_s: shape (N, C, C) or (1, C, C) (broadcast).
    """
    diff = gram_a - gram_s
    return diff.pow(2).sum(dim=(1, 2)).mean()


def total_variation_loss(x: torch.Tensor) -> torch.Tensor:
    """``mean|x[i+1, j] - x[i, j]| + mean|x[i, j+1] - x[i, j]|`` over all pixels and channels.

    Args:
        x: images, shape (N, C, H, W).
    """
    x = x.float()
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    return dh + dw


def pixel_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error in [0, 1] (the paper's l_pixel)."""
    return F.mse_loss(a.float(), b.float())


# Longest side (px) the style image is reduced to before its Gram matrices are taken: it sets the
# scale of the strokes the network learns (never enlarged).
STYLE_SIZE = 512


# The smallest image (px) the objective is measured on: relu4_3 sees it downsampled 8 times.
MIN_OBJECTIVE_SIZE = 16


def check_weight(name: str, value: float) -> None:
    """UserError unless an objective weight (or a sigma) is a finite number >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"--{name.replace('_', '-')} must be a number >= 0, not {value}")


def check_layers(names: Sequence[str]) -> None:
    """UserError for a VGG-16 layer name that does not exist (relu1_1 ... relu5_3)."""
    unknown = [n for n in names if n not in VGG16_LAYERS]
    if unknown:
        raise UserError(f"unknown VGG-16 layer(s) {', '.join(unknown)}; choose from {', '.join(VGG16_LAYERS)}")


@dataclass
class ObjectiveWeights:
    """Weights and layers of the style-transfer objective (the paper's defaults; the CLI flags' names)."""

    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-6
    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

    def validate(self) -> None:
        """UserError (one line) for a negative or non-finite weight or an unknown layer."""
        for name in ("content_weight", "style_weight", "tv_weight"):
            check_weight(name, getattr(self, name))
        if not self.style_layers:
            raise UserError("--style-layers is empty; give at least one VGG-16 layer")
        check_layers([self.content_layer, *self.style_layers])


@dataclass
class StyleObjective:
    """``content_weight * l_feat + style_weight * l_style + tv_weight * l_tv`` for one style.

    The style image's Gram matrices are computed once, at construction (not per step).

    Args:
        vgg: the loss network.
        style_image: shape (1, 3, H, W) in [0, 1].
        weights: objective weights and layers.
    """

    vgg: VGG16Features
    style_image: torch.Tensor
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)

    def __post_init__(self) -> None:
        with torch.no_grad():
            feats = self.vgg(self.style_image.float(), self.weights.style_layers)
            self.style_grams = {k: gram_matrix(v) for k, v in feats.items()}

    def content_features(self, content: torch.Tensor) -> torch.Tensor:
        """Features of the content images at the content layer, with no graph."""
        with torch.no_grad():
            return self.vgg(content, (self.weights.content_layer,))[self.weights.content_layer]

    def __call__(self, output: torch.Tensor, content_feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term and the weighted total for ``output`` (N, 3, H, W) against ``content_feat``.

        Returns a dict with ``content``, ``style``, ``tv`` (unweighted) and ``total`` (weighted).
        """
        return objective_terms(self.vgg, output, content_feat, self.style_grams, self.weights)


def objective_terms(vgg: VGG16Features, output: torch.Tensor, content_feat: torch.Tensor,
                    style_grams: dict[str, torch.Tensor], weights: ObjectiveWeights) -> dict[str, torch.Tensor]:
    """The paper's objective of ``output`` (N, 3, H, W) in [0, 1]: ``content``, ``style``, ``tv``
    (unweighted) and the weighted ``total``.

    Args:
        content_feat: the content images' features at ``weights.content_layer`` (N, C, h, w).
        style_grams: per style layer, the target Gram matrices, (1, C, C) for one style image
            or (N, C, C), one per output.
    """
    w = weights
    feats = vgg(output, tuple(dict.fromkeys((*w.style_layers, w.content_layer))))
    content = feature_reconstruction_loss(feats[w.content_layer], content_feat)
    style = sum(style_reconstruction_loss(gram_matrix(feats[k]), style_grams[k].to(feats[k].device))
                for k in w.style_layers)
    tv = total_variation_loss(output)
    total = w.content_weight * content + w.style_weight * style + w.tv_weight * tv
    return {"content": content, "style": style, "tv": tv, "total": total}
