"""What a model file's network *is*: the architecture configs and how a card names them.

No PyTorch here: the PyTorch networks (:mod:`fastpercept.nets`) and the inference graphs
(:mod:`fastpercept.graphs`) are two builders of the same architecture, both driven by these
configs (a parity test keeps them equal). A card's ``task`` picks the entry of
:data:`ARCHITECTURES`; the config's fields are the card's architecture keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UserError


# Instance norm (Ulyanov et al.; affine) or batch norm (the paper); nearest x2 + 3x3 convolution
# (no checkerboard, Odena et al. 2016) or a fractionally strided 3x3 convolution (the paper).
NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "deconv")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be {' or '.join(map(repr, choices))}, not {value!r}")


@dataclass(frozen=True)
class StyleNetConfig:
    """Architecture of the style transfer network (Johnson et al. 2016, supplementary Table 1):
    c9s1-w, d2w, d4w, R4w x ``residual_blocks``, u2w, uw, c9s1-3.

    ``full`` is the paper's network (w = 32); ``half`` halves every width for real-time use.
    """

    arch: str = "full"
    norm: str = "instance"
    upsample: str = "nearest"
    residual_blocks: int = 5

    def __post_init__(self) -> None:
        self.width  # noqa: B018 - checks ``arch``
        _check_choice("norm", self.norm, NORMS)
        _check_choice("upsample", self.upsample, UPSAMPLES)

    @property
    def width(self) -> int:
        if self.arch == "full":
            return 32
        if self.arch == "half":
            return 16
        raise ValueError(f"arch must be 'full' or 'half', not {self.arch!r}")

    scale = 1
    stride = 4  # two stride-2 convolutions

    @property
    def receptive_radius(self) -> int:
        # 9x9 (4) + two 3x3 stride 2 (1 + 2) + 2 x 3x3 per residual block at stride 4 (8 each)
        # + two upsampling 3x3 (2 + 1) + 9x9 (4): 54 px with the paper's 5 blocks.
        return 14 + 8 * self.residual_blocks

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MultiStyleNetConfig(StyleNetConfig):
    """A :class:`StyleNetConfig` (instance norm only) and the number of styles it holds."""

    styles: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm != "instance":
            raise ValueError(f"a multi-style network conditions instance norm; norm must be 'instance', "
                             f"not {self.norm!r}")
        if self.styles < 1:
            raise ValueError(f"styles must be at least 1, not {self.styles}")


@dataclass(frozen=True)
class SRNetConfig:
    """Architecture of the super-resolution network: c9s1-64, R64 x4, log2(scale) x2 upsampling
    stages, c9s1-3; ``scale`` 4 or 8 (any power of two works)."""

    scale: int = 4
    # nearest + conv: at x4 under l_feat the paper's deconv leaves a colored grain at the
    # output's pixel pitch; nearest reached the same Set5 LPIPS (0.181) in a third of the steps.
    upsample: str = "nearest"
    norm: str = "batch"
    channels: int = 64
    residual_blocks: int = 4
    skip: str = "bicubic"

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, not {self.scale}")
        _check_choice("skip", self.skip, ("bicubic", "none"))
        _check_choice("norm", self.norm, NORMS)
        _check_choice("upsample", self.upsample, UPSAMPLES)

    stride = 1

    @property
    def receptive_radius(self) -> int:
        # In input pixels: 9x9 head (4) + 2 x 3x3 per residual block (2 each) + the upsampling
        # convolutions and the 9x9 tail at higher resolution (under 2 more): 14 with 4 blocks.
        return 6 + 2 * self.residual_blocks

    def to_dict(self) -> dict:
        return asdict(self)


# VGG-16's first relu of each block: name -> (channels, 2x2 max-pools before it). The feature
# levels of universal style transfer.
WCT_LEVELS: dict[str, tuple[int, int]] = {"relu1_1": (64, 0), "relu2_1": (128, 1), "relu3_1": (256, 2),
                                          "relu4_1": (512, 3)}


# torchvision's vgg16().features: channels of each convolution, "M" a 2x2 max-pool (the loss
# network's layout, and the encoder of WCTConfig); ImageNet's normalization of its input.
VGG16_BLOCKS: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_prefix(level: str) -> list[int | str]:
    """The entries of :data:`VGG16_BLOCKS` up to the convolution of ``level`` (a ``relu{k}_1``)."""
    pools = WCT_LEVELS[level][1]
    seen = 0
    for i, v in enumerate(VGG16_BLOCKS):
        if v == "M":
            seen += 1
        elif seen == pools:
            return VGG16_BLOCKS[:i + 1]
    raise ValueError(level)


# The layers of a WCT network in ``nn.Sequential`` order (the position is the state-dict index):
# ("conv", in, out) a 3x3 convolution, ("relu",), ("pool",) a 2x2 max-pool, ("up",) nearest x2.
def wct_encoder_layers(level: str) -> list[tuple]:
    """VGG-16's ``features`` up to ``level``'s ReLU (convolutions zero-padded by 1, as VGG)."""
    layers: list[tuple] = []
    in_ch = 3
    for v in vgg_prefix(level):
        if v == "M":
            layers.append(("pool",))
        else:
            layers += [("conv", in_ch, int(v)), ("relu",)]
            in_ch = int(v)
    return layers


def wct_decoder_layers(level: str) -> list[tuple]:
    """The encoder to ``level`` mirrored: each convolution in -> out becomes out -> in
    (reflection-padded), followed by a ReLU unless it makes the RGB image; a pool becomes ("up",)."""
    layers: list[tuple] = []
    for layer in reversed(wct_encoder_layers(level)):
        if layer[0] == "pool":
            layers.append(("up",))
        elif layer[0] == "conv":
            layers.append(("conv", layer[2], layer[1]))
            if layer[1] != 3:
                layers.append(("relu",))
    return layers


ANYSTYLE_TRANSFORMS = ("wct", "adain")


def relu_index(level: str) -> int:
    """Index of ``level``'s ReLU in ``features``: relu1_1 1, relu3_1 11."""
    return len(wct_encoder_layers(level)) - 1


