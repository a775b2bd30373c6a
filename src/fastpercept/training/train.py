"""Training: one loop for every task (each task, in :mod:`fastpercept.training.tasks`, sets up its runs).

The loop owns what all tasks share: Adam, mixed precision, channels_last, reproducible data
order, atomic checkpoints every N steps with exact ``--resume``, a CSV log of every loss term,
a progress bar, a clean stop on SIGINT/SIGTERM, and the model card. A task supplies a
:class:`TrainingSetup` (network, samples, loss of a batch, card) built from its
:class:`RunConfig` subclass.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import logging
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import __version__
from .checkpoint import FolderLock, load_latest_checkpoint, restore, save_checkpoint
from .data import SampleRange
from ..runtime.device import autocast, compute_dtype, resolve_device, resolve_precision
from ..errors import Interrupted, UserError
from ..runtime.listing import refuse_overwriting_inputs
from ..models import LoadedModel, load_model, save_model

log = logging.getLogger(__name__)


_RESUMABLE = {"resumable": True}
LR_SCHEDULES = ("constant", "cosine")


def step_lr(lr: float, schedule: str, step: int, iters: int) -> float:
    """The step size of step ``step`` (0-based) of ``iters``: ``lr`` throughout (``constant``), or
    cosine annealing from ``lr`` towards 0 at ``iters`` (``cosine``; Loshchilov & Hutter, 2017).
    A function of the step alone, so a resumed run follows the same schedule exactly."""
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(step, iters) / max(iters, 1)))
    return lr


def resumable(default: Any = dataclasses.MISSING) -> Any:
    """A config field that may change between a run and its ``--resume`` (where, how long, logging).

    Any other field's change is refused on resume: it would silently mix two trainings.
    """
    return field(default=default, metadata=_RESUMABLE)


@dataclass
class RunConfig:
    """What every training run needs, whatever the task (each task subclasses it)."""

    data: str = resumable()
    output: str = resumable()
    iters: int = resumable(40000)  # the card calls the steps trained ``iterations``
    batch_size: int = 4
    lr: float = 1e-3
    checkpoint_every: int = resumable(500)
    checkpoint_dir: str | None = resumable(None)
    resume: bool = resumable(False)
    seed: int = 0
    device: str = resumable("auto")
    precision: str = resumable("auto")
    workers: int = resumable(0)
    log_every: int = resumable(50)
    vgg_weights: str | None = resumable(None)
    compile: bool = resumable(False)
    init_from: str | None = None  # fine-tune from this model file (same task and architecture)
    lr_schedule: str = "constant"  # or "cosine": lr * (1 + cos(pi * step / iters)) / 2 (see step_lr)
    notes: str | None = resumable(None)  # what was tried and why these settings: written to the card

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else Path(self.output).with_suffix(".ckpt")

    @classmethod
    def resumable_fields(cls) -> set[str]:
        return {f.name for f in fields(cls) if f.metadata.get("resumable")}

    def validate(self) -> None:
        """UserError (one line) for any value that cannot train, before anything is written.

        Subclasses extend it with their task's checks. The output must be a writable
        ``.safetensors`` path that is none of the run's inputs.
        """
        for name in ("iters", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise UserError(f"--lr must be a number >= 0, not {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.workers < 0:
            raise UserError(f"--workers must be 0 or more, not {self.workers}")
        out = Path(self.output)
        if out.suffix != ".safetensors":
            raise UserError(f"{out}: a model file is written as .safetensors; "
                            f"name it {out.with_suffix('.safetensors')}")
        if out.is_dir():
            raise UserError(f"{out}: is a folder; give the model file's name")
        refuse_overwriting_inputs(out, self.input_files())
        ckpt = self.ckpt_dir
        _refuse_shipped_folder(out, f"{out}: is in the installed package's model folder; "
                                    "write the trained model elsewhere")
        _refuse_shipped_folder(ckpt, f"{ckpt}: is in the installed package's model folder; "
                                     "pass another --checkpoint-dir or output")
        _check_writable(out.parent, f"{out}: cannot write the model there")
        if ckpt.exists() and not ckpt.is_dir():
            raise UserError(f"{ckpt}: checkpoint folder is a file; pass another --checkpoint-dir")
        _check_writable(ckpt if ckpt.is_dir() else ckpt.parent, f"{ckpt}: cannot write checkpoints there")

    def input_files(self) -> list[Path]:
        """The files this run reads, which its output must not replace (subclasses add theirs).

        ``init_from`` is resolved as loading resolves it: ``--init-from mosaic`` is the shipped
        mosaic's file, whatever the text says.
        """
        from ..models import resolve_model_path

        files = [resolve_model_path(self.init_from)] if self.init_from else []
        if self.vgg_weights and Path(self.vgg_weights).is_file():
            files.append(Path(self.vgg_weights))
        return files


def _refuse_shipped_folder(path: Path, message: str) -> None:
    """UserError if ``path`` (links resolved) lies in the installed package's model folder: the
    shipped models are the package's, and a training run must never replace or add to them."""
    from .. import models  # looked up at call time: tests point shipped_dir at a copy

    if path.resolve().is_relative_to(models.shipped_dir().resolve()):
        raise UserError(message)


