"""Exporting a model for other runtimes: ONNX and OpenVINO IR, verified against PyTorch.

``fastpercept export MODEL --format onnx|openvino -o FILE`` writes the plain network (``image``
(N, 3, H, W) in [0, 1] -> ``output`` (N, 3, scale H, scale W)) with dynamic batch, height and
width, and the model card (JSON) in the file's metadata (ONNX ``metadata_props["fastpercept"]``,
OpenVINO ``rt_info["fastpercept"]``). The written file is run once against the PyTorch network
on a test image and the largest absolute difference is returned. The tiling graphs (statistics
pass, given statistics) are the same export with another ``kind``; :mod:`fastpercept.backends`
makes them on first use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .nets.blocks import TransformNet

ONNX_OPSET = 17
FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


class _PlainGraph(nn.Module):
    def __init__(self, net: TransformNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class _StatsGraph(_PlainGraph):
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for pair in self.net.instance_norm_stats(image) for t in pair)


class _GivenStatsGraph(_PlainGraph):
    def forward(self, image: torch.Tensor, *stats: torch.Tensor) -> torch.Tensor:
        return self.net(image, [(stats[i], stats[i + 1]) for i in range(0, len(stats), 2)])


def export_onnx(net: TransformNet, path: str | os.PathLike, kind: str = "plain",
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``net`` as an ONNX graph with dynamic batch, height and width.

    Args:
        net: the network (fp32, eval mode, on the CPU).
        kind: ``plain`` (``image -> output``), ``stats`` (``image -> mean_0, var_0, ...``: each
            instance-norm layer's input statistics, (N, C, 1, 1)) or ``given_stats`` (``image,
            mean_0, var_0, ... -> output``).
        metadata: strings stored in the model's ``metadata_props`` (the card, as JSON).
    Returns:
        ``path``, written atomically.
    """
    import warnings

    import onnx

    from .atomic import atomic_write

    graph = {"plain": _PlainGraph, "stats": _StatsGraph, "given_stats": _GivenStatsGraph}[kind](net).eval()
    example = torch.rand(1, 3, 64, 64)
    dims = {0: "batch", 2: "height", 3: "width"}
    layers = net.instance_norm_layers
    stat_names = [f"{k}_{i}" for i in range(layers) for k in ("mean", "var")]
    inputs, outputs, args = ["image"], ["output"], (example,)
    axes: dict[str, dict[int, str]] = {"image": dims, "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    if kind == "stats":
        outputs = stat_names
        axes = {"image": dims, **{n: {0: "batch"} for n in stat_names}}
    elif kind == "given_stats":
        with torch.inference_mode():
            stats = [t for pair in net.instance_norm_stats(example) for t in pair]
        inputs, args = ["image", *stat_names], (example, *stats)
        axes.update({n: {0: "batch"} for n in stat_names})
    with atomic_write(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic, which is intended
        torch.onnx.export(graph, args, str(tmp), dynamo=False, opset_version=ONNX_OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes)
        if metadata:
            model = onnx.load(str(tmp))
            for key, value in metadata.items():
                model.metadata_props.add(key=key, value=value)
            onnx.save(model, str(tmp))
    return Path(path)


def _test_image(scale: int) -> torch.Tensor:
    """A fixed, odd-sized test input: smooth gradients plus seeded noise (N=1, 3, 67, 93)."""
    g = torch.Generator().manual_seed(0)
    h, w = (67, 93) if scale == 1 else (23, 31)
    ramp = torch.linspace(0, 1, w).expand(1, 3, h, w)
    return (0.6 * ramp + 0.4 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def export_model(name_or_path: str | os.PathLike, fmt: str, output: str | os.PathLike) -> tuple[Path, float]:
    """Export a shipped model or model file; returns ``(written file, max |exported - PyTorch|)``.

    ``fmt`` is ``onnx`` (``FILE.onnx``) or ``openvino`` (``FILE.xml`` with its ``FILE.bin``).
    The comparison runs both on a fixed odd-sized image in fp32.
    """
    from .listing import refuse_overwriting_inputs
    from .models import load_model, resolve_model_path

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(output)
    if out.suffix != FORMATS[fmt]:
        raise UserError(f"{out}: a {fmt} export is written as {FORMATS[fmt]}; name it {out.with_suffix(FORMATS[fmt])}")
    source = resolve_model_path(name_or_path)
    refuse_overwriting_inputs(out, [source])
    model = load_model(source)
    net = model.net.float().eval()
    card = json.dumps(model.card, sort_keys=True)
    x = _test_image(model.scale)
    with torch.inference_mode():
        reference = net(x).numpy()
    try:
        if fmt == "onnx":
            import onnxruntime as ort

            export_onnx(net, out, "plain", {"fastpercept": card})
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            result = session.run(None, {"image": x.numpy()})[0]
        else:
            import tempfile

            import openvino as ov

            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmp:
                onnx_file = Path(tmp) / "plain.onnx"
                export_onnx(net, onnx_file, "plain")
                converted = ov.convert_model(str(onnx_file))
                converted.set_rt_info(card, "fastpercept")
                ov.save_model(converted, str(Path(tmp) / "model.xml"), compress_to_fp16=False)
                # The weights first, then the file that names them: a reader never sees an .xml
                # whose .bin is missing or from another export.
                os.replace(Path(tmp) / "model.bin", out.with_suffix(".bin"))
                os.replace(Path(tmp) / "model.xml", out)
            compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            result = compiled([x.numpy()])[compiled.outputs[0]]
    except ImportError as e:
        extra = "onnx" if fmt == "onnx" else "openvino"
        raise UserError(f"--format {fmt} needs {e.name}: pip install 'fastpercept[{extra}]'") from None
    return out, float(np.abs(np.asarray(result) - reference).max())
