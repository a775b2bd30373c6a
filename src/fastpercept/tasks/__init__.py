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
    """One kind of model, as far as training goes (what its network *is* is
    :data:`fastpercept.architectures.ARCHITECTURES`, under the same name).

    Attributes:
        name: the card's ``task`` value and the ``train NAME`` subcommand.
        summary: one line of help.
        net: the PyTorch network class, built from the architecture's config.
        train_config: the :class:`~fastpercept.train.RunConfig` subclass of ``train NAME``.
        setup: turns a ``train_config`` into the :class:`~fastpercept.train.TrainingSetup` of one run.
        add_arguments: adds the task's own flags to ``train NAME``'s parser.
        stage_keys: card keys of the task's hyperparameters that a fine-tuning stage may change
            (kept per stage in the card's history).
    """

    name: str
    summary: str
    net: type[TransformNet]
    train_config: type[RunConfig]
    setup: Callable[[Any], TrainingSetup]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    stage_keys: tuple[str, ...] = ()
    # Kept for task modules written before fastpercept.architectures held them; unused.
    net_config: type | None = None
    describe: Callable[[Mapping[str, Any]], str] | None = None
    required_keys: tuple[str, ...] = ()
    legacy_arch: Mapping[str, Any] = field(default_factory=dict)

    def build_net(self, card: Mapping[str, Any]) -> TransformNet:
        """An untrained PyTorch network with the architecture ``card`` describes."""
        from ..architectures import arch_config
        from ..nets import build_net

        return build_net(arch_config({**card, "task": self.name}))

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
