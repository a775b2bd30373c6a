"""Style transfer: :class:`~fastpercept.nets.style.StyleNet` trained on the paper's objective for one style."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data import RandomCrops, scan_image_files
from ...errors import UserError
from ..losses import STYLE_SIZE, ObjectiveWeights, StyleObjective
from ...nets.style import StyleNet, StyleNetConfig
from ..train import (RunConfig, TrainingSetup, dataset_record, file_digest, initial_model, resumable,
                     source_reference)
from . import Task

if TYPE_CHECKING:  # the loss network is imported by training only, not by loading a model
    from ..vgg import VGG16Features
    from ..weights import ResolvedWeights

log = logging.getLogger(__name__)

# Training crops (px): VGG-16 halves the size four times before relu5 (a 32 px crop is 2 px there);
# beyond 2048 px a batch's activations no longer fit in a usual machine's memory.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 2048


@dataclass
class StyleTrainingConfig(RunConfig):
    """What style training runs share: the crops, the paper's objective and the architecture."""

    image_size: int = 256
    style_size: int | None = STYLE_SIZE
    content_weight: float = ObjectiveWeights.content_weight  # the objective's defaults live in ObjectiveWeights
    style_weight: float = ObjectiveWeights.style_weight
    tv_weight: float = ObjectiveWeights.tv_weight
    content_layer: str = ObjectiveWeights.content_layer
    style_layers: tuple[str, ...] = ObjectiveWeights.style_layers
    arch: str = StyleNetConfig.arch  # the architecture's defaults live in StyleNetConfig
    norm: str = StyleNetConfig.norm
    upsample: str = StyleNetConfig.upsample

    def validate(self) -> None:
        super().validate()
        self.objective.validate()
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise UserError(f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, "
                            f"not {self.image_size}")
        if self.style_size is not None and self.style_size < MIN_IMAGE_SIZE:
            raise UserError(f"--style-size must be at least {MIN_IMAGE_SIZE} px, not {self.style_size}")

    @property
    def objective(self) -> ObjectiveWeights:
        return ObjectiveWeights(self.content_weight, self.style_weight, self.tv_weight, self.content_layer,
                                tuple(self.style_layers))


@dataclass
class StyleConfig(StyleTrainingConfig):
    """``fastpercept train style``: one style image, a folder of content photos, the paper's objective."""

    style_image: str = resumable("")

    def input_files(self) -> list[Path]:
        return [*super().input_files(), *([Path(self.style_image)] if self.style_image else [])]


def loss_network(cfg: StyleTrainingConfig) -> tuple[VGG16Features, ResolvedWeights, list[Path]]:
    """The frozen VGG-16, its weights' record and the training photos of a style run."""
    from ..vgg import VGG16Features
    from ..weights import resolve_vgg16

    weights = resolve_vgg16(cfg.vgg_weights)
    files, skipped = scan_image_files(cfg.data)
    if skipped:
        log.warning("%s: skipped %d unreadable image(s)", cfg.data, skipped)
    return VGG16Features(weights), weights, files


def objective_card(cfg: StyleTrainingConfig, weights: ResolvedWeights, dataset: dict[str, Any]) -> dict[str, Any]:
    """The card entries every style run writes: objective, sizes, data (:func:`dataset_record`), loss
    network, source."""
    return {
        "content_layer": cfg.content_layer, "style_layers": list(cfg.style_layers),
        "content_weight": cfg.content_weight, "tv_weight": cfg.tv_weight,
        "style_size": cfg.style_size, "image_size": cfg.image_size,
        "dataset": dataset, "vgg_sha256": weights.sha256,
        **source_reference(cfg.init_from), "loss_terms": ["content", "style", "tv"],
    }


def setup(cfg: StyleConfig) -> TrainingSetup:
    """One style's training run: :class:`StyleNet` under the paper's objective."""
    from ...runtime.images import load_image

    if not cfg.style_image:
        raise UserError("--style-image is required")
    vgg, weights, files = loss_network(cfg)
    style = load_image(cfg.style_image, max_size=cfg.style_size).rgb
    # The style targets are computed in fp32 here; only the network's side runs in the
    # training precision.
    objective = StyleObjective(vgg, style, cfg.objective)
    torch.manual_seed(cfg.seed)
    model, init_card = initial_model(cfg, "style", lambda: StyleNet(StyleNetConfig(arch=cfg.arch, norm=cfg.norm,
                                                                                   upsample=cfg.upsample)))

    def loss(net: nn.Module, content: torch.Tensor) -> dict[str, torch.Tensor]:
        target = objective.content_features(content)
        return objective(net(content), target)

    dataset = dataset_record(cfg.data, files)
    identity = {"style_image_sha256": file_digest(cfg.style_image), "data_files": dataset["sha256"]}
    card = {"task": "style", **model.config.to_dict(), **objective_card(cfg, weights, dataset),
            "style_weight": cfg.style_weight, "style_image": Path(cfg.style_image).name,
            "style_image_sha256": identity["style_image_sha256"]}
    return TrainingSetup(model=model, samples=RandomCrops(files, cfg.image_size, cfg.seed), loss=loss, card=card,
                         frozen=[vgg], init_card=init_card, identity=identity)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of every style run: crop size, the objective (shared with ``optimize``), architecture."""
    from ...apps.cli_args import add_objective, positive

    p.add_argument("--image-size", type=positive, default=None,
                   help=f"training crop side (px; default {StyleConfig.image_size})")
    add_objective(p)
    # Architecture flags default to None: the network config's default applies (StyleNetConfig).
    p.add_argument("--arch", default=None, choices=["full", "half"], help=f"default: {StyleConfig.arch}")
    p.add_argument("--norm", default=None, choices=["instance", "batch"], help=f"default: {StyleConfig.norm}")
    p.add_argument("--upsample", default=None, choices=["nearest", "deconv"], help=f"default: {StyleConfig.upsample}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train style``'s own flags."""
    p.add_argument("--style-image", required=True, help="the style to learn (any image file)")
    add_training_arguments(p)


TASK = Task(
    name="style",
    summary="train a style transfer network on a folder of photos",
    train_config=StyleConfig,
    setup=setup,
    add_arguments=add_arguments,
    stage_keys=("content_weight", "style_weight", "tv_weight", "style_size", "image_size"),
)
