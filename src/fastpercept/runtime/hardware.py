"""What this machine offers to run on, without importing PyTorch: whether PyTorch is installed,
whether it sees CUDA, and which device ``auto`` means. (:mod:`.backends` chooses runtimes on top
of it; :mod:`.device` is the PyTorch side.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device.

    On Linux without an NVIDIA driver the answer comes without importing PyTorch (1.4 s).
    """
    if not torch_available():
        return False
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` where available, else ``cpu``; ``cuda`` must be there."""
    if name not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name == "cuda" and not cuda_available():
        if not torch_available():
            raise UserError("device cuda: CUDA runs through PyTorch, which is not installed; "
                            "pip install 'fastpercept[train]'")
        raise UserError("device cuda: no CUDA device is available")
    return name
