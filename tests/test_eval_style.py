"""``eval style``: a (tiny, untrained) style model scored on its card's objective, vs L-BFGS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastpercept.training.data import center_crop
from fastpercept.errors import UserError
from fastpercept.training.eval_style import eval_style, find_style_image, format_style_table, iterations_to_match
from fastpercept.runtime.images import load_image
from fastpercept.runtime.torch_runner import TorchRunner
from fastpercept.runtime.tiling import run_network
from fastpercept.training.losses import ObjectiveWeights, StyleObjective
from fastpercept.models import load_model, save_model
from fastpercept.nets.style import StyleNet, StyleNetConfig

TERM_KEYS = {"content", "style", "tv", "total"}
# Not the defaults: proves the objective is rebuilt from the card.
CARD_WEIGHTS = {"content_weight": 2.0, "style_weight": 7.0, "tv_weight": 1e-3,
                "content_layer": "relu2_2", "style_layers": ["relu1_2", "relu2_2", "relu3_3"]}


def _card(vgg_sha: str, style_image: str) -> dict:
    return {"task": "style", **StyleNetConfig(arch="half").to_dict(), **CARD_WEIGHTS,
            "style_image": style_image, "style_size": 32, "image_size": 256, "iterations": 0, "batch_size": 4,
            "lr": 1e-3, "seed": 0, "train_seconds": 0.0, "device": "cpu", "precision": "fp32",
            "dataset": "none", "vgg_sha256": vgg_sha, "final_losses": {}, "created": "2024-01-01T00:00:00Z",
            "version": "0.1.0"}


def _save_tiny_model(path: Path, vgg_sha: str, style_image: str) -> Path:
    torch.manual_seed(0)
    return save_model(StyleNet(StyleNetConfig(arch="half")), path, _card(vgg_sha, style_image))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, vgg, shared_data):
    root = tmp_path_factory.mktemp("eval_style")
    model = _save_tiny_model(root / "tiny.safetensors", vgg.sha256, "mosaic.jpg")
    missing = _save_tiny_model(root / "lost.safetensors", vgg.sha256, "no_such_style_4f2a.jpg")
    content = root / "content"
    content.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (40, 48), "b.png": (36, 28)}.items():
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = np.clip(ramp + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(content / name)
    return {"model": model, "missing": missing, "content": content,
            "style": shared_data / "styles" / "mosaic.jpg"}


@pytest.fixture(scope="module")
def result(setup):
    return eval_style(setup["model"], setup["content"], size=32, vs_optimize=(3, 2), device="cpu",
                      precision="fp32", style_image=setup["style"])


def _weighted(terms: dict) -> float:
    w = CARD_WEIGHTS
    return w["content_weight"] * terms["content"] + w["style_weight"] * terms["style"] + w["tv_weight"] * terms["tv"]


def test_result_has_the_spec_shape(result):
    assert {"model", "size", "images", "mean", "objective", "seconds"} <= set(result)
    assert result["model"] == "tiny" and result["size"] == 32
    assert [im["name"] for im in result["images"]] == ["a.png", "b.png"]
    rows = ["network", "lbfgs_2", "lbfgs_3"]
    for im in result["images"]:
        assert set(im) == {"name", *rows}
        assert set(im["network"]) == {*TERM_KEYS, "blobs"} and isinstance(im["network"]["blobs"], int)
        for r in rows:
            assert all(isinstance(im[r][k], float) for k in TERM_KEYS)
        assert set(im["lbfgs_2"]) == set(im["lbfgs_3"]) == TERM_KEYS
    assert list(result["mean"]) == rows and list(result["seconds"]) == rows
    assert set(result["mean"]["network"]) == {*TERM_KEYS, "blobs"}
    assert all(set(result["mean"][r]) == TERM_KEYS for r in rows[1:])
    assert all(result["seconds"][r] > 0 for r in rows)
    assert result["seconds"]["lbfgs_2"] <= result["seconds"]["lbfgs_3"]
    assert result["skipped"] == []
    json.dumps(result)  # plain JSON types only


def test_objective_comes_from_the_card(result, setup):
    obj = result["objective"]
    for k, v in CARD_WEIGHTS.items():
        assert obj[k] == v
    assert obj["style_size"] == 32 and Path(obj["style_image"]).name == "mosaic.jpg"


def test_totals_are_weighted_sums_and_means_are_means(result):
    for im in result["images"]:
        for r in ("network", "lbfgs_2", "lbfgs_3"):
            assert im[r]["total"] == pytest.approx(_weighted(im[r]), rel=1e-5)
        assert im["lbfgs_3"]["total"] < im["lbfgs_2"]["total"]
    for r, mean in result["mean"].items():
        for k in TERM_KEYS:
            assert mean[k] == pytest.approx(sum(im[r][k] for im in result["images"]) / 2)


def test_iterations_to_match_is_the_first_at_or_below():
    curve = [30.0, 20.0, 14.0, 15.0, 12.0]
    assert iterations_to_match(curve, 14.5) == 2
    assert iterations_to_match(curve, 14.0) == 2  # at counts
    assert iterations_to_match(curve, 12.5) == 4  # the bump at 3 does not count
    assert iterations_to_match(curve, 40.0) == 0
    assert iterations_to_match(curve, 11.0) is None


def test_lbfgs_curve_and_the_iterations_that_match_the_network(result):
    curve = result["lbfgs_curve"]
    assert len(curve) == 4  # iterations 0..3
    for n in (2, 3):
        assert curve[n] == pytest.approx(result["mean"][f"lbfgs_{n}"]["total"])
    network = result["mean"]["network"]["total"]
    k = result["lbfgs_iterations_to_match"]
    assert k == iterations_to_match(curve, network)
    line = format_style_table(result).splitlines()[-1]
    assert line.startswith("L-BFGS") and (str(k) in line if k is not None else "within 3 iterations" in line)


def _card_objective(vgg, style: Path) -> StyleObjective:
    """The tiny model's objective, built here by hand from CARD_WEIGHTS."""
    w = CARD_WEIGHTS
    weights = ObjectiveWeights(w["content_weight"], w["style_weight"], w["tv_weight"], w["content_layer"],
                               tuple(w["style_layers"]))
    return StyleObjective(vgg, load_image(style, max_size=32).rgb, weights)


