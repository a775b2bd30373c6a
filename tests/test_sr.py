"""Super-resolution end to end: SRNet shapes, ``upscale``, tiling, ``eval sr``, SR training, degradation.

Conventions checked (BasicSR-style): HR is mod-cropped to a multiple of the scale; LR is the
benchmark's ``LR_x{s}`` file or, where missing, MATLAB bicubic of the 8-bit mod-cropped HR; the
SR output is quantized to 8 bits; PSNR/SSIM on Y with a ``scale``-pixel border, LPIPS (AlexNet)
on the whole RGB image.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
import torch.nn.functional as F
from torch import nn

from fastpercept.api import upscale
from fastpercept.training.data import SRPair
from fastpercept.errors import UserError
from fastpercept.training.eval_sr import eval_sr, format_sr_table, make_lr, score_sr
from fastpercept.runtime.images import load_image
from fastpercept.runtime.torch_runner import TorchRunner
from fastpercept.runtime import color
from fastpercept.runtime.tiling import run_network
from fastpercept.training.lpips import LPIPS
from fastpercept.training.metrics import psnr_y, quantize, ssim_y
from fastpercept.models import LoadedModel, build_model, save_model
from fastpercept.nets.sr import SRNet, SRNetConfig
from fastpercept.training.resize import degrade, imresize, mod_crop
from fastpercept.nets.blocks import TransformNet
from fastpercept.training.tasks.sr import TASK as SR_TASK, SRConfig

# Bicubic x4 on Set5 (shared/README.md: 28.43 dB). LPIPS: the mean of the reference package's
# values for these very pairs (tests/test_lpips.py, REFERENCE_ALEX). SSIM: measured here.
SET5_BICUBIC = {"psnr": 28.43, "ssim": 0.8113, "lpips": 0.340638}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sr_card(cfg: SRNetConfig) -> dict:
    return {"task": "sr", "arch": "srnet", **cfg.to_dict(), "loss": "pixel", "patch_size": 32, "iterations": 0}


def _save_tiny_sr(path: Path, scale: int = 4) -> Path:
    torch.manual_seed(0)
    cfg = SRNetConfig(scale=scale, channels=8, residual_blocks=1)
    return save_model(SRNet(cfg), path, _sr_card(cfg))


def _write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour ramp with noise: structure for SSIM/LPIPS, 8-bit."""
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.3, 1.0, h)[:, None, None] * np.ones((1, 1, 3))
    return np.clip(ramp + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict[str, Path]:
    """``hr_only/HR/*`` and ``with_lr/{HR,LR_x4}/*`` (LR written by MATLAB imresize): same images.

    Sizes are not multiples of 4 or 8, so mod-cropping matters.
    """
    root = tmp_path_factory.mktemp("sr_bench")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (66, 75), "b.png": (61, 90)}.items():
        arr = _photo(rng, h, w)
        _write_png(root / "hr_only" / "HR" / name, arr)
        _write_png(root / "with_lr" / "HR" / name, arr)
        hr_u8 = torch.from_numpy(arr).permute(2, 0, 1)[None]
        lr = imresize(mod_crop(hr_u8, 4), scale=1 / 4)
        _write_png(root / "with_lr" / "LR_x4" / name, lr[0].permute(1, 2, 0).numpy())
    return {"hr_only": root / "hr_only", "with_lr": root / "with_lr"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return _save_tiny_sr(tmp_path_factory.mktemp("sr_model") / "tiny-x4.safetensors")


# ------------------------------------------------------------------------------ network shapes


@pytest.mark.parametrize("skip", ["bicubic", "none"])
@pytest.mark.parametrize("upsample", ["deconv", "nearest"])
@pytest.mark.parametrize("scale", [4, 8])
def test_srnet_output_is_exactly_scale_times_input(scale, upsample, skip):
    net = SRNet(SRNetConfig(scale=scale, upsample=upsample, channels=8, residual_blocks=1, skip=skip)).eval()
    for h, w in [(7, 9), (13, 5)]:
        with torch.no_grad():
            y = net(torch.rand(2, 3, h, w))
        assert y.shape == (2, 3, scale * h, scale * w)
        if skip == "none":
            assert 0.0 <= y.min() and y.max() <= 1.0  # the paper's scaled tanh


@pytest.mark.parametrize("scale", [4, 8])
def test_untrained_skip_srnet_is_bicubic_and_learns_a_correction(scale):
    torch.manual_seed(0)
    net = SRNet(SRNetConfig(scale=scale, channels=8, residual_blocks=1))
    x = torch.rand(2, 3, 9, 7)
    bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.equal(net.eval()(x), bicubic)
    # The zero-initialized last layer still receives gradient, so training moves off bicubic.
    net.train()(x).square().mean().backward()
    assert net.tail[1].weight.grad.abs().sum() > 0
    # Under bf16 autocast the bicubic base stays fp32 (a bf16 base alone would cap PSNR near 50 dB).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net.eval()(x)
    assert y.dtype == torch.float32 and (y - bicubic).abs().max() < 1e-6


def test_card_round_trip_and_cards_older_than_a_key():
    cfg = SRNetConfig(scale=8, upsample="deconv", channels=8, residual_blocks=2, skip="none")
    assert build_model(_sr_card(cfg)).config == cfg
    # Files written before ``upsample``/``skip`` existed hold the paper's network, not today's defaults.
    old = {k: v for k, v in _sr_card(SRNetConfig(scale=4)).items() if k not in ("upsample", "skip")}
    assert build_model(old).config == SRNetConfig(scale=4, upsample="deconv", skip="none")
    with pytest.raises(UserError, match="scale"):
        build_model({k: v for k, v in old.items() if k != "scale"})


def test_upscale_api_pil_and_tensor(tiny_model):
    pil = Image.fromarray(_photo(np.random.default_rng(1), 13, 9))
    out = upscale(pil, str(tiny_model), device="cpu", precision="fp32")
    assert isinstance(out, Image.Image) and out.size == (36, 52) and out.mode == "RGB"
    x = torch.rand(2, 3, 7, 10)
    y = upscale(x, str(tiny_model), device="cpu", precision="fp32")
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 28, 40) and y.dtype == torch.float32
    with pytest.raises(UserError, match="not a style model"):
        from fastpercept.api import stylize

        stylize(x, str(tiny_model), device="cpu", precision="fp32")


