"""Several styles in one network: :class:`~fastpercept.nets.multistyle.MultiStyleNet` (conditional
instance norm) trained on the paper's objective of each style in turn."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import RandomCrops, RoundRobinLabels
from ...errors import UserError
from ..losses import StyleObjective, check_weight
from ...nets.multistyle import MultiStyleNet, MultiStyleNetConfig
from ..train import TrainingSetup, dataset_record, file_digest, initial_model, resumable
from . import Task
from .style import StyleTrainingConfig, add_training_arguments, loss_network, objective_card


@dataclass
class MultiStyleConfig(StyleTrainingConfig):
    """``fastpercept train multistyle``: style images trained in turn, one step each, in one network.

    ``style_weights``: one per style; empty means ``style_weight`` for every style.
    """

    style_images: tuple[str, ...] = resumable(())
    style_weights: tuple[float, ...] = ()

    def validate(self) -> None:
        super().validate()
        if len(self.style_images) < 1:
            raise UserError("--style-images needs at least one style image")
        names = [Path(p).stem for p in self.style_images]
        if len(set(names)) != len(names):
            raise UserError(f"--style-images: two styles with the same name ({', '.join(names)}); "
                            "a style is named by its file")
        if self.style_weights and len(self.style_weights) != len(self.style_images):
            raise UserError(f"--style-weights gives {len(self.style_weights)} weights for "
                            f"{len(self.style_images)} style images")
        for w in self.style_weights:
            check_weight("style_weights", w)
        if self.norm != "instance":
            raise UserError("a multi-style network conditions instance norm: --norm must be instance")

    def input_files(self) -> list[Path]:
        return [*super().input_files(), *map(Path, self.style_images)]

    @property
    def per_style_weights(self) -> list[float]:
        return list(self.style_weights) or [self.style_weight] * len(self.style_images)


def setup(cfg: MultiStyleConfig) -> TrainingSetup:
    """A multi-style run: step ``t`` trains style ``t % S`` (one style per batch) with its objective."""
    from ...runtime.images import load_image

    vgg, weights, files = loss_network(cfg)
    objectives = [StyleObjective(vgg, load_image(path, max_size=cfg.style_size).rgb,
                                 replace(cfg.objective, style_weight=w))
                  for path, w in zip(cfg.style_images, cfg.per_style_weights)]
    styles = len(objectives)
    torch.manual_seed(cfg.seed)
    model, init_card = initial_model(cfg, "multistyle", lambda: MultiStyleNet(MultiStyleNetConfig(
        arch=cfg.arch, upsample=cfg.upsample, styles=styles)))
    if model.config.styles != styles:
        raise UserError(f"--init-from holds {model.config.styles} styles; --style-images gives {styles}")

    def loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        content, labels = batch
        objective = objectives[int(labels[0])]  # one style per batch (RoundRobinLabels)
        target = objective.content_features(content)
        return objective(net(content, style=F.one_hot(labels, styles).float()), target)

    digests = [file_digest(p) for p in cfg.style_images]
    dataset = dataset_record(cfg.data, files)
    identity = {"style_images_sha256": hashlib.sha256("".join(digests).encode()).hexdigest(),
                "data_files": dataset["sha256"]}
    card = {"task": "multistyle", **model.config.to_dict(), **objective_card(cfg, weights, dataset),
            "style_names": [Path(p).stem for p in cfg.style_images],
            "style_images": [Path(p).name for p in cfg.style_images],
            "style_weights": cfg.per_style_weights, "style_images_sha256": digests}
    samples = RoundRobinLabels(RandomCrops(files, cfg.image_size, cfg.seed), styles, cfg.batch_size)
    return TrainingSetup(model=model, samples=samples, loss=loss, card=card, frozen=[vgg], init_card=init_card,
                         identity=identity)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train multistyle``'s own flags."""
    from ...apps.cli_args import csv as _csv

    p.add_argument("--style-images", type=_csv, required=True,
                   help="the styles to learn, comma-separated image files (each style is named by its file)")
    p.add_argument("--style-weights", type=lambda t: tuple(float(v) for v in _csv(t)), default=None,
                   help="one style weight per style image, comma-separated (default: --style-weight for all)")
    add_training_arguments(p)


TASK = Task(
    name="multistyle",
    summary="train one network on several styles (conditional instance norm)",
    train_config=MultiStyleConfig,
    setup=setup,
    add_arguments=add_arguments,
    stage_keys=("content_weight", "style_weights", "tv_weight", "style_size", "image_size"),
)