def _check_writable(folder: Path, what: str) -> None:
    """UserError unless files can be created in ``folder`` (or, if it is missing, where it would be made)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:  # really create a file: permission bits say nothing for root, read-only mounts or /proc
        if not existing.is_dir():
            raise NotADirectoryError
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise UserError(f"{what} ({existing} is not a writable folder)") from None


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (a style image's identity across resumes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(root: str | os.PathLike, files: Sequence[Path]) -> str:
    """sha256 of a training set's file list (paths relative to ``root`` and sizes): its identity."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{Path(f).relative_to(root) if Path(root).is_dir() else f.name}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()


def dataset_record(root: str | os.PathLike, files: Sequence[Path]) -> dict[str, Any]:
    """How a card names a training set: the folder's base name, its file count and
    :func:`files_digest` (the identity ``--resume`` checks), never a path of the training machine."""
    return {"name": Path(root).resolve().name or "root", "files": len(files), "sha256": files_digest(root, files)}


@dataclass
class TrainingSetup:
    """What one task's run trains: the network, the samples, the loss of a batch, the card so far."""

    model: nn.Module
    samples: torch.utils.data.Dataset
    loss: Callable[[nn.Module, Any], dict[str, torch.Tensor]]
    card: dict[str, Any]
    frozen: list[nn.Module] = field(default_factory=list)  # moved to device/dtype with the model
    init_card: dict[str, Any] | None = None  # the --init-from model's card: the new card's history
    # What the run learns from, by content (style image hash, training file list digest):
    # --resume refuses a run whose inputs changed even where their paths did not.
    identity: dict[str, str] = field(default_factory=dict)
    # Card keys of the task's hyperparameters kept per stage in the card's history (Task.stage_keys).
    stage_keys: tuple[str, ...] = ()


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops after the current step."""

    def __init__(self) -> None:
        self.raised: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.raised = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class CsvLog:
    """``losses.csv`` in the checkpoint folder: one row per logged step, truncated on resume."""

    def __init__(self, path: Path, columns: list[str], resume_step: int) -> None:
        self.path, self.columns = path, columns
        rows = []
        if resume_step and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """``(rank, world, device)``; joins the process group when started by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist

    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def run(task: TrainingSetup, cfg: RunConfig) -> LoadedModel:
    """Train ``task.model`` for ``cfg.iters`` steps while holding the checkpoint folder's lock."""
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # process 0 alone writes to the folder
        return _run(task, cfg)
    with FolderLock(cfg.ckpt_dir):
        return _run(task, cfg)


