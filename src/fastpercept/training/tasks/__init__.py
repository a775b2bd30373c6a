"""The registry of trainable tasks (style transfer, super-resolution, multi-style): how each is trained.

A task is one module in this package that defines ``TASK``, a :class:`Task`: its training
config, how one training run is set up (network, samples, loss, card), and its own ``train``
flags. What its network *is* lives in :mod:`fastpercept.architectures` under the same name
(config, card keys; the PyTorch network in :mod:`fastpercept.nets`, the inference graph in
:mod:`fastpercept.graphs`). The training loop and the CLI's ``train`` ask :func:`get_task`.

Modules are imported on first use, so a command pays only for the task it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import UserError

if TYPE_CHECKING:
    from ..train import RunConfig, TrainingSetup


@dataclass(frozen=True)
class Task:
    """One kind of model, as far as training goes (what its network *is* is
    :data:`fastpercept.architectures.ARCHITECTURES`, under the same name).

    Attributes:
        name: the card's ``task`` value and the ``train NAME`` subcommand.
        summary: one line of help.
        train_config: the :class:`~fastpercept.training.train.RunConfig` subclass of ``train NAME``.
        setup: turns a ``train_config`` into the :class:`~fastpercept.training.train.TrainingSetup` of one run.
        add_arguments: adds the task's own flags to ``train NAME``'s parser.
        stage_keys: card keys of the task's hyperparameters that a fine-tuning stage may change
            (kept per stage in the card's history).
    """

    name: str
    summary: str
    train_config: type[RunConfig]
    setup: Callable[[Any], TrainingSetup]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    stage_keys: tuple[str, ...] = ()

    def train(self, cfg: RunConfig):
        """Train one model as ``cfg`` says; returns the trained network (also written to ``cfg.output``)."""
        from ..train import run

        cfg.validate()  # every argument and the output's writability, before anything is written
        return run(dataclasses.replace(self.setup(cfg), stage_keys=self.stage_keys), cfg)


def task_names() -> list[str]:
    """Every registered task, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_task(name: str) -> Task:
    """The task called ``name``; :class:`UserError` for an unknown one (e.g. from a bad card)."""
    if not isinstance(name, str) or name not in task_names():
        raise UserError(f"unknown model task {name!r} (known: {', '.join(task_names())})")
    return importlib.import_module(f"{__name__}.{name}").TASK
