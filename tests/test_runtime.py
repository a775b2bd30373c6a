"""The torch-free runtime: graphs built from a model's card and weights, the runners, the API on
arrays, and that running a model never imports PyTorch.

Runs in the small install (no PyTorch) as well as the full one; the parity test against the
PyTorch network runs where PyTorch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastpercept
from fastpercept.errors import UserError
from fastpercept.models import LoadedModel, load_model, shipped_models

HAS_TORCH = importlib.util.find_spec("torch") is not None
ASSETS = Path(fastpercept.__file__).parent / "assets"

# Every architecture a card can describe, as (card, random weights' source): the shipped
# variants and the paper's (batch norm, deconvolution, no skip).
ARCH_CARDS = [
    {"task": "style"},
    {"task": "style", "arch": "half"},
    {"task": "style", "norm": "batch", "upsample": "deconv", "residual_blocks": 2},
    {"task": "sr", "scale": 4},
    {"task": "sr", "scale": 8, "upsample": "deconv", "skip": "none"},
    {"task": "sr", "scale": 4, "norm": "instance", "channels": 16, "residual_blocks": 1},
]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(1, 3, h, w) float32 in [0, 1]: smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, None, None, :]
    return np.clip(0.6 * ramp + 0.4 * rng.random((1, 3, h, w), dtype=np.float32), 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- graph vs PyTorch


@pytest.mark.skipif(not HAS_TORCH, reason="the parity test compares with the PyTorch network")
@pytest.mark.parametrize("card", ARCH_CARDS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_every_architecture_matches_the_pytorch_network(card, backend):
    """fp32, random trained-like weights (batch-norm statistics too), odd sizes, batch of 2; and the
    statistics and given-statistics graphs that tiling uses."""
    import torch

    from fastpercept.models import build_model
    from fastpercept.runtime.backends import backend_available

    if not backend_available(backend):
        pytest.skip(f"{backend} is not installed")
    torch.manual_seed(0)
    net = build_model(card)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.2 + (0.9 if "running_var" in name else -0.1))
    net.eval()
    model = LoadedModel(net, card, "random")
    runner = model.runner(backend, "cpu", "fp32")
    x = _image(37, 45) if card["task"] == "sr" else _image(67, 93)
    x = np.concatenate([x, _image(*x.shape[-2:], seed=1)])
    with torch.inference_mode():
        reference = net(torch.from_numpy(x)).numpy()
    assert np.abs(runner(x) - reference).max() <= 1e-4
    stats = runner.norm_stats(x)
    if card.get("norm", "instance" if card["task"] == "style" else "batch") == "instance":
        with torch.inference_mode():
            expected = net.instance_norm_stats(torch.from_numpy(x))
            crop = torch.from_numpy(x[..., :24, :32])
            reference = net(crop, expected).numpy()
        assert len(stats) == len(expected)
        for (m, v), (em, ev) in zip(stats, expected):
            assert np.abs(m - em.numpy()).max() <= 1e-4 and np.abs(v - ev.numpy()).max() <= 1e-4 * max(1, ev.max())
        assert np.abs(runner(x[..., :24, :32], stats) - reference).max() <= 1e-4
    else:
        assert stats is None


@pytest.mark.skipif(not HAS_TORCH, reason="the parity test compares with the PyTorch network")
@pytest.mark.parametrize("name", [m["name"] for m in shipped_models()])
def test_every_shipped_model_matches_the_pytorch_network(name):
    import torch

    model = load_model(name)
    x = _image(*((29, 35) if model.task == "sr" else (67, 93)))
    if model.task == "anystyle":  # each encoder level and decoder, graph against network
        parts = model.runner("auto", "cpu", "fp32")
        x = x[..., :64, :88]
        with torch.inference_mode():
            for level in model.config.levels:
                f = model.net.encode(torch.from_numpy(x), level)
                assert np.abs(parts.encoders[level](x) - f.numpy()).max() <= 1e-4 * max(1.0, float(f.abs().max()))
                assert np.abs(parts.decoders[level](f.numpy()) - model.net.decode(f, level).numpy()).max() <= 1e-4
        return
    with torch.inference_mode():
        reference = model.net(torch.from_numpy(x)).numpy()
    assert np.abs(model.runner("auto", "cpu", "fp32")(x) - reference).max() <= 1e-4


def test_graph_is_valid_onnx():
    onnx = pytest.importorskip("onnx")
    model = load_model("mosaic")
    for kind in ("plain", "stats", "given_stats"):
        onnx.checker.check_model(onnx.load_from_string(model.graph(kind)), full_check=True)


def test_weights_that_do_not_fit_the_card_are_one_line(tmp_path):
    from safetensors.numpy import load_file, save_file

    source = ASSETS / "models" / "x4.safetensors"
    weights = load_file(str(source))
    card = json.dumps(load_model("x4").card)
    cases = {
        "missing": ({k: v for k, v in weights.items() if k != "tail.1.bias"}, "tail.1.bias missing"),
        "shape": ({**weights, "head.0.1.weight": weights["head.0.1.weight"][:32]}, r"head\.0\.1\.(weight|bias) is \("),
        "extra": ({**weights, "bonus.weight": weights["tail.1.bias"]}, "bonus.weight unexpected"),
        "nan": ({**weights, "tail.1.bias": np.full_like(weights["tail.1.bias"], np.nan)}, "NaN or infinity"),
    }
    for name, (tensors, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={"fastpercept": card})
        with pytest.raises(UserError, match=message):
            load_model(path)


# ------------------------------------------------------------------------------------ the API


def test_arrays_in_give_arrays_out_of_the_same_kind():
    photo = np.asarray(Image.open(ASSETS / "example.jpg").reduce(8))
    out = fastpercept.stylize(photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    floats = fastpercept.stylize(photo.astype(np.float32) / 255)
    assert floats.dtype == np.float32 and floats.shape == photo.shape
    assert np.abs(floats * 255 - out).max() <= 1
    small = photo[:20, :24]
    assert fastpercept.upscale(small, "x4").shape == (80, 96, 3)
    with pytest.raises(UserError, match="expected \\[0, 1\\]"):
        fastpercept.stylize(photo.astype(np.float32))
    with pytest.raises(TypeError, match=r"expected \(H, W, 3\)"):
        fastpercept.stylize(photo[..., :2])


def test_a_loaded_model_and_one_name_for_it():
    model = load_model("mosaic")
    photo = np.asarray(Image.open(ASSETS / "example.jpg").reduce(8))
    by_name = fastpercept.stylize(photo, model="mosaic")
    assert np.array_equal(fastpercept.stylize(photo, model), by_name)
    assert np.array_equal(fastpercept.stylize(photo, style="mosaic"), by_name)  # the former name
    assert np.array_equal(load_model(name_or_path="mosaic").weights["encoder.0.0.1.weight"],
                          model.weights["encoder.0.0.1.weight"])
    with pytest.raises(UserError, match="a style model, not an SR model"):
        fastpercept.upscale(photo, model)
    with pytest.raises(UserError, match="strength must be in"):
        fastpercept.stylize(photo, strength=2)


def test_a_pil_image_is_never_written_over_its_own_file(tmp_path):
    original = tmp_path / "orig.jpg"
    Image.open(ASSETS / "example.jpg").reduce(8).save(original)
    before = original.read_bytes()
    with pytest.raises(UserError, match="would overwrite the input"):
        fastpercept.stylize(Image.open(original), output=original)
    assert original.read_bytes() == before


def test_runners_are_safe_from_several_threads():
    """Four threads, each its own image, on one shared runner: each gets its own result."""
    model = load_model("mosaic-half")
    images = [_image(64, 80, seed=s) for s in range(4)]
    expected = [model.runner()(x) for x in images]
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i].append(fastpercept.stylize(images[i][0].transpose(1, 2, 0), model))
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(4):
        for out in results[i]:
            assert np.abs(out - np.clip(expected[i][0], 0, 1).transpose(1, 2, 0)).max() < 1e-5


def test_a_bare_name_is_a_model_never_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mosaic").mkdir()  # as after `fastpercept stylize photos/ -o mosaic/`
    assert load_model("mosaic").name == "mosaic"
    with pytest.raises(UserError, match="is a folder, not a model file"):
        load_model("./mosaic")
    user = tmp_path / "models"
    user.mkdir()
    (user / "mine.safetensors").write_bytes((ASSETS / "models" / "mosaic-half.safetensors").read_bytes())
    monkeypatch.setenv("FASTPERCEPT_MODELS", str(user))
    assert load_model("mine").name == "mine"


# ---------------------------------------------------------------------------- without PyTorch

_PROBE = ("import json, sys\nfrom fastpercept.apps.cli import main\nrc = main(sys.argv[1:])\n"
          "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")


def _cli(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_leaves_torch_out():
    proc = subprocess.run([sys.executable, "-c", "import sys, fastpercept.api, fastpercept.apps.cli, "
                           "fastpercept.apps.webapp;"
                           "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.parametrize("command", [
    ["stylize", "{photo}", "--strength", "0.5", "--preserve-color", "--tile", "160", "-o", "{out}/a.png"],
    ["stylize", "{rgba}", "--style", "mosaic-half", "-o", "{out}/b.png"],
    ["upscale", "{rgba}", "--match-colors", "-o", "{out}/c.png"],
    ["stylize", "{clip}", "--style", "mosaic-half", "-o", "{out}/d.mp4"],
    ["export", "x4", "--format", "onnx", "-o", "{out}/x4.onnx"],
    ["info", "udnie"],
])
def test_commands_run_without_importing_torch(tmp_path, command):
    photo = tmp_path / "photo.jpg"
    Image.open(ASSETS / "example.jpg").reduce(4).save(photo)
    rgba = tmp_path / "rgba.png"
    Image.open(ASSETS / "example-lr.png").convert("RGBA").crop((0, 0, 40, 32)).save(rgba)
    clip = tmp_path / "clip.mp4"
    if "{clip}" in command:
        import av

        with av.open(str(clip), "w") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(6):
                frame = np.full((48, 64, 3), 40 * i, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    args = [a.format(photo=photo, rgba=rgba, clip=clip, out=tmp_path) for a in command]
    # export checks its file against the PyTorch network where PyTorch is installed
    assert _cli(*args) == {"rc": 0, "torch": command[0] == "export" and HAS_TORCH}


def _painter_file(path: Path, deepest: str = "relu2_1") -> Path:
    """An any-painting model file with random weights, written without PyTorch."""
    from safetensors.numpy import save_file

    from fastpercept.architectures import WCTConfig, wct_tensor_shapes

    rng = np.random.default_rng(0)
    tensors = {k: (rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else 1)).astype(np.float16)
               for k, shape in wct_tensor_shapes(WCTConfig(deepest=deepest)).items()}
    save_file(tensors, str(path), metadata={"fastpercept": json.dumps({"task": "anystyle", "deepest": deepest})})
    return path


def test_any_painting_runs_without_torch(tmp_path):
    painter = _painter_file(tmp_path / "painter.safetensors")
    photo, painting = tmp_path / "photo.jpg", tmp_path / "painting.png"
    Image.open(ASSETS / "example.jpg").reduce(8).save(photo)
    Image.open(ASSETS / "example-lr.png").rotate(90).save(painting)
    assert _cli("stylize", photo, "--style-image", painting, "--style", painter, "--strength", "0.7", "--tile", "64",
                "-o", tmp_path / "out.png") == {"rc": 0, "torch": False}
    with Image.open(tmp_path / "out.png") as out, Image.open(photo) as src:
        assert out.size == src.size
    from fastpercept.runtime.backends import backend_available

    for backend in filter(backend_available, ("openvino", "onnxruntime")):
        y = fastpercept.stylize(np.asarray(Image.open(photo)), painter, style_image=painting, backend=backend)
        assert y.shape == np.asarray(Image.open(photo)).shape


@pytest.mark.skipif(HAS_TORCH, reason="the small install's message: PyTorch is installed here")
def test_training_commands_name_the_extra_they_need(capsys):
    from fastpercept.apps.cli import main

    for command in (["train", "style", "--data", "x"], ["eval", "sr"], ["optimize"], ["weights"]):
        assert main(command) == 2
        assert "pip install 'fastpercept[train]'" in capsys.readouterr().err


def test_denoise_interpolates_a_model_and_its_real_photo_twin(sr_pair, monkeypatch):
    from fastpercept.models import DEFAULT_DENOISE, interpolate_models, with_denoise

    monkeypatch.setenv("FASTPERCEPT_MODELS", str(sr_pair))
    base, real = load_model("sr"), load_model("sr-real")
    half = with_denoise("sr", 0.5)
    key = "head.0.1.weight"
    assert np.allclose(half.weights[key], (base.weights[key] + real.weights[key]) / 2)
    photo = np.asarray(Image.open(ASSETS / "example-lr.png").convert("RGB"))[:24, :32]
    assert np.array_equal(fastpercept.upscale(photo, "sr", denoise=0), fastpercept.upscale(photo, base))
    assert np.array_equal(fastpercept.upscale(photo, "sr", denoise=1), fastpercept.upscale(photo, "sr-real"))
    # No denoise named: the measured default for the first of a pair, the model as named otherwise.
    assert 0 < DEFAULT_DENOISE <= 1
    assert np.array_equal(fastpercept.upscale(photo, "sr"), fastpercept.upscale(photo, "sr", denoise=DEFAULT_DENOISE))
    assert not np.array_equal(fastpercept.upscale(photo, "sr"), fastpercept.upscale(photo, base))
    assert np.array_equal(fastpercept.upscale(photo, "sr-real"), fastpercept.upscale(photo, real))
    assert np.array_equal(fastpercept.upscale(photo, "x8"), fastpercept.upscale(photo, load_model("x8")))
    # The shipped pair: x4 for clean inputs, x4-real for real photos, the default where both are.
    assert np.array_equal(fastpercept.upscale(photo, "x4"), fastpercept.upscale(photo, "x4", denoise=DEFAULT_DENOISE))
    assert np.array_equal(fastpercept.upscale(photo, "x4", denoise=0), fastpercept.upscale(photo, load_model("x4")))
    assert np.allclose(with_denoise("sr-real", 0.25).weights[key], 0.75 * base.weights[key] + 0.25 * real.weights[key])
    assert np.allclose(with_denoise(sr_pair / "sr.safetensors", 0.5).weights[key], half.weights[key])  # a path
    assert with_denoise("x8", 0).weights.keys() == load_model("x8").weights.keys()  # 0 needs no twin
    with pytest.raises(UserError, match="mosaic-real .*side by side"):
        with_denoise("mosaic", 0.5)
    with pytest.raises(UserError, match="different networks"):
        interpolate_models(base, load_model("x8"), 0.5)
    with pytest.raises(UserError, match=r"denoise must be in \[0, 1\]"):
        interpolate_models(base, real, 1.5)


def test_library_messages_name_api_options_and_the_cli_shows_flags():
    from fastpercept.errors import as_flags

    message = "x.png: 9000x9000 image needs 5 GiB; max_size=2048 fits (tile= bounds only the network's share)"
    assert as_flags(message) == "x.png: 9000x9000 image needs 5 GiB; --max-size 2048 fits (--tile bounds only the " \
                                "network's share)"
    assert as_flags("tiles of 216 px") == "tiles of 216 px"


def test_an_unwritable_or_corrupt_cache_does_not_matter(tmp_path, monkeypatch):
    """Graphs are built in memory: a cache folder that cannot be written (under /proc, even for
    root) or that holds garbage where the old graph cache was changes nothing."""
    photo = np.asarray(Image.open(ASSETS / "example.jpg").reduce(8))
    corrupt = tmp_path / "cache"
    (corrupt / "onnx").mkdir(parents=True)
    (corrupt / "onnx" / "0123456789abcdef-plain.onnx").write_bytes(b"not a model")
    for cache in ("/proc/fastpercept-cache", str(corrupt)):
        monkeypatch.setenv("FASTPERCEPT_CACHE", cache)
        assert fastpercept.stylize(photo, load_model("mosaic-half")).shape == photo.shape


def test_export_where_nothing_can_be_written_is_one_line():
    from fastpercept.runtime.export import export_model

    with pytest.raises(UserError, match="x4.onnx: cannot write"):
        export_model("x4", "onnx", "/proc/fastpercept-export/x4.onnx")


def test_blend_weights_that_overflow_are_refused_not_grey():
    from fastpercept.models import parse_blend

    with pytest.raises(UserError, match="finite number above 0"):
        parse_blend("a:1e308,b:1e308", ["a", "b"])
    assert parse_blend("a:3,b:1", ["a", "b"]) == {"a": 0.75, "b": 0.25}


def test_one_runner_per_resolved_backend_device_and_precision():
    """`auto` and the backend it resolves to share one runner (one compiled graph), not two."""
    from fastpercept.runtime.backends import resolve_runtime

    model = load_model("mosaic-half")
    backend, device, precision = resolve_runtime()
    assert model.runner() is model.runner(backend, device, precision) is model.runner("auto", "auto", "auto")
