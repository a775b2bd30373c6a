"""Exporting a model for other runtimes: ONNX and OpenVINO IR.

``fastpercept export MODEL --format onnx|openvino -o FILE`` writes the inference graph the
runtime itself runs (:mod:`fastpercept.graphs`: ``image`` (N, 3, H, W) in [0, 1] -> ``output``
(N, 3, scale H, scale W), dynamic batch, height and width) with the model card (JSON) in the
file's metadata (ONNX ``metadata_props["fastpercept"]``, OpenVINO ``rt_info["fastpercept"]``).
The written file is read back and run once on a test image, against the PyTorch network where
PyTorch is installed (else against the graph as built, run by the in-process runtime); the
largest absolute difference is returned.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import UserError

FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


def _test_image(scale: int) -> np.ndarray:
    """A fixed, odd-sized test input: smooth gradients plus seeded noise, (1, 3, 67, 93) (SR: 23 x 31)."""
    h, w = (67, 93) if scale == 1 else (23, 31)
    ramp = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (1, 3, h, w))
    noise = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    return np.clip(0.6 * ramp + 0.4 * noise, 0, 1).astype(np.float32)


def _write_error(out: Path, e: OSError) -> UserError:
    return UserError(f"{out}: cannot write the export ({e.strerror or e})")


def export_model(model: str | os.PathLike, fmt: str, output: str | os.PathLike) -> tuple[Path, float]:
    """Export a shipped model or model file; returns ``(written file, max |exported - reference|)``.

    ``fmt`` is ``onnx`` (``FILE.onnx``) or ``openvino`` (``FILE.xml`` with its ``FILE.bin``).
    The comparison runs both on a fixed odd-sized image in fp32.
    """
    from .listing import refuse_overwriting_inputs
    from ..models import load_model, resolve_model_path
    from .backends import backend_available, compile_onnxruntime, compile_openvino

    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(output)
    if out.suffix != FORMATS[fmt]:
        raise UserError(f"{out}: a {fmt} export is written as {FORMATS[fmt]}; name it {out.with_suffix(FORMATS[fmt])}")
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give a file name")
    source = resolve_model_path(model)
    refuse_overwriting_inputs(out, [source])
    loaded = load_model(model)
    card = json.dumps(loaded.card, sort_keys=True)
    graph = loaded.graph("plain", metadata={"fastpercept": card})
    x = _test_image(loaded.scale)
    if backend_available("torch"):
        reference = loaded.runner("torch", "cpu", "fp32")(x)
    else:
        reference = loaded.runner("auto", "cpu", "fp32")(x)
    try:
        if fmt == "onnx":
            with atomic_write(out) as tmp:
                tmp.write_bytes(graph)
            run = compile_openvino(out.read_bytes(), bf16=False) if backend_available("openvino") else \
                compile_onnxruntime(out.read_bytes())
        else:
            if not backend_available("openvino"):
                raise UserError("format openvino needs OpenVINO: pip install 'fastpercept[openvino]'")
            import openvino as ov

            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as tmp:
                converted = ov.Core().read_model(graph)
                converted.set_rt_info(card, "fastpercept")
                ov.save_model(converted, str(Path(tmp) / "model.xml"), compress_to_fp16=False)
                # The weights first, then the file that names them: a reader never sees an .xml
                # whose .bin is missing or from another export.
                os.replace(Path(tmp) / "model.bin", out.with_suffix(".bin"))
                os.replace(Path(tmp) / "model.xml", out)
            compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            run = lambda arrays: [compiled(arrays)[compiled.outputs[0]]]  # noqa: E731
    except OSError as e:
        raise _write_error(out, e) from None
    except RuntimeError as e:  # OpenVINO's errors writing a file (full disk, read-only folder)
        raise UserError(f"{out}: cannot write the export ({str(e).strip().splitlines()[-1]})") from None
    result = run([x])[0]
    return out, float(np.abs(np.asarray(result) - reference).max())
