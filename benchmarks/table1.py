"""The paper's Table 1 (Johnson et al. 2016, style transfer): Gatys optimization vs the network, seconds.

    python benchmarks/table1.py [--sizes 256,512,1024] [--lbfgs-iters 2] [--reps 3] [--model mosaic]
                                [--style-image FILE] [--device auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]
                                [--json]

Rows: square content images (the bundled ``example.jpg``, shorter side resized to S, center S x S
crop). Columns, as in the paper: the seconds of 100, 300 and 500 L-BFGS iterations of the Gatys et
al. optimization (:func:`fastpercept.training.optimize.optimize_image`: from noise, fp32, on the model's own
training objective: the card's weights, layers and style image), the seconds of one pass of the
network, and the speed-ups (optimization seconds / network seconds).

The optimization is not run for 500 iterations: an L-BFGS iteration (one forward and backward pass
of VGG-16 and one quasi-Newton step) costs the same at every iteration, so one warm-up iteration
and ``--lbfgs-iters`` timed ones are run and the mean of the timed ones is multiplied by 100, 300
and 500. The table says so. Only the quasi-Newton step is not constant: its two-loop recursion
grows with the history (up to 100 correction pairs; measured at 1024²: about 2.4 s with all 100,
on this 2-core machine while it was busy), and the first iterations timed here have almost none,
so the extrapolated seconds are a lower bound and the speed-ups conservative.

The network: a warm-up call, then the median of ``--reps`` timed calls of
:func:`fastpercept.runtime.tiling.run_network` (the ``stylize`` path, ``--precision``) through
:class:`~fastpercept.runtime.tiling.TimedNetwork` (NumPy arrays in and out, as ``stylize`` runs it;
on CUDA the copies to and from the GPU are in the time and the GPU work is waited for). By default
the runner is plain PyTorch under autocast; ``--backend`` times any backend of
:mod:`fastpercept.runtime.backends` the same way. ``--json``: one JSON document on stdout instead
of the table (progress goes to stderr either way).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from fastpercept.training.data import center_crop
from fastpercept.errors import UserError
from fastpercept.training.eval_style import find_style_image, objective_from_card
from fastpercept.runtime.images import load_image
from fastpercept.training.losses import StyleObjective
from fastpercept.models import load_model, resolve_model_path
from fastpercept.training.optimize import optimize_image
from fastpercept.runtime.backends import Runner, make_runner, resolve_device, resolve_precision
from fastpercept.runtime.tiling import TimedNetwork
from fastpercept.runtime.torch_runner import TorchRunner
from fastpercept.training.vgg import VGG16Features
from fastpercept.training.weights import resolve_vgg16

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "src" / "fastpercept" / "assets" / "example.jpg"
STYLES = ROOT.parent / "shared" / "data" / "styles"  # where the shipped models' style images are
ITERATION_COUNTS = (100, 300, 500)  # the paper's Table 1 columns


def machine(device: torch.device) -> str:
    """The hardware in words: CPU model and threads, or the GPU; torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    what = f"{cpu}, {torch.get_num_threads()} threads"
    if device.type == "cuda":
        what = f"{torch.cuda.get_device_name(device)} (host: {what})"
    return f"{what}; torch {torch.__version__}"


def square_content(size: int, device: torch.device) -> torch.Tensor:
    """The bundled photo as a (1, 3, size, size) square in [0, 1]: shorter side to ``size``, center crop."""
    return center_crop(load_image(CONTENT).rgb, size).to(device)


def style_image_of(model_name: str, card: dict[str, Any], explicit: Path | None) -> Path:
    """``--style-image``, else the card's style image beside the model, else in ``../shared/data/styles``."""
    try:
        return find_style_image(card.get("style_image", ""), resolve_model_path(model_name), explicit)
    except UserError:
        shared = STYLES / Path(card.get("style_image", "")).name
        if card.get("style_image") and shared.is_file():
            return shared
        raise


def lbfgs_seconds_per_iteration(objective: StyleObjective, content: torch.Tensor, timed: int) -> list[float]:
    """Wall seconds of ``timed`` L-BFGS iterations after one warm-up iteration (noise init, fp32).

    ``optimize_image`` records the time at every objective evaluation (one per iteration, the
    first at the initial image); the differences between consecutive evaluations with a gradient
    are whole iterations (a quasi-Newton step plus a forward and backward pass). The first, up to
    the first evaluation, is the warm-up; the last record is the forward-only final evaluation and
    is not used.
    """
    result = optimize_image(objective, content, timed + 1, optimizer="lbfgs", init="noise", seed=0, progress=False)
    s = result.seconds
    return [s[k] - s[k - 1] for k in range(1, timed + 1)]


def network_seconds(runner: Runner, x: torch.Tensor, reps: int) -> list[float]:
    """Wall seconds of ``reps`` calls of ``run_network(runner, x)`` after one warm-up call.

    Takes any :class:`~fastpercept.runtime.backends.Runner`, so other backends can be timed the
    same way; ``x`` goes in as the NumPy array ``stylize`` hands the runner.
    """
    network = TimedNetwork(runner)
    image = x.detach().float().cpu().numpy()
    for _ in range(reps):
        network(image)
    return network.seconds