def match_histograms(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The runtime's (NumPy) histogram matching on tensors."""
    return torch.from_numpy(color.match_histograms(image.numpy(), reference.numpy()))


def test_match_histograms_takes_the_reference_distribution():
    # A hand-checked case: 4 distinct values in the image, the reference's 4 sorted values.
    img = torch.tensor([[[[0.9, 0.1], [0.5, 0.3]]]])
    ref = torch.tensor([[[[10.0, 40.0], [20.0, 30.0]]]])
    assert torch.equal(match_histograms(img, ref), torch.tensor([[[[40.0, 10.0], [30.0, 20.0]]]]))
    # Equal values stay equal (flat regions stay flat); the order of values is kept.
    g = torch.Generator().manual_seed(0)
    x = torch.round(torch.rand(2, 3, 40, 50, generator=g) * 20) / 20
    r = torch.rand(2, 3, 17, 23, generator=g) ** 2 * 0.5 + 0.3
    y = match_histograms(x, r)
    for n in range(2):
        for c in range(3):
            xs, ys = x[n, c].flatten(), y[n, c].flatten()
            for v in xs.unique():
                assert ys[xs == v].unique().numel() == 1
            order = xs.argsort()
            assert (ys[order].diff() >= -1e-7).all()
            # The result takes the reference's range and, roughly, its mean (quantile-matched).
            assert ys.min() >= r[n, c].min() - 1e-6 and ys.max() <= r[n, c].max() + 1e-6
            assert abs(ys.mean() - r[n, c].mean()) < 0.02
    # Matching an image to itself changes nothing.
    assert torch.allclose(match_histograms(r, r), r)


def test_upscale_match_colors_takes_the_input_colours(tiny_model):
    lr = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.25
    plain = upscale(lr, str(tiny_model), device="cpu", precision="fp32")
    matched = upscale(lr, str(tiny_model), match_colors=True, device="cpu", precision="fp32")
    assert torch.allclose(matched, match_histograms(plain, lr))
    cast = lr.clone()
    cast[:, 0] = (cast[:, 0] + 0.3).clamp(0, 1)  # a red cast the network would not see in the input
    assert (match_histograms(plain, cast)[:, 0].mean() - cast[:, 0].mean()).abs() < 0.02


def test_tiled_matches_untiled_for_batch_norm_srnet():
    """Tile 24, overlap 8 at 50x70 (x4, paper config: deconv, batch norm, eval mode).

    A freshly initialized SRNet outputs nearly flat grey (std 0.009), which would make any
    comparison trivial; eval-mode statistics are randomized and the last layer scaled so the
    output spans the range (std 0.31). The blend keeps only pixels with >= 4 LR px of real
    context (full weight from 12 px) while the receptive field is about +-15 LR px, so tiles
    differ slightly: measured max |diff| 4.99e-3, mean 2.1e-4. With overlap 1 (seams) the
    max is 0.18.
    """
    torch.manual_seed(0)
    net = SRNet(SRNetConfig(scale=4, upsample="deconv", norm="batch", skip="none"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
        net.tail[1].weight.mul_(30)
    net.eval()
    x = torch.rand(1, 3, 50, 70)
    whole = run_network(TorchRunner(net), x)
    assert whole.std() > 0.2
    tiled = run_network(TorchRunner(net), x, tile=24, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 200, 280)
    diff = (tiled - whole).abs()
    assert diff.max() < 7.5e-3 and diff.mean() < 4e-4, (diff.max().item(), diff.mean().item())
    seams = (run_network(TorchRunner(net), x, tile=24, overlap=1) - whole).abs()
    assert seams.max() > 0.05  # the comparison can tell tiling without context apart


def test_tiled_matches_untiled_for_skip_srnet():
    """The default network (bicubic skip, nearest upsampling): the bicubic base is tiled too.

    Its receptive field is about +-14 LR px; tiles of 40 with 12 px of overlap measured max
    |diff| 7.7e-4 (mean 2.6e-5) against the whole image, overlap 1 (seams) 0.145.
    """
    torch.manual_seed(0)
    net = SRNet(SRNetConfig(scale=4))
    with torch.no_grad():
        nn.init.normal_(net.tail[1].weight, std=0.05)  # a correction that depends on the context
    net.eval()
    x = torch.rand(1, 3, 50, 70)
    whole = run_network(TorchRunner(net), x)
    tiled = run_network(TorchRunner(net), x, tile=40, overlap=12)
    diff = (tiled - whole).abs()
    assert diff.max() < 2e-3 and diff.mean() < 1e-4, (diff.max().item(), diff.mean().item())
    assert (run_network(TorchRunner(net), x, tile=40, overlap=1) - whole).abs().max() > 0.05


# --------------------------------------------------------------------------------- eval sr


def test_bicubic_on_set5_matches_the_literature(shared_data):
    res = eval_sr("bicubic", shared_data / "bench" / "Set5", scale=4, device="cpu")
    assert res["model"] == "bicubic" and res["scale"] == 4 and res["lr"] == "files"
    assert [im["name"] for im in res["images"]] == [f"img_00{i}.png" for i in range(1, 6)]
    assert res["mean"]["psnr"] == pytest.approx(SET5_BICUBIC["psnr"], abs=0.02)
    assert res["mean"]["ssim"] == pytest.approx(SET5_BICUBIC["ssim"], abs=5e-4)
    assert res["mean"]["lpips"] == pytest.approx(SET5_BICUBIC["lpips"], abs=1e-4)
    for k in ("psnr", "ssim", "lpips"):
        assert res["mean"][k] == pytest.approx(sum(im[k] for im in res["images"]) / 5)
    table = format_sr_table(res)
    assert "img_003.png" in table and "mean" in table and "28.43" in table and "PSNR" in table


def test_lr_made_from_hr_reproduces_the_benchmark_files(shared_data, tmp_path):
    """Set5 with its HR folder only: LR made from HR gives the very numbers of the LR_x4 files."""
    (tmp_path / "HR").symlink_to(shared_data / "bench" / "Set5" / "HR", target_is_directory=True)
    made = eval_sr("bicubic", tmp_path, scale=4, device="cpu")
    files = eval_sr("bicubic", shared_data / "bench" / "Set5", scale=4, device="cpu")
    assert made["lr"].startswith("made from HR")
    assert made["images"] == files["images"]


def test_missing_lr_is_made_from_hr(bench):
    made = eval_sr("bicubic", bench["hr_only"], scale=4, device="cpu")
    files = eval_sr("bicubic", bench["with_lr"], scale=4, device="cpu")
    assert made["images"] == files["images"] and made["mean"] == files["mean"]
    assert made["lr"] != files["lr"]
    # x8 has no LR folder in either: made from HR, 66x75 mod-cropped to 64x72
    x8 = eval_sr("bicubic", bench["with_lr"], scale=8, device="cpu")
    assert x8["scale"] == 8 and x8["mean"]["psnr"] < files["mean"]["psnr"]


def test_make_lr_is_matlab_uint8_bicubic_of_the_mod_cropped_hr():
    hr_u8 = torch.from_numpy(_photo(np.random.default_rng(2), 37, 45)).permute(2, 0, 1)[None]
    lr = make_lr(hr_u8.float() / 255, 8)
    assert lr.shape == (1, 3, 4, 5)
    assert torch.equal(lr, imresize(hr_u8[..., :32, :40], scale=1 / 8).float() / 255)


class _Oracle(TransformNet):
    """A fake x4 network whose output is the HR image itself (looked up by the LR's size)."""

    scale = 4

    def __init__(self, hrs: list[torch.Tensor]) -> None:
        super().__init__()
        self.hrs = {tuple(h.shape[-2:]): h for h in hrs}

    def transform(self, x: torch.Tensor, flow) -> torch.Tensor:
        return self.hrs[(x.shape[-2] * 4, x.shape[-1] * 4)].to(x)


def test_hr_as_sr_is_a_perfect_score(bench):
    hrs = [mod_crop(load_image(p).rgb, 4) for p in sorted((bench["with_lr"] / "HR").glob("*.png"))]
    oracle = LoadedModel(_Oracle(hrs), {"task": "sr", "scale": 4}, "oracle")
    res = eval_sr(oracle, bench["with_lr"], device="cpu", precision="fp32")
    assert res["model"] == "oracle" and res["scale"] == 4
    for im in res["images"]:
        assert im["psnr"] == math.inf and im["ssim"] == pytest.approx(1.0, abs=1e-12) and abs(im["lpips"]) < 1e-7
    # and the metric path directly: an off-by-one level is no longer perfect
    metric = LPIPS("alex")
    perfect = score_sr(hrs[0], hrs[0], 4, metric)
    off = score_sr(hrs[0] + 1 / 255, hrs[0], 4, metric)
    assert perfect["psnr"] == math.inf and perfect["lpips"] == 0.0
    assert off["psnr"] < 60 and off["ssim"] < 1.0 and off["lpips"] > 0


def test_model_file_scores_its_quantized_output(bench, tiny_model):
    res = eval_sr(str(tiny_model), bench["with_lr"], device="cpu", precision="fp32")
    assert res["model"] == "tiny-x4" and res["scale"] == 4 and res["seconds"] > 0
    from fastpercept.models import load_model

    net = load_model(tiny_model)
    lr = load_image(bench["with_lr"] / "LR_x4" / "b.png").rgb
    hr = mod_crop(load_image(bench["with_lr"] / "HR" / "b.png").rgb, 4)
    sr = quantize(run_network(TorchRunner(net.net), lr))  # scored as the saved 8-bit output would be
    with torch.no_grad():
        want = {"psnr": psnr_y(sr, hr, 4), "ssim": ssim_y(sr, hr, 4), "lpips": LPIPS("alex")(sr, hr).item()}
    assert res["images"][1]["name"] == "b.png"
    for k, v in want.items():
        assert res["images"][1][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    tiled = eval_sr(str(tiny_model), bench["with_lr"], tile=8, device="cpu", precision="fp32")
    assert tiled["mean"]["psnr"] == pytest.approx(res["mean"]["psnr"], abs=0.05)


def test_eval_sr_user_errors(bench, tiny_model, tmp_path, capsys):
    with pytest.raises(UserError, match="--scale"):
        eval_sr("bicubic", bench["with_lr"])
    with pytest.raises(UserError, match="x4 model.*--scale 8"):
        eval_sr(str(tiny_model), bench["with_lr"], scale=8)
    with pytest.raises(UserError, match="no HR folder"):
        eval_sr("bicubic", tmp_path, scale=4)
    with pytest.raises(UserError, match="no such folder"):
        eval_sr("bicubic", tmp_path / "nope", scale=4)
    # LR names that do not match HR's
    bad = tmp_path / "bad"
    for sub, name in [("HR", "a.png"), ("HR", "b.png"), ("LR_x4", "a.png"), ("LR_x4", "c.png")]:
        side = 64 if sub == "HR" else 16
        _write_png(bad / sub / name, _photo(np.random.default_rng(0), side, side))
    with pytest.raises(UserError, match=r"no LR image for 1 of the 2.*b\.png") as e:
        eval_sr("bicubic", bad, scale=4)
    assert "\n" not in str(e.value)
    # an LR that is not x4 of its HR: the output size differs from the mod-cropped HR
    wrong = tmp_path / "wrong"
    _write_png(wrong / "HR" / "a.png", _photo(np.random.default_rng(0), 64, 64))
    _write_png(wrong / "LR_x4" / "a.png", _photo(np.random.default_rng(0), 32, 32))
    with pytest.raises(UserError, match="none of the 1 image pair"):
        eval_sr("bicubic", wrong, scale=4)
    assert re.search(r"128x128 px but the mod-cropped HR a\.png is 64x64", capsys.readouterr().err)
    # an x8 model on a 32 px HR: a 4 px LR is too small for the network's first layer
    tiny8 = tmp_path / "tiny8"
    _write_png(tiny8 / "HR" / "a.png", _photo(np.random.default_rng(0), 32, 40))
    with pytest.raises(UserError, match="none of the 1 image pair"):
        eval_sr(_save_tiny_sr(tmp_path / "x8.safetensors", scale=8), tiny8)
    assert "too small for the network" in capsys.readouterr().err
    with pytest.raises(UserError, match="not a super-resolution model"):
        style = LoadedModel(SRNet(SRNetConfig(channels=8, residual_blocks=1)), {"task": "style"}, "style")
        eval_sr(style, bench["with_lr"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "fastpercept", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_cli_json_shape_and_errors(bench):
    p = _cli("eval", "sr", "--model", "bicubic", "--data", str(bench["hr_only"]), "--scale", "4", "--json",
             "--device", "cpu")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # stdout holds the JSON document and nothing else
    assert {"model", "scale", "images", "mean"} <= set(doc)
    assert doc["model"] == "bicubic" and doc["scale"] == 4
    assert [im["name"] for im in doc["images"]] == ["a.png", "b.png"]
    assert all(set(im) == {"name", "psnr", "ssim", "lpips"} for im in doc["images"])
    assert set(doc["mean"]) == {"psnr", "ssim", "lpips"}
    direct = eval_sr("bicubic", bench["hr_only"], scale=4, device="cpu")
    assert doc["mean"]["psnr"] == pytest.approx(direct["mean"]["psnr"], abs=1e-9)
    # an exact reconstruction (PSNR inf) still prints strict JSON: null
    from fastpercept.apps.cli import _finite_json

    assert json.dumps(_finite_json({"mean": {"psnr": math.inf, "ssim": 1.0}}), allow_nan=False) == \
        '{"mean": {"psnr": null, "ssim": 1.0}}'
    p = _cli("eval", "sr", "--model", "bicubic", "--data", str(bench["hr_only"]))
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "--scale" in p.stderr


# ------------------------------------------------------------------------------- SR training


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sr_photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 48), (36, 52), (33, 33)]):
        _write_png(root / f"p{i}.png", _photo(rng, h, w))
    _write_png(root / "small.png", _photo(rng, 20, 60))  # skipped: smaller than the patch
    return root


def _sr_cfg(photos: Path, out: Path, **kw) -> SRConfig:
    base = {"data": str(photos), "output": str(out), "iters": 4, "batch_size": 2, "patch_size": 32, "scale": 4,
            "loss": "pixel", "checkpoint_every": 2, "log_every": 1, "seed": 5, "precision": "fp32", "device": "cpu"}
    base.update(kw)
    return SRConfig(**base)


@pytest.mark.parametrize("loss", ["pixel", "feat"])
def test_sr_resume_equals_uninterrupted_training(photos, tmp_path, loss):
    straight = SR_TASK.train(_sr_cfg(photos, tmp_path / "a.safetensors", loss=loss))
    SR_TASK.train(_sr_cfg(photos, tmp_path / "b.safetensors", loss=loss, iters=2))
    resumed = SR_TASK.train(_sr_cfg(photos, tmp_path / "b.safetensors", loss=loss, iters=4, resume=True))
    sa, sb = straight.net.state_dict(), resumed.net.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert straight.card["task"] == "sr" and straight.card["scale"] == 4 and straight.card["iterations"] == 4
    assert straight.card["loss"] == loss
    # training moved the weights (the equality above is not two untouched initializations)
    torch.manual_seed(5)
    init = SRNet(SRNetConfig(scale=4))
    assert not torch.equal(init.state_dict()["tail.1.weight"], sa["tail.1.weight"])


def test_feat_training_with_a_pixel_term_records_it_and_moves_differently(photos, tmp_path):
    plain = SR_TASK.train(_sr_cfg(photos, tmp_path / "f.safetensors", loss="feat", iters=2))
    mixed = SR_TASK.train(_sr_cfg(photos, tmp_path / "p.safetensors", loss="feat", iters=2, pixel_weight=1000.0))
    assert mixed.card["pixel_weight"] == 1000.0 and "pixel" in mixed.card["final_losses"]
    assert "pixel_weight" not in plain.card and "pixel" not in plain.card["final_losses"]
    assert not torch.equal(plain.net.state_dict()["tail.1.weight"], mixed.net.state_dict()["tail.1.weight"])


def test_sr_patch_not_a_multiple_of_the_scale(photos, tmp_path):
    with pytest.raises(UserError, match="--patch-size 30 is not a multiple of the scale 4"):
        SR_TASK.train(_sr_cfg(photos, tmp_path / "m.safetensors", patch_size=30))


def test_sr_images_smaller_than_the_patch(tmp_path):
    small = tmp_path / "small"
    for i in range(2):
        _write_png(small / f"s{i}.png", _photo(np.random.default_rng(i), 24, 40))
    with pytest.raises(UserError, match="32 px") as e:
        SR_TASK.train(_sr_cfg(small, tmp_path / "m.safetensors"))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------- degradation


def test_sr_pair_shapes_levels_and_determinism():
    img = torch.from_numpy(_photo(np.random.default_rng(3), 50, 61)).permute(2, 0, 1)[None].float() / 255
    t = SRPair(32, 4, 1.0)
    lr, hr = t(img, np.random.default_rng(7))
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    assert lr.dtype == hr.dtype == torch.float32 and 0 <= lr.min() and lr.max() <= 1
    assert torch.equal(lr * 255, (lr * 255).round())  # 8-bit levels, like the LR files at test time
    # lr is the quantized degradation (blur 1.0, MATLAB bicubic /4) of hr
    assert torch.equal(lr, quantize(degrade(hr[None], 4, 1.0))[0])
    # hr is a crop of the image under one of the 8 flips/rotations
    crops = [img[0, :, i:i + 32, j:j + 32] for i in range(50 - 31) for j in range(61 - 31)]
    views = [torch.rot90(hr, -k, dims=(-2, -1)) for k in range(4)]
    views += [torch.rot90(hr.flip(-1), -k, dims=(-2, -1)) for k in range(4)]
    assert any(torch.equal(v, c) for v in views for c in crops)
    lr2, hr2 = t(img, np.random.default_rng(7))
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    _, hr3 = t(img, np.random.default_rng(8))
    assert not torch.equal(hr, hr3)
    # no blur differs from blur 1.0
    lr0, hr0 = SRPair(32, 4, 0.0)(img, np.random.default_rng(7))
    assert torch.equal(hr0, hr) and not torch.equal(lr0, lr)
    with pytest.raises(UserError, match="multiple"):
        SRPair(30, 4, 1.0)


def test_eval_sr_on_degraded_inputs_is_reproducible_and_worse_than_clean(bench):
    """JPEG q20 and the real-photo degradations lower bicubic's scores; the same seed gives the same
    numbers, another seed others; the two degradations together are refused."""
    data = bench["with_lr"]
    clean = eval_sr("bicubic", data, scale=4, device="cpu")
    jpeg = eval_sr("bicubic", data, scale=4, device="cpu", jpeg_quality=20)
    real = eval_sr("bicubic", data, scale=4, device="cpu", degradation="real", seed=3)
    assert jpeg["mean"]["psnr"] < clean["mean"]["psnr"] and real["mean"]["lpips"] > clean["mean"]["lpips"]
    assert jpeg["degradation"] == {"name": "jpeg", "quality": 20}
    assert real["degradation"] == {"name": "real", "seed": 3}
    assert eval_sr("bicubic", data, scale=4, device="cpu", degradation="real", seed=3)["mean"] == real["mean"]
    assert eval_sr("bicubic", data, scale=4, device="cpu", degradation="real", seed=4)["mean"] != real["mean"]
    with pytest.raises(UserError, match="choose one degradation"):
        eval_sr("bicubic", data, scale=4, device="cpu", degradation="real", jpeg_quality=50)
