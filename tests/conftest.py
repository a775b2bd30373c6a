"""Shared fixtures: one cached copy of the real VGG-16 weights for every test that needs them."""

from __future__ import annotations

from pathlib import Path

import importlib.util

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def vgg():
    """The real ImageNet VGG-16 loss network (resolved once per session, from the cache)."""
    from fastpercept.training.vgg import VGG16Features

    return VGG16Features()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic():
    if importlib.util.find_spec("torch") is not None:  # the small install's tests run without PyTorch
        import torch

        torch.manual_seed(0)
    yield


@pytest.fixture
def sr_pair(tmp_path) -> Path:
    """A folder holding ``sr`` (x4's weights) and its real-photo twin ``sr-real`` (the same
    architecture, weights halved): a denoise pair that does not depend on shipped x4-real."""
    import json

    import numpy as np
    from safetensors.numpy import load_file, save_file

    from fastpercept.models import load_model, resolve_model_path

    card = json.dumps(load_model("x4").card)
    weights = load_file(str(resolve_model_path("x4")))
    twin = {k: (v.astype(np.float32) * 0.5).astype(v.dtype) if v.dtype.kind == "f" else v for k, v in weights.items()}
    folder = tmp_path / "pair"
    folder.mkdir()
    save_file(weights, str(folder / "sr.safetensors"), metadata={"fastpercept": card})
    save_file(twin, str(folder / "sr-real.safetensors"), metadata={"fastpercept": card})
    return folder
