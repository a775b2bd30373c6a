"""The web app's handlers (fastpercept.webapp.Handlers), without a browser or Gradio."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from fastpercept.errors import UserError
from fastpercept.models import save_model
from fastpercept.nets.style import StyleNet, StyleNetConfig
from fastpercept.webapp import Handlers, find_models

RUNTIME = dict(backend="torch", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    return Handlers(find_models(), tmp_path_factory.mktemp("work"), **RUNTIME)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    rng = np.random.default_rng(0)
    arr = (np.kron(rng.random((6, 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def test_stylize_gives_the_before_after_pair_and_the_file(handlers, photo):
    (before, after), download = handlers.stylize(str(photo), "the_scream", 1.0, False, 2048)
    assert before == str(photo) and after == download
    out = _pixels(after)
    assert out.shape == (48, 64, 3)
    assert np.abs(out - _pixels(photo)).mean() > 10  # it really is stylized


def test_strength_zero_returns_the_photo(handlers, photo):
    _, download = handlers.stylize(str(photo), "mosaic", 0.0, False, 0)
    assert np.abs(_pixels(download) - _pixels(photo)).max() <= 1


def test_upscale_puts_bicubic_and_the_network_side_by_side(handlers, photo):
    (bicubic, network), download = handlers.upscale(str(photo), "x4")
    assert network == download
    assert _pixels(bicubic).shape == _pixels(network).shape == (192, 256, 3)


def test_a_video_comes_back_stylized_with_progress(handlers, tmp_path):
    import av

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = np.full((48, 64, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    seen = []
    result = handlers.stylize_video(str(clip), "udnie", 1.0, progress=lambda done, total: seen.append((done, total)))
    with av.open(result) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert seen[-1] == (6, 6)


@pytest.mark.parametrize("call, message", [
    (lambda h, p: h.stylize(None, "mosaic"), "upload an image first"),
    (lambda h, p: h.stylize(str(p), "no_such_style"), "unknown style 'no_such_style'"),
    (lambda h, p: h.upscale(str(p), "x3"), "unknown model 'x3'"),
    (lambda h, p: h.stylize_video(None, "mosaic"), "upload a video first"),
])
def test_bad_requests_are_one_line_messages(handlers, photo, call, message):
    with pytest.raises(UserError, match=message):
        call(handlers, photo)


def test_a_corrupt_upload_is_named_by_its_file_name_not_the_servers_path(handlers, photo, tmp_path):
    upload = tmp_path / "deep" / "tmp" / "holiday.jpg"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(photo.read_bytes()[:100])
    with pytest.raises(UserError) as caught:
        handlers.stylize(str(upload), "mosaic")
    assert str(caught.value).startswith("holiday.jpg: ") and str(tmp_path) not in str(caught.value)


def test_models_in_a_folder_join_the_catalogue(tmp_path):
    torch.manual_seed(0)
    card = {"task": "style", "arch": "half", "norm": "instance", "upsample": "nearest", "style_image": "x.png"}
    save_model(StyleNet(StyleNetConfig(arch="half")), tmp_path / "mine.safetensors", card)
    (tmp_path / "broken.safetensors").write_bytes(b"not a model")
    catalogue = find_models(tmp_path)
    assert catalogue.styles["mine"] == tmp_path / "mine.safetensors"
    assert "mosaic" in catalogue.styles and "x4" in catalogue.sr and "broken" not in catalogue.styles
    with pytest.raises(UserError, match="not a folder"):
        find_models(tmp_path / "missing")


def test_every_style_gets_a_thumbnail_made_once(handlers):
    shots = handlers.thumbnails(size=48)
    assert [name for _, name in shots] == list(handlers.catalogue.styles)
    first = {path: os.stat(path).st_mtime_ns for path, _ in shots}
    assert {path: os.stat(path).st_mtime_ns for path, _ in handlers.thumbnails(size=48)} == first