def wct_tensor_shapes(config: WCTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the network ``config`` describes, by state-dict name, and its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    parts = [("encoder.features", wct_encoder_layers(config.deepest))]
    parts += [(f"decoders.{level}.layers", wct_decoder_layers(level)) for level in config.levels]
    for prefix, layers in parts:
        # The decoder's convolutions are ConvLayers (padding, then the convolution at ".1").
        conv = "" if prefix.startswith("encoder") else ".1"
        for i, layer in enumerate(layers):
            if layer[0] == "conv":
                shapes[f"{prefix}.{i}{conv}.weight"] = (layer[2], layer[1], 3, 3)
                shapes[f"{prefix}.{i}{conv}.bias"] = (layer[2],)
    return shapes


@dataclass(frozen=True)
class WCTConfig:
    """Universal style transfer (Li et al. 2017, "Universal Style Transfer via Feature
    Transforms"): ImageNet VGG-16 up to each ``relu{k}_1`` as the encoder, one decoder per level
    trained only to invert it, and the whitening and colouring transform between them.

    ``deepest``: the deepest level; the cascade runs from it down to ``relu1_1`` (coarse style
    first, fine texture last). A level holds the encoder to it and its mirror as the decoder.
    ``cascade`` False: ``deepest`` alone.

    ``transform``: what the photo's features take of the painting's at ``deepest``: ``"wct"``
    its mean and covariance (whitening and colouring), ``"adain"`` its per-channel mean and
    standard deviation (Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with
    Adaptive Instance Normalization"). The levels below always take WCT's: they bring the
    painting's colours and fine texture to what the deepest decoder painted.
    """

    deepest: str = "relu3_1"
    transform: str = "wct"
    cascade: bool = True

    def __post_init__(self) -> None:
        _check_choice("deepest", self.deepest, tuple(WCT_LEVELS))
        _check_choice("transform", self.transform, ANYSTYLE_TRANSFORMS)

    @property
    def levels(self) -> tuple[str, ...]:
        """The cascade's levels, deepest first."""
        if not self.cascade:
            return (self.deepest,)
        names = list(WCT_LEVELS)
        return tuple(reversed(names[:names.index(self.deepest) + 1]))

    def level_transform(self, level: str) -> str:
        """The transform at ``level`` (``transform`` at the deepest, ``"wct"`` below it)."""
        return self.transform if level == self.deepest else "wct"

    scale = 1
    norm = "none"  # no instance norm: no per-tile statistics to share

    @property
    def stride(self) -> int:
        return 2 ** WCT_LEVELS[self.deepest][1]

    @property
    def receptive_radius(self) -> int:
        # Each level's encoder and decoder: 3x3 convolutions (1 px each at their resolution);
        # relu3_1: 5 + 5 convolutions at 1, 2, 4 px -> about 20 px. Statistics are global anyway.
        return 10 * self.stride

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Architecture:
    """How the cards of one task describe their network.

    Attributes:
        config: the config dataclass; its fields are the card's architecture keys.
        required_keys: card keys a model file of this task must have.
        legacy_arch: values of architecture keys for model files written before the key
            existed (the defaults changed since).
        describe: a card as one line of ``fastpercept models``.
    """

    config: type
    describe: Callable[[Mapping[str, Any]], str]
    required_keys: tuple[str, ...] = ()
    legacy_arch: Mapping[str, Any] = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    "style": Architecture(StyleNetConfig, lambda card: str(card.get("style_image"))),
    "sr": Architecture(SRNetConfig, lambda card: f"x{card.get('scale')} {card.get('loss')} loss"
                       + (", real-photo degradations" if isinstance(card.get("degradation"), dict) else ""),
                       required_keys=("scale",),
                       # Model files written before these keys existed hold the paper's SR network.
                       legacy_arch={"upsample": "deconv", "skip": "none"}),
    "anystyle": Architecture(WCTConfig, lambda card: "any painting as the style ("
                             + {"adain": "AdaIN"}.get(card.get("transform"), "WCT") + f" at {card.get('deepest')}"
                             + (", WCT below" if card.get("cascade", True) and card.get("deepest") != "relu1_1"
                                else "") + ")"),
    "multistyle": Architecture(MultiStyleNetConfig, lambda card: ", ".join(card.get("style_names", [])),
                               required_keys=("styles", "style_names")),
}