def _assert_network_terms(got: dict, setup, vgg, x: torch.Tensor) -> None:
    """``got`` equals the tiny model's output on ``x`` scored by hand with its objective."""
    objective = _card_objective(vgg, setup["style"])
    with torch.no_grad():
        terms = objective(run_network(TorchRunner(load_model(setup["model"]).net), x), objective.content_features(x))
    for k in TERM_KEYS:
        assert got[k] == pytest.approx(float(terms[k]), rel=1e-4)


def test_network_terms_match_a_direct_computation(result, setup, vgg):
    """The same content tensor, network output and objective, computed here by hand."""
    x = load_image(setup["content"] / "b.png", max_size=32).rgb
    _assert_network_terms(result["images"][1]["network"], setup, vgg, x)


@pytest.mark.parametrize("h, w", [(48, 32), (32, 48)])
def test_center_crop_takes_the_middle_square(h, w):
    x = torch.rand(1, 3, h, w)  # shorter side already the size: no resampling, a pure crop
    top, left = (h - 32) // 2, (w - 32) // 2
    assert torch.equal(center_crop(x, 32), x[..., top:top + 32, left:left + 32])
    assert center_crop(torch.rand(1, 3, 90, 70), 32).shape == (1, 3, 32, 32)  # resized, then cropped


def test_crop_scores_the_center_square(result, setup, vgg):
    res = eval_style(setup["model"], setup["content"], size=32, device="cpu", precision="fp32",
                     style_image=setup["style"], crop=True)
    assert res["crop"] is True and "32x32 center crops" in format_style_table(res).splitlines()[0]
    x = center_crop(load_image(setup["content"] / "a.png").rgb, 32)  # 40 x 48 -> 32 x 38 -> 32 x 32
    _assert_network_terms(res["images"][0]["network"], setup, vgg, x)
    assert result["crop"] is False  # the module's result: the same photos scored whole
    assert result["images"][0]["network"]["content"] != pytest.approx(res["images"][0]["network"]["content"])


