"""The project's on-disk cache: loss-network weights, user models, compiled PyTorch kernels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The project cache, ``$FASTPERCEPT_CACHE`` or ``~/.cache/fastpercept``."""
    return Path(os.environ.get("FASTPERCEPT_CACHE", Path.home() / ".cache" / "fastpercept"))
