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
