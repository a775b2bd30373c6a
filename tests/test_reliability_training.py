"""Issue 22, items 3, 12 and 13 (part): training outputs, float TIFF range, files that are not regular.

Numbers in the test names are the issue's. Training cases stop at validation (before anything is
written), so no network is trained and the shipped models are never at risk: the package's model
folder is a stand-in holding a copy of mosaic.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from fastpercept import models
from fastpercept.errors import UserError
from fastpercept.tasks.style import StyleConfig
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

    monkeypatch.setattr("fastpercept.tasks.style.loss_network", no_training)
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
