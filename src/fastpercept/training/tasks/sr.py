"""Super-resolution: :class:`~fastpercept.nets.sr.SRNet` trained on l_feat (+ TV, the paper) or l_pixel."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import RandomCrops, SRPair, scan_image_files
from ..degradation import PIPELINE_NAME, DegradationConfig
from ...errors import UserError
from ..losses import (ObjectiveWeights, check_layers, check_weight, feature_reconstruction_loss, pixel_loss,
                      total_variation_loss)
from ...nets.sr import SRNet, SRNetConfig
from ..train import RunConfig, TrainingSetup, dataset_record, initial_model, source_reference
from . import Task

# The scales offered by training, evaluation and the CLI (the network itself takes any power of two).
SR_SCALES = (4, 8)
SR_LOSSES = ("feat", "pixel")
SR_DEGRADATIONS = ("clean", "real")  # bicubic (+ blur_sigma), or Real-ESRGAN's high-order model
MIN_LR_PATCH = 8  # LR side of a training patch: the 9x9 first layer needs context around it


@dataclass
class SRConfig(RunConfig):
    """``fastpercept train sr``: l_feat (``content_weight`` x feature reconstruction at
    ``content_layer``, + TV; the paper) or l_pixel (the per-pixel baseline)."""

    scale: int = 4
    loss: str = "feat"
    patch_size: int = 288
    blur_sigma: float = 1.0  # clean degradation only
    degradation: str = "clean"
    jpeg_only_prob: float = DegradationConfig.jpeg_only_prob  # real degradation only
    content_layer: str = ObjectiveWeights.content_layer
    content_weight: float = ObjectiveWeights.content_weight
    tv_weight: float = ObjectiveWeights.tv_weight
    # With --loss feat: a per-pixel term added to l_feat. l_feat at relu2_2 barely sees a shift of
    # the whole image's levels (measured: x4 fine-tuned on real-photo degradations with l_feat alone
    # lifted Set5's blacks by ~13 levels and grew a grid at the output's pixel pitch by 1,500 steps).
    pixel_weight: float = 0.0
    upsample: str = SRNetConfig.upsample  # the architecture's defaults live in SRNetConfig
    norm: str = SRNetConfig.norm
    skip: str = SRNetConfig.skip
    # The 9x9 last layer sums 5,184 inputs into each pixel: at Adam's 1e-3 one step moves the
    # output by whole intensity levels and the bicubic-skip network thrashes around bicubic
    # (measured: +0.00 dB PSNR after 1,000 steps at 1e-3 and 300 at 3e-4; +0.24 dB after 300 at 1e-4).
    lr: float = 1e-4

    def validate(self) -> None:
        super().validate()
        if self.loss not in SR_LOSSES:
            raise UserError(f"--loss must be feat or pixel, not {self.loss!r}")
        if self.degradation not in SR_DEGRADATIONS:
            raise UserError(f"--degradation must be clean or real, not {self.degradation!r}")
        if self.scale not in SR_SCALES:
            raise UserError(f"--scale must be one of {', '.join(map(str, SR_SCALES))}, not {self.scale}")
        if self.patch_size % self.scale:
            raise UserError(f"--patch-size {self.patch_size} is not a multiple of the scale {self.scale}")
        if self.patch_size < MIN_LR_PATCH * self.scale:
            raise UserError(f"--patch-size must be at least {MIN_LR_PATCH * self.scale} at x{self.scale} "
                            f"(LR patches of {MIN_LR_PATCH} px or more), not {self.patch_size}")
        for name in ("content_weight", "tv_weight", "blur_sigma", "pixel_weight"):
            check_weight(name, getattr(self, name))
        if not 0 <= self.jpeg_only_prob <= 1:
            raise UserError(f"--jpeg-only-prob must be in [0, 1], not {self.jpeg_only_prob}")
        if self.jpeg_only_prob and self.degradation != "real":
            raise UserError("--jpeg-only-prob is a share of the real degradation's pairs: add --degradation real")
        check_layers([self.content_layer])


def setup(cfg: SRConfig) -> TrainingSetup:
    """One SR training run: :class:`SRNet` under l_feat (+ TV) or l_pixel."""
    try:
        files, skipped = scan_image_files(cfg.data, min_side=cfg.patch_size)
    except UserError as e:
        raise UserError(f"{e} (lower --patch-size)") from None
    if skipped:
        logging.getLogger(__name__).warning("%s: skipped %d image(s) unreadable or smaller than the %d px patch",
                                            cfg.data, skipped, cfg.patch_size)
    torch.manual_seed(cfg.seed)
    model, init_card = initial_model(cfg, "sr", lambda: SRNet(SRNetConfig(scale=cfg.scale, upsample=cfg.upsample,
                                                                          norm=cfg.norm, skip=cfg.skip)))
    net_config = model.config
    if net_config.scale != cfg.scale:
        raise UserError(f"{cfg.init_from}: an x{net_config.scale} model, not x{cfg.scale}")
    real = DegradationConfig(jpeg_only_prob=cfg.jpeg_only_prob) if cfg.degradation == "real" else None
    dataset = dataset_record(cfg.data, files)
    card: dict[str, Any] = {
        "task": "sr", "arch": "srnet", **net_config.to_dict(), "loss": cfg.loss, "patch_size": cfg.patch_size,
        # blur_sigma is part of the clean degradation only; the real one names its whole config.
        **({"blur_sigma": cfg.blur_sigma, "degradation": "clean"} if real is None else
           {"degradation": {"name": PIPELINE_NAME, "config": real.to_dict()}}),
        "dataset": dataset, **source_reference(cfg.init_from),
    }
    frozen: list[nn.Module] = []
    if cfg.loss == "feat":
        from ..vgg import VGG16Features
        from ..weights import resolve_vgg16

        weights = resolve_vgg16(cfg.vgg_weights)
        vgg = VGG16Features(weights)
        frozen.append(vgg)
        layer = cfg.content_layer
        # The card calls the l_feat term's weight ``content_weight``, as the style objective does.
        card.update(content_layer=layer, content_weight=cfg.content_weight, tv_weight=cfg.tv_weight,
                    vgg_sha256=weights.sha256, loss_terms=["feat", "tv"] + (["pixel"] if cfg.pixel_weight else []),
                    **({"pixel_weight": cfg.pixel_weight} if cfg.pixel_weight else {}))

        def loss(net: nn.Module, pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = pair
            with torch.no_grad():
                target = vgg(hr, (layer,))[layer]
            sr = net(lr)
            feat = feature_reconstruction_loss(vgg(sr, (layer,))[layer], target)
            tv = total_variation_loss(sr)
            terms = {"feat": feat, "tv": tv, "total": cfg.content_weight * feat + cfg.tv_weight * tv}
            if cfg.pixel_weight:
                terms["pixel"] = pixel_loss(sr, hr)
                terms["total"] = terms["total"] + cfg.pixel_weight * terms["pixel"]
            return terms
    else:
        card["loss_terms"] = ["pixel"]

        def loss(net: nn.Module, pair: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            lr, hr = pair
            pixel = pixel_loss(net(lr), hr)
            return {"pixel": pixel, "total": pixel}

    samples = RandomCrops(files, cfg.patch_size, cfg.seed,
                          transform=SRPair(cfg.patch_size, cfg.scale, cfg.blur_sigma, real))
    identity = {"data_files": dataset["sha256"]}
    if real is not None:  # --resume refuses checkpoints made under other degradation defaults
        identity["degradation"] = hashlib.sha256(json.dumps(real.to_dict(), sort_keys=True).encode()).hexdigest()
    return TrainingSetup(model=model, samples=samples, loss=loss, card=card, frozen=frozen, init_card=init_card,
                         identity=identity)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``train sr``'s own flags."""
    from ...apps.cli_args import VGG_HELP, positive

    p.add_argument("--scale", type=int, required=True, choices=list(SR_SCALES))
    p.add_argument("--loss", required=True, choices=list(SR_LOSSES),
                   help="feature reconstruction at the content layer (the paper's) or per-pixel (its baseline)")
    p.add_argument("--patch-size", type=positive, default=None,
                   help=f"HR patch side (px), a multiple of the scale (default {SRConfig.patch_size})")
    p.add_argument("--blur-sigma", type=float, default=None,
                   help=f"Gaussian blur before downscaling, clean degradation (0: none; default {SRConfig.blur_sigma})")
    p.add_argument("--degradation", default=None, choices=list(SR_DEGRADATIONS),
                   help="how LR inputs are made from HR patches: bicubic after --blur-sigma (clean, default) or "
                        "Real-ESRGAN's blur, resize, noise and JPEG in two rounds (real: for real photos)")
    p.add_argument("--jpeg-only-prob", type=float, default=None, metavar="P",
                   help="--degradation real: make this share of the pairs by bicubic and one JPEG of quality "
                        "30..95 instead (lightly compressed web photos; default 0: Real-ESRGAN's pipeline alone)")
    p.add_argument("--content-weight", type=float, default=None, help=f"default {SRConfig.content_weight}")
    p.add_argument("--tv-weight", type=float, default=None, help=f"default {SRConfig.tv_weight}")
    p.add_argument("--pixel-weight", type=float, default=None,
                   help="--loss feat: add this times the per-pixel loss (MSE in [0, 1]) to l_feat (default 0)")
    p.add_argument("--content-layer", default=None, help=f"default {SRConfig.content_layer}")
    # Architecture flags default to None: the network config's default applies (SRNetConfig).
    p.add_argument("--upsample", default=None, choices=["nearest", "deconv"],
                   help="nearest + conv (default: no grain) or fractionally strided conv (the paper)")
    p.add_argument("--norm", default=None, choices=["batch", "instance"], help=f"default: {SRConfig.norm} (the paper)")
    p.add_argument("--skip", default=None, choices=["bicubic", "none"],
                   help="predict a correction to bicubic (default) or the whole image (the paper)")
    p.add_argument("--vgg-weights", default=None, help=VGG_HELP)


TASK = Task(
    name="sr",
    summary="train a super-resolution network on a folder of photos",
    train_config=SRConfig,
    setup=setup,
    add_arguments=add_arguments,
    stage_keys=("loss", "patch_size", "blur_sigma", "degradation", "content_weight", "tv_weight", "pixel_weight"),
)
