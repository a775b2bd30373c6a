"""The command line's argument types and shared flag groups (argparse), apart from the commands.

Task modules add their ``train`` flags with these; the defaults stay in the library's config
dataclasses (a flag left at None takes the config's value).
"""

from __future__ import annotations

import argparse

from ..runtime.backends import BACKEND_NAMES, DEVICES, PRECISIONS

VGG_HELP = "VGG-16 weights file (default: found as `fastpercept weights` shows)"


def csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def ints(text: str) -> list[int]:
    try:
        return [int(t) for t in csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def unit(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def positive(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


class OneLineParser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (like every other error) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"fastpercept: error: {message} (see `{self.prog} --help`)\n")


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=list(DEVICES), help="default: cuda if available")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto: bf16 on CUDA and on CPUs with native bf16 (AMX, AVX512-BF16), else fp32")


def add_backend(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--backend", default="auto", choices=list(BACKEND_NAMES), help=help)


# Training and objective flags default to None: the library's dataclasses (RunConfig,
# each task's config, ObjectiveWeights) hold each default once; `_config` fills them in.
def add_objective(p: argparse.ArgumentParser) -> None:
    from ..training.losses import STYLE_SIZE, ObjectiveWeights as W

    p.add_argument("--content-weight", type=float, default=None, help=f"default {W.content_weight}")
    p.add_argument("--style-weight", type=float, default=None, help=f"default {W.style_weight}")
    p.add_argument("--tv-weight", type=float, default=None, help=f"default {W.tv_weight}")
    p.add_argument("--content-layer", default=None, help=f"default {W.content_layer}")
    p.add_argument("--style-layers", type=csv, default=None, help=f"default {','.join(W.style_layers)}")
    p.add_argument("--style-size", type=positive, default=None,
                   help=f"longest side of the style image (px; never enlarged): sets the scale of the strokes "
                        f"(default {STYLE_SIZE})")
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)


def add_training(p: argparse.ArgumentParser, R: type) -> None:
    """The flags every training run has; ``R`` is the task's config class (for the help's defaults)."""
    p.add_argument("--data", required=True, help="folder tree of training photos")
    p.add_argument("-o", "--output", required=True, help="MODEL.safetensors")
    p.add_argument("--iters", type=positive, default=None, help=f"training steps (default {R.iters})")
    p.add_argument("--batch-size", type=positive, default=None, help=f"default {R.batch_size}")
    p.add_argument("--lr", type=float, default=None, help=f"Adam step size (default {R.lr})")
    p.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="constant (default) or cosine annealing from --lr to 0 at --iters")
    p.add_argument("--checkpoint-every", type=positive, default=None, help=f"steps (default {R.checkpoint_every})")
    p.add_argument("--checkpoint-dir", default=None, help="default: MODEL.ckpt beside the output")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint")
    p.add_argument("--seed", type=int, default=None, help=f"default {R.seed}")
    p.add_argument("--workers", type=int, default=None, help=f"data loader processes (default {R.workers})")
    p.add_argument("--log-every", type=positive, default=None, help=f"steps between CSV rows (default {R.log_every})")
    p.add_argument("--compile", action="store_true", help="torch.compile the network and losses (faster steps)")
    p.add_argument("--init-from", default=None, help="fine-tune from an existing model of the same task")
    p.add_argument("--notes", default=None,
                   help="what was tried and why these settings, kept in the model card (may be given on --resume)")
    add_runtime(p)
