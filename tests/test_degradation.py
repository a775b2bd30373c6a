"""Real-ESRGAN's high-order degradation (fastpercept.training.degradation) and ``train sr --degradation real``."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastpercept.training.data import SRPair
from fastpercept.training.degradation import (DegradationConfig, add_gaussian_noise, add_poisson_noise, degrade_jpeg,
                                     degrade_real, eval_rng, filter2d, gaussian_kernel, generalized_gaussian_kernel,
                                     jpeg, plateau_kernel, random_kernel, random_resize, sinc_kernel)
from fastpercept.errors import UserError
from fastpercept.training.eval_sr import make_lr
from fastpercept.training.resize import imresize
from fastpercept.training.tasks.sr import TASK as SR_TASK, SRConfig


def _photo(seed: int, h: int, w: int) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1]: a colour ramp, edges and texture (something for blur and JPEG to damage)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(8 * x + 5 * y)])
    base[:, h // 3:h // 2] += 0.25  # a bright band: edges
    img = np.clip(base + rng.normal(0, 0.06, (3, h, w)), 0, 1)
    return torch.from_numpy(img).float()[None]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / (a - b).square().mean().item())


def _on_8bit_levels(x: torch.Tensor) -> bool:
    return torch.equal(x * 255, (x * 255).round())


# ------------------------------------------------------------------------------------ kernels


@pytest.mark.parametrize("make", [
    lambda: gaussian_kernel(21, 2.0),
    lambda: gaussian_kernel(13, 0.5, 2.5, 0.7),
    lambda: generalized_gaussian_kernel(15, 1.5, 1.0, -1.0, beta=0.5),
    lambda: generalized_gaussian_kernel(15, 1.5, beta=4.0),
    lambda: plateau_kernel(11, 1.0, 2.0, 2.0, beta=1.5),
    lambda: sinc_kernel(21, math.pi / 4),
])
def test_kernels_sum_to_one_and_are_point_symmetric(make):
    k = make()
    assert k.dtype == torch.float64 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(k, k.flip(0, 1))  # k(x) = k(-x): correlation is convolution
    c = k.shape[0] // 2
    assert k[c, c] == k.max()


def test_isotropic_and_anisotropic_gaussians():
    iso = gaussian_kernel(21, 2.0)
    assert torch.allclose(iso, iso.T)
    # its 1-D profile is the sampled Gaussian
    profile = torch.exp(-0.5 * (torch.arange(-10, 11, dtype=torch.float64) / 2.0) ** 2)
    assert torch.allclose(iso[10] / iso[10, 10], profile)
    wide = gaussian_kernel(21, 3.0, 0.5, 0.0)  # wide along x (columns), narrow along y (rows)
    assert wide[10, 13] > 10 * wide[13, 10]
    assert torch.allclose(gaussian_kernel(21, 3.0, 0.5, math.pi / 2), wide.T)  # rotated a quarter turn


def test_generalized_and_plateau_shapes():
    gauss = gaussian_kernel(21, 2.0)
    heavy = generalized_gaussian_kernel(21, 2.0, beta=0.5)
    flat = generalized_gaussian_kernel(21, 2.0, beta=4.0)
    assert torch.allclose(generalized_gaussian_kernel(21, 2.0, beta=1.0), gauss)
    assert heavy[10, 0] > gauss[10, 0] > flat[10, 0]  # beta < 1: heavier tails; > 1: lighter
    plateau = plateau_kernel(21, 2.0, beta=2.0)
    assert plateau[10, 10] / plateau[10, 11] < gauss[10, 10] / gauss[10, 11]  # a flatter top
    assert plateau[10, 0] > gauss[10, 0]  # slower tails


def test_sinc_kernel_is_a_circular_low_pass_with_ringing():
    k = sinc_kernel(21, math.pi / 3)
    assert k.shape == (21, 21)
    assert torch.allclose(k, k.T) and torch.allclose(k, k.flip(0))
    assert k.min() < 0  # negative lobes: the ringing it is there for
    # circular: equal at equal radius (5 pixels along an axis and along (3, 4))
    assert k[10, 15].item() == pytest.approx(k[13, 14].item(), rel=1e-9)
    # a lower cutoff is a wider kernel: less weight at the centre
    assert sinc_kernel(21, math.pi / 5)[10, 10] < k[10, 10]


def test_random_kernels_follow_the_config():
    cfg = DegradationConfig()
    rng = np.random.default_rng(0)
    sizes = set()
    for stage in (0, 1):
        for _ in range(60):
            k = random_kernel(rng, cfg, stage)
            sizes.add(k.shape[0])
            assert k.shape[0] == k.shape[1] and k.shape[0] in cfg.kernel_sizes
            assert k.sum().item() == pytest.approx(1.0, abs=1e-9)
    assert len(sizes) > 4
    assert torch.equal(random_kernel(np.random.default_rng(5), cfg, 0), random_kernel(np.random.default_rng(5), cfg, 0))
    only_sinc = DegradationConfig(sinc_prob=(1.0, 1.0))
    assert random_kernel(np.random.default_rng(1), only_sinc, 1).min() < 0


# -------------------------------------------------------------------------------- operations


def test_filter2d_shapes_identity_and_borders():
    img = _photo(0, 20, 30)
    delta = torch.zeros(7, 7, dtype=torch.float64)
    delta[3, 3] = 1
    assert torch.equal(filter2d(img, delta), img)
    blurred = filter2d(img, gaussian_kernel(21, 3.0))  # kernel wider than the image is tall: still mirrored
    assert blurred.shape == img.shape and blurred.dtype == img.dtype
    assert filter2d(img[0], gaussian_kernel(5, 1.0)).shape == img[0].shape  # (3, H, W) too
    flat = torch.full((1, 3, 9, 9), 0.4)
    assert torch.allclose(filter2d(flat, gaussian_kernel(21, 3.0)), flat)  # weights sum to 1, at the borders too
    assert blurred.std() < img.std()


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_random_resize_sizes(mode):
    img = _photo(1, 32, 40)
    assert random_resize(img, (13, 50), mode).shape == (1, 3, 13, 50)
    assert random_resize(img, (32, 40), mode) is img
    with pytest.raises(ValueError):
        random_resize(img, (8, 8), "nearest")


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_asked_std(gray):
    img = torch.full((1, 3, 128, 128), 0.5)
    out = add_gaussian_noise(img, 10 / 255, gray, np.random.default_rng(0))
    residual = out - img
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    assert residual.std().item() == pytest.approx(10 / 255, rel=0.03)
    same_channels = torch.equal(residual[:, 0], residual[:, 1]) and torch.equal(residual[:, 1], residual[:, 2])
    assert same_channels == gray
    assert torch.equal(out, add_gaussian_noise(img, 10 / 255, gray, np.random.default_rng(0)))
    assert not torch.equal(out, add_gaussian_noise(img, 10 / 255, gray, np.random.default_rng(1)))
    assert add_gaussian_noise(img[0], 0.1, gray, np.random.default_rng(0)).shape == img[0].shape


@pytest.mark.parametrize("gray", [False, True])
def test_poisson_noise_is_shot_noise(gray):
    # 128 distinct levels in [0.25, 0.75): 128 "photons" at full scale, variance x / 128 at level x
    levels = torch.arange(64, 192, dtype=torch.float32) / 255
    img = levels.repeat(3, 128, 1)[None]  # (1, 3, 128, 128), every column one level
    scale = 2.0
    out = add_poisson_noise(img, scale, gray, np.random.default_rng(0))
    residual = out - img
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    luma = (0.299 + 0.587 + 0.114) * img  # a grey image's luma is itself
    expected = (luma if gray else img).mean().item() / 128 * scale ** 2
    assert residual.var().item() == pytest.approx(expected, rel=0.05)
    # brighter is noisier
    assert residual[..., 96:].var() > 1.5 * residual[..., :32].var()
    same_channels = torch.equal(residual[:, 0], residual[:, 2])
    assert same_channels == gray
    assert torch.equal(out, add_poisson_noise(img, scale, gray, np.random.default_rng(0)))


def _blockiness(x: torch.Tensor) -> float:
    """Mean |horizontal step| across 8x8 block boundaries over the mean step inside blocks (~1 when
    there is no block grid)."""
    steps = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column step, (W - 1,)
    boundary = steps[7::8]
    inside = torch.cat([steps[i::8] for i in range(7)])
    return (boundary.mean() / inside.mean()).item()


def test_jpeg_really_compresses():
    img = F.avg_pool2d(_photo(2, 128, 128), 5, 1, 2, count_include_pad=False)  # smooth: block artefacts show
    low, high = jpeg(img, 30), jpeg(img, 95)
    assert low.shape == img.shape and low.dtype == torch.float32 and _on_8bit_levels(low)
    assert 0 <= low.min() and low.max() <= 1
    assert _psnr(high, img) > _psnr(low, img) + 5  # quality matters
    assert _psnr(low, img) < 38  # and the image did change
    assert _blockiness(img) == pytest.approx(1.0, abs=0.15)
    assert _blockiness(low) > 1.8 and _blockiness(high) < 1.3  # the 8x8 grid of a real encoder
    assert torch.equal(low, jpeg(img, 30))  # deterministic
    assert jpeg(img[0], 50).shape == img[0].shape


# ------------------------------------------------------------------------------------ pipelines


def test_degrade_real_shapes_levels_determinism():
    hr = _photo(3, 66, 83)  # not multiples of 4: mod-cropped to 64 x 80
    lr = degrade_real(hr, 4, np.random.default_rng(0))
    assert lr.shape == (1, 3, 16, 20) and lr.dtype == torch.float32
    assert 0 <= lr.min() and lr.max() <= 1 and _on_8bit_levels(lr)
    assert torch.equal(lr, degrade_real(hr, 4, np.random.default_rng(0)))  # bit for bit
    assert degrade_real(hr[0], 4, np.random.default_rng(0)).shape == (3, 16, 20)
    batch = degrade_real(torch.cat([hr, hr]), 4, np.random.default_rng(0))
    assert torch.equal(batch[:1], lr) and not torch.equal(batch[1:], lr)  # one draw after another
    clean = imresize(hr[..., :64, :80], scale=0.25)
    scores = [_psnr(degrade_real(hr, 4, np.random.default_rng(s)), clean) for s in range(8)]
    assert len(set(scores)) == 8  # seeds differ
    assert all(15 < p < 40 for p in scores)  # damaged, but not noise


def test_degrade_real_is_the_same_under_two_threads():
    hr = _photo(4, 64, 64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = degrade_real(hr, 4, np.random.default_rng(3))
        torch.set_num_threads(2)
        two = degrade_real(hr, 4, np.random.default_rng(3))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_degrade_jpeg_is_the_benchmark_lr_compressed():
    hr = _photo(5, 70, 90)
    lr = degrade_jpeg(hr, 4, 40)
    assert lr.shape == (1, 3, 17, 22) and _on_8bit_levels(lr)
    assert torch.equal(lr, jpeg(make_lr(hr, 4), 40))
    assert not torch.equal(lr, make_lr(hr, 4))


def test_jpeg_only_share_of_the_pairs():
    hr = _photo(6, 64, 64)
    plain = degrade_real(hr, 4, np.random.default_rng(2))
    # 0 (the default) draws nothing more: the plain pipeline's sequence, bit for bit.
    assert torch.equal(plain, degrade_real(hr, 4, np.random.default_rng(2), DegradationConfig(jpeg_only_prob=0.0)))
    always = DegradationConfig(jpeg_only_prob=1.0, jpeg_only_quality=(50, 50))
    assert torch.equal(degrade_real(hr, 4, np.random.default_rng(2), always), degrade_jpeg(hr, 4, 50))
    half = DegradationConfig(jpeg_only_prob=0.5, jpeg_only_quality=(30, 95))
    rng = np.random.default_rng(9)
    lrs = [degrade_real(hr, 4, rng, half) for _ in range(40)]
    simple = sum(any(torch.equal(lr, degrade_jpeg(hr, 4, q)) for q in range(30, 96)) for lr in lrs)
    assert 10 <= simple <= 30  # about half, each one bicubic and one JPEG of a quality in range


def test_eval_rng_is_per_image_name():
    a = eval_rng(0, "img_001.png").random(4)
    assert np.array_equal(a, eval_rng(0, "img_001.png").random(4))
    assert not np.array_equal(a, eval_rng(0, "img_002.png").random(4))
    assert not np.array_equal(a, eval_rng(1, "img_001.png").random(4))


def test_config_is_frozen_and_json():
    cfg = DegradationConfig()
    with pytest.raises(AttributeError):
        cfg.final_sinc_prob = 0.5
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["jpeg_quality"] == [[30, 95], [30, 95]] and d["final_sinc_prob"] == 0.8
    assert sum(cfg.kernel_probs) == pytest.approx(1.0)
    assert all(sum(p) == pytest.approx(1.0) for p in cfg.resize_probs)


# ------------------------------------------------------------------------------ training pairs

# Every random damage switched off but the final resize and a near-lossless JPEG: LR ~ HR / 4.
GENTLE = DegradationConfig(blur_prob=(0.0, 0.0), resize_probs=((0, 0, 1), (0, 0, 1)), gaussian_noise_prob=(1.0, 1.0),
                           noise_sigma=((0.0, 0.0), (0.0, 0.0)), jpeg_quality=((95, 95), (95, 95)),
                           final_sinc_prob=0.0)


def _shifts(lr: torch.Tensor, ref: torch.Tensor) -> list[float]:
    """PSNR of ``lr`` against ``ref`` moved one pixel up, down, left and right."""
    return [_psnr(lr[:, 1:], ref[:, :-1]), _psnr(lr[:, :-1], ref[:, 1:]),
            _psnr(lr[:, :, 1:], ref[:, :, :-1]), _psnr(lr[:, :, :-1], ref[:, :, 1:])]


def test_real_sr_pair_is_aligned_deterministic_and_picklable():
    img = _photo(6, 90, 120)
    pair = SRPair(32, 4, 1.0, DegradationConfig())
    lr, hr = pair(img, np.random.default_rng(0))
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32) and _on_8bit_levels(lr)
    again = pickle.loads(pickle.dumps(pair))(img, np.random.default_rng(0))  # as a spawned loader worker would
    assert torch.equal(again[0], lr) and torch.equal(again[1], hr)
    # The patch is cut from a larger degraded crop: LR and HR must still show the same place.
    # Grey 8 px squares (grey: JPEG's 4:2:0 chroma would smear coloured ones).
    squares = F.interpolate(torch.rand(1, 1, 12, 15).expand(1, 3, -1, -1), scale_factor=8, mode="nearest")
    for seed in range(6):
        lr, hr = SRPair(32, 4, 1.0, GENTLE)(squares, np.random.default_rng(seed))
        shrunk = F.avg_pool2d(hr[None], 4)[0]
        assert _psnr(lr, shrunk) > max(_shifts(lr, shrunk)) + 3, seed
    with pytest.raises(UserError, match="multiple"):
        SRPair(30, 4, 1.0, DegradationConfig())


# ------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real_photos")
    for i, (h, w) in enumerate([(40, 48), (52, 36), (33, 60)]):
        arr = (_photo(10 + i, h, w)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(root / f"p{i}.png")
    return root


def _cfg(photos: Path, out: Path, **kw) -> SRConfig:
    base = {"data": str(photos), "output": str(out), "iters": 4, "batch_size": 2, "patch_size": 32, "scale": 4,
            "loss": "pixel", "degradation": "real", "checkpoint_every": 2, "log_every": 1, "seed": 5,
            "precision": "fp32", "device": "cpu"}
    base.update(kw)
    return SRConfig(**base)


def test_train_real_resumes_exactly_and_records_the_degradation(photos, tmp_path):
    straight = SR_TASK.train(_cfg(photos, tmp_path / "a.safetensors"))
    SR_TASK.train(_cfg(photos, tmp_path / "b.safetensors", iters=2))
    resumed = SR_TASK.train(_cfg(photos, tmp_path / "b.safetensors", resume=True))
    with_worker = SR_TASK.train(_cfg(photos, tmp_path / "c.safetensors", workers=1))
    sa = straight.net.state_dict()
    for other in (resumed, with_worker):
        for k, v in other.net.state_dict().items():
            assert torch.equal(sa[k], v), k
    assert straight.card["degradation"] == {"name": "real-esrgan", "config": DegradationConfig().to_dict()}
    assert "blur_sigma" not in straight.card
    assert straight.card["stages"][-1]["degradation"]["name"] == "real-esrgan"
    clean = SR_TASK.train(_cfg(photos, tmp_path / "d.safetensors", degradation="clean", iters=1))
    assert clean.card["degradation"] == "clean" and clean.card["blur_sigma"] == 1.0
    # a resume may not switch the degradation
    with pytest.raises(UserError, match="degradation"):
        SR_TASK.train(_cfg(photos, tmp_path / "b.safetensors", degradation="clean", iters=6, resume=True))


def test_degradation_flag(photos, tmp_path, capsys):
    from fastpercept.apps.cli import main

    assert main(["train", "sr", "--data", str(photos), "--scale", "4", "--loss", "pixel", "--patch-size", "32",
                 "--batch-size", "1", "--iters", "1", "--degradation", "real", "--precision", "fp32",
                 "-o", str(tmp_path / "m.safetensors")]) == 0
    from fastpercept.models import read_card

    assert read_card(tmp_path / "m.safetensors")["degradation"]["name"] == "real-esrgan"
    with pytest.raises(SystemExit):
        main(["train", "sr", "--data", str(photos), "--scale", "4", "--loss", "pixel", "--degradation", "jpeg",
              "-o", str(tmp_path / "n.safetensors")])
    with pytest.raises(UserError, match="--degradation"):
        _cfg(photos, tmp_path / "x.safetensors", degradation="jpeg").validate()
    with pytest.raises(UserError, match="add --degradation real"):
        _cfg(photos, tmp_path / "x.safetensors", degradation="clean", jpeg_only_prob=0.3).validate()
    with pytest.raises(UserError, match=r"--jpeg-only-prob must be in \[0, 1\]"):
        _cfg(photos, tmp_path / "x.safetensors", degradation="real", jpeg_only_prob=1.5).validate()
