#!/usr/bin/env python3
"""A GPU campaign: retrain every shipped model, and four new styles, within one 10-minute command.

Here (with ../shared/data and the VGG-16/LPIPS weights in the cache), build the folder that travels:

    .venv/bin/python scripts/gpu_campaign.py pack          # -> .campaign/ (ignored by git), sizes printed

On a machine with a CUDA GPU, from the repository root, carrying [".campaign"]:

    python3 scripts/gpu_campaign.py run --minutes 8.5 --out $OUT
    # the style-artifact recipe: the blobby styles from their shipped models, 1e-4, 4,000 steps
    python3 scripts/gpu_campaign.py run --minutes 8.5 --out $OUT --finish --iters 4000 \
        --models composition_vii,udnie,the_scream,wave_crop

`run` starts every training of the catalogue below at once, as subprocesses on the one GPU
(style: 40,000 iterations at batch 4, 256 px crops, bf16; SR: the shipped cards' flags and an
iteration target that is never reached), checkpointing every 1,000 steps. At the deadline
(--minutes less --reserve seconds) each training still running gets one SIGTERM: the trainer
saves a checkpoint and exits 143 ("interrupted: stopped at step N"). Each model is then written from its newest
checkpoint (`train ... --resume --iters STEP`: nothing is trained, the model file comes from the
checkpoint) and evaluated: `eval style` on the 20 held-out photos (network only) and `eval sr`
on Set5 and Set14. --out receives summary.json (per model: iterations, seconds, s/step, final
losses, eval means, failures), campaign.log, models-N.tar (the fp16 model files, <= 15 MiB each)
and logs.tar.gz (training logs, losses.csv, eval JSON): at most 8 files, each under 16 MiB.
Checkpoints stay in --work (a temporary folder by default). One failing training does not stop
the others; its failure is in the summary.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the GPU machine runs the package from the tree, not installed

DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_PACK = REPO / ".campaign"

# 20 imagenet1k photos never trained on, for `eval style`: random.Random(17).sample(sorted names, 20).
HELDOUT = (
    "n01631663_eft.JPEG", "n01943899_conch.JPEG", "n02092339_Weimaraner.JPEG", "n02110958_pug.JPEG",
    "n02123597_Siamese_cat.JPEG", "n02134084_ice_bear.JPEG", "n02219486_ant.JPEG", "n02488291_langur.JPEG",
    "n02607072_anemone_fish.JPEG", "n02791270_barbershop.JPEG", "n03207941_dishwasher.JPEG",
    "n03337140_file.JPEG", "n03804744_nail.JPEG", "n03938244_pillow.JPEG", "n03942813_ping-pong_ball.JPEG",
    "n04154565_screwdriver.JPEG", "n04328186_stopwatch.JPEG", "n04350905_suit.JPEG",
    "n07716358_zucchini.JPEG", "n10565667_scuba_diver.JPEG",
)
BENCH_SETS = ("Set5", "Set14")


@dataclass(frozen=True)
class Style:
    image: str
    weight: float
    why: str
    size: int = 512  # --style-size: longest side, never enlarged (mosaic.jpg stays at its 470 px)


# Style weights: chosen with `fastpercept optimize --content chicago.jpg --style X --size 256 --iters 100
# --style-weight W` (L-BFGS from noise, one thread), W in {2, 5, 10}, outputs looked at side by side.
STYLES = {
    "mosaic": Style("mosaic.jpg", 2.0, "shipped card: 5 erased the skyline, 1 kept it; 2 trained"),
    "starry_night_crop": Style("starry_night_crop.jpg", 5.0, "shipped card: van Gogh's strokes, skyline clear"),
    "the_scream": Style("the_scream.jpg", 10.0, "2 and 5 gave fainter sky swirls; 10 gives Munch's orange swirls "
                                                "across the sky with every tower still clear"),
    "wave_crop": Style("wave_crop.jpg", 5.0, "2 already takes Hokusai's palette and curls; 5 adds the foam "
                                              "texture with the towers readable; 10 breaks the skyline up"),
    "composition_vii": Style("composition_vii.jpg", 2.0, "2 already covers the sky in Kandinsky's colours "
                                                          "and shapes with the skyline clear; 5 dissolves the "
                                                          "lower buildings"),
    "udnie": Style("udnie.jpg", 5.0, "only 5 was looked at (time): Picabia's grey planes and curved facets "
                                     "over the sky, towers intact"),
}
# Issue 17(a): does starting from another style's network help? Same flags as the_scream, trained
# side by side, so the eval JSON compares the two at equal wall time.
INIT_FROM = {"the_scream-from-mosaic": ("the_scream", "mosaic")}
# Issue 14: half-width networks (--arch half) for real-time video, on their full-width style's flags.
HALF = {"mosaic-half": "mosaic"}


def base_style(name: str) -> str:
    """The STYLES entry whose image and weight a model's job uses."""
    return INIT_FROM[name][0] if name in INIT_FROM else HALF.get(name, name)


