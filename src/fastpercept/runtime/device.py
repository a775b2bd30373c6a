"""The PyTorch device and numeric precision (the torch backends and training): bf16 where the
hardware runs it fast, else fp32."""

from __future__ import annotations

import contextlib
import time

import torch

from ..errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """:func:`fastpercept.runtime.hardware.resolve_device` as a ``torch.device``."""
    from .hardware import resolve_device as resolve_device_name

    return torch.device(resolve_device_name(str(name)))


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (AVX512-BF16 or AMX).

    Without them bf16 convolutions fall back to a reference loop that is ~10x slower than
    fp32 (measured on an AVX2-only EPYC: 120 s vs 9.5 s per training step), so ``auto`` must
    not pick bf16 there.
    """
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on CUDA with bf16 support or a CPU with fast bf16, else ``fp32``."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if name not in ("fp32", "bf16", "fp16"):
        raise UserError(f"precision must be auto, fp32, bf16 or fp16, not {name!r}")
    if name == "fp16" and device.type == "cpu":
        raise UserError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return name


def compute_dtype(precision: str) -> torch.dtype:
    """The tensor dtype of a resolved precision: ``bf16``, ``fp16`` or ``fp32``."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def autocast(device: torch.device, precision: str):
    """An autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=compute_dtype(precision))


def wall_clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the queued GPU work on ``device`` has finished.

    CUDA runs asynchronously: without the synchronization a timer would measure how fast work is
    queued, not how fast it runs. Every timing in the package and its benchmarks uses this.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
