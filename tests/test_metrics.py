"""PSNR-Y and SSIM-Y (BasicSR / MATLAB conventions)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from fastpercept.runtime.images import load_image

from fastpercept.training.metrics import count_blobs, find_blobs, psnr_y, quantize, rgb_to_y, ssim_y
from fastpercept.training.resize import imresize, mod_crop


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


# --- Blobs -----------------------------------------------------------------------------------
# Made-up outputs: a stylized-looking texture (smooth random colours in [0.25, 0.75], never
# near-white or near-black) over a flat photo (a grey-blue sky), with discs painted in.

def _texture(size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) float32: blotches of colour 16 px across plus fine grain, in [0.25, 0.75]."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((size // 16, size // 16, 3), dtype=np.float32), (size, size),
                        interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 0.03, (size, size, 3)).astype(np.float32)
    return np.clip(0.25 + 0.5 * coarse + grain, 0.25, 0.75)


def _sky(size: int) -> np.ndarray:
    return np.full((size, size, 3), (0.6, 0.7, 0.8), dtype=np.float32)


def _disc(image: np.ndarray, center: tuple[int, int], radius: int, value: float) -> np.ndarray:
    painted = image.copy()
    cv2.circle(painted, center, radius, (value, value, value), thickness=-1)
    return painted


def test_a_texture_has_no_blobs():
    assert find_blobs(_texture(256), _sky(256)) == []


@pytest.mark.parametrize("value, kind", [(1.0, "white"), (0.0, "black")])
def test_a_painted_disc_is_one_blob(value, kind):
    output = _disc(_texture(256), (100, 140), 20, value)
    [blob] = find_blobs(output, _sky(256))
    assert blob.kind == kind
    x, y, w, h = blob.box
    assert abs(x + w / 2 - 100) <= 2 and abs(y + h / 2 - 140) <= 2 and 30 <= w <= 41 and 30 <= h <= 41
    # The soft edge of the smoothness window takes a few px off the painted radius of 20.
    assert 14 <= blob.radius <= 20 and blob.contrast > 0.3 and abs(blob.photo_contrast) < 0.01
    assert count_blobs(output, _sky(256)) == 1


def test_a_disc_the_photo_has_is_not_a_blob():
    photo = _disc(_sky(256), (100, 140), 20, 1.0)  # a white disc on the sky: the moon
    assert find_blobs(_disc(_texture(256), (100, 140), 20, 1.0), photo) == []
    # A white disc over a dark spot of the photo stands out all the more: still a blob.
    dark = _disc(_sky(256), (100, 140), 20, 0.1)
    assert count_blobs(_disc(_texture(256), (100, 140), 20, 1.0), dark) == 1


def test_a_disc_below_the_area_threshold_is_not_a_blob():
    """The same disc (radius 14 px) is a blob in a 512 px image and too small in an 800 px one:
    its area, not its size in pixels, decides (0.1% of the image: 262 vs 640 px)."""
    assert count_blobs(_disc(_texture(512), (200, 200), 14, 1.0), _sky(512)) == 1
    assert count_blobs(_disc(_texture(800), (200, 200), 14, 1.0), _sky(800)) == 0


def test_a_stroke_is_not_a_blob():
    """A long white line 5 px wide: large enough, but no disc of radius 6 fits in it."""
    output = _texture(256)
    cv2.line(output, (20, 128), (236, 128), (1.0, 1.0, 1.0), thickness=5)
    assert find_blobs(output, _sky(256)) == []


def test_a_blob_cut_by_the_border_is_measured_as_if_it_went_on():
    """Half a disc at the left edge, as the networks paint them there."""
    [blob] = find_blobs(_disc(_texture(256), (0, 128), 20, 1.0), _sky(256))
    assert blob.box[0] == 0 and blob.radius >= 14


def test_blobs_need_images_of_one_shape():
    with pytest.raises(ValueError, match="one shape"):
        find_blobs(_texture(64), _sky(32))