# The shipped SR cards' flags. Their batch sizes are kept: ten trainings share the GPU, so a larger
# batch would not buy throughput, and the models stay comparable with the shipped ones.
SR_COMMON = ["--skip", "bicubic", "--norm", "batch", "--blur-sigma", "0", "--lr", "1e-4"]
SR = {
    "x4": ["--scale", "4", "--loss", "feat", "--patch-size", "96", "--batch-size", "8", "--tv-weight", "1e-5",
           "--upsample", "nearest", *SR_COMMON],
    "x4-pixel": ["--scale", "4", "--loss", "pixel", "--patch-size", "64", "--batch-size", "16",
                 "--upsample", "deconv", *SR_COMMON],
    "x8": ["--scale", "8", "--loss", "feat", "--patch-size", "128", "--batch-size", "8", "--tv-weight", "1e-5",
           "--upsample", "nearest", *SR_COMMON],
}
ALL_MODELS = (*STYLES, *INIT_FROM, *HALF, *SR)
# --finish: blobs (flat white/black discs) grow while a style trains at 1e-3 and go in a long stage
# at 1e-4 (docs/style-artifacts.md: 600 steps took starry_night_crop from 14 to 2, 1,500 to 0).
FINISH_LR = 1e-4


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def travelling_repo_size() -> int:
    """Bytes of what the device tool copies besides carried folders: tracked and untracked-not-ignored files."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: nothing to add
        return 0
    return sum((REPO / p).stat().st_size for p in set(out.decode().split("\0")) if p and (REPO / p).is_file())


# ---------------------------------------------------------------------------------------------- pack

def save_jpeg(src: Path, dst: Path, quality: int, shorter: int | None = None) -> None:
    from PIL import Image, ImageOps

    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if shorter and min(im.size) > shorter:  # only ever reduced
            s = shorter / min(im.size)
            im = im.resize((max(shorter, round(im.width * s)), max(shorter, round(im.height * s))),
                           Image.Resampling.LANCZOS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        im.save(dst, "JPEG", quality=quality)


def cmd_pack(a: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import save_file

    from fastpercept.training.losses import ObjectiveWeights
    from fastpercept.models import shipped_models
    from fastpercept.training.vgg import VGG16_LAYERS
    from fastpercept.training.weights import resolve_lpips, resolve_vgg16, save_vgg16_prefix

    data, dest = Path(a.data), Path(a.dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    limit = a.limit or None

    # The loss network up to the deepest layer any shipped card or this campaign uses.
    layers = set(ObjectiveWeights.style_layers) | {ObjectiveWeights.content_layer}
    for m in shipped_models():
        layers |= set(m["card"].get("style_layers") or []) | {m["card"].get("content_layer") or "relu1_1"}
    convs = max(VGG16_LAYERS.index(name) for name in layers) + 1
    vgg = resolve_vgg16(a.vgg_weights)
    save_vgg16_prefix(vgg, tmp / "vgg16.safetensors", convs, torch.bfloat16)
    # LPIPS (eval sr) is read from $FASTPERCEPT_CACHE: AlexNet in fp16 halves it (a metric, not a loss).
    backbone, lin, _ = resolve_lpips("alex")
    (tmp / "cache").mkdir()
    save_file({k: v.half().contiguous() for k, v in backbone.items()}, str(tmp / "cache" / "alexnet.safetensors"))
    save_file({k: v.contiguous() for k, v in lin.items()}, str(tmp / "cache" / "lpips_alex.safetensors"))

    (tmp / "styles").mkdir()
    for s in STYLES.values():
        shutil.copy2(data / "styles" / s.image, tmp / "styles" / s.image)
    # SR (and style) training: T91 + BSD200 at full resolution.
    sr_files = [p for sub in ("t91", "bsd200") for p in sorted((data / "train" / sub).iterdir())[:limit]]
    for p in sr_files:
        save_jpeg(p, tmp / "train" / "sr" / p.parent.name / (p.stem + ".jpg"), a.sr_quality)
    # More content for style training: imagenet1k less the held-out photos, shorter side 320 (style
    # training resizes it to U[256, 320] before its 256 crop, so nothing it would see is lost).
    inet = sorted(p for p in (data / "train" / "imagenet1k").iterdir() if p.name not in HELDOUT)
    chosen = sorted(random.Random(0).sample(inet, min(a.imagenet, len(inet))))[:limit]
    for p in chosen:
        save_jpeg(p, tmp / "train" / "imagenet" / (p.stem + ".jpg"), a.imagenet_quality, shorter=320)
    (tmp / "heldout").mkdir()
    for name in HELDOUT[:limit]:
        shutil.copy2(data / "train" / "imagenet1k" / name, tmp / "heldout" / name)
    for bench in BENCH_SETS:
        for sub in ("HR", "LR_x4"):
            (tmp / "bench" / bench / sub).mkdir(parents=True)
            for p in sorted((data / "bench" / bench / sub).iterdir())[:limit]:
                shutil.copy2(p, tmp / "bench" / bench / sub / p.name)

    sizes = {p.name: folder_size(p) if p.is_dir() else p.stat().st_size for p in sorted(tmp.iterdir())}
    manifest = {"vgg16": {"convs": convs, "deepest": VGG16_LAYERS[convs - 1], "dtype": "bfloat16",
                          "source_sha256": vgg.sha256},
                "sr_images": len(sr_files), "sr_quality": a.sr_quality, "imagenet_images": len(chosen),
                "imagenet_quality": a.imagenet_quality, "heldout": list(HELDOUT[:limit]), "sizes": sizes}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)

    for name, n in sizes.items():
        print(f"  {name:<20} {mib(n):>10}")
    pack, repo = folder_size(dest), travelling_repo_size()
    print(f"{dest}: {mib(pack)} ({len(sr_files)} SR images, {len(chosen)} imagenet, vgg16 to "
          f"{VGG16_LAYERS[convs - 1]} in bf16); with the repo ({mib(repo)}): {mib(pack + repo)} of 64 MiB")
    if pack + repo > a.budget_mib * 2**20:
        print(f"warning: over the {a.budget_mib} MiB budget; lower --imagenet", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------- run

@dataclass
class Job:
    name: str
    task: str  # style | sr
    flags: list[str]  # the task's own training flags
    notes: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)


class Campaign:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.pack = Path(a.pack).resolve()
        self.out = Path(a.out).resolve()
        self.work = Path(a.work).resolve() if a.work else Path(tempfile.mkdtemp(prefix="campaign-"))
        self.t0 = time.monotonic()
        self.end = self.t0 + a.minutes * 60
        self.stop_at = self.end - a.reserve
        path = [str(REPO / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(path),
                    "FASTPERCEPT_VGG16": str(self.pack / "vgg16.safetensors"),
                    "FASTPERCEPT_CACHE": str(self.pack / "cache"),
                    # Ten trainings and their loader workers share the CPUs: one thread each.
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.log_file = None

    def log(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.0f}s] {msg}"
        print(line, flush=True)
        if self.log_file:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def model_path(self, job: Job) -> Path:
        return self.work / "models" / f"{job.name}.safetensors"

    def ckpt_dir(self, job: Job) -> Path:
        return self.work / "ckpt" / job.name

    def train_argv(self, job: Job, iters: int, resume: bool = False) -> list[str]:
        a = self.a
        data = self.pack / "train" if job.task == "style" else self.pack / "train" / "sr"
        argv = [sys.executable, "-m", "fastpercept", "train", job.task, "--data", str(data),
                "-o", str(self.model_path(job)), "--checkpoint-dir", str(self.ckpt_dir(job)),
                "--iters", str(iters), "--checkpoint-every", str(a.checkpoint_every), "--workers", str(a.workers),
                "--device", a.device, "--precision", a.precision, "--notes", job.notes, *job.flags]
        return argv + ["--resume"] if resume else argv

    def jobs(self) -> list[Job]:
        a = self.a
        # --init NAME=FILE,...: continue an earlier campaign's model (relative files: in the pack).
        self.continued = {k: (self.pack / v if not Path(v).is_absolute() else Path(v))
                          for k, v in (item.split("=", 1) for item in (a.init.split(",") if a.init else []))}
        wanted = a.models.split(",") if a.models else list(ALL_MODELS)
        unknown = sorted(set(wanted) - set(ALL_MODELS))
        if unknown:
            raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(ALL_MODELS)}")
        campaign = f"GPU campaign (scripts/gpu_campaign.py), stopped by a {a.minutes} min deadline"
        jobs = []
        for name in wanted:
            if name in SR:
                jobs.append(Job(name, "sr", SR[name], f"{campaign} (target {a.sr_iters} iterations, never meant "
                                                      "to be reached); the shipped card's flags."))
                continue
            base, init = base_style(name), INIT_FROM.get(name, (None, None))[1]
            s = STYLES[base]
            flags = ["--style-image", str(self.pack / "styles" / s.image), "--style-weight", str(s.weight),
                     "--style-size", str(s.size), "--batch-size", "4", "--image-size", str(a.image_size)]
            notes = (f"{campaign} if {a.iters} iterations at batch 4 are not reached. "
                     f"Style weight {s.weight:g}: {s.why}.")
            if name in HALF:
                flags += ["--arch", "half"]
                notes += " Half width (--arch half) for real-time video (issue 14)."
            if init:
                flags += ["--init-from", init]
                notes += f" Started from {init} (issue 17a), trained side by side with {base} from scratch."
            if name in self.continued:  # a later campaign continuing an earlier one's model
                flags += ["--init-from", str(self.continued[name])]
                notes += f" Continued from {self.continued[name].name}, trained by an earlier campaign."
            elif a.finish and not init:
                flags += ["--init-from", name]
                notes += (" Finished from the shipped model at a low lr: the style-artifact recipe "
                          "(docs/style-artifacts.md).")
            lr = a.style_lr if a.style_lr is not None else FINISH_LR if a.finish else None
            if lr is not None:
                flags += ["--lr", f"{lr:g}"]
                notes += f" lr {lr:g}."
            jobs.append(Job(name, "style", flags, notes))
        return jobs

    # -- training ---------------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        iters = self.a.iters if job.task == "style" else self.a.sr_iters
        log = open(self.work / "logs" / f"train-{job.name}.log", "w")
        job.proc = subprocess.Popen(self.train_argv(job, iters), stdout=log, stderr=subprocess.STDOUT,
                                    env=self.env, cwd=REPO, start_new_session=True)
        job.started = time.monotonic()

    def progress(self, jobs: list[Job]) -> str:
        parts = []
        for job in jobs:
            step = last_csv_step(self.ckpt_dir(job) / "losses.csv")
            rc = job.proc.poll() if job.proc else None
            parts.append(f"{job.name} {step}" + (f" (rc {rc})" if rc is not None else ""))
        return " | ".join(parts)

    def train(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.start(job)
        self.log(f"started {len(jobs)} trainings; SIGTERM at {self.stop_at - self.t0:.0f}s")
        next_report = time.monotonic() + self.a.report_every
        while any(j.proc.poll() is None for j in jobs) and time.monotonic() < self.stop_at:
            time.sleep(1)
            self.note_exits(jobs)
            if time.monotonic() >= next_report:
                self.log(self.progress(jobs))
                next_report += self.a.report_every
        running = [j for j in jobs if j.proc.poll() is None]
        for job in running:
            job.proc.send_signal(signal.SIGTERM)  # once: a second signal stops without a checkpoint
        if running:
            self.log(f"deadline: SIGTERM to {', '.join(j.name for j in running)}")
        grace = time.monotonic() + self.a.grace
        while any(j.proc.poll() is None for j in running) and time.monotonic() < grace:
            time.sleep(0.5)
        for job in jobs:
            if job.proc.poll() is None:
                self.log(f"{job.name}: no exit {self.a.grace:.0f}s after SIGTERM, killed")
                os.killpg(job.proc.pid, signal.SIGKILL)
                job.proc.wait(timeout=30)
        self.note_exits(jobs)
        self.log(self.progress(jobs))

    def note_exits(self, jobs: list[Job]) -> None:
        for job in jobs:
            if "train_rc" not in job.record and job.proc.poll() is not None:
                log = (self.work / "logs" / f"train-{job.name}.log").read_text(errors="replace")
                stopped = re.search(r"stopped at step (\d+)", log)
                job.record.update(train_rc=job.proc.returncode, train_wall_s=round(time.monotonic() - job.started, 1),
                                  stopped_at=int(stopped.group(1)) if stopped else None)

    # -- export and evaluation --------------------------------------------------------------------
    def call(self, argv: list[str], log_name: str, stdout_to: Path | None = None) -> int:
        """Run one CLI command to completion or until the campaign's end; returns its exit code."""
        timeout = self.end - time.monotonic() - self.a.pack_seconds
        if timeout <= 5:
            raise TimeoutError("no time left")
        with open(self.work / "logs" / log_name, "w") as err:
            out = open(stdout_to, "w") if stdout_to else subprocess.DEVNULL
            try:
                return subprocess.run(argv, stdout=out, stderr=err, env=self.env, cwd=REPO, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{log_name}: still running at the deadline, killed") from None
            finally:
                if stdout_to:
                    out.close()

    def tail(self, log_name: str) -> str:
        return last_line(self.work / "logs" / log_name)

    def finish(self, job: Job) -> None:
        """Write the model (from its newest checkpoint unless the training wrote it) and evaluate it."""
        rec = job.record
        try:
            path = self.model_path(job)
            if rec["train_rc"] != 0 or not path.is_file():
                step = newest_checkpoint(self.ckpt_dir(job))
                if step is None:
                    raise RuntimeError(f"training exited {rec['train_rc']} without a checkpoint: "
                                       f"{self.tail(f'train-{job.name}.log')}")
                rc = self.call(self.train_argv(job, step, resume=True), f"export-{job.name}.log")
                if rc != 0 or not path.is_file():
                    raise RuntimeError(f"export exited {rc}: {self.tail(f'export-{job.name}.log')}")
            card_file = self.work / "eval" / f"{job.name}-card.json"
            if self.call([sys.executable, "-m", "fastpercept", "info", str(path), "--json"], f"info-{job.name}.log",
                         stdout_to=card_file) != 0:
                raise RuntimeError(f"info exited non-zero: {self.tail(f'info-{job.name}.log')}")
            card = json.loads(card_file.read_text())
            stage = (card.get("stages") or [card])[-1]  # this campaign's run, not an --init-from source's
            iters, seconds = int(stage.get("iterations") or 0), float(stage.get("train_seconds") or 0.0)
            rec.update(status="finished" if rec["train_rc"] == 0 else "stopped at deadline",
                       iterations=iters, train_seconds=seconds, s_per_step=round(seconds / max(iters, 1), 4),
                       final_losses=stage.get("final_losses"), device=card.get("device"), file=path.name)
            rec["eval"] = {}
            for what, argv in self.eval_commands(job, path):
                target = self.work / "eval" / f"{job.name}-{what}.json"
                rc = self.call(argv, f"eval-{job.name}-{what}.log", stdout_to=target)
                if rc != 0:
                    rec["eval"][what] = {"error": f"exit {rc}: {self.tail(f'eval-{job.name}-{what}.log')}"}
                    continue
                rec["eval"][what] = json.loads(target.read_text())["mean"]
        except Exception as e:  # one model's failure is reported, never the campaign's end
            rec.update(status="failed", error=f"{type(e).__name__}: {e}")
        self.log(f"{job.name}: {rec.get('status')} {rec.get('iterations', '')} {rec.get('error', '')}".rstrip())

    def eval_commands(self, job: Job, path: Path) -> list[tuple[str, list[str]]]:
        base = [sys.executable, "-m", "fastpercept", "eval"]
        dev = ["--device", self.a.device]
        if job.task == "style":
            image = STYLES[base_style(job.name)].image
            return [("heldout", [*base, "style", "--model", str(path), "--content", str(self.pack / "heldout"),
                                 "--size", str(self.a.eval_size), "--json", "--style-image",
                                 str(self.pack / "styles" / image), *dev])]
        return [(bench, [*base, "sr", "--model", str(path), "--data", str(self.pack / "bench" / bench), "--json",
                         *dev]) for bench in BENCH_SETS]

    # -- outputs ----------------------------------------------------------------------------------
    def write_outputs(self, jobs: list[Job], summary: dict[str, Any]) -> None:
        models = sorted((self.work / "models").glob("*.safetensors"))
        tars, size = [], 0
        for m in models:  # greedy: tars of at most 15 MiB (the device tool returns files under 16 MiB)
            if not tars or size + m.stat().st_size > 15 * 2**20:
                tars.append([])
                size = 0
            tars[-1].append(m)
            size += m.stat().st_size
        for i, group in enumerate(tars, 1):
            with tarfile.open(self.out / f"models-{i}.tar", "w") as t:
                for m in group:
                    t.add(m, arcname=m.name)
        with tarfile.open(self.out / "logs.tar.gz", "w:gz") as t:
            t.add(self.work / "logs", arcname="logs")
            t.add(self.work / "eval", arcname="eval")
            for job in jobs:
                csv_path = self.ckpt_dir(job) / "losses.csv"
                if csv_path.is_file():
                    t.add(csv_path, arcname=f"losses/{job.name}.csv")
        summary["outputs"] = sorted(p.name for p in self.out.iterdir()) + ["summary.json"]
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    def run(self) -> int:
        a = self.a
        if not (self.pack / "manifest.json").is_file():
            raise SystemExit(f"{self.pack}: no campaign pack (run `scripts/gpu_campaign.py pack` first)")
        self.out.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "eval", "models", "ckpt"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.out / "campaign.log", "w")
        jobs = self.jobs()
        self.log(f"{len(jobs)} models, device {a.device}, deadline {a.minutes} min, work {self.work}")
        try:
            self.train(jobs)
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                list(pool.map(self.finish, jobs))
        finally:
            summary = {"minutes": a.minutes, "wall_s": round(time.monotonic() - self.t0, 1),
                       "pack": json.loads((self.pack / "manifest.json").read_text()),
                       "settings": {k: v for k, v in vars(a).items() if k != "func"},
                       "models": {j.name: {"task": j.task, "flags": j.flags, **j.record} for j in jobs}}
            self.write_outputs(jobs, summary)
            self.log(f"done in {time.monotonic() - self.t0:.0f}s; outputs in {self.out}")
            self.log_file.close()
        failed = [j.name for j in jobs if j.record.get("status") == "failed"]
        return 1 if failed else 0