def test_blobs_are_counted_on_each_output_against_its_photo(setup, monkeypatch):
    """Each image's network output and its content photo reach the blob count as (H, W, 3) in [0, 1];
    the count lands in that image's network row and the mean is the mean per image. A stand-in
    count (the output's height) tells the images apart: a.png 40x48 -> 27x32, b.png 36x28 -> 32x25."""
    seen = []

    def blobs_as_height(output: np.ndarray, photo: np.ndarray) -> int:
        assert output.shape == photo.shape and output.shape[2] == 3 and output.dtype == photo.dtype == np.float32
        assert 0 <= output.min() and output.max() <= 1 and 0 <= photo.min() and photo.max() <= 1
        seen.append(photo)
        return output.shape[0]

    monkeypatch.setattr("fastpercept.training.eval_style.count_blobs", blobs_as_height)
    res = eval_style(setup["model"], setup["content"], size=32, device="cpu", precision="fp32",
                     style_image=setup["style"])
    assert [im["network"]["blobs"] for im in res["images"]] == [27, 32]
    assert res["mean"]["network"]["blobs"] == pytest.approx(29.5)
    photo_b = load_image(setup["content"] / "b.png", max_size=32).rgb[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(seen[1], photo_b)
    table = format_style_table(res).splitlines()
    assert table[1].split()[-1] == "blobs" and table[2].split()[0] == "network" and table[2].split()[-1] == "29.50"


def test_table_lists_every_row(result):
    table = format_style_table(result)
    lines = table.splitlines()
    assert any(line.startswith("network") for line in lines)
    assert any(line.startswith("lbfgs_2") for line in lines) and any(line.startswith("lbfgs_3") for line in lines)
    assert "total" in table and "s/image" in table


def test_unreadable_content_is_skipped(setup, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    (content / "bad.png").write_bytes(b"not an image")
    Image.open(setup["content"] / "a.png").save(content / "good.png")
    res = eval_style(setup["model"], content, size=32, device="cpu", precision="fp32", style_image=setup["style"])
    assert [im["name"] for im in res["images"]] == ["good.png"] and res["skipped"] == ["bad.png"]
    assert list(res["mean"]) == ["network"]


def test_style_image_lookup(setup, tmp_path, monkeypatch):
    model = setup["model"]
    assert find_style_image("mosaic.jpg", model, explicit="x/y.png") == Path("x/y.png")
    # Beside the model file.
    Image.new("RGB", (8, 8)).save(model.parent / "beside.png")
    assert find_style_image("beside.png", model) == model.parent / "beside.png"
    # Never a same-named file that happens to be in the current folder (nor a machine's data folder).
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "mosaic.jpg")
    for name in ("mosaic.jpg", "no_such_style_4f2a.jpg"):
        with pytest.raises(UserError, match="--style-image") as err:
            find_style_image(name, model)
        assert "\n" not in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "fastpercept", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_json_is_the_only_stdout(setup):
    p = _cli("eval", "style", "--model", str(setup["model"]), "--content", str(setup["content"]), "--size", "32",
             "--vs-optimize", "2", "--style-image", str(setup["style"]), "--device", "cpu", "--precision", "fp32",
             "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["model"] == "tiny" and list(doc["mean"]) == ["network", "lbfgs_2"]
    assert [im["name"] for im in doc["images"]] == ["a.png", "b.png"]


def test_cli_missing_style_image_is_one_line_exit_2(setup):
    p = _cli("eval", "style", "--model", str(setup["missing"]), "--content", str(setup["content"]),
             "--size", "32", "--json")
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_style_4f2a.jpg" in lines[0] and "--style-image" in lines[0]
