"""The registry of tasks: what a model *is* (style transfer, super-resolution, ...).

A task is one module in this package that defines ``TASK``, a :class:`Task`: its network and
network config, its training config and how one training run is set up, its own ``train``
flags, and how a model card of it reads. Everything that differs between tasks lives there;
the training loop, model files, inference and the CLI only ever ask :func:`get_task`. A new
task is a new module here, nothing else.

Modules are imported on first use, so a command pays only for the task it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from ..nets.blocks import TransformNet
    from ..train import RunConfig, TrainingSetup


@dataclass(frozen=True)
class Task:
    """One kind of model.

    Attributes:
        name: the card's ``task`` value and the ``train NAME`` subcommand.
        summary: one line of help.
        net, net_config: the network class and its config dataclass; the config's fields are
            the architecture keys of a card.
        train_config: the :class:`~fastpercept.train.RunConfig` subclass of ``train NAME``.
        setup: turns a ``train_config`` into the :class:`~fastpercept.train.TrainingSetup` of one run.
        add_arguments: adds the task's own flags to ``train NAME``'s parser.
        describe: a card as one line of ``fastpercept models``.
        stage_keys: card keys of the task's hyperparameters that a fine-tuning stage may change
            (kept per stage in the card's history).
        required_keys: card keys a model file of this task must have.
        legacy_arch: values of architecture keys for model files written before the key
            existed (the defaults changed since).
    """

    name: str
    summary: str
    net: type[TransformNet]
    net_config: type
    train_config: type[RunConfig]
    setup: Callable[[Any], TrainingSetup]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    describe: Callable[[Mapping[str, Any]], str]
    stage_keys: tuple[str, ...] = ()
    required_keys: tuple[str, ...] = ()
    legacy_arch: Mapping[str, Any] = field(default_factory=dict)

    def build_net(self, card: Mapping[str, Any]) -> TransformNet:
        """An untrained network with the architecture ``card`` describes.

        Config fields the card lacks take their ``legacy_arch`` value, else the config's default.
        """
        missing = [k for k in self.required_keys if k not in card]
        if missing:
            raise UserError(f"{self.name} model card has no {', '.join(map(repr, missing))}")
        values = {**self.legacy_arch, **card}
        given = {}
        for f in dataclasses.fields(self.net_config):
            if f.name not in values:
                continue
            value, kind = values[f.name], type(f.default)
            # JSON gives str, int, float, bool: a "4" or a 4.0 or a true where an int belongs is a bad card.
            if type(value) is not kind:
                raise UserError(f"model card: {f.name} must be {kind.__name__} like {f.default!r}, not {value!r}")
            given[f.name] = value
        try:
            return self.net(self.net_config(**given))
        except (ValueError, TypeError) as e:
            raise UserError(f"model card: {e}") from None

    def train(self, cfg: RunConfig):
        """Train one model as ``cfg`` says; returns the trained network (also written to ``cfg.output``)."""
        from ..train import run

        cfg.validate()  # every argument and the output's writability, before anything is written
        return run(self.setup(cfg), cfg)


def task_names() -> list[str]:
    """Every registered task, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_task(name: str) -> Task:
    """The task called ``name``; :class:`UserError` for an unknown one (e.g. from a bad card)."""
    if not isinstance(name, str) or name not in task_names():
        raise UserError(f"unknown model task {name!r} (known: {', '.join(task_names())})")
    return importlib.import_module(f"{__name__}.{name}").TASK
