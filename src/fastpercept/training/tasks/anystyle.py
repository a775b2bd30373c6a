"""Any painting as the style: the decoders of universal style transfer (:class:`~fastpercept.nets.wct.WCTNet`).

Li et al. (2017) train each decoder to invert VGG-16 at its level on photos alone; the painting
only enters at inference (:mod:`fastpercept.runtime.anystyle`). The loss of a batch ``x`` sums,
over the levels ``L`` of the cascade, with ``f = encode(x, L)`` and ``y = decode(f, L)``:

    pixel_L   = mean((y - x)^2)                          (RGB in [0, 1])
    feature_L = mean((encode(y, L) - f)^2) / mean(f^2)   (relative, so levels weigh alike)
    total     = sum_L pixel_L + feature_weight * feature_L

The encoder is VGG-16 with the loss network's ImageNet weights, frozen; only decoders learn.

``--loss objective`` trains the deepest decoder as AdaIN does (Huang & Belongie 2017), on
paintings: the photo goes through the whole network as at inference — at each level its
features take a painting's statistics (:mod:`fastpercept.runtime.anystyle`'s moments and
affine map, the map applied in PyTorch so that gradients pass) — and the output is scored by
the paper's objective against the photo (content) and that painting (Gram matrices),
:func:`~fastpercept.training.losses.objective_terms`. Only the deepest decoder learns; the
levels below keep the inverting decoders they start from (``--decoders-from``). Each sample
draws one of ``--views`` views of each painting of ``--paintings``: the whole painting (longest
side ``--style-size``) or a random ``--view-size`` square of it, so that a few dozen paintings
give the decoder several hundred sets of statistics.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...architectures import ANYSTYLE_TRANSFORMS, WCT_LEVELS, WCTConfig
from ...errors import UserError
from ..data import RandomCrops, scan_image_files
from ..losses import STYLE_SIZE, ObjectiveWeights, check_weight, gram_matrix, objective_terms
from ..train import RunConfig, TrainingSetup, dataset_record, initial_model, resumable, source_reference
from . import Task

MIN_IMAGE_SIZE = 32
LOSSES = ("reconstruction", "objective")
log = logging.getLogger(__name__)


@dataclass
class AnyStyleConfig(RunConfig):
    """``fastpercept train anystyle``: decoders for every level down from ``deepest``, on photos
    (``loss="reconstruction"``), or one decoder on photos and paintings (``"objective"``)."""

    deepest: str = WCTConfig.deepest
    transform: str = WCTConfig.transform
    cascade: bool = WCTConfig.cascade
    loss: str = "reconstruction"
    image_size: int = 256
    feature_weight: float = 1.0
    lr: float = 1e-4  # Li et al.'s Adam step
    iters: int = resumable(20000)
    # --loss objective: the paintings, their views, the paper's objective.
    paintings: str | None = resumable(None)
    views: int = 8
    view_size: int = 256
    style_size: int = STYLE_SIZE
    content_weight: float = ObjectiveWeights.content_weight
    style_weight: float = ObjectiveWeights.style_weight
    tv_weight: float = ObjectiveWeights.tv_weight
    # anystyle models whose decoders (by name and shape; a later one's win) start this one; only
    # a fresh run reads them (a resumed one has its checkpoint), so they may change on --resume
    decoders_from: tuple[str, ...] = resumable(())

    def validate(self) -> None:
        super().validate()
        if self.deepest not in WCT_LEVELS:
            raise UserError(f"--deepest must be one of {', '.join(WCT_LEVELS)}, not {self.deepest!r}")
        if self.transform not in ANYSTYLE_TRANSFORMS:
            raise UserError(f"--transform must be one of {', '.join(ANYSTYLE_TRANSFORMS)}, not {self.transform!r}")
        if self.loss not in LOSSES:
            raise UserError(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.image_size < MIN_IMAGE_SIZE:
            raise UserError(f"--image-size must be at least {MIN_IMAGE_SIZE} px, not {self.image_size}")
        if not self.feature_weight >= 0:
            raise UserError(f"--feature-weight must be >= 0, not {self.feature_weight}")
        if self.loss == "objective":
            if not self.paintings:
                raise UserError("--loss objective needs --paintings FOLDER")
            if self.cascade and self.deepest != "relu1_1" and not self.decoders_from:
                raise UserError("--loss objective trains the deepest decoder only: give the levels below theirs "
                                "with --decoders-from MODEL, or add --single-level")
            for name in ("content_weight", "style_weight", "tv_weight"):
                check_weight(name, getattr(self, name))
            for name in ("view_size", "style_size"):
                if getattr(self, name) < MIN_IMAGE_SIZE:
                    raise UserError(f"--{name.replace('_', '-')} must be at least {MIN_IMAGE_SIZE} px, "
                                    f"not {getattr(self, name)}")
            if self.views < 1:
                raise UserError(f"--views must be at least 1, not {self.views}")
        elif self.paintings:
            raise UserError("--paintings is for --loss objective (reconstruction learns from photos alone)")

    @property
    def objective(self) -> ObjectiveWeights:
        return ObjectiveWeights(self.content_weight, self.style_weight, self.tv_weight)

    def input_files(self) -> list[Path]:
        from ...models import resolve_model_path

        return [*super().input_files(), *(resolve_model_path(m) for m in self.decoders_from)]


def reconstruction_losses(net: nn.Module, x: torch.Tensor, feature_weight: float) -> dict[str, torch.Tensor]:
    """The module docstring's terms for a batch ``x`` (N, 3, H, W) in [0, 1]: ``pixel_L``,
    ``feature_L`` per level and ``total``."""
    terms: dict[str, torch.Tensor] = {}
    total = x.new_zeros(())
    for level in net.config.levels:
        with torch.no_grad():
            f = net.encode(x, level)
        y = net.decode(f, level)
        pixel = torch.mean((y.float() - x.float()) ** 2)
        f = f.float()
        feature = torch.mean((net.encode(y, level).float() - f) ** 2) / torch.mean(f ** 2).clamp_min(1e-8)
        terms[f"pixel_{level}"], terms[f"feature_{level}"] = pixel, feature
        total = total + pixel + feature_weight * feature
    terms["total"] = total
    return terms


@dataclass
class PaintingViews:
    """The training paintings' views: their Gram matrices per style layer, ``grams[layer]``
    (V, C, C), and their statistics at each level of the network for its transform
    (``moments[v][i]``, levels deepest first)."""

    grams: dict[str, torch.Tensor]
    moments: list[list[Any]]


def painting_views(files: list[Path], vgg: nn.Module, net: nn.Module, cfg: AnyStyleConfig) -> PaintingViews:
    """:class:`PaintingViews` of ``files``: per painting (longest side ``cfg.style_size``), the
    whole of it and ``cfg.views - 1`` random ``cfg.view_size`` squares (seeded by ``cfg.seed``)."""
    from ...runtime.anystyle import coloring
    from ...runtime.images import load_image

    rng = np.random.default_rng([cfg.seed, 2])
    layers, config = cfg.objective.style_layers, net.config
    grams: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
    moments = []
    for path in files:
        painting = load_image(path, max_size=cfg.style_size).rgb
        h, w = painting.shape[-2:]
        side = min(cfg.view_size, h, w)
        for v in range(cfg.views):
            view = painting
            if v:
                top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                view = painting[..., top:top + side, left:left + side]
            with torch.no_grad():
                for k, f in vgg(view, layers).items():
                    grams[k].append(gram_matrix(f)[0])
                moments.append([coloring(net.encode(view, lv)[0].float().numpy(), config.level_transform(lv))
                                for lv in config.levels])
    return PaintingViews({k: torch.stack(g) for k, g in grams.items()}, moments)


class WithView:
    """A :class:`RandomCrops` transform: the photo's crop and a view index drawn after it."""

    def __init__(self, crop: Any, views: int) -> None:
        self.crop, self.views = crop, views

    def __call__(self, img: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        return self.crop(img, rng), int(rng.integers(self.views))


def stylized(net: nn.Module, x: torch.Tensor, views: PaintingViews, view: torch.Tensor) -> torch.Tensor:
    """``x`` (N, 3, H, W) in [0, 1], H and W multiples of the net's stride, through every level
    as at inference, with the statistics of the views ``view`` (N,): (N, 3, H, W). The moments
    come from the runtime's NumPy code (no gradient, as constants); the affine map is applied
    here, so gradients reach the decoders through every level below."""
    from ...runtime.anystyle import color_map, whitening

    config, outputs = net.config, []
    for y, v in zip(x.split(1), view.tolist()):
        for i, level in enumerate(config.levels):
            f = net.encode(y, level)
            photo = whitening(f[0].detach().float().cpu().numpy(), config.level_transform(level))
            a, b = (torch.from_numpy(t).to(f.device, f.dtype) for t in color_map(photo, views.moments[v][i]))
            m = torch.from_numpy(photo.mean).to(f.device, f.dtype)
            g = (a @ (f.flatten(2) - m[:, None]) + b[:, None]).view_as(f)
            y = net.decode(g, level)
        outputs.append(y)
    return torch.cat(outputs)


def _decoders_from(net: nn.Module, sources: tuple[str, ...]) -> None:
    """Start ``net``'s decoders from ``sources``' (anystyle models, a later one's win): every
    tensor of the same name and shape; UserError for a source with none."""
    from ...models import load_model

    ours = {k: v for k, v in net.state_dict().items() if k.startswith("decoders.")}
    for source in sources:
        theirs = load_model(source).net.state_dict()
        same = {k: theirs[k] for k, v in ours.items() if k in theirs and theirs[k].shape == v.shape}
        if not same:
            raise UserError(f"{source}: no decoder of this network's levels ({', '.join(net.config.levels)})")
        net.load_state_dict(same, strict=False)
        log.info("%d of %d decoder tensors from %s", len(same), len(ours), source)


def setup(cfg: AnyStyleConfig) -> TrainingSetup:
    """One run: the decoders of :class:`WCTNet` under :func:`reconstruction_losses`, or its one
    decoder under the paper's objective (the module docstring)."""
    from ...nets.wct import WCTNet
    from ..vgg import VGG16Features
    from ..weights import resolve_vgg16

    files, skipped = scan_image_files(cfg.data, min_side=cfg.image_size)
    weights = resolve_vgg16(cfg.vgg_weights)
    torch.manual_seed(cfg.seed)

    def fresh() -> nn.Module:
        net = WCTNet(WCTConfig(deepest=cfg.deepest, transform=cfg.transform, cascade=cfg.cascade))
        # The encoder is the loss network's VGG-16, tensor for tensor (torchvision's layout).
        net.encoder.features.load_state_dict({k: weights.state_dict[f"features.{k}"]
                                              for k in net.encoder.features.state_dict()})
        if cfg.decoders_from:
            _decoders_from(net, cfg.decoders_from)
        return net

    model, init_card = initial_model(cfg, "anystyle", fresh)  # an --init-from model's levels win
    if init_card is None and cfg.decoders_from:
        # The card's history is the last source's, whose deepest decoder this run continues
        # (iterations and seconds count its runs too; ``decoders_from`` names every source).
        from ...models import read_card, resolve_model_path

        init_card = read_card(resolve_model_path(cfg.decoders_from[-1]))
    model.encoder.requires_grad_(False)
    dataset = dataset_record(cfg.data, files)
    card: dict[str, Any] = {
        "task": "anystyle", **model.config.to_dict(), "image_size": cfg.image_size, "loss": cfg.loss,
        "vgg_sha256": weights.sha256, "dataset": dataset, **source_reference(cfg.init_from),
    }
    if cfg.decoders_from:
        refs = [source_reference(m) for m in cfg.decoders_from]
        card["decoders_from"] = [{k.replace("init_from", "model"): v for k, v in ref.items()} for ref in refs]
    if skipped:
        log.warning("%s: skipped %d image(s) unreadable or smaller than %d px", cfg.data, skipped, cfg.image_size)
    identity = {"data_files": dataset["sha256"]}
    samples = RandomCrops(files, cfg.image_size, cfg.seed)

    if cfg.loss == "reconstruction":
        card.update(feature_weight=cfg.feature_weight,
                    loss_terms=[f"{term}_{level}" for level in model.config.levels for term in ("pixel", "feature")])

        def loss(net: nn.Module, x: Any) -> dict[str, torch.Tensor]:
            return reconstruction_losses(net, x, cfg.feature_weight)

        return TrainingSetup(model=model, samples=samples, loss=loss, card=card, init_card=init_card,
                             identity=identity)

    painting_files, bad = scan_image_files(cfg.paintings)
    if not painting_files:
        raise UserError(f"{cfg.paintings}: no readable painting")
    if bad:
        log.warning("%s: skipped %d unreadable painting(s)", cfg.paintings, bad)
    vgg = VGG16Features(weights)
    views = painting_views(painting_files, vgg, model, cfg)
    paintings = dataset_record(cfg.paintings, painting_files)
    identity["painting_files"] = paintings["sha256"]
    w = cfg.objective
    card.update(paintings=paintings, views=cfg.views, view_size=cfg.view_size, style_size=cfg.style_size,
                content_weight=w.content_weight, style_weight=w.style_weight, tv_weight=w.tv_weight,
                content_layer=w.content_layer, style_layers=list(w.style_layers),
                loss_terms=["content", "style", "tv"])
    samples.transform = WithView(samples.random_crop, len(views.moments))
    for level in model.config.levels[1:]:  # the levels below keep inverting VGG
        model.decoders[level].requires_grad_(False)

    def objective_loss(net: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, view = batch
        with torch.no_grad():
            content = vgg(x, (w.content_layer,))[w.content_layer]
        y = stylized(net, x, views, view)
        return objective_terms(vgg, y, content, {k: g[view] for k, g in views.grams.items()}, w)

    return TrainingSetup(model=model, samples=samples, loss=objective_loss, card=card, frozen=[vgg],
                         init_card=init_card, identity=identity)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train anystyle``'s own flags."""
    from ...apps.cli_args import VGG_HELP, positive

    C = AnyStyleConfig
    p.add_argument("--deepest", default=None, choices=list(WCT_LEVELS),
                   help=f"the deepest level of the cascade (default {C.deepest}; deeper: larger "
                        "brush strokes, slower)")
    p.add_argument("--single-level", dest="cascade", action="store_const", const=False, default=None,
                   help="one level, --deepest, instead of the cascade down to relu1_1")
    p.add_argument("--transform", default=None, choices=list(ANYSTYLE_TRANSFORMS),
                   help=f"what the photo takes of the painting: wct (mean and covariance) or adain (mean and "
                        f"standard deviation per channel; default {C.transform})")
    p.add_argument("--loss", default=None, choices=list(LOSSES),
                   help=f"reconstruction: invert VGG on photos alone; objective: the paper's objective on "
                        f"--paintings (default {C.loss})")
    p.add_argument("--image-size", type=positive, default=None,
                   help=f"training crop side (px; default {C.image_size})")
    p.add_argument("--feature-weight", type=float, default=None,
                   help=f"weight of the feature reconstruction term (default {C.feature_weight})")
    p.add_argument("--paintings", default=None, help="folder of training paintings (--loss objective)")
    p.add_argument("--views", type=positive, default=None,
                   help=f"views per painting: the whole and random squares (default {C.views})")
    p.add_argument("--view-size", type=positive, default=None,
                   help=f"side of those squares (px; default {C.view_size})")
    p.add_argument("--style-size", type=positive, default=None,
                   help=f"longest side of each painting (px; default {C.style_size})")
    p.add_argument("--content-weight", type=float, default=None, help=f"default {C.content_weight}")
    p.add_argument("--style-weight", type=float, default=None, help=f"default {C.style_weight}")
    p.add_argument("--tv-weight", type=float, default=None, help=f"default {C.tv_weight}")
    p.add_argument("--decoders-from", nargs="+", default=None, metavar="MODEL",
                   help="anystyle models whose decoders (same level; a later model's win) start this run's")
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)


TASK = Task(
    name="anystyle",
    summary="train the any-painting network's decoders (universal style transfer, AdaIN) on a folder of photos",
    train_config=AnyStyleConfig,
    setup=setup,
    add_arguments=add_arguments,
    stage_keys=("image_size", "loss", "feature_weight", "style_weight", "views", "view_size", "decoders_from"),
)
