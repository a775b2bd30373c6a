"""Training: one loop for every task (style now, super-resolution on the same machinery).

The loop owns what all tasks share: Adam, mixed precision, channels_last, reproducible data
order, atomic checkpoints every N steps with exact ``--resume``, a CSV log of every loss term,
a progress bar, a clean stop on SIGINT/SIGTERM, and the model card.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import __version__
from .checkpoint import FolderLock, load_latest_checkpoint, restore, save_checkpoint
from .data import RandomCrops, SampleRange, scan_image_files, sr_pair
from .device import autocast, compute_dtype, resolve_device, resolve_precision
from .errors import UserError
from .images import load_image
from .losses import (STYLE_SIZE, ObjectiveWeights, StyleObjective, feature_reconstruction_loss, pixel_loss,
                     total_variation_loss)
from .models import load_model, save_model
from .nets.sr import SRNet, SRNetConfig
from .nets.style import StyleNet, StyleNetConfig
from .vgg import VGG16Features
from .weights import resolve_vgg16

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """What every training run needs, whatever the task."""

    data: str
    output: str
    iters: int = 40000
    batch_size: int = 4
    lr: float = 1e-3
    checkpoint_every: int = 500
    checkpoint_dir: str | None = None
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    workers: int = 0
    log_every: int = 50
    vgg_weights: str | None = None
    compile: bool = False
    init_from: str | None = None  # fine-tune from this model file (same task and architecture)
    notes: str | None = None  # what was tried and why these settings: written to the card

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else Path(self.output).with_suffix(".ckpt")


@dataclass
class StyleConfig(RunConfig):
    """``fastpercept train style``: the paper's objective, SPEC's flag names."""

    style_image: str = ""
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


@dataclass
class SRConfig(RunConfig):
    """``fastpercept train sr``: l_feat (relu2_2 + TV, the paper) or l_pixel (the baseline)."""

    scale: int = 4
    loss: str = "feat"
    patch_size: int = 288
    blur_sigma: float = 1.0
    content_layer: str = "relu2_2"
    content_weight: float = 1.0
    tv_weight: float = 1e-6
    upsample: str = SRNetConfig.upsample  # the architecture's defaults live in SRNetConfig
    norm: str = SRNetConfig.norm
    skip: str = SRNetConfig.skip
    # The 9x9 last layer sums 5,184 inputs into each pixel: at Adam's 1e-3 one step moves the
    # output by whole intensity levels and the bicubic-skip network thrashes around bicubic
    # (measured: +0.00 dB PSNR after 1,000 steps at 1e-3 and 300 at 3e-4; +0.24 dB after 300 at 1e-4).
    lr: float = 1e-4


@dataclass
class Task:
    """What differs between tasks: the network, the samples and the loss of a batch."""

    model: nn.Module
    samples: torch.utils.data.Dataset
    loss: Callable[[nn.Module, Any], dict[str, torch.Tensor]]
    card: dict[str, Any]
    frozen: list[nn.Module] = field(default_factory=list)  # moved to device/dtype with the model


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


def run(task: Task, cfg: RunConfig) -> nn.Module:
    """Train ``task.model`` for ``cfg.iters`` steps while holding the checkpoint folder's lock."""
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # process 0 alone writes to the folder
        return _run(task, cfg)
    with FolderLock(cfg.ckpt_dir):
        return _run(task, cfg)


