"""Every inference backend agrees with fp32 eager PyTorch, tiled and at odd sizes; the registry
chooses and refuses as documented; exports verify.

The optional runtimes are skipped where not installed; `.ci/run` installs them all.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastpercept
from fastpercept.errors import UserError
from fastpercept.runtime.export import export_model
from fastpercept.runtime import backends

torch = pytest.importorskip("torch")

RUNTIMES = ["torch", "onnxruntime", "openvino"]


def _needs(backend: str) -> None:
    if not backends.backend_available(backend):
        pytest.skip(f"{backend} is not installed (an extra)")


def _photo(h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: smooth colour gradients with fine noise on top."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 9, 13, generator=g), size=(h, w), mode="bicubic")
    return (base + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)[0].permute(1, 2, 0).numpy().copy()


@pytest.mark.parametrize("backend", RUNTIMES)
@pytest.mark.parametrize(("model", "size", "tile"), [("mosaic", (67, 93), None), ("mosaic", (341, 262), 216),
                                                     ("x4", (23, 37), None), ("x4", (61, 70), 56)])
def test_backend_agrees_with_fp32_eager(backend, model, size, tile):
    """fp32 on every backend: the same network, so differences are float rounding (< 1e-3)."""
    _needs(backend)
    run = fastpercept.stylize if model == "mosaic" else fastpercept.upscale
    x = _photo(*size)
    reference = run(x, model, precision="fp32", backend="torch", device="cpu")
    y = run(x, model, precision="fp32", backend=backend, device="cpu", tile=tile)
    assert y.shape == reference.shape and y.dtype == np.float32
    assert np.abs(y - reference).max() < 2e-3


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_bf16_backends_stay_close_to_fp32(backend):
    _needs(backend)
    if backends.resolve_precision("auto", "cpu", backend) != "bf16":
        pytest.skip("no native bf16 on this CPU for this backend")
    x = _photo(96, 128)
    reference = fastpercept.stylize(x, "mosaic", precision="fp32", backend="torch", device="cpu")
    y = fastpercept.stylize(x, "mosaic", precision="bf16", backend=backend, device="cpu")
    psnr = 10 * np.log10(1 / ((y - reference) ** 2).mean())
    assert psnr > 30, psnr


def test_auto_takes_the_first_installed_runtime(monkeypatch):
    for installed, expected in [({"openvino", "onnxruntime", "torch"}, "openvino"),
                                ({"onnxruntime", "torch"}, "onnxruntime"), ({"torch"}, "torch")]:
        monkeypatch.setattr(backends, "backend_available", lambda name, s=installed: name in s)
        assert backends.choose_backend("cpu") == expected
    assert backends.choose_backend("cuda") == "torch"
    monkeypatch.setattr(backends, "backend_available", lambda name: False)
    with pytest.raises(UserError, match="no inference runtime is installed"):
        backends.choose_backend("cpu")


def test_a_missing_or_wrong_backend_device_or_precision_is_one_line(monkeypatch):
    model = fastpercept.load_model("x4")
    with pytest.raises(UserError, match="backend must be one of auto, openvino"):
        backends.make_runner(model, "tensorflow")
    with pytest.raises(UserError, match="device must be one of auto, cpu, cuda, not 'bogus'"):
        backends.make_runner(model, "auto", "bogus")
    with pytest.raises(UserError, match="precision must be one of"):
        backends.make_runner(model, "auto", "cpu", "int4")
    from fastpercept.runtime import hardware

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA device is available"):
        fastpercept.load_model("x4", device="cuda")
    monkeypatch.setattr(backends, "resolve_device", lambda name: "cuda")  # as on a CUDA machine
    with pytest.raises(UserError, match="runs on the cpu, not cuda"):
        backends.make_runner(model, "onnxruntime", "cuda")
    monkeypatch.undo()
    real = backends.backend_available
    monkeypatch.setattr(backends, "backend_available", lambda name: name != "onnxruntime" and real(name))
    with pytest.raises(UserError, match=r"not installed; pip install 'fastpercept\[onnx\]'"):
        backends.make_runner(model, "onnxruntime", "cpu")


def test_torch_layout_follows_the_cpu(monkeypatch):
    from fastpercept.runtime import torch_runner

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch_runner, "cpu_has_amx", lambda: True)
    assert torch_runner.torch_layout(cpu, "bf16") == ("bf16", True)
    assert torch_runner.torch_layout(cpu, "fp32") == ("autocast", False)
    monkeypatch.setattr(torch_runner, "cpu_has_amx", lambda: False)
    assert torch_runner.torch_layout(cpu, "bf16") == ("autocast", False)


def test_bf16_weight_layout_runs_and_keeps_the_cached_model_fp32():
    from fastpercept.runtime.torch_runner import TorchRunner

    net = fastpercept.load_model("mosaic").net
    runner = TorchRunner(net, "bf16", ("bf16", True))
    x = _photo(40, 52).transpose(2, 0, 1)[None].copy()
    y = runner(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_compile_backend_matches_eager():
    from fastpercept.models import LoadedModel
    from fastpercept.nets.sr import SRNet, SRNetConfig
    from fastpercept.runtime.torch_runner import TorchRunner

    torch.manual_seed(0)
    net = SRNet(SRNetConfig(scale=4, channels=8, residual_blocks=1)).eval()
    x = np.random.default_rng(0).random((1, 3, 12, 16), dtype=np.float32)
    eager = TorchRunner(net, "fp32")(x)
    compiled = LoadedModel(net, {"task": "sr", "scale": 4, "channels": 8, "residual_blocks": 1}, "tiny").runner(
        "compile", "cpu", "fp32")
    assert np.abs(compiled(x) - eager).max() < 1e-4


@pytest.mark.parametrize(("fmt", "suffix"), [("onnx", ".onnx"), ("openvino", ".xml")])
def test_export_writes_a_verified_file_with_the_card(tmp_path, fmt, suffix):
    _needs("openvino")
    path, diff = export_model("x4", fmt, tmp_path / f"x4{suffix}")
    assert path.is_file() and diff < 1e-4
    card = fastpercept.load_model("x4").card
    import openvino as ov

    model = ov.Core().read_model(str(path))
    if fmt == "onnx":
        onnx = pytest.importorskip("onnx")
        assert json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["fastpercept"]) == card
        compiled = ov.Core().compile_model(model, "CPU")
        out = compiled([_photo(19, 27).transpose(2, 0, 1)[None].copy()])[compiled.outputs[0]]  # dynamic H and W
        assert out.shape == (1, 3, 76, 108)
    else:
        assert json.loads(model.get_rt_info("fastpercept").astype(str)) == card
        assert path.with_suffix(".bin").is_file()
    with pytest.raises(UserError, match=f"written as {suffix}"):
        export_model("x4", fmt, tmp_path / "x4.bin.wrong")
    with pytest.raises(UserError, match="is a folder"):
        (tmp_path / f"dir{suffix}").mkdir()
        export_model("x4", fmt, tmp_path / f"dir{suffix}")
