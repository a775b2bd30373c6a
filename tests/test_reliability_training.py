"""Issue 22, items 3, 12 and 13 (part): training outputs, float TIFF range, files that are not regular.

Numbers in the test names are the issue's. Training cases stop at validation (before anything is
written), so no network is trained and the shipped models are never at risk: the package's model
folder is a stand-in holding a copy of mosaic.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastpercept import models
from fastpercept.runtime import images
from fastpercept.errors import UserError
from fastpercept.training.tasks.style import StyleConfig
from test_reliability import one_line, run_cli


# ------------------------------------------------------------- 3. training over a shipped model


@pytest.fixture
def package_models(tmp_path, monkeypatch) -> Path:
    """A stand-in for the installed package's model folder, holding a copy of the shipped mosaic."""
    folder = tmp_path / "site-packages" / "fastpercept" / "assets" / "models"
    folder.mkdir(parents=True)
    shutil.copy(models.shipped_dir() / "mosaic.safetensors", folder)
    monkeypatch.setattr(models, "shipped_dir", lambda: folder)
    monkeypatch.setenv("FASTPERCEPT_MODELS", str(tmp_path / "user-models"))
    return folder


@pytest.fixture
def style_inputs(tmp_path) -> tuple[Path, Path]:
    data = tmp_path / "photos"
    data.mkdir()
    Image.new("RGB", (40, 40), (90, 120, 200)).save(data / "photo.png")
    style = tmp_path / "painting.png"
    Image.new("RGB", (40, 40), (200, 60, 30)).save(style)
    return data, style


def _refused(cfg: StyleConfig, match: str) -> None:
    with pytest.raises(UserError, match=match):
        cfg.validate()


def test_3_train_cannot_replace_the_shipped_model_it_starts_from(package_models, style_inputs, tmp_path,
                                                                 capsys, monkeypatch):
    data, style = style_inputs
    shipped = package_models / "mosaic.safetensors"
    before = shipped.read_bytes()

    def no_training(*_args, **_kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("fastpercept.training.tasks.style.loss_network", no_training)
    code, _, err = run_cli(capsys, "train", "style", "--data", data, "--style-image", style,
                           "--init-from", "mosaic", "-o", shipped, "--iters", "1")
    assert code == 2 and f"{shipped}: " in one_line(err)
    assert shipped.read_bytes() == before
    assert sorted(p.name for p in package_models.iterdir()) == ["mosaic.safetensors"]  # no checkpoint folder


def test_3_output_resolving_to_the_init_model_is_refused(package_models, style_inputs, tmp_path):
    data, style = style_inputs
    shipped = package_models / "mosaic.safetensors"
    link = tmp_path / "link.safetensors"
    link.symlink_to(shipped)
    # A symbolic link to the shipped model, named by its bare name.
    _refused(StyleConfig(data=str(data), output=str(link), style_image=str(style), init_from="mosaic"),
             "would overwrite the input")
    # A user's model by name, and a hard link to a model given by path.
    users = Path(os.environ["FASTPERCEPT_MODELS"])
    users.mkdir()
    mine = users / "mine.safetensors"
    shutil.copy(shipped, mine)
    _refused(StyleConfig(data=str(data), output=str(mine), style_image=str(style), init_from="mine"),
             "would overwrite the input")
    hard = tmp_path / "hard.safetensors"
    os.link(mine, hard)
    _refused(StyleConfig(data=str(data), output=str(hard), style_image=str(style), init_from=str(mine)),
             "would overwrite the input")
    # The same file through a path with "..".
    dotted = tmp_path / "photos" / ".." / "user-models" / "mine.safetensors"
    _refused(StyleConfig(data=str(data), output=str(dotted), style_image=str(style), init_from="mine"),
             "would overwrite the input")
    assert not list(tmp_path.rglob("*.ckpt"))


def test_3_nothing_is_written_into_the_package_model_folder(package_models, style_inputs, tmp_path):
    data, style = style_inputs
    _refused(StyleConfig(data=str(data), output=str(package_models / "new.safetensors"), style_image=str(style)),
             "package's model folder")
    _refused(StyleConfig(data=str(data), output=str(tmp_path / "ok.safetensors"), style_image=str(style),
                         checkpoint_dir=str(package_models / "ckpt")), "package's model folder")
    # Through a link to the folder.
    (tmp_path / "pkg").symlink_to(package_models)
    _refused(StyleConfig(data=str(data), output=str(tmp_path / "pkg" / "new.safetensors"), style_image=str(style)),
             "package's model folder")
    # Elsewhere is fine.
    StyleConfig(data=str(data), output=str(tmp_path / "ok.safetensors"), style_image=str(style),
                init_from="mosaic").validate()
    assert sorted(p.name for p in package_models.iterdir()) == ["mosaic.safetensors"]


# ------------------------------------------------------------------------- 12. float TIFF range


def _float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32)).save(path)  # mode "F"
    return path


RAMP = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)


@pytest.mark.parametrize("outlier", [3.0, 1e6])
def test_12_one_hot_pixel_does_not_darken_a_0_to_1_float_tiff(tmp_path, outlier):
    values = RAMP.copy()
    values[5, 7] = outlier  # was: 3.0 made 255 the white (the image came out black), 1e6 was refused
    decoded = images.decode_image(_float_tiff(tmp_path / "render.tif", values))
    assert decoded.source_mode == "F"
    np.testing.assert_allclose(decoded.rgb[0], np.clip(values, 0.0, 1.0), atol=1e-6)
    assert decoded.rgb[0, 5, 7] == 1.0  # the outlier is clipped


@pytest.mark.parametrize("white", [255.0, 65535.0])
def test_12_float_tiffs_on_8_and_16_bit_scales_keep_their_scale(tmp_path, white):
    values = RAMP * white
    values[5, 7] = 3 * white  # a hot pixel there too
    decoded = images.decode_image(_float_tiff(tmp_path / "scan.tif", values))
    np.testing.assert_allclose(decoded.rgb[0], np.clip(values / white, 0.0, 1.0), atol=1e-6)


# -------------------------------------------------------- 13. /dev/stdin is not an "empty file"


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def _fed_pipe(path: Path, data: bytes) -> Iterator[Path]:
    """A named pipe at ``path`` that a thread writes ``data`` into (what ``/dev/stdin`` is under ``cat x |``)."""
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        # A reader that never opened the pipe leaves the writer waiting in open(): this read end frees it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=10)
        os.close(fd)


def test_13_a_pipe_is_read_not_called_empty(tmp_path, capsys):
    data = _png_bytes()
    expected = np.asarray(Image.open(io.BytesIO(data))).transpose(2, 0, 1) / np.float32(255)
    with _fed_pipe(tmp_path / "stdin.png", data) as pipe:
        decoded = images.decode_image(pipe)
    np.testing.assert_allclose(decoded.rgb, expected, atol=1e-6)
    with _fed_pipe(tmp_path / "piped.png", data) as pipe:
        code, out, err = run_cli(capsys, "stylize", pipe, "-o", tmp_path / "out.png", "--precision", "fp32")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (8, 6)


def test_13_null_device_is_empty_and_other_devices_are_not_image_files():
    with pytest.raises(UserError, match="^/dev/null: empty file$"):
        images.decode_image("/dev/null")
    with pytest.raises(UserError, match="^/dev/zero: not a regular file"):
        images.decode_image("/dev/zero")