def measure(sizes: list[int], model_name: str, style_image: Path | None, device: torch.device, precision: str,
            lbfgs_iters: int, reps: int, log: Callable[[str], None] = lambda s: None,
            backend: str | None = None) -> dict[str, Any]:
    """Every row of the table, as a JSON-able dict (see :func:`main`).

    ``precision``: the network's (``auto`` or a name: each backend resolves it as ``stylize`` does).
    """
    model = load_model(model_name, device.type)
    if model.task != "style":
        raise UserError(f"{model_name}: a {model.task} model; Table 1 times a style model")
    style_path = style_image_of(model_name, model.card, style_image)
    vgg = VGG16Features(resolve_vgg16()).to(device)
    objective = objective_from_card(model.card, vgg, style_path)
    # No backend: plain PyTorch under autocast, the network as the library ran it before backends.
    if backend is None:
        runner = TorchRunner(model.net, resolve_precision(precision, device.type, "torch"))
    else:
        runner = make_runner(model, backend, device.type, precision)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for size in sizes:
        x = square_content(size, device)
        log(f"{size}²: L-BFGS, 1 warm-up + {lbfgs_iters} timed iterations ...")
        iters = lbfgs_seconds_per_iteration(objective, x, lbfgs_iters)
        per_iter = statistics.fmean(iters)
        log(f"{size}²: {per_iter:.3f} s per L-BFGS iteration ({', '.join(f'{t:.3f}' for t in iters)}); "
            f"network, 1 warm-up + {reps} timed ...")
        net_times = network_seconds(runner, x, reps)
        net = statistics.median(net_times)
        log(f"{size}²: network {net:.4f} s (median of {', '.join(f'{t:.4f}' for t in net_times)})")
        gatys = {str(n): per_iter * n for n in ITERATION_COUNTS}
        rows.append({
            "size": size,
            "lbfgs_seconds_per_iteration": per_iter,
            "lbfgs_iteration_seconds": iters,
            "gatys_seconds": gatys,
            "network_seconds": net,
            "network_call_seconds": net_times,
            "speedup": {n: g / net for n, g in gatys.items()},
        })
    return {
        "benchmark": "table1",
        "model": model.name,
        "style_image": str(style_path),
        "content": str(CONTENT),
        "device": str(device),
        "precision": runner.precision,
        "backend": backend or "torch (autocast)",
        "machine": machine(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": started,
        "lbfgs_timed_iterations": lbfgs_iters,
        "network_reps": reps,
        "iteration_counts": list(ITERATION_COUNTS),
        "method": (f"Gatys: mean seconds of {lbfgs_iters} L-BFGS iterations after 1 warm-up (fp32, noise init, "
                   "the model's training objective) x N iterations, not N iterations run; network: median of "
                   f"{reps} run_network calls after 1 warm-up ({runner.precision})"),
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The paper's layout: size | Gatys 100 / 300 / 500 | network | speed-up vs 100 / 300 / 500."""
    counts = result["iteration_counts"]
    head = ["Image size", *(f"Gatys {n}" for n in counts), "Network", *(f"Speed-up vs {n}" for n in counts)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in result["rows"]:
        cells = [f"{r['size']} x {r['size']}"]
        cells += [f"{r['gatys_seconds'][str(n)]:.2f}" for n in counts]
        cells.append(f"{r['network_seconds']:.4f}")
        cells += [f"{r['speedup'][str(n)]:,.0f}x" for n in counts]
        lines.append("| " + " | ".join(cells) + " |")
    k = result["lbfgs_timed_iterations"]
    lines += [
        "",
        f"Seconds. Gatys N = N x the mean wall time of one L-BFGS iteration ({k} timed after 1 warm-up; each "
        "iteration is one VGG-16 forward and backward pass, the same cost every time, and one quasi-Newton step), "
        "not N iterations run; the quasi-Newton step's cost grows with L-BFGS's history (up to 100 pairs), which this "
        "leaves out, so Gatys N is a lower bound and the speed-ups are conservative. "
        f"fp32, from noise, on {result['model']}'s training objective (style image "
        f"{Path(result['style_image']).name}). Network: {result['model']}, median of {result['network_reps']} "
        f"calls after 1 warm-up, {result['precision']}, backend {result.get('backend', 'torch')}. "
        f"Content: {Path(result['content']).name}, center square.",
        f"Machine: {result['machine']}; device {result['device']}; {result['date']}.",
    ]
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, not {text!r}") from None
    if not sizes or any(s < 32 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be at least 32 px, not {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=parse_sizes, default=[256, 512, 1024], help="square sizes, e.g. 256,512,1024")
    p.add_argument("--lbfgs-iters", type=int, default=2, help="timed L-BFGS iterations per size (after 1 warm-up)")
    p.add_argument("--reps", type=int, default=3, help="timed network calls per size (after 1 warm-up)")
    p.add_argument("--model", default="mosaic", help="a shipped style model or a model file")
    p.add_argument("--style-image", type=Path, default=None,
                   help="the model's style image (default: beside the model, else ../shared/data/styles)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="the network's precision (the optimization is fp32)")
    p.add_argument("--backend", default=None, help="the network's backend (default: plain torch autocast; "
                   "auto, openvino, onnxruntime, torch, compile as fastpercept stylize --backend)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    a = p.parse_args(argv)
    if a.lbfgs_iters < 1 or a.reps < 1:
        p.error("--lbfgs-iters and --reps must be at least 1")
    try:
        device = torch.device(resolve_device(a.device))
        result = measure(a.sizes, a.model, a.style_image, device, a.precision, a.lbfgs_iters, a.reps,
                         log=lambda s: print(s, file=sys.stderr, flush=True), backend=a.backend)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if a.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