def _run(task: Task, cfg: RunConfig) -> nn.Module:
    """Train ``task.model`` for ``cfg.iters`` steps; returns the trained model (fp32, eval).

    Under ``torchrun`` every process trains on its own ``cfg.batch_size`` share of each step
    (the global batch is ``world * batch_size``) with averaged gradients; process 0 writes the
    checkpoints, the log and the model.
    """
    precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
    rank, world, device = _distributed(resolve_device(cfg.device))
    main = rank == 0
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
            _check_same_run(found[1]["config"], {**asdict(cfg), "world": world}, ckpt_dir)
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
    config = {**asdict(cfg), "world": world}  # the process count fixes the data order too
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
                                "lr": cfg.lr, "seconds": f"{train_seconds:.1f}"})
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
                raise UserError(f"stopped at step {step}; checkpoint saved in {ckpt_dir}, rerun with --resume")
    bar.close()
    model.eval()
    card = {**task.card, "iterations": step, "batch_size": cfg.batch_size * world, "processes": world, "lr": cfg.lr,
            "seed": cfg.seed, "train_seconds": round(train_seconds, 1), "device": " + ".join(devices) or here,
            "precision": precision,
            "final_losses": {k: round(v, 6) for k, v in last.items()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "version": __version__}
    card.pop("loss_terms", None)
    if cfg.notes:
        card["notes"] = cfg.notes
    # Only an --init-from model has a card yet (load_model's): the run's source, for the history.
    card = _with_history(card, getattr(task.model, "card", None))
    if main:
        save_model(model.to(memory_format=torch.contiguous_format), cfg.output, card)
    if world > 1:
        torch.distributed.barrier()
    model.card = card
    return model


# Flags that may change between a run and its resumption; any other change would silently
# mix two different trainings in one model.
_RESUMABLE_CHANGES = {"iters", "resume", "checkpoint_every", "checkpoint_dir", "log_every", "workers", "device",
                      "precision", "compile", "output", "data", "vgg_weights", "style_image", "notes"}


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], ckpt_dir: Path) -> None:
    changed = [k for k in current if k not in _RESUMABLE_CHANGES and k in saved
               and _comparable(saved[k]) != _comparable(current[k])]
    if changed:
        detail = ", ".join(f"{k} {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise UserError(f"{ckpt_dir}: --resume with different settings ({detail}); use the original flags "
                        "or a new output")


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
    """A tensor or a tuple of tensors (SR pairs), moved to ``device`` in channels_last."""
    if isinstance(batch, (tuple, list)):
        return tuple(_to_device(b, device) for b in batch)
    return batch.to(device, non_blocking=True).to(memory_format=torch.channels_last)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _initial_model(cfg: RunConfig, task: str, build: Callable[[], nn.Module]) -> nn.Module:
    """A fresh network from ``build``, or the ``--init-from`` model (its architecture wins;
    its ``.card`` becomes the new card's history)."""
    if not cfg.init_from:
        return build()
    model = load_model(cfg.init_from)
    if model.card.get("task") != task:
        raise UserError(f"{cfg.init_from}: --init-from needs a {task} model, not a {model.card.get('task')} model")
    return model.train()


# What a card's ``stages`` entry keeps of each run: enough to tell how the weights were made.
_STAGE_KEYS = ("init_from", "iterations", "train_seconds", "batch_size", "lr", "seed", "device", "precision",
               "loss", "patch_size", "blur_sigma", "content_weight", "style_weight", "tv_weight", "style_size",
               "image_size", "final_losses", "notes", "created")


def _with_history(card: dict[str, Any], init_card: dict[str, Any] | None) -> dict[str, Any]:
    """``card`` with ``stages``: one entry per run that shaped the weights, oldest first.

    A model fine-tuned with ``--init-from`` has been trained for its own steps *and* its
    source's, so ``iterations`` and ``train_seconds`` count the whole chain (a long training
    continued across machines, or x4 l_feat started from x4 l_pixel); ``stages`` splits them.
    """
    stage = {k: card[k] for k in _STAGE_KEYS if k in card}
    if not init_card:
        return {**card, "stages": [stage]}
    earlier = init_card.get("stages") or [{k: init_card[k] for k in _STAGE_KEYS if k in init_card}]
    # A stage without notes of its own keeps the source's: the card says why the weights are so.
    notes = card.get("notes") or init_card.get("notes")
    return {**card, **({"notes": notes} if notes else {}), "stages": [*earlier, stage],
            "iterations": sum(int(s.get("iterations", 0)) for s in [*earlier, stage]),
            "train_seconds": round(sum(float(s.get("train_seconds", 0.0)) for s in [*earlier, stage]), 1)}


