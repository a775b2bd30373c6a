"""Training mechanics: exact resume, checkpoints, the card, fine-tuning, bad data."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from fastpercept.errors import UserError
from fastpercept.models import load_model, read_card
from fastpercept.training.tasks.style import TASK as STYLE_TASK, StyleConfig


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    for i in range(3):
        arr = (rng.random((40 + 7 * i, 50, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / ("sub" if i else ".") / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def style_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("style") / "stripes.png"
    arr = np.zeros((48, 48, 3), np.uint8)
    arr[::4] = (230, 40, 20)
    Image.fromarray(arr).save(path)
    return path


def _cfg(photos, style_png, out, **kw):
    base = dict(data=str(photos), output=str(out), style_image=str(style_png), iters=4, batch_size=2,
                image_size=32, style_size=48, checkpoint_every=2, log_every=1, seed=3, precision="fp32",
                device="cpu", arch="half")
    base.update(kw)
    return StyleConfig(**base)


def _weights(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_resume_equals_uninterrupted_training(photos, style_png, tmp_path):
    straight = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "a.safetensors"))
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "b.safetensors", iters=2))
    resumed = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "b.safetensors", iters=4, resume=True))
    for (k, v), (k2, v2) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    # the CSV log holds every step once, in order, with every loss term
    rows = (tmp_path / "b.ckpt" / "losses.csv").read_text().splitlines()
    assert rows[0] == "step,total,content,style,tv,lr,seconds"
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert rows[1:] [0].split(",")[1] == (tmp_path / "a.ckpt" / "losses.csv").read_text().splitlines()[1].split(",")[1]


def test_card_round_trip_and_fp16_file(photos, style_png, tmp_path):
    out = tmp_path / "m.safetensors"
    STYLE_TASK.train(_cfg(photos, style_png, out, iters=2, content_weight=2.0, style_weight=7.0))
    card = read_card(out)
    for key in ("task", "arch", "norm", "content_layer", "style_layers", "content_weight", "style_weight",
                "tv_weight", "style_image", "style_size", "image_size", "iterations", "batch_size", "lr", "seed",
                "train_seconds", "device", "precision", "dataset", "vgg_sha256", "final_losses", "created", "version"):
        assert key in card, key
    assert card["task"] == "style" and card["arch"] == "half" and card["iterations"] == 2
    assert card["content_weight"] == 2.0 and card["style_weight"] == 7.0 and card["style_image"] == "stripes.png"
    assert set(card["final_losses"]) == {"content", "style", "tv", "total"}
    assert all(v.dtype == torch.float16 for v in _weights(out).values())
    model = load_model(out)
    assert model.card == card
    assert model(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)


def test_cosine_schedule_anneals_and_resumes_exactly(photos, style_png, tmp_path):
    from fastpercept.training.train import step_lr

    assert [step_lr(1e-3, "cosine", t, 4) for t in range(5)] == pytest.approx(
        [1e-3, 1e-3 * (1 + 2 ** -0.5) / 2, 5e-4, 1e-3 * (1 - 2 ** -0.5) / 2, 0.0])
    assert step_lr(1e-3, "constant", 3, 4) == 1e-3
    straight = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "a.safetensors", lr_schedule="cosine"))
    # The same 4-step run, resumed from its step-2 checkpoint: the schedule is a function of the step.
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "b.safetensors", lr_schedule="cosine"))
    (tmp_path / "b.ckpt" / "step-00000004.safetensors").unlink()
    resumed = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "b.safetensors", lr_schedule="cosine",
                                    resume=True))
    for (k, v), v2 in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(v, v2), k
    rows = [r.split(",") for r in (tmp_path / "a.ckpt" / "losses.csv").read_text().splitlines()[1:]]
    lrs = [float(r[-2]) for r in rows]  # the lr each logged step used
    assert lrs == pytest.approx([step_lr(1e-3, "cosine", t, 4) for t in range(4)], rel=1e-5)  # 6 digits
    assert read_card(tmp_path / "a.safetensors")["lr_schedule"] == "cosine"
    with pytest.raises(UserError, match="--lr-schedule"):
        STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "d.safetensors", lr_schedule="linear"))


def test_init_from_starts_from_the_given_model(photos, style_png, tmp_path):
    first = tmp_path / "first.safetensors"
    STYLE_TASK.train(_cfg(photos, style_png, first, iters=2))
    tuned = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "tuned.safetensors", iters=1, lr=0.0,
                             init_from=str(first)))
    base = load_model(first)
    for (k, v), v2 in zip(base.net.state_dict().items(), tuned.net.state_dict().values()):
        assert torch.allclose(v, v2.float()), k  # lr 0: unchanged from the fp16 weights it started from
    card = read_card(tmp_path / "tuned.safetensors")
    # The source by file name and content hash, never a path of the training machine.
    assert card["init_from"] == "first.safetensors" and card["stages"][-1]["init_from"] == "first.safetensors"
    assert card["init_from_sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    # The weights have seen both runs' steps: the card counts the chain and splits it by stage.
    assert card["iterations"] == 3
    assert [s["iterations"] for s in card["stages"]] == [2, 1]
    assert [s["lr"] for s in card["stages"]] == [1e-3, 0.0]


def test_notes_reach_the_card_on_resume_and_survive_fine_tuning(photos, style_png, tmp_path):
    first = tmp_path / "first.safetensors"
    STYLE_TASK.train(_cfg(photos, style_png, first, iters=2))
    assert "notes" not in read_card(first)
    # notes may be added when a run is resumed (or exported): they are not a training setting
    STYLE_TASK.train(_cfg(photos, style_png, first, iters=2, resume=True, notes="style weight 5 erased the skyline"))
    assert read_card(first)["notes"] == "style weight 5 erased the skyline"
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "t1.safetensors", iters=1, init_from=str(first)))
    card = read_card(tmp_path / "t1.safetensors")
    assert card["notes"] == "style weight 5 erased the skyline"  # inherited: no notes of its own
    assert ["notes" in s for s in card["stages"]] == [True, False]
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "t2.safetensors", iters=1, init_from=str(first),
                     notes="lr 1e-4 finish"))
    card = read_card(tmp_path / "t2.safetensors")
    assert card["notes"] == "lr 1e-4 finish"
    assert [s.get("notes") for s in card["stages"]] == ["style weight 5 erased the skyline", "lr 1e-4 finish"]


def test_resume_at_or_past_iters_exports_the_checkpoint(photos, style_png, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    trained = STYLE_TASK.train(_cfg(photos, style_png, out, iters=3))
    trained_on = read_card(out)["device"]
    out.unlink()
    # exported on another machine: the card still names the one the steps ran on
    monkeypatch.setattr("fastpercept.training.train._device_name", lambda device: "another machine")
    exported = STYLE_TASK.train(_cfg(photos, style_png, out, iters=1, resume=True))
    card = read_card(out)
    assert card["iterations"] == 3 and set(card["final_losses"]) == {"content", "style", "tv", "total"}
    assert card["device"] == trained_on != "another machine"
    STYLE_TASK.train(_cfg(photos, style_png, out, iters=5, resume=True))  # steps 4-5 there: both are named
    assert read_card(out)["device"] == f"{trained_on} + another machine"
    for v, v2 in zip(trained.net.state_dict().values(), exported.net.state_dict().values()):
        assert torch.equal(v, v2)


def test_resume_with_a_different_objective_is_refused(photos, style_png, tmp_path):
    out = tmp_path / "m.safetensors"
    STYLE_TASK.train(_cfg(photos, style_png, out, iters=2))
    with pytest.raises(UserError, match="style_weight"):
        STYLE_TASK.train(_cfg(photos, style_png, out, iters=4, resume=True, style_weight=50.0))


def test_existing_checkpoints_without_resume_are_refused(photos, style_png, tmp_path):
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "m.safetensors", iters=2))
    with pytest.raises(UserError, match="--resume"):
        STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "m.safetensors", iters=2))


def test_resume_skips_a_corrupt_newest_checkpoint(photos, style_png, tmp_path):
    out = tmp_path / "m.safetensors"
    STYLE_TASK.train(_cfg(photos, style_png, out, iters=4))
    newest = tmp_path / "m.ckpt" / "step-00000004.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # torn write
    model = STYLE_TASK.train(_cfg(photos, style_png, out, iters=4, resume=True))
    assert read_card(out)["iterations"] == 4
    reference = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "ref.safetensors", iters=4))
    for v, v2 in zip(model.net.state_dict().values(), reference.net.state_dict().values()):
        assert torch.equal(v, v2)


def test_sigterm_saves_a_checkpoint_and_resume_finishes(photos, style_png, tmp_path):
    out = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-m", "fastpercept", "train", "style", "--data", str(photos), "--style-image",
           str(style_png), "-o", str(out), "--iters", "100000", "--batch-size", "1", "--image-size", "32",
           "--style-size", "48", "--arch", "half", "--checkpoint-every", "100000", "--precision", "fp32",
           "--log-every", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    csv = tmp_path / "m.ckpt" / "losses.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (csv.exists() and len(csv.read_text().splitlines()) > 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err  # the shell's convention; Ctrl-C gives 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("fastpercept: interrupted: stopped at step") and "--resume" in last
    ckpts = list((tmp_path / "m.ckpt").glob("step-*.safetensors"))
    assert len(ckpts) == 1 and not out.exists()
    step = int(ckpts[0].stem.split("-")[1])
    assert 0 < step < 100000
    # ... and the resumed run finishes from there: two more steps, the model written, the card counting all.
    cmd[cmd.index("--iters") + 1] = str(step + 2)
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_card(out)["iterations"] == step + 2


def test_torchrun_two_processes_equal_one_process_with_the_global_batch(photos, style_png, tmp_path):
    """DDP (gloo on the CPU): 2 processes x batch 1 train the same model as 1 x batch 2."""
    single = STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "one.safetensors", iters=2, batch_size=2))
    out = tmp_path / "two.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fastpercept", "train", "style", "--data", str(photos), "--style-image", str(style_png),
           "-o", str(out), "--iters", "2", "--batch-size", "1", "--image-size", "32", "--style-size", "48",
           "--arch", "half", "--seed", "3", "--precision", "fp32", "--device", "cpu", "--checkpoint-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = read_card(out)
    assert card["batch_size"] == 2 and card["processes"] == 2
    # Compare what the networks compute: conv biases in front of instance norm get pure
    # rounding noise as gradient, which Adam amplifies to +-lr, but they cancel in the output.
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        a, b = single(x), load_model(out)(x)
    assert (a - b).abs().max().item() < 2e-3


def test_a_second_run_on_a_busy_checkpoint_folder_is_refused(photos, style_png, tmp_path):
    from fastpercept.training.checkpoint import FolderLock

    out = tmp_path / "m.safetensors"
    with FolderLock(tmp_path / "m.ckpt"):  # stands for a run that is still stopping
        with pytest.raises(UserError, match="another training run"):
            STYLE_TASK.train(_cfg(photos, style_png, out, iters=2, resume=True))
    STYLE_TASK.train(_cfg(photos, style_png, out, iters=2, resume=True))  # free again
    assert read_card(out)["iterations"] == 2


def test_no_readable_images_is_a_user_error(style_png, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="no readable training images"):
        STYLE_TASK.train(_cfg(tmp_path / "empty", style_png, tmp_path / "m.safetensors"))


def test_cli_flags_left_unset_take_the_library_defaults():
    from fastpercept.apps.cli import _config, build_parser
    from fastpercept.training.losses import ObjectiveWeights
    from fastpercept.training.tasks.sr import SRConfig

    parser = build_parser()
    base = ["--data", "d", "-o", "m.safetensors"]
    style = _config(StyleConfig, parser.parse_args(["train", "style", *base, "--style-image", "s.jpg"]))
    assert style == StyleConfig(data="d", output="m.safetensors", style_image="s.jpg")
    sr = _config(SRConfig, parser.parse_args(["train", "sr", *base, "--scale", "4", "--loss", "feat"]))
    assert sr == SRConfig(data="d", output="m.safetensors", scale=4, loss="feat")
    assert (sr.lr, style.lr) == (1e-4, 1e-3)
    given = parser.parse_args(["train", "style", *base, "--style-image", "s.jpg", "--iters", "7", "--style-weight",
                               "2", "--style-layers", "relu1_2,relu3_3", "--batch-size", "3",
                               "--notes", "w5 too strong"])
    cfg = _config(StyleConfig, given)
    assert (cfg.iters, cfg.style_weight, cfg.style_layers, cfg.batch_size) == (7, 2.0, ("relu1_2", "relu3_3"), 3)
    assert cfg.notes == "w5 too strong"
    bare = parser.parse_args(["optimize", "--content", "c.jpg", "--style", "s.jpg", "-o", "x.png"])
    assert _config(ObjectiveWeights, bare) == ObjectiveWeights()


def test_log_lines_give_the_recent_rate_and_time_left(photos, style_png, tmp_path, caplog):
    caplog.set_level("INFO", logger="fastpercept.training.train")
    STYLE_TASK.train(_cfg(photos, style_png, tmp_path / "m.safetensors", iters=4, log_every=2))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    assert "content=" in lines[0] and " s/step, " in lines[0]
    assert lines[-1].endswith("s/step, 0:00:00 left")


def test_compute_dtype_of_each_precision():
    from fastpercept.runtime.device import compute_dtype

    assert [compute_dtype(p) for p in ("bf16", "fp16", "fp32")] == [torch.bfloat16, torch.float16, torch.float32]