def _run(task: TrainingSetup, cfg: RunConfig) -> LoadedModel:
    """Train ``task.model`` for ``cfg.iters`` steps; returns the trained model (fp32, eval) with its card.

    Under ``torchrun`` every process trains on its own ``cfg.batch_size`` share of each step
    (the global batch is ``world * batch_size``) with averaged gradients; process 0 writes the
    checkpoints, the log and the model.
    """
    precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
    rank, world, device = _distributed(resolve_device(cfg.device))
    main = rank == 0
    if device.type == "cuda":
        # Every step has the same input shapes: let cuDNN pick the fastest convolution once.
        torch.backends.cudnn.benchmark = True
    model = task.model.to(device).to(memory_format=torch.channels_last)
    # The frozen loss network is held in the compute dtype: autocast would otherwise copy its
    # weights to bf16 on every call.
    for m in task.frozen:
        m.to(device=device, dtype=compute_dtype(precision)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    ckpt_dir = cfg.ckpt_dir
    step = 0
    found = None
    if cfg.resume:
        found = load_latest_checkpoint(ckpt_dir)
        if found is None:
            log.warning("--resume: no checkpoint in %s, starting from step 0", ckpt_dir)
        else:
            _check_same_run(found[1]["config"], {**asdict(cfg), "world": world}, cfg.resumable_fields(), ckpt_dir)
            _check_same_inputs(found[1]["config"].get("identity", {}), task.identity, ckpt_dir)
            step = restore(*found, model, optimizer)
            log.info("resumed from step %d (%s)", step, ckpt_dir)
    elif list(ckpt_dir.glob("step-*.safetensors")):
        raise UserError(f"{ckpt_dir}: checkpoints from an earlier run exist; pass --resume to continue it "
                        "or remove the folder to start over")
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    config = {**asdict(cfg), "world": world, "identity": task.identity}  # the process count fixes the data order
    extra = found[1]["extra"] if cfg.resume and found else {}
    train_seconds = float(extra.get("train_seconds", 0.0))
    # Where the steps ran, across resumptions (a model exported from a checkpoint names the
    # machines that trained it, not the one that exported it).
    devices: list[str] = list(extra.get("devices", []))
    here = _device_name(device)
    if step < cfg.iters and here not in devices:  # this process trains steps
        devices.append(here)
    # With --iters at or below the checkpoint's step nothing is trained: the model file is
    # written from the checkpoint (how a snapshot of a running job is exported).
    last: dict[str, float] = dict(extra.get("last_losses", {}))

    loader = DataLoader(task.samples, batch_size=cfg.batch_size,
                        sampler=SampleRange(step, cfg.iters, cfg.batch_size, rank, world),
                        num_workers=cfg.workers, drop_last=True, persistent_workers=False)
    columns = ["step", "total", *task.card.get("loss_terms", []), "lr", "seconds"]
    csv_log = CsvLog(ckpt_dir / "losses.csv", columns, step) if main else None
    bar = tqdm(total=cfg.iters, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=not (main and sys.stderr.isatty()), file=sys.stderr)
    loss_fn = task.loss
    if cfg.compile:
        # Fuses the elementwise work around the convolutions (norms, ReLUs, padding, Gram
        # products) in both passes: 1.33x per step in bf16 on a 2-core AVX512-BF16 CPU
        # (benchmarks/train_step.py). The first steps pay for compilation.
        loss_fn = torch.compile(task.loss)
    model.train()
    t_last = time.perf_counter()
    logged = (step, train_seconds)  # the log line's rate is over the steps since the last line
    with _StopFlag() as stop:
        for batch in loader:
            batch = _to_device(batch, device)
            with autocast(device, precision):
                terms = loss_fn(net, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["total"]).backward()
            lr_now = step_lr(cfg.lr, cfg.lr_schedule, step, cfg.iters)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
            scaler.step(optimizer)
            scaler.update()
            step += 1
            now = time.perf_counter()
            train_seconds += now - t_last
            t_last = now
            last = {k: float(v.detach()) for k, v in terms.items()}
            if not math.isfinite(last["total"]):
                raise RuntimeError(f"loss became {last['total']} at step {step}; lower --lr or the weights")
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in last.items()}, refresh=False)
            if csv_log and (step % cfg.log_every == 0 or step == cfg.iters):
                csv_log.append({"step": step, **{k: f"{v:.6g}" for k, v in last.items()},
                                "lr": f"{lr_now:.6g}", "seconds": f"{train_seconds:.1f}"})
                if bar.disable:
                    rate = (train_seconds - logged[1]) / max(step - logged[0], 1)
                    logged = (step, train_seconds)
                    log.info("step %d/%d %s %.2f s/step, %s left", step, cfg.iters,
                             " ".join(f"{k}={v:.4g}" for k, v in last.items()), rate,
                             _dt.timedelta(seconds=round(rate * (cfg.iters - step))))
            stopping = _any_process(stop.raised is not None, world, device)
            if main and (step % cfg.checkpoint_every == 0 or step == cfg.iters or stopping):
                save_checkpoint(ckpt_dir, step, model, optimizer, config,
                                {"train_seconds": train_seconds, "last_losses": last, "devices": devices})
            if stopping:
                bar.close()
                raise Interrupted(f"stopped at step {step}; checkpoint saved in {ckpt_dir}, rerun with --resume",
                                  signum=stop.raised or signal.SIGINT)
    bar.close()
    model.eval()
    card = {**task.card, "iterations": step, "batch_size": cfg.batch_size * world, "processes": world, "lr": cfg.lr,
            **({"lr_schedule": cfg.lr_schedule} if cfg.lr_schedule != "constant" else {}),
            "seed": cfg.seed, "train_seconds": round(train_seconds, 1), "device": " + ".join(devices) or here,
            "precision": precision,
            "final_losses": {k: round(v, 6) for k, v in last.items()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "version": __version__}
    card.pop("loss_terms", None)
    if cfg.notes:
        card["notes"] = cfg.notes
    card = _with_history(card, task.init_card, task.stage_keys)
    if main:
        save_model(model.to(memory_format=torch.contiguous_format), cfg.output, card)
    if world > 1:
        torch.distributed.barrier()
    return LoadedModel(model, card, Path(cfg.output).stem)


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], resumable: set[str], ckpt_dir: Path) -> None:
    changed = [k for k in current if k not in resumable and k in saved
               and _comparable(saved[k]) != _comparable(current[k])]
    if changed:
        detail = ", ".join(f"{k} {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise UserError(f"{ckpt_dir}: --resume with different settings ({detail}); use the original flags "
                        "or a new output")


