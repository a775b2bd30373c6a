"""Training checkpoints: safetensors (no pickle), written atomically, newest good one wins.

A checkpoint holds the model, the optimizer state, the step, the RNG states and the run's
configuration, so ``--resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write

log = logging.getLogger(__name__)
_NAME = re.compile(r"^step-(\d{8})\.safetensors$")


class FolderLock:
    """An exclusive lock on a checkpoint folder for the life of one training run.

    A run that is still stopping (saving its last checkpoint after SIGTERM) keeps the lock, so
    a new run on the same folder is refused instead of mixing two runs' checkpoints.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"
        self._file = None

    def __enter__(self) -> "FolderLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            from ..errors import UserError

            raise UserError(f"{self.path.parent}: another training run is using this checkpoint folder") from None
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()  # closing releases the lock


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    config: dict[str, Any], extra: dict[str, Any] | None = None, keep: int = 2) -> Path:
    """Write ``folder/step-NNNNNNNN.safetensors`` atomically and prune all but the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "step": step,
        "config": config,
        "optimizer": opt_meta,
        "rng_numpy": np.random.get_state()[1].tolist(),
        "rng_numpy_pos": int(np.random.get_state()[2]),
        "rng_python": _python_rng_state(),
        "extra": extra or {},
    }
    path = folder / f"step-{step:08d}.safetensors"
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={"checkpoint": json.dumps(meta)})
    for old in list_checkpoints(folder)[keep:]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.match(p.name)), reverse=True)


def load_latest_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(tensors, meta)`` of the newest checkpoint that reads back whole; ``None`` if none does."""
    for path in list_checkpoints(folder):
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["checkpoint"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            return tensors, meta
        except Exception as e:  # a torn or corrupt file: fall back to the previous one
            log.warning("skipping unreadable checkpoint %s (%s)", path, e)
    return None


def restore(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: torch.nn.Module,
            optimizer: torch.optim.Optimizer) -> int:
    """Load model, optimizer and RNG states from a checkpoint; returns its step."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(
        {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    np.random.set_state(("MT19937", np.array(meta["rng_numpy"], dtype=np.uint32), meta["rng_numpy_pos"], 0, 0.0))
    version, internal, gauss = meta["rng_python"]
    random.setstate((version, tuple(internal), gauss))
    return int(meta["step"])
