"""Any painting as the style (universal style transfer): the transform's algebra, the graphs
against the PyTorch network, the runner (painting cache, tiles), the API and CLI, training.

Networks here are untrained (random decoders) wherever a test is about mechanics; training uses
the real VGG-16 weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import fastpercept  # noqa: E402
from fastpercept.architectures import WCTConfig  # noqa: E402
from fastpercept.errors import UserError  # noqa: E402
from fastpercept.models import load_model, save_model  # noqa: E402
from fastpercept.runtime.anystyle import coloring, feature_moments, whiten_color, whitening  # noqa: E402
from fastpercept.runtime.tiling import run_network  # noqa: E402


@pytest.fixture(scope="module")
def painter(tmp_path_factory) -> Path:
    """An any-painting model file to relu2_1 with untrained decoders (mechanics only)."""
    from fastpercept.nets.wct import WCTNet

    torch.manual_seed(0)
    net = WCTNet(WCTConfig(deepest="relu2_1"))
    path = tmp_path_factory.mktemp("anystyle") / "painter.safetensors"
    return save_model(net, path, {"task": "anystyle", **net.config.to_dict()}, dtype=torch.float32)


def _image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.kron(rng.random((h // 8, w // 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)


def test_whiten_color_gives_the_paintings_statistics():
    rng = np.random.default_rng(0)
    photo = rng.normal(size=(6, 20, 30)) * 40 + 5  # large features: the +identity hardly counts
    painting = (rng.random((6, 25, 25)) ** 2) * 60 + rng.random((6, 1, 1)) * 10
    painting[1] = painting[0] * 0.5  # a low-rank colour field: two channels move together
    out = whiten_color(photo.astype(np.float32), whitening(photo), coloring(painting))
    (m_out, c_out), (m_p, c_p) = feature_moments(out), feature_moments(painting)
    assert np.allclose(m_out, m_p, atol=1e-3)
    assert np.allclose(c_out, c_p, rtol=0.05, atol=1.5)
    # Strength 0 is the photo; 0.5 lies between.
    assert np.allclose(whiten_color(photo, whitening(photo), coloring(painting), 0.0), photo, atol=1e-3)
    half = whiten_color(photo, whitening(photo), coloring(painting), 0.5)
    assert np.allclose(half, (out + photo) / 2, atol=1e-2)


def test_adain_gives_each_channel_the_paintings_mean_and_deviation():
    rng = np.random.default_rng(2)
    photo = (rng.normal(size=(5, 16, 16)) * 3 + 2).astype(np.float32)
    painting = (rng.random((5, 20, 24)) * rng.random((5, 1, 1)) * 9).astype(np.float32)
    photo_m, painting_m = whitening(photo, "adain"), coloring(painting, "adain")
    assert np.count_nonzero(photo_m.matrix - np.diag(np.diagonal(photo_m.matrix))) == 0
    out = whiten_color(photo, photo_m, painting_m)
    axes = (1, 2)
    assert np.allclose(out.mean(axis=axes), painting.mean(axis=axes), atol=1e-4)
    assert np.allclose(out.std(axis=axes), painting.std(axis=axes), rtol=1e-3)
    # Channel by channel, an affine map of the photo (not WCT's mixing): correlations stay 1.
    for c in range(5):
        assert np.corrcoef(out[c].ravel(), photo[c].ravel())[0, 1] > 0.9999
    assert not np.allclose(whiten_color(photo, whitening(photo), coloring(painting)), out, atol=1e-2)


def test_graphs_match_the_pytorch_network(painter):
    model = load_model(painter)
    net = model.net
    x = np.random.default_rng(1).random((1, 3, 36, 44)).astype(np.float32)
    for backend in ("openvino", "onnxruntime", "torch"):
        parts = model.runner(backend, "cpu", "fp32")
        for level in model.config.levels:
            f = net.encode(torch.from_numpy(x), level).detach().numpy()
            assert np.abs(parts.encoders[level](x) - f).max() <= 1e-4 * max(1.0, np.abs(f).max()), (backend, level)
            y = net.decode(torch.from_numpy(f), level).detach().numpy()
            assert np.abs(parts.decoders[level](f) - y).max() <= 1e-4, (backend, level)


def test_weights_that_do_not_fit_are_one_line(painter, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(painter))
    card = json.dumps(load_model(painter).card)
    stray = {**tensors, "decoders.relu3_1.layers.0.1.weight": np.zeros((1,), np.float32)}
    save_file(stray, str(tmp_path / "stray.safetensors"), metadata={"fastpercept": card})
    with pytest.raises(UserError, match="decoders.relu3_1.layers.0.1.weight unexpected"):
        load_model(tmp_path / "stray.safetensors")
    missing = {k: v for k, v in tensors.items() if k != "decoders.relu1_1.layers.0.1.bias"}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata={"fastpercept": card})
    with pytest.raises(UserError, match="decoders.relu1_1.layers.0.1.bias missing"):
        load_model(tmp_path / "missing.safetensors")


def test_a_painting_is_encoded_once_and_tiles_meet_without_seams(painter):
    model = load_model(painter)
    parts = model.runner("onnxruntime", "cpu", "fp32")
    calls = []
    encoder = parts.encoders["relu2_1"]
    parts.encoders["relu2_1"] = lambda x, stats=None: calls.append(x.shape) or encoder(x)
    painting = np.random.default_rng(2).random((3, 40, 56)).astype(np.float32)
    runner = parts.with_painting(painting, 0.8)
    parts.with_painting(painting.copy(), 0.3)  # the same pixels: the cached statistics
    assert len(calls) == 1
    parts.encoders["relu2_1"] = encoder
    photo = np.random.default_rng(3).random((2, 3, 70, 90)).astype(np.float32)
    whole = run_network(runner, photo)
    assert whole.shape == photo.shape and not np.allclose(whole[0], whole[1])
    tiled = run_network(runner, photo, tile=48)
    # Tiles whiten with the whole image's statistics: they agree with one pass up to the
    # networks' borders, which the overlap blends away.
    assert np.abs(tiled - whole).mean() < 0.01 and np.abs(tiled - whole).max() < 0.15


def test_stylize_with_a_painting(painter, tmp_path):
    photo, painting = _image(0, 48, 64), _image(1, 64, 40)
    out = fastpercept.stylize(photo, painter, style_image=painting)
    assert out.shape == photo.shape and out.dtype == np.uint8
    weaker = fastpercept.stylize(photo, painter, style_image=painting, strength=0.3)
    assert not np.array_equal(out, weaker)
    gray = fastpercept.stylize(photo, painter, style_image=painting, preserve_color=True)
    assert gray.shape == photo.shape
    # A path, a PIL image and an array are the same painting.
    Image.fromarray(painting).save(tmp_path / "painting.png")
    assert np.array_equal(fastpercept.stylize(photo, painter, style_image=tmp_path / "painting.png"), out)
    assert np.array_equal(fastpercept.stylize(photo, painter, style_image=Image.fromarray(painting)), out)
    with pytest.raises(UserError, match="style_image="):
        fastpercept.stylize(photo, painter)
    with pytest.raises(UserError, match="not an any-painting model"):
        fastpercept.stylize(photo, "mosaic", style_image=painting)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(UserError):  # the painting is an input: never overwritten
        fastpercept.stylize(tmp_path / "photo.png", painter, style_image=tmp_path / "painting.png",
                            output=tmp_path / "painting.png")


def test_cli_style_image(painter, tmp_path, capsys):
    from fastpercept.apps.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_image(i, 40, 48)).save(folder / f"p{i}.png")
    Image.fromarray(_image(5, 64, 64)).save(tmp_path / "monet.png")
    from fastpercept.api import _decoded_painting

    misses = _decoded_painting.cache_info().misses
    assert main(["stylize", str(folder), "--style-image", str(tmp_path / "monet.png"), "--style", str(painter),
                 "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png"]
    assert _decoded_painting.cache_info().misses == misses + 1  # the check and two photos: decoded once
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert main(["stylize", str(folder / "p0.png"), "--style-image", str(tmp_path / "broken.jpg"), "--style",
                 str(painter), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()
    assert main(["stylize", str(folder / "p0.png"), "--style", str(painter), "-o", str(tmp_path / "y.png")]) == 2
    assert "--style-image" in capsys.readouterr().err


def test_training_learns_decoders_and_keeps_the_encoder(vgg, tmp_path):
    from fastpercept.apps.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        Image.fromarray(_image(10 + i, 64, 72)).save(data / f"{i}.png")
    out = tmp_path / "any.safetensors"
    assert main(["train", "anystyle", "--data", str(data), "--deepest", "relu2_1", "--image-size", "32",
                 "--batch-size", "2", "--iters", "6", "--lr", "1e-3", "--log-every", "1", "--checkpoint-every", "3",
                 "--precision", "fp32", "-o", str(out)]) == 0
    model = load_model(out)
    card = model.card
    assert (card["task"], card["deepest"], card["vgg_sha256"]) == ("anystyle", "relu2_1", vgg.sha256)
    assert card["dataset"]["files"] == 3
    state = vgg.state_dict()
    for key in ("features.0.weight", "features.5.weight"):  # the frozen encoder is VGG-16's, to fp16
        assert np.allclose(model.weights[f"encoder.{key}"], state[key].numpy(), atol=1e-3)
    head, *rows = (out.with_suffix(".ckpt") / "losses.csv").read_text().splitlines()
    assert len(rows) == 6 and {"pixel_relu2_1", "feature_relu1_1"} <= set(head.split(","))


def test_a_clip_in_a_paintings_style(painter, tmp_path):
    import av

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_image(i, 48, 64), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    result = fastpercept.stylize(clip, painter, style_image=_image(9, 64, 64), output=tmp_path / "out.mp4")
    with av.open(str(result)) as got:
        frames = [f.to_ndarray(format="rgb24") for f in got.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)


def test_objective_training_on_paintings(painter, vgg, tmp_path, capsys):
    """``--loss objective``: AdaIN at relu2_1 then WCT at relu1_1, decoders started from another
    model's, the deepest trained on the paper's objective with paintings through the cascade
    (the one below kept); what the card says; the flags it refuses."""
    from fastpercept.apps.cli import main

    data, paintings = tmp_path / "photos", tmp_path / "paintings"
    data.mkdir(), paintings.mkdir()
    for i in range(3):
        Image.fromarray(_image(20 + i, 48, 56)).save(data / f"{i}.png")
    for i in range(2):
        Image.fromarray(_image(30 + i, 72, 64)).save(paintings / f"painting{i}.png")
    base = ["train", "anystyle", "--data", str(data), "--deepest", "relu2_1", "--image-size", "32", "--batch-size",
            "2", "--precision", "fp32", "--log-every", "1"]
    out = tmp_path / "adain.safetensors"
    assert main([*base, "--loss", "objective", "--transform", "adain", "--paintings",
                 str(paintings), "--views", "3", "--view-size", "32", "--style-size", "64", "--iters", "3",
                 "--lr", "1e-3", "--decoders-from", str(painter), "-o", str(out)]) == 0
    model, source = load_model(out), load_model(painter).weights
    card = model.card
    assert (card["transform"], card["cascade"], card["loss"], card["views"]) == ("adain", True, "objective", 3)
    assert card["paintings"]["files"] == 2 and card["decoders_from"][0]["model"] == painter.name
    assert len(card["decoders_from"][0]["model_sha256"]) == 64 and model.config.levels == ("relu2_1", "relu1_1")
    assert set(model.weights) == set(source)
    # The history is the last source's (an untrained test model: a card without stages).
    assert len(card["stages"]) == 2 and card["stages"][-1]["iterations"] == 3 and card["iterations"] == 3
    decoders = {k: v for k, v in model.weights.items() if k.startswith("decoders.")}  # the encoder is VGG's
    assert len(decoders) == 8
    for key, value in decoders.items():  # fp16 in the file: the kept tensors within its rounding
        kept = np.allclose(value, source[key], rtol=1e-3, atol=1e-4)
        assert kept == (not key.startswith("decoders.relu2_1")), key
    head, *rows = (out.with_suffix(".ckpt") / "losses.csv").read_text().splitlines()
    assert len(rows) == 3 and {"content", "style", "tv", "total"} <= set(head.split(","))
    # It paints: the output differs with the painting.
    photo = _image(40, 48, 48)
    a, b = (fastpercept.stylize(photo, out, style_image=_image(41 + i, 64, 64)) for i in range(2))
    assert a.shape == (48, 48, 3) and np.abs(a.astype(int) - b.astype(int)).mean() > 1

    capsys.readouterr()
    for extra, words in ((["--loss", "objective", "--single-level"], "--paintings"),
                         (["--loss", "objective", "--paintings", str(paintings)], "--decoders-from"),
                         (["--paintings", str(paintings)], "--loss objective")):
        assert main([*base, *extra, "-o", str(tmp_path / "no.safetensors")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no.safetensors").exists()