def style_task(cfg: StyleConfig) -> Task:
    """The style-transfer task: :class:`StyleNet` under the paper's objective for one style."""
    if not cfg.style_image:
        raise UserError("--style-image is required")
    weights = resolve_vgg16(cfg.vgg_weights)
    vgg = VGG16Features(weights)
    style = load_image(cfg.style_image, max_size=cfg.style_size).rgb
    objective = StyleObjective(vgg, style, ObjectiveWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight,
                                                            cfg.content_layer, tuple(cfg.style_layers)))
    files, skipped = scan_image_files(cfg.data)
    if skipped:
        log.warning("%s: skipped %d unreadable image(s)", cfg.data, skipped)
    torch.manual_seed(cfg.seed)
    model = _initial_model(cfg, "style", lambda: StyleNet(StyleNetConfig(arch=cfg.arch, norm=cfg.norm,
                                                                         upsample=cfg.upsample)))
    net_config = model.config

    def loss(net: nn.Module, content: torch.Tensor) -> dict[str, torch.Tensor]:
        target = objective.content_features(content)
        return objective(net(content), target)

    card = {
        "task": "style", **net_config.to_dict(),
        "content_layer": cfg.content_layer, "style_layers": list(cfg.style_layers),
        "content_weight": cfg.content_weight, "style_weight": cfg.style_weight, "tv_weight": cfg.tv_weight,
        "style_image": Path(cfg.style_image).name, "style_size": cfg.style_size, "image_size": cfg.image_size,
        "dataset": f"{cfg.data} ({len(files)} images)", "vgg_sha256": weights.sha256,
        "init_from": cfg.init_from, "loss_terms": ["content", "style", "tv"],
    }
    return Task(model=model, samples=RandomCrops(files, cfg.image_size, cfg.seed), loss=loss, card=card,
                frozen=[vgg])


def train_style(cfg: StyleConfig) -> nn.Module:
    """``fastpercept train style``: returns the trained :class:`StyleNet` (also written to ``cfg.output``)."""
    # The style targets were computed in fp32 at construction; only the network's side runs in
    # the training precision.
    return run(style_task(cfg), cfg)


def sr_task(cfg: SRConfig) -> Task:
    """The super-resolution task: :class:`SRNet` under l_feat (+ TV) or l_pixel."""
    if cfg.loss not in ("feat", "pixel"):
        raise UserError(f"--loss must be feat or pixel, not {cfg.loss!r}")
    if cfg.scale not in (2, 4, 8):
        raise UserError(f"--scale must be 4 or 8 (or 2), not {cfg.scale}")
    if cfg.patch_size % cfg.scale:
        raise UserError(f"--patch-size {cfg.patch_size} is not a multiple of the scale {cfg.scale}")
    try:
        files, skipped = scan_image_files(cfg.data, min_side=cfg.patch_size)
    except UserError as e:
        raise UserError(f"{e} (lower --patch-size)") from None
    if skipped:
        log.warning("%s: skipped %d image(s) unreadable or smaller than the %d px patch", cfg.data, skipped,
                    cfg.patch_size)
    torch.manual_seed(cfg.seed)
    model = _initial_model(cfg, "sr", lambda: SRNet(SRNetConfig(scale=cfg.scale, upsample=cfg.upsample,
                                                                norm=cfg.norm, skip=cfg.skip)))
    net_config = model.config
    if net_config.scale != cfg.scale:
        raise UserError(f"{cfg.init_from}: an x{net_config.scale} model, not x{cfg.scale}")
    card: dict[str, Any] = {
        "task": "sr", "arch": "srnet", **net_config.to_dict(), "loss": cfg.loss, "patch_size": cfg.patch_size,
        "blur_sigma": cfg.blur_sigma, "dataset": f"{cfg.data} ({len(files)} images)", "init_from": cfg.init_from,
    }
    frozen: list[nn.Module] = []
    if cfg.loss == "feat":
        weights = resolve_vgg16(cfg.vgg_weights)
        vgg = VGG16Features(weights)
        frozen.append(vgg)
        layer = cfg.content_layer
        card.update(content_layer=layer, content_weight=cfg.content_weight, tv_weight=cfg.tv_weight,
                    vgg_sha256=weights.sha256, loss_terms=["feat", "tv"])

        def loss(net: nn.Module, pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = pair
            with torch.no_grad():
                target = vgg(hr, (layer,))[layer]
            sr = net(lr)
            feat = feature_reconstruction_loss(vgg(sr, (layer,))[layer], target)
            tv = total_variation_loss(sr)
            return {"feat": feat, "tv": tv, "total": cfg.content_weight * feat + cfg.tv_weight * tv}
    else:
        card["loss_terms"] = ["pixel"]

        def loss(net: nn.Module, pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = pair
            pixel = pixel_loss(net(lr), hr)
            return {"pixel": pixel, "total": pixel}

    samples = RandomCrops(files, cfg.patch_size, cfg.seed, transform=sr_pair(cfg.patch_size, cfg.scale, cfg.blur_sigma))
    return Task(model=model, samples=samples, loss=loss, card=card, frozen=frozen)


def train_sr(cfg: SRConfig) -> nn.Module:
    """``fastpercept train sr``: returns the trained :class:`SRNet` (also written to ``cfg.output``)."""
    return run(sr_task(cfg), cfg)
