"""Any painting as the style: the decoders of universal style transfer (:class:`~fastpercept.nets.wct.WCTNet`).

Li et al. (2017) train each decoder to invert VGG-16 at its level on photos alone; the painting
only enters at inference (:mod:`fastpercept.runtime.anystyle`). The loss of a batch ``x`` sums,
over the levels ``L`` of the cascade, with ``f = encode(x, L)`` and ``y = decode(f, L)``:

    pixel_L   = mean((y - x)^2)                          (RGB in [0, 1])
    feature_L = mean((encode(y, L) - f)^2) / mean(f^2)   (relative, so levels weigh alike)
    total     = sum_L pixel_L + feature_weight * feature_L

The encoder is VGG-16 with the loss network's ImageNet weights, frozen; only decoders learn.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...architectures import WCT_LEVELS, WCTConfig
from ...errors import UserError
from ..data import RandomCrops, scan_image_files
from ..train import RunConfig, TrainingSetup, dataset_record, initial_model, resumable, source_reference
from . import Task

MIN_IMAGE_SIZE = 32
log = logging.getLogger(__name__)


@dataclass
class AnyStyleConfig(RunConfig):
    """``fastpercept train anystyle``: decoders for every level down from ``deepest``, on photos."""

    deepest: str = WCTConfig.deepest
    image_size: int = 256
    feature_weight: float = 1.0
    lr: float = 1e-4  # Li et al.'s Adam step
    iters: int = resumable(20000)

    def validate(self) -> None:
        super().validate()
        if self.deepest not in WCT_LEVELS:
            raise UserError(f"--deepest must be one of {', '.join(WCT_LEVELS)}, not {self.deepest!r}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise UserError(f"--image-size must be at least {MIN_IMAGE_SIZE} px, not {self.image_size}")
        if not self.feature_weight >= 0:
            raise UserError(f"--feature-weight must be >= 0, not {self.feature_weight}")


def reconstruction_losses(net: nn.Module, x: torch.Tensor, feature_weight: float) -> dict[str, torch.Tensor]:
    """The module docstring's terms for a batch ``x`` (N, 3, H, W) in [0, 1]: ``pixel_L``,
    ``feature_L`` per level and ``total``."""
    terms: dict[str, torch.Tensor] = {}
    total = x.new_zeros(())
    for level in net.config.levels:
        with torch.no_grad():
            f = net.encode(x, level)
        y = net.decode(f, level)
        pixel = torch.mean((y.float() - x.float()) ** 2)
        f = f.float()
        feature = torch.mean((net.encode(y, level).float() - f) ** 2) / torch.mean(f ** 2).clamp_min(1e-8)
        terms[f"pixel_{level}"], terms[f"feature_{level}"] = pixel, feature
        total = total + pixel + feature_weight * feature
    terms["total"] = total
    return terms


def setup(cfg: AnyStyleConfig) -> TrainingSetup:
    """One run: the decoders of :class:`WCTNet` under :func:`reconstruction_losses`."""
    from ...nets.wct import WCTNet
    from ..weights import resolve_vgg16

    files, skipped = scan_image_files(cfg.data, min_side=cfg.image_size)
    weights = resolve_vgg16(cfg.vgg_weights)
    torch.manual_seed(cfg.seed)

    def fresh() -> nn.Module:
        net = WCTNet(WCTConfig(deepest=cfg.deepest))
        # The encoder is the loss network's VGG-16, tensor for tensor (torchvision's layout).
        net.encoder.features.load_state_dict({k: weights.state_dict[f"features.{k}"]
                                              for k in net.encoder.features.state_dict()})
        return net

    model, init_card = initial_model(cfg, "anystyle", fresh)  # an --init-from model's levels win
    model.encoder.requires_grad_(False)
    dataset = dataset_record(cfg.data, files)
    card: dict[str, Any] = {
        "task": "anystyle", **model.config.to_dict(), "image_size": cfg.image_size,
        "feature_weight": cfg.feature_weight,
        "loss_terms": [f"{term}_{level}" for level in model.config.levels for term in ("pixel", "feature")],
        "vgg_sha256": weights.sha256, "dataset": dataset, **source_reference(cfg.init_from),
    }
    if skipped:
        log.warning("%s: skipped %d image(s) unreadable or smaller than %d px", cfg.data, skipped, cfg.image_size)

    def loss(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return reconstruction_losses(net, x, cfg.feature_weight)

    return TrainingSetup(model=model, samples=RandomCrops(files, cfg.image_size, cfg.seed), loss=loss, card=card,
                         init_card=init_card, identity={"data_files": dataset["sha256"]})


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train anystyle``'s own flags."""
    from ...apps.cli_args import VGG_HELP, positive

    p.add_argument("--deepest", default=None, choices=list(WCT_LEVELS),
                   help=f"the deepest level of the cascade (default {AnyStyleConfig.deepest}; deeper: larger "
                        "brush strokes, slower)")
    p.add_argument("--image-size", type=positive, default=None,
                   help=f"training crop side (px; default {AnyStyleConfig.image_size})")
    p.add_argument("--feature-weight", type=float, default=None,
                   help=f"weight of the feature reconstruction term (default {AnyStyleConfig.feature_weight})")
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)


TASK = Task(
    name="anystyle",
    summary="train the any-painting network's decoders (universal style transfer) on a folder of photos",
    train_config=AnyStyleConfig,
    setup=setup,
    add_arguments=add_arguments,
    stage_keys=("image_size", "feature_weight"),
)