def last_csv_step(path: Path) -> int:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]) if rows else 0
    except (OSError, KeyError, ValueError):
        return 0


def newest_checkpoint(folder: Path) -> int | None:
    steps = [int(m.group(1)) for p in folder.glob("step-*.safetensors") if (m := re.match(r"step-(\d+)", p.name))]
    return max(steps) if steps else None


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def cmd_run(a: argparse.Namespace) -> int:
    return Campaign(a).run()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``pack`` and ``run`` (``a.func`` runs it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="build the folder that travels to the GPU machine")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (default ../shared/data)")
    p.add_argument("--dest", default=str(DEFAULT_PACK), help="default .campaign/ in the repo (ignored by git)")
    p.add_argument("--imagenet", type=int, default=250, help="imagenet1k photos for style training (default 250)")
    p.add_argument("--imagenet-quality", type=int, default=80, help="their JPEG quality (default 80)")
    p.add_argument("--sr-quality", type=int, default=90, help="JPEG quality of T91 + BSD200 (default 90)")
    p.add_argument("--limit", type=int, default=0, help="at most N files per folder (tests)")
    p.add_argument("--vgg-weights", default=None, help="VGG-16 weights (default: as `fastpercept weights` finds)")
    p.add_argument("--budget-mib", type=float, default=60, help="fail when pack + repo exceed this (default 60)")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("run", help="train, export and evaluate every model before a deadline")
    p.add_argument("--minutes", type=float, required=True, help="the whole command's wall-clock budget")
    p.add_argument("--out", required=True, help="folder for summary.json, campaign.log and the tar files")
    p.add_argument("--pack", default=str(DEFAULT_PACK), help="the folder `pack` built (default .campaign/)")
    p.add_argument("--work", default=None, help="checkpoints and logs (default: a new temporary folder)")
    p.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(ALL_MODELS)}")
    p.add_argument("--init", default=None, metavar="NAME=FILE,...",
                   help="continue these style models from earlier model files (paths relative to the pack)")
    p.add_argument("--iters", type=int, default=40000, help="style iterations (default 40000, the paper's)")
    p.add_argument("--sr-iters", type=int, default=1_000_000, help="SR iterations (default: never reached)")
    p.add_argument("--image-size", type=int, default=256, help="style training crop (default 256)")
    p.add_argument("--finish", action="store_true",
                   help="continue each style from its shipped model at lr 1e-4 (the style-artifact recipe; "
                        "use with --iters 3000 or more)")
    p.add_argument("--style-lr", type=float, default=None,
                   help="style training lr (default: the trainer's; 1e-4 with --finish)")
    p.add_argument("--eval-size", type=int, default=256, help="eval style: longest side of the photos")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="data loader processes per training (default 2)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16", "auto"])
    p.add_argument("--reserve", type=float, default=100, help="seconds kept after the trainings' SIGTERM "
                                                               "for export, eval and packing (default 100)")
    p.add_argument("--grace", type=float, default=30, help="seconds a training may take to stop after SIGTERM")
    p.add_argument("--pack-seconds", type=float, default=10, help="seconds kept at the end to write --out")
    p.add_argument("--report-every", type=float, default=30, help="seconds between progress lines")
    p.set_defaults(func=cmd_run)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
