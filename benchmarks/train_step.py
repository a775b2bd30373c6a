"""Seconds per style-training step (paper network + VGG-16 losses), modes measured side by side.

    python benchmarks/train_step.py [--batch-size 4] [--size 256] [--steps 3] [--compile] [--flops]

Modes: ``fp32-eager`` (contiguous tensors, fp32 VGG: the naive baseline) and ``default``
(what ``fastpercept train style`` does: the auto precision, channels_last, the frozen VGG held
in the compute dtype). Each is warmed up, then timed over ``--steps`` steps, in one process.
"""

from __future__ import annotations

import argparse

import torch

from fastpercept.runtime.device import (autocast, compute_dtype, cpu_has_fast_bf16, resolve_device, resolve_precision,
                                wall_clock)
from fastpercept.training.losses import StyleObjective
from fastpercept.nets.style import StyleNet
from fastpercept.training.vgg import VGG16Features


def seconds_per_call(fn, device: torch.device, warmup: int, reps: int) -> float:
    """Mean wall time of ``fn()`` over ``reps`` calls after ``warmup`` (CUDA work waited for)."""
    for _ in range(warmup):
        fn()
    t = wall_clock(device)  # the warm-up calls are queued, not done: wait for them first
    for _ in range(reps):
        fn()
    return (wall_clock(device) - t) / reps


def time_steps(mode: str, batch: int, size: int, steps: int, compile_: bool) -> float:
    device = resolve_device("auto")
    precision = "fp32" if mode == "fp32-eager" else resolve_precision("auto", device)
    torch.manual_seed(0)
    vgg = VGG16Features().to(device)
    objective = StyleObjective(vgg, torch.rand(1, 3, 256, 256, device=device))
    net = StyleNet().to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    if mode != "fp32-eager":
        vgg.to(dtype=compute_dtype(precision)).to(memory_format=torch.channels_last)
        net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step() -> None:
        with autocast(device, precision):
            terms = objective(net(x), objective.content_features(x))
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()

    if compile_:
        step = torch.compile(step)
    return seconds_per_call(step, device, warmup=2, reps=steps)


def step_flops(batch: int, size: int) -> float:
    """FLOPs of one training step (network forward and backward, both VGG-16 passes), counted."""
    from torch.utils.flop_counter import FlopCounterMode

    vgg = VGG16Features()
    objective = StyleObjective(vgg, torch.rand(1, 3, 64, 64))
    net = StyleNet()
    x = torch.rand(batch, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        objective(net(x), objective.content_features(x))["total"].backward()
    return float(counter.get_total_flops())


def conv_peak(device: torch.device, precision: str) -> float:
    """FLOP/s of the best case for these networks here: a 3x3 conv, 256 -> 256 channels at 64²,
    batch 4, channels_last, forward only, in the compute dtype."""
    dtype = compute_dtype(precision)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype, memory_format=torch.channels_last)
    x = torch.randn(4, 256, 64, 64, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = seconds_per_call(lambda: conv(x), device, warmup=3, reps=50 if device.type == "cuda" else 10)
    return 2 * 4 * 256 * 256 * 9 * 64 * 64 / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time the default mode under torch.compile")
    p.add_argument("--flops", action="store_true",
                   help="count a step's FLOPs and time a conv at this device's peak: the floor for a step")
    a = p.parse_args()
    device = resolve_device("auto")
    print(f"device {device}, threads {torch.get_num_threads()}, fast CPU bf16: {cpu_has_fast_bf16()}, "
          f"auto precision: {resolve_precision('auto', device)}")
    modes = [("fp32-eager", False), ("default", False)] + ([("default", True)] if a.compile else [])
    results = {}
    for mode, comp in modes:
        name = mode + (" + compile" if comp else "")
        results[name] = time_steps(mode, a.batch_size, a.size, a.steps, comp)
        print(f"{name:<20} {results[name]:.4f} s/step (batch {a.batch_size}, {a.size}px)", flush=True)
    base = results["fp32-eager"]
    for name, sec in results.items():
        print(f"{name:<20} {base / sec:.2f}x vs fp32-eager")
    if a.flops:
        flops = step_flops(a.batch_size, a.size)
        precision = resolve_precision("auto", device)
        peak = conv_peak(device, precision)
        print(f"{flops / 1e9:.1f} GFLOP per step; {precision} conv peak here {peak / 1e9:.0f} GFLOP/s "
              f"-> at least {flops / peak:.3f} s/step")
        for name, sec in results.items():
            print(f"{name:<20} {flops / sec / 1e9:.0f} GFLOP/s achieved")


if __name__ == "__main__":
    main()
