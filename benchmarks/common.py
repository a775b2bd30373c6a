"""What the benchmark scripts share: the CPU's name with its widest matrix unit, and a timer.

Every speed figure names the CPU it was measured on (bf16 is ~7x fp32 with AMX, ~2x with
AVX512-BF16 and slower with AVX2 only), and is a median of repeated whole calls.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    """``"<model name> (AMX|AVX512-BF16|AVX512|AVX2)"`` from /proc/cpuinfo, else what platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(x for x in lines if x.startswith("model name")).split(":", 1)[1].strip()
        flags = next(x for x in lines if x.startswith("flags")).split()
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
    kind = ("AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags
            else "AVX512" if "avx512f" in flags else "AVX2")
    return f"{name} ({kind})"


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: bool = False) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (after one untimed call if ``warmup``)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
