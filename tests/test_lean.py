"""The lean start (fastpercept.lean): a one-off CLI call of a cached model runs without PyTorch
and writes exactly what the full path writes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                reason="needs the openvino extra (pip install 'fastpercept[openvino]')")

# Runs the CLI in a fresh interpreter and says whether PyTorch got imported.
_PROBE = ("import json, sys\nfrom fastpercept.cli import main\nrc = main(sys.argv[1:])\n"
          "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")


def _cli(cache, *args):
    env = {**os.environ, "FASTPERCEPT_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    rng = np.random.default_rng(1)
    base = np.kron(rng.random((12, 16, 3)), np.ones((8, 8, 1)))  # smooth blocks with detail on top
    arr = np.clip(base * 200 + rng.random((96, 128, 3)) * 55, 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def test_a_models_first_run_takes_the_full_path_and_caches_its_graph(cache, photo, tmp_path):
    result, err = _cli(cache, "stylize", photo, "-o", tmp_path / "first.png")
    assert result == {"rc": 0, "torch": True}, err
    assert list((cache / "onnx").glob("*-plain.onnx"))


@pytest.mark.parametrize("command, flags", [("stylize", []), ("upscale", ["--model", "x4"])])
def test_a_cached_model_runs_without_torch_and_writes_the_full_paths_bytes(cache, photo, tmp_path, command, flags):
    _cli(cache, command, photo, *flags, "-o", tmp_path / "warm.png")  # makes sure the graph is cached
    # --tile larger than the image: one whole pass, as the lean start makes, but on the full path
    full, _ = _cli(cache, command, photo, *flags, "--tile", "4096", "--backend", "openvino",
                   "-o", tmp_path / "full.png")
    lean, err = _cli(cache, command, photo, *flags, "-o", tmp_path / "lean.png")
    assert full == {"rc": 0, "torch": True}
    assert lean == {"rc": 0, "torch": False}, err
    assert (tmp_path / "lean.png").read_bytes() == (tmp_path / "full.png").read_bytes()


@pytest.mark.parametrize("flags", [["--strength", "0.5"], ["--preserve-color"], ["--tile", "256"],
                                   ["--backend", "torch"]])
def test_what_the_lean_start_lacks_takes_the_full_path(cache, photo, tmp_path, flags):
    result, err = _cli(cache, "stylize", photo, *flags, "-o", tmp_path / "out.png")
    assert result == {"rc": 0, "torch": True}, err
    assert Image.open(tmp_path / "out.png").size == (128, 96)


def test_a_bad_file_in_a_lean_batch_is_one_line_and_the_batch_goes_on(cache, photo, tmp_path):
    _cli(cache, "stylize", photo, "-o", tmp_path / "warm.png")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo.read_bytes())
    (folder / "b.png").write_bytes(photo.read_bytes()[:300])  # truncated
    result, err = _cli(cache, "stylize", folder, "-o", tmp_path / "out/")
    assert result == {"rc": 2, "torch": False}
    assert "b.png: cannot read image" in err and len(err.strip().splitlines()) == 2  # the error and the count
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
