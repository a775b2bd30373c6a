"""LPIPS v0.1: exact agreement with the reference implementation and basic metric properties."""

from __future__ import annotations

import pytest
import torch

from fastpercept.runtime.images import load_image

from fastpercept.training.lpips import LPIPS
from fastpercept.training.metrics import quantize
from fastpercept.training.resize import gaussian_blur, imresize, mod_crop

# Reference values from the official `lpips` package, 0.1.4 (PyPI), with torch 2.14.1 and
# torchvision 0.29.1 in a throwaway venv outside the project:
#     m = lpips.LPIPS(net=NET, version="0.1"); m(hr, sr, normalize=True)
# for the Set5 pairs built by `_set5_pairs` below (saved with torch.save and loaded there).
# torchvision's download being unreachable, its alexnet-owt-7be5be79.pth / vgg16-397923af.pth
# were our converted backbones (torchvision key layout, unused classifier zero-filled) in that
# venv's $TORCH_HOME; the linear layers are the package's own weights/v0.1/{alex,vgg}.pth. So
# these values check the lin weights and the whole computation, not the backbone conversion.
REFERENCE_ALEX = {  # full images
    "img_001": 0.30426275730133057,
    "img_002": 0.23594388365745544,
    "img_003": 0.37347543239593506,
    "img_004": 0.4226302206516266,
    "img_005": 0.36688292026519775,
}
REFERENCE_VGG = {  # top-left 128x128 crops, to keep VGG-16 cheap
    "img_001": 0.22098633646965027,
    "img_002": 0.19211292266845703,
    "img_003": 0.31147512793540955,
    "img_004": 0.39773377776145935,
    "img_005": 0.26900479197502136,
}
TOL = 1e-4  # measured: bit-identical (0.0) on this machine


def _read_rgb(path) -> torch.Tensor:
    """An 8-bit image file as float (1, 3, H, W) in [0, 1] (the library's own loader)."""
    return load_image(path).rgb


@pytest.fixture(scope="module")
def alex() -> LPIPS:
    return LPIPS("alex")


@pytest.fixture(scope="module")
def set5_pairs(shared_data) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (mod-cropped HR, 8-bit bicubic x4 upscale of the benchmark LR)."""
    bench = shared_data / "bench" / "Set5"
    pairs = {}
    for hr_path in sorted((bench / "HR").glob("*.png")):
        hr = mod_crop(_read_rgb(hr_path), 4)
        sr = quantize(imresize(_read_rgb(bench / "LR_x4" / hr_path.name), scale=4))
        pairs[hr_path.stem] = (hr, sr)
    return pairs


@torch.no_grad()
def test_alex_matches_reference_package(alex, set5_pairs):
    assert set5_pairs.keys() == REFERENCE_ALEX.keys()
    for name, (hr, sr) in set5_pairs.items():
        assert alex(hr, sr).item() == pytest.approx(REFERENCE_ALEX[name], abs=TOL), name


@torch.no_grad()
def test_vgg_matches_reference_package(set5_pairs):
    vgg = LPIPS("vgg")
    hr = torch.cat([p[0][..., :128, :128] for p in set5_pairs.values()])
    sr = torch.cat([p[1][..., :128, :128] for p in set5_pairs.values()])
    got = vgg(hr, sr)  # one batch of 5: also checks per-image independence of the batch
    assert got.shape == (5,)
    assert got.tolist() == pytest.approx([REFERENCE_VGG[n] for n in set5_pairs], abs=TOL)


@torch.no_grad()
def test_identical_is_zero_and_symmetric(alex):
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert alex(a, a).abs().max().item() < 1e-7
    d_ab, d_ba = alex(a, b), alex(b, a)
    assert d_ab.shape == (2,) and (d_ab > 0).all()
    torch.testing.assert_close(d_ab, d_ba, rtol=0, atol=1e-6)


@torch.no_grad()
def test_orders_known_degradations(alex, set5_pairs):
    hr = set5_pairs["img_003"][0]  # 256x256 photo
    noisy = quantize(hr + 0.01 * torch.randn_like(hr))
    blurred = [quantize(gaussian_blur(hr, s)) for s in (1.0, 2.0, 4.0)]
    d = alex(hr.expand(4, -1, -1, -1), torch.cat([noisy, *blurred])).tolist()
    d_noise, d_blur1, d_blur2, d_blur4 = d
    assert d_noise < d_blur4
    assert d_blur1 < d_blur2 < d_blur4


def test_frozen_but_differentiable(alex):
    assert not any(p.requires_grad for p in alex.parameters())
    alex.train()
    assert not alex.training
    a = torch.rand(1, 3, 64, 64, requires_grad=True)
    alex(a, torch.rand(1, 3, 64, 64)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_rejects_bad_input(alex):
    with pytest.raises(ValueError):
        alex(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 60))
    with pytest.raises(ValueError):
        alex(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