def architecture(task: object) -> Architecture:
    """The :class:`Architecture` of a card's ``task``; :class:`UserError` for an unknown one."""
    if not isinstance(task, str) or task not in ARCHITECTURES:
        raise UserError(f"unknown model task {task!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[task]


def arch_config(card: Mapping[str, Any]):
    """The architecture config a card describes (a :class:`StyleNetConfig`, ...).

    Config fields the card lacks take their ``legacy_arch`` value, else the config's default.
    Raises :class:`UserError` for an unknown task, a missing required key or a value of the
    wrong type or range.
    """
    task = card.get("task")
    spec = architecture(task)
    missing = [k for k in spec.required_keys if k not in card]
    if missing:
        raise UserError(f"{task} model card has no {', '.join(map(repr, missing))}")
    values = {**spec.legacy_arch, **card}
    given = {}
    for f in dataclasses.fields(spec.config):
        if f.name not in values:
            continue
        value, kind = values[f.name], type(f.default)
        # JSON gives str, int, float, bool: a "4" or a 4.0 or a true where an int belongs is a bad card.
        if type(value) is not kind:
            raise UserError(f"model card: {f.name} must be {kind.__name__} like {f.default!r}, not {value!r}")
        given[f.name] = value
    try:
        config = spec.config(**given)
    except (ValueError, TypeError) as e:
        raise UserError(f"model card: {e}") from None
    if isinstance(config, MultiStyleNetConfig) and len(card.get("style_names", [])) != config.styles:
        raise UserError(f"model card: styles is {config.styles} but style_names holds "
                        f"{len(card.get('style_names', []))} names")
    return config