def _check_same_inputs(saved: dict[str, str], current: dict[str, str], ckpt_dir: Path) -> None:
    changed = [k for k in current if k in saved and saved[k] != current[k]]
    if changed:
        detail = ", ".join(f"{k.replace('_', ' ')} {saved[k][:12]}… -> {current[k][:12]}…" for k in changed)
        raise UserError(f"{ckpt_dir}: --resume with different inputs ({detail}); the checkpoints were trained on "
                        "other data: use the original files or a new output")


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def _any_process(flag: bool, world: int, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (so all stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item())


def _to_device(batch, device: torch.device):
    """A tensor or a tuple of tensors (SR pairs, images and labels), moved to ``device``; images in channels_last."""
    if isinstance(batch, (tuple, list)):
        return tuple(_to_device(b, device) for b in batch)
    batch = batch.to(device, non_blocking=True)
    return batch.to(memory_format=torch.channels_last) if batch.dim() == 4 else batch


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def initial_model(cfg: RunConfig, task: str, build: Callable[[], nn.Module]) -> tuple[nn.Module, dict | None]:
    """``(network, source card)``: a fresh network from ``build`` (no card), or the ``--init-from``
    model's network and card (its architecture wins; its card becomes the new card's history)."""
    if not cfg.init_from:
        return build(), None
    loaded = load_model(cfg.init_from)
    if loaded.card.get("task") != task:
        raise UserError(f"{cfg.init_from}: --init-from needs a {task} model, not a {loaded.card.get('task')} model")
    return loaded.net.train(), loaded.card


def source_reference(init_from: str | None) -> dict[str, str | None]:
    """How a card names the model a run started from: a shipped model's name, or a model file's
    name and the sha256 of its bytes (never a path of the training machine)."""
    if not init_from:
        return {"init_from": None}
    from ..models import resolve_model_path, shipped_dir

    path = resolve_model_path(init_from)
    if path.parent == shipped_dir():
        return {"init_from": path.stem}
    return {"init_from": path.name, "init_from_sha256": file_digest(path)}


# What a card's ``stages`` entry keeps of every run, whatever the task (each task adds its
# hyperparameters, ``Task.stage_keys``): enough to tell how the weights were made.
RUN_STAGE_KEYS = ("init_from", "init_from_sha256", "iterations", "train_seconds", "batch_size", "lr", "lr_schedule",
                  "seed", "device", "precision", "final_losses", "notes", "created")


def _with_history(card: dict[str, Any], init_card: dict[str, Any] | None,
                  task_stage_keys: tuple[str, ...]) -> dict[str, Any]:
    """``card`` with ``stages``: one entry per run that shaped the weights, oldest first.

    A model fine-tuned with ``--init-from`` has been trained for its own steps *and* its
    source's, so ``iterations`` and ``train_seconds`` count the whole chain (a long training
    continued across machines, or x4 l_feat started from x4 l_pixel); ``stages`` splits them.
    """
    keys = (*RUN_STAGE_KEYS, *task_stage_keys)
    stage = {k: card[k] for k in keys if k in card}
    if not init_card:
        return {**card, "stages": [stage]}
    earlier = init_card.get("stages") or [{k: init_card[k] for k in keys if k in init_card}]
    # A stage without notes of its own keeps the source's: the card says why the weights are so.
    notes = card.get("notes") or init_card.get("notes")
    return {**card, **({"notes": notes} if notes else {}), "stages": [*earlier, stage],
            "iterations": sum(int(s.get("iterations", 0)) for s in [*earlier, stage]),
            "train_seconds": round(sum(float(s.get("train_seconds", 0.0)) for s in [*earlier, stage]), 1)}
