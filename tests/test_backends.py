"""Every inference backend agrees with fp32 eager PyTorch, tiled and at odd sizes; exports verify.

The optional runtimes (onnxruntime, openvino) are skipped where not installed; `.ci/run` installs
them and runs this file again, so CI exercises both paths.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

import fastpercept
from fastpercept import backends
from fastpercept.device import cpu_has_fast_bf16
from fastpercept.errors import UserError
from fastpercept.export import export_model

RUNTIMES = ["torch", "onnxruntime", "openvino"]


def _needs(backend: str) -> None:
    if not backends.backend_available(backend):
        pytest.skip(f"{backend} is not installed (an extra)")


def _photo(h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, 9, 13, generator=g), size=(h, w), mode="bicubic")
    return (base + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


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
    assert y.shape == reference.shape
    assert (y - reference).abs().max() < 2e-3


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_bf16_backends_stay_close_to_fp32(backend):
    _needs(backend)
    if not cpu_has_fast_bf16():
        pytest.skip("no native bf16 on this CPU")
    x = _photo(96, 128)
    reference = fastpercept.stylize(x, "mosaic", precision="fp32", backend="torch", device="cpu")
    y = fastpercept.stylize(x, "mosaic", precision="bf16", backend=backend, device="cpu")
    psnr = 10 * torch.log10(1 / ((y - reference) ** 2).mean())
    assert psnr > 30, psnr


def test_auto_falls_back_to_torch_with_one_line_when_no_extra_is_installed(monkeypatch, caplog):
    monkeypatch.setattr(backends, "backend_available", lambda name: name in ("torch", "compile"))
    with caplog.at_level(logging.INFO, logger="fastpercept.backends"):
        assert backends.choose_backend(torch.device("cpu")) == "torch"
    assert len(caplog.records) == 1 and "openvino is not installed" in caplog.text
    net = fastpercept.load_model("x4").net
    runner = backends.make_runner(net, {"task": "sr"}, "auto", torch.device("cpu"), "fp32")
    assert isinstance(runner, backends.TorchRunner)
    with pytest.raises(UserError, match=r"not installed; pip install 'fastpercept\[onnx\]'"):
        backends.make_runner(net, {"task": "sr"}, "onnxruntime", torch.device("cpu"), "fp32")


def test_torch_layout_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "cpu_has_amx", lambda: True)
    assert backends.torch_layout(cpu, "bf16") == ("bf16", True)
    assert backends.torch_layout(cpu, "fp32") == ("autocast", False)
    monkeypatch.setattr(backends, "cpu_has_amx", lambda: False)
    assert backends.torch_layout(cpu, "bf16") == ("autocast", False)


def test_bf16_weight_layout_runs_and_keeps_the_cached_model_fp32():
    net = fastpercept.load_model("mosaic").net
    runner = backends.TorchRunner(net, "bf16", ("bf16", True))
    x = _photo(40, 52)
    y = runner(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_compile_backend_matches_eager():
    from fastpercept.nets.sr import SRNet, SRNetConfig

    torch.manual_seed(0)
    net = SRNet(SRNetConfig(scale=4, channels=8, residual_blocks=1)).eval()
    x = torch.rand(1, 3, 12, 16)
    eager = backends.TorchRunner(net, "fp32")(x)
    compiled = backends.make_runner(net, {"task": "sr"}, "compile", torch.device("cpu"), "fp32")
    assert (compiled(x) - eager).abs().max() < 1e-4


@pytest.mark.parametrize(("fmt", "suffix", "extra"),
                         [("onnx", ".onnx", "onnxruntime"), ("openvino", ".xml", "openvino")])
def test_export_writes_a_verified_file_with_the_card(tmp_path, fmt, suffix, extra):
    _needs(extra)
    path, diff = export_model("x4", fmt, tmp_path / f"x4{suffix}")
    assert path.is_file() and diff < 1e-4
    card = fastpercept.load_model("x4").card
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert json.loads(session.get_modelmeta().custom_metadata_map["fastpercept"]) == card
        out = session.run(None, {"image": _photo(19, 27).numpy()})[0]  # dynamic height and width
        assert out.shape == (1, 3, 76, 108)
    else:
        import openvino as ov

        model = ov.Core().read_model(str(path))
        assert json.loads(model.get_rt_info("fastpercept").astype(str)) == card
        assert path.with_suffix(".bin").is_file()
    with pytest.raises(UserError, match=f"written as {suffix}"):
        export_model("x4", fmt, tmp_path / "x4.bin.wrong")
