"""A CPU dry run of scripts/gpu_campaign.py: pack a handful of images, train two styles and one SR
model for a few steps, stop the SR one at the deadline (SIGTERM path), export, evaluate, check --out."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import fastpercept

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_campaign.py"


def test_campaign_dry_run(shared_data, vgg, tmp_path):  # vgg: the weights are resolved (cached) first
    pack, out = tmp_path / "pack", tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "pack", "--data", str(shared_data), "--dest", str(pack),
                           "--limit", "2", "--budget-mib", "1000"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Styles finish their 3 steps; the SR model's target is out of reach, so the deadline (60 s:
    # 210 s less 150 s reserved) stops it with SIGTERM and its model comes from the checkpoint. The
    # times are generous because a loaded CI machine took 40 s for three exports and evaluations,
    # which run one after another after the deadline; the run ends when they do, not at the deadline.
    done = subprocess.run([sys.executable, str(SCRIPT), "run", "--pack", str(pack), "--out", str(out),
                           "--work", str(tmp_path / "work"), "--minutes", "3.5", "--reserve", "150",
                           "--models", "mosaic,the_scream-from-mosaic,mosaic-half,x4-pixel", "--iters", "3",
                           "--image-size", "32",
                           "--eval-size", "64", "--device", "cpu", "--precision", "fp32", "--workers", "0",
                           "--checkpoint-every", "1", "--report-every", "10", "--grace", "20"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    files = sorted(p.name for p in out.iterdir())
    assert files == ["campaign.log", "logs.tar.gz", "models-1.tar", "summary.json"]
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    summary = json.loads((out / "summary.json").read_text())
    models = summary["models"]
    assert summary["pack"]["vgg16"]["deepest"] == "relu4_3"

    for name in ("mosaic", "the_scream-from-mosaic", "mosaic-half"):
        m = models[name]
        # A machine loaded enough to keep a style from writing its model within 60 s gets it from
        # the checkpoint of its last step, at the deadline: 3 iterations either way.
        assert (m["status"], m["train_rc"]) in {("finished", 0), ("stopped at deadline", 143),
                                                ("stopped at deadline", -15)}
        assert m["iterations"] == 3
        assert math.isfinite(m["eval"]["heldout"]["network"]["total"])
    sr = models["x4-pixel"]
    assert (sr["status"], sr["train_rc"]) == ("stopped at deadline", 143)  # 128 + SIGTERM, checkpoint saved
    assert sr["iterations"] == sr["stopped_at"] >= 1
    assert abs(sr["s_per_step"] * sr["iterations"] - sr["train_seconds"]) < 0.01 * sr["iterations"] + 0.1
    for bench in ("Set5", "Set14"):
        assert sr["eval"][bench]["psnr"] > 15

    with tarfile.open(out / "models-1.tar") as t:
        t.extractall(tmp_path / "models")
    for name, m in models.items():
        net = fastpercept.load_model(tmp_path / "models" / m["file"])
        assert net.card["task"] == m["task"]
        assert net.card["stages"][-1]["iterations"] == m["iterations"]
    # The fine-tuned style's card counts its source's iterations too; the summary counts this run's.
    assert fastpercept.load_model(tmp_path / "models" / "mosaic-half.safetensors").card["arch"] == "half"
    scream = fastpercept.load_model(tmp_path / "models" / "the_scream-from-mosaic.safetensors").card
    assert scream["iterations"] > 3 and scream["vgg_sha256"] == vgg.sha256
    with tarfile.open(out / "logs.tar.gz") as t:
        names = t.getnames()
    assert "losses/x4-pixel.csv" in names and "eval/x4-pixel-Set5.json" in names


def test_finish_continues_shipped_styles_at_a_low_lr(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_campaign", SCRIPT)
    campaign = importlib.util.module_from_spec(spec)
    sys.modules["gpu_campaign"] = campaign  # its dataclasses look their module up
    try:
        spec.loader.exec_module(campaign)
    finally:
        del sys.modules["gpu_campaign"]

    def flags(*argv: str) -> dict[str, list[str]]:
        parser_args = ["run", "--minutes", "1", "--out", str(tmp_path), "--pack", str(tmp_path), *argv]
        a = campaign.parse_args(parser_args)
        return {job.name: job.flags for job in campaign.Campaign(a).jobs()}

    finish = flags("--finish", "--models", "udnie,mosaic-half,the_scream-from-mosaic,x4")
    assert finish["udnie"][-4:] == ["--init-from", "udnie", "--lr", "0.0001"]
    assert finish["mosaic-half"][-4:] == ["--init-from", "mosaic-half", "--lr", "0.0001"]
    scream = finish["the_scream-from-mosaic"]  # keeps its own source
    assert scream.count("--init-from") == 1 and scream[scream.index("--init-from") + 1] == "mosaic"
    assert "--init-from" not in finish["x4"] and finish["x4"] == campaign.SR["x4"]
    plain = flags("--models", "udnie")
    assert "--init-from" not in plain["udnie"] and "--lr" not in plain["udnie"]
    assert flags("--models", "udnie", "--style-lr", "3e-4")["udnie"][-2:] == ["--lr", "0.0003"]

