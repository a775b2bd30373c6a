"""The optimization baseline of Gatys et al. (2016) on exactly the objective the networks train on.

Johnson et al. (2016, Figure 5) compare their feed-forward network with this baseline: the image
itself is optimized, by L-BFGS, to minimize
``content_weight * l_feat + style_weight * l_style + tv_weight * l_tv`` (:class:`StyleObjective`).

Decisions (measured on a 64 px crop of ``chicago.jpg`` with ``mosaic.jpg``, paper weights, and a
128 px check with ``starry_night_crop.jpg``):

- **Parameterization: projection.** The pixels are optimized directly and clamped back into
  [0, 1] after every step; the objective is evaluated on ``x.clamp(0, 1)``, which, since ``x``
  is already in [0, 1] whenever it is evaluated, is the very image returned. Objective after 100
  L-BFGS iterations: projection 28.5 / 13.9 (64 px / 128 px), clamping only inside the loss
  29.4 / 14.1 (pixels pushed outside [0, 1] get zero gradient and stay stuck), a sigmoid
  parameterization 29.8 / 14.4 (its gradient vanishes near 0 and 1, and it cannot start exactly
  at the content image), raw unconstrained pixels clamped at the end 31.6 (the optimizer
  minimizes a different function from the one of the returned image).
- **Iterations** are L-BFGS outer iterations, as in the paper's Figure 5 and in Gatys et al.:
  ``torch.optim.LBFGS(max_iter=1)`` with one ``.step`` per iteration and no line search, so each
  iteration costs exactly one function evaluation (plus one at the end for the final terms).
  A strong-Wolfe line search accepted the unit step at every iteration of the runs above, i.e.
  the same trajectory at twice the evaluations in this step-by-step use; Johnson's own
  optimization code (neural-style) runs L-BFGS without a line search too.
- **Noise init**: seeded Gaussian noise, mean 0.5, std 0.25, clamped to [0, 1]. It reached a
  lower objective than uniform [0, 1] noise and than std 0.02 / 0.1 at every checkpoint
  (26.4 vs 28.5 / 28.2 / 26.6 after 100 iterations at 64 px).
- **Adam** (for comparison) uses the same projection; step size 0.05 (0.02: 35.8 and 0.1: 30.2
  vs 30.3 after 100 iterations, with a worse start).

Everything runs in float32: this is the reference the networks are measured against.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from tqdm import tqdm

from ..runtime.device import wall_clock
from ..errors import UserError
from .losses import MIN_OBJECTIVE_SIZE, STYLE_SIZE, ObjectiveWeights, StyleObjective

if TYPE_CHECKING:
    from ..runtime.images import LoadedImage

TERMS = ("content", "style", "tv", "total")
DEFAULT_ITERS = 500  # the longest run of the paper's Table 1
DEFAULT_SIZE = 256  # longest side of the content image (px)
NOISE_MEAN = 0.5
NOISE_STD = 0.25
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05}
LBFGS_HISTORY = 100  # correction pairs kept (torch's default, and neural-style's)

Terms = dict[str, float]


@dataclass
class OptimizeResult:
    """The outcome of :func:`optimize_image`.

    Attributes:
        image: the optimized image, (1, 3, H, W) float32 in [0, 1], on the content's device.
        history: ``history[k]`` holds the objective terms (``content``, ``style``, ``tv``
            unweighted, ``total`` weighted) of the image after ``k`` iterations,
            ``k = 0 .. iters`` (``history[0]`` is the initial image).
        seconds: ``seconds[k]``: wall-clock seconds from the start until ``history[k]`` was
            known (the terms are read every iteration, so timing each costs nothing more).
        evaluations: objective evaluations made: one with its gradient per iteration, plus one
            forward pass for the terms of the final image.
    """

    image: torch.Tensor
    history: list[Terms] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    evaluations: int = 0


def initial_image(content: torch.Tensor, init: str, seed: int) -> torch.Tensor:
    """The starting image, (1, 3, H, W) float32 in [0, 1], same shape and device as ``content``.

    ``noise``: Gaussian noise (mean 0.5, std 0.25, clamped to [0, 1]) drawn from a CPU
    generator seeded with ``seed``, so it is the same on every device. ``content``: a copy of
    the content image.
    """
    if init == "content":
        return content.detach().float().clone()
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        noise = NOISE_MEAN + NOISE_STD * torch.randn(content.shape, generator=g)
        return noise.clamp_(0.0, 1.0).to(content.device)
    raise ValueError(f"init must be 'noise' or 'content', not {init!r}")


def _as_floats(terms: dict[str, torch.Tensor]) -> Terms:
    return {k: float(terms[k].detach()) for k in TERMS}


def _make_optimizer(name: str, x: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    if name == "lbfgs":
        # tolerance_* = 0: run exactly the iterations asked for; the gradients here are large
        # (the objective starts near 1e3), but a near-stationary point must not end the run
        # early and leave the later iterations unrun.
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=LBFGS_HISTORY,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn=None)
    if name == "adam":
        return torch.optim.Adam([x], lr=lr)
    raise ValueError(f"optimizer must be 'lbfgs' or 'adam', not {name!r}")


def optimize_image(
    objective: StyleObjective,
    content: torch.Tensor,
    iters: int,
    optimizer: str = "lbfgs",
    init: str = "noise",
    lr: float | None = None,
    seed: int = 0,
    callback: Callable[[int, Terms], None] | None = None,
    progress: bool | None = None,
) -> OptimizeResult:
    """Optimize an image to minimize ``objective`` for the content image ``content``.

    Args:
        objective: the style objective (its VGG on the device of ``content``).
        content: (1, 3, H, W) in [0, 1].
        iters: optimizer iterations (L-BFGS outer iterations, one function evaluation each;
            Adam steps), >= 0.
        optimizer: ``lbfgs`` (the paper's baseline) or ``adam``.
        init: ``noise`` (seeded Gaussian noise) or ``content`` (the content image).
        lr: step size; default 1 for L-BFGS (its quasi-Newton step), 0.05 for Adam.
        seed: seed of the noise.
        callback: called as ``callback(k, terms)`` for every history entry, ``k = 0 .. iters``.
        progress: show a progress bar on stderr; default: when stderr is a terminal.
    Returns:
        an :class:`OptimizeResult`; its ``image`` is (1, 3, H, W) float32 in [0, 1] and
        ``history[-1]`` holds its terms.
    """
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    lr = DEFAULT_LR[optimizer] if lr is None and optimizer in DEFAULT_LR else lr
    content = content.detach().float()
    content_feat = objective.content_features(content)
    x = initial_image(content, init, seed).requires_grad_(True)
    opt = _make_optimizer(optimizer, x, lr)
    result = OptimizeResult(image=x.detach())
    if progress is None:
        progress = sys.stderr.isatty()
    bar = tqdm(total=iters, desc=f"optimize ({optimizer})", unit="it", file=sys.stderr, disable=not progress)
    start = wall_clock(content.device)

    def note(terms: Terms) -> None:
        """Append the terms of the current iterate (iteration ``len(history)``)."""
        k = len(result.history)
        if not all(math.isfinite(v) for v in terms.values()):
            raise RuntimeError(f"objective is not finite after {k} iterations: {terms}")
        result.history.append(terms)
        result.seconds.append(wall_clock(content.device) - start)
        if callback is not None:
            callback(k, terms)

    def closure() -> torch.Tensor:
        # Called once per iteration, at the current iterate (x in [0, 1] by the projection),
        # so its terms are those of the image after the previous iteration: the history costs
        # no extra evaluation. The clamp is a no-op on the value but makes the evaluated image
        # the returned one by construction (its gradient passes at 0 and 1 inclusive).
        opt.zero_grad(set_to_none=True)
        terms = objective(x.clamp(0.0, 1.0), content_feat)
        terms["total"].backward()
        result.evaluations += 1
        note(_as_floats(terms))
        return terms["total"]

    try:
        for _ in range(iters):
            if optimizer == "lbfgs":
                opt.step(closure)
            else:
                closure()
                opt.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)  # the projection back onto the box [0, 1]
            bar.update(1)
            bar.set_postfix(total=f"{result.history[-1]['total']:.4g}", refresh=False)
        with torch.no_grad():  # the terms of the final iterate
            result.evaluations += 1
            note(_as_floats(objective(x.clamp(0.0, 1.0), content_feat)))
    finally:
        bar.close()
    result.image = x.detach().clamp(0.0, 1.0)
    return result


def optimize_files(content_path: str, style_path: str, iters: int = DEFAULT_ITERS, *,
                   weights: ObjectiveWeights | None = None, size: int = DEFAULT_SIZE,
                   style_size: int | None = STYLE_SIZE, optimizer: str = "lbfgs", init: str = "noise",
                   lr: float | None = None, seed: int = 0, vgg_weights: str | None = None,
                   device: str = "auto") -> tuple[OptimizeResult, "LoadedImage"]:
    """``fastpercept optimize`` as a function: the Gatys et al. baseline from two image files.

    The content is reduced to ``size`` (longest side), the style to ``style_size``; the
    objective is the training objective with ``weights``. Returns the result (image (1, 3, H, W)
    in [0, 1], fp32) and the loaded content (for its alpha).
    """
    from ..runtime.device import resolve_device
    from ..runtime.images import load_image
    from .vgg import VGG16Features
    from .weights import resolve_vgg16

    weights = weights or ObjectiveWeights()
    weights.validate()
    for name, value in (("--size", size), ("--style-size", style_size)):
        if value is not None and value < MIN_OBJECTIVE_SIZE:
            raise UserError(f"{name} must be at least {MIN_OBJECTIVE_SIZE} px, not {value}")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):
        raise UserError(f"--lr must be a number >= 0, not {lr}")
    dev = resolve_device(device)
    content = load_image(content_path, max_size=size)
    style = load_image(style_path, max_size=style_size).rgb.to(dev)
    vgg = VGG16Features(resolve_vgg16(vgg_weights)).to(dev)
    objective = StyleObjective(vgg, style, weights)
    result = optimize_image(objective, content.rgb.to(dev), iters, optimizer=optimizer, init=init, lr=lr, seed=seed)
    return result, content
