"""Seconds per style-training step (paper network + VGG-16 losses), modes measured side by side.

    python benchmarks/train_step.py [--batch-size 4] [--size 256] [--steps 3] [--compile]

Modes: ``fp32-eager`` (contiguous tensors, fp32 VGG: the naive baseline) and ``default``
(what ``fastpercept train style`` does: the auto precision, channels_last, the frozen VGG held
in the compute dtype). Each is warmed up, then timed over ``--steps`` steps, in one process.
"""

from __future__ import annotations

import argparse
import time

import torch

from fastpercept.device import autocast, cpu_has_fast_bf16, resolve_device, resolve_precision
from fastpercept.losses import StyleObjective
from fastpercept.nets.style import StyleNet
from fastpercept.vgg import VGG16Features


def time_steps(mode: str, batch: int, size: int, steps: int, compile_: bool) -> float:
    device = resolve_device("auto")
    precision = "fp32" if mode == "fp32-eager" else resolve_precision("auto", device)
    torch.manual_seed(0)
    vgg = VGG16Features().to(device)
    objective = StyleObjective(vgg, torch.rand(1, 3, 256, 256, device=device))
    net = StyleNet().to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    if mode != "fp32-eager":
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        vgg.to(dtype=dtype).to(memory_format=torch.channels_last)
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
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time the default mode under torch.compile")
    a = p.parse_args()
    device = resolve_device("auto")
    print(f"device {device}, threads {torch.get_num_threads()}, fast CPU bf16: {cpu_has_fast_bf16()}, "
          f"auto precision: {resolve_precision('auto', device)}")
    modes = [("fp32-eager", False), ("default", False)] + ([("default", True)] if a.compile else [])
    results = {}
    for mode, comp in modes:
        name = mode + (" + compile" if comp else "")
        results[name] = time_steps(mode, a.batch_size, a.size, a.steps, comp)
        print(f"{name:<20} {results[name]:.2f} s/step (batch {a.batch_size}, {a.size}px)", flush=True)
    base = results["fp32-eager"]
    for name, sec in results.items():
        print(f"{name:<20} {base / sec:.2f}x vs fp32-eager")


if __name__ == "__main__":
    main()
