"""PSNR-Y and SSIM-Y (BasicSR / MATLAB conventions)."""

from __future__ import annotations

import math

import pytest
import torch

from fastpercept.images import load_image

from fastpercept.metrics import psnr_y, quantize, rgb_to_y, ssim_y
from fastpercept.resize import imresize, mod_crop


def _read_rgb(path) -> torch.Tensor:
    """An 8-bit image file as float (1, 3, H, W) in [0, 1] (the library's own loader)."""
    return load_image(path).rgb


def test_rgb_to_y_matlab_coefficients():
    black, white = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    assert rgb_to_y(black).item() == pytest.approx(16.0)
    assert rgb_to_y(white).item() == pytest.approx(235.0, abs=1e-4)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_y(red.double()).item() == pytest.approx(16 + 65.481)
    assert rgb_to_y(torch.rand(2, 3, 5, 7)).shape == (2, 1, 5, 7)
    grey = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_y(grey), rgb_to_y(grey.expand(1, 3, 4, 4)))


def test_identical_images():
    x = quantize(torch.rand(1, 3, 40, 40))
    assert psnr_y(x, x, border=4) == math.inf
    assert ssim_y(x, x, border=4) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_values():
    a = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 0.8
    # Adding d to R, G and B moves Y by 219 * d; d = 1/219 is an offset of one level in Y.
    assert psnr_y(a + 1 / 219, a, border=0) == pytest.approx(20 * math.log10(255), abs=1e-9)  # 48.13 dB
    # One 8-bit level in every channel: Y moves by 219/255.
    assert psnr_y(a + 1 / 255, a, border=0) == pytest.approx(20 * math.log10(255 / (219 / 255)), abs=1e-9)


def test_border_crop():
    a = quantize(torch.rand(1, 3, 30, 30))
    b = a.clone()
    b[..., :3, :] = 1 - b[..., :3, :]  # damage only the top 3 rows
    assert psnr_y(a, b, border=3) == math.inf
    assert ssim_y(a, b, border=3) == pytest.approx(1.0)
    assert psnr_y(a, b, border=2) < 30
    assert ssim_y(a, b, border=0) < 1.0
    # (3, H, W) is accepted as one image.
    assert psnr_y(a[0], b[0], border=3) == math.inf


def test_ssim_structure_and_contrast():
    a = quantize(torch.rand(1, 3, 48, 48))
    noisy = quantize(a + 0.1 * torch.randn_like(a))
    very_noisy = quantize(a + 0.3 * torch.randn_like(a))
    s1, s2 = ssim_y(a, noisy, 0), ssim_y(a, very_noisy, 0)
    assert 1.0 > s1 > s2 > 0
    assert ssim_y(noisy, a, 0) == pytest.approx(s1, abs=1e-12)  # symmetric


def test_rejects_bad_input():
    a = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError):
        psnr_y(a, torch.rand(1, 3, 20, 21), border=0)
    with pytest.raises(ValueError):
        psnr_y(torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20), border=0)
    with pytest.raises(ValueError):
        psnr_y(a, a, border=10)
    with pytest.raises(ValueError):
        ssim_y(a, a, border=5)  # 10x10 left: smaller than the 11x11 window


def test_set5_bicubic_x4_reproduces_published_figures(shared_data):
    """Bicubic x4 on Set5, Y channel, 4-pixel border: 28.43 dB (shared/README, the literature).

    Measured here: PSNR 28.4318 dB, SSIM 0.8113 (Set14 26.0928 / 0.7049, BSD100 25.9630 / 0.6682).
    SSIM sits ~0.001 above the MATLAB tables (0.8104) because BasicSR's convention, used here,
    does not round Y to integers the way MATLAB's rgb2ycbcr on uint8 does.
    """
    bench = shared_data / "bench" / "Set5"
    psnrs, ssims = [], []
    for hr_path in sorted((bench / "HR").glob("*.png")):
        hr = mod_crop(_read_rgb(hr_path), 4)
        sr = quantize(imresize(_read_rgb(bench / "LR_x4" / hr_path.name), scale=4))
        psnrs.append(psnr_y(sr, hr, border=4))
        ssims.append(ssim_y(sr, hr, border=4))
    assert len(psnrs) == 5
    assert sum(psnrs) / 5 == pytest.approx(28.43, abs=0.02)
    assert sum(ssims) / 5 == pytest.approx(0.8113, abs=0.002)
    # An independent implementation on the same Y planes: scikit-image 0.26.0
    # structural_similarity(y_sr, y_hr, gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False, data_range=255), run once outside the project (on planes quantized
    # half up, as saving does: one 8-bit rounding rule everywhere).
    reference = [0.8576563501001195, 0.8738086425614139, 0.7374836712491823, 0.7546644738704533, 0.8326993863563699]
    assert ssims == pytest.approx(reference, abs=1e-9)
