"""Model files: fp16 safetensors with a JSON card, and the models shipped in the package.

A model file holds the network's tensors and, under the metadata key ``fastpercept``, its card:
a JSON object saying what the network is (``task``, which names a
:data:`fastpercept.architectures.ARCHITECTURES` entry, and its architecture keys such as ``arch``,
``norm``, ``scale``) and how it was
trained (objective weights and layers, data, iterations, seed, wall time, device, final losses,
the VGG-16 weights' hash, and ``stages`` when it was fine-tuned from another model).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import safe_open

from .architectures import arch_config
from .atomic import atomic_write
from .errors import UserError

if TYPE_CHECKING:  # PyTorch is imported by what builds networks; finding and reading model files needs none
    import torch
    from torch import nn

    from .nets.blocks import TransformNet

CARD_KEY = "fastpercept"
DEFAULT_STYLE = "mosaic"  # what `stylize` uses when no style is named
DEFAULT_ANYSTYLE = "anystyle"  # what `stylize --style-image` uses when no model is named
MODEL_SUFFIX = ".safetensors"


def shipped_dir() -> Path:
    """The folder inside the package that holds the shipped models."""
    return Path(str(resources.files("fastpercept") / "assets" / "models"))


def shipped_models() -> list[dict[str, Any]]:
    """``[{"name", "task", "file", "card"}]`` for every model shipped with the package."""
    out = []
    for path in sorted(shipped_dir().glob(f"*{MODEL_SUFFIX}")):
        card = read_card(path)
        out.append({"name": path.stem, "task": card.get("task"), "file": str(path), "card": card})
    return out


# ``MODEL@style`` or ``MODEL@a:0.7,b:0.3``: one style, or a blend, of a multi-style model.
STYLE_CHOICE = "@"


def split_style_choice(name_or_path: str | os.PathLike) -> tuple[str, str | None]:
    """``("MODEL", "style choice")`` of ``MODEL@choice``; ``(name, None)`` without one."""
    text = str(name_or_path)
    if STYLE_CHOICE in text and not Path(text).expanduser().exists():
        model, _, choice = text.rpartition(STYLE_CHOICE)
        return model, choice
    return text, None


def user_models_dir() -> Path:
    """Where a user's own models are found by name: ``$FASTPERCEPT_MODELS`` or ``<cache>/models``."""
    from .cache import cache_dir

    return Path(os.environ.get("FASTPERCEPT_MODELS", cache_dir() / "models"))


def _is_path(text: str) -> bool:
    """Whether a model argument is a path (a suffix, a folder part, ``~`` or ``.``) and not a bare name."""
    return text.endswith(MODEL_SUFFIX) or "/" in text or os.sep in text or text.startswith(("~", "."))


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The model file of a name or path (a ``@style`` choice after it is ignored here: see
    :func:`load_model`).

    The rule: a bare name (``mosaic``, ``x4``) is a shipped model, else a user model of that
    name in :func:`user_models_dir` — never a file or folder of that name in the working
    directory; a path (it ends in ``.safetensors`` or holds a ``/``) is that file.
    """
    text = split_style_choice(name_or_path)[0]
    if isinstance(name_or_path, os.PathLike) or _is_path(text):
        candidate = Path(text).expanduser()
        if candidate.is_dir():
            raise UserError(f"{candidate}: is a folder, not a model file")
        if not candidate.is_file():
            raise UserError(f"{candidate}: model file not found")
        return candidate
    for folder in (shipped_dir(), user_models_dir()):
        found = folder / f"{text}{MODEL_SUFFIX}"
        if found.is_file():
            return found
    names = ", ".join(m.stem for m in sorted(shipped_dir().glob(f"*{MODEL_SUFFIX}"))) or "none"
    raise UserError(f"{text}: no such model (shipped: {names}; or give a .safetensors file)")


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a model file; :class:`UserError` if it is not one of ours."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise UserError(f"{path}: not a safetensors model file ({e})") from None
    if CARD_KEY not in meta:
        raise UserError(f"{path}: no fastpercept card in the file's metadata")
    try:
        card = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: unreadable model card ({e})") from None
    if not isinstance(card, dict):
        raise UserError(f"{path}: the model card is a JSON {type(card).__name__}, not an object")
    return card


def save_model(model: nn.Module, path: str | os.PathLike, card: dict[str, Any],
               dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s state dict in ``dtype`` (default float16) with ``card`` as metadata, atomically."""
    import torch
    from safetensors.torch import save_file

    dtype = dtype or torch.float16
    path = Path(path)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    try:
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp), metadata={CARD_KEY: json.dumps(card, sort_keys=True)})
    except OSError as e:
        raise UserError(f"{path}: cannot write model ({e.strerror or e})") from None
    return path


def build_model(card: dict[str, Any]) -> TransformNet:
    """An untrained PyTorch network with the architecture the card describes (needs ``[train]``)."""
    require_torch("building a PyTorch network")
    from .nets import build_net

    return build_net(arch_config(card))


def require_torch(what: str) -> None:
    """:class:`UserError` naming the ``[train]`` extra when PyTorch is not installed."""
    from .runtime.backends import torch_available

    if not torch_available():
        raise UserError(f"{what} needs PyTorch, which is not installed: pip install 'fastpercept[train]'")


class LoadedModel:
    """A trained model: its card and weights, runnable without PyTorch.

    ``card`` is the model file's card, ``name`` its file name without suffix (or the style of a
    multi-style model), ``weights`` the network's tensors by state-dict name (float32 NumPy
    arrays; a multi-style choice is baked in). ``model(x)`` runs the network on the default
    backend: (N, 3, H, W) float32 array in [0, 1] -> (N, 3, scale H, scale W), unclamped (a
    PyTorch tensor in gives a tensor out). :meth:`runner` gives the runner of any backend;
    :attr:`net` the PyTorch network (``fastpercept[train]``), for training and evaluation.

    Built from a model file by :func:`load_model`, or from a PyTorch network by training
    (``LoadedModel(net, card, name)``; its weights are then read from the network).
    """

    def __init__(self, weights_or_net: Mapping[str, np.ndarray] | nn.Module, card: dict[str, Any], name: str,
                 device: str = "cpu") -> None:
        self.card, self.name, self.device = card, name, device
        if isinstance(weights_or_net, Mapping):
            self._weights: dict[str, np.ndarray] | None = dict(weights_or_net)
            self._net = None
        else:
            self._weights, self._net = None, weights_or_net
        self._runners: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def config(self):
        """The architecture config of the card (:func:`fastpercept.architectures.arch_config`)."""
        return arch_config(self.card)

    @property
    def scale(self) -> int:
        """Output size / input size (1 for style transfer)."""
        return int(self.config.scale)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        if self._weights is None:
            self._weights = {k: v.detach().float().cpu().numpy() for k, v in self._net.state_dict().items()
                             if v.is_floating_point()}
        return self._weights

    def graph(self, kind: str = "plain", metadata: Mapping[str, str] | None = None) -> bytes:
        """The serialized ONNX graph of ``kind`` (:data:`fastpercept.graphs.GRAPH_KINDS`)."""
        from .graphs import build_graph

        return build_graph(self.card, self.weights, kind, metadata)

    @property
    def net(self) -> TransformNet:
        """The PyTorch network (fp32, eval mode, on :attr:`device`), built on first use."""
        if self._net is None:
            import torch

            net = build_model(self.card)
            # Not strict: batch norm's integer step counters are not among the (float) weights; every
            # other tensor was checked against the card's network when the graph was built.
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()}, strict=False)
            self._net = net.eval().to(self.device)
        return self._net

    def net_on(self, device: str) -> TransformNet:
        """:attr:`net` moved to ``device`` (the model's device becomes it)."""
        return self.to(device).net

    def to(self, device) -> "LoadedModel":
        self.device = str(device)
        if self._net is not None:
            self._net.to(device)
        return self

    def runner(self, backend: str = "auto", device: str | None = None, precision: str = "auto"):
        """The model's :class:`~fastpercept.runtime.backends.Runner` on ``backend`` (made once per
        backend, device and precision as resolved — ``auto`` and ``openvino`` on the same CPU share
        one compiled graph; safe to share between threads). An ``anystyle`` model gives its
        :class:`~fastpercept.runtime.anystyle.AnyStyleParts`, whose ``with_painting`` is the runner."""
        from .runtime.backends import BACKENDS, resolve_runtime

        key = resolve_runtime(backend, device or self.device, precision)
        with self._lock:
            if key not in self._runners:
                if self.task == "anystyle":  # no runner of its own until a painting is chosen
                    from .runtime.anystyle import AnyStyleParts

                    self._runners[key] = AnyStyleParts(self, *key)
                else:
                    self._runners[key] = BACKENDS[key[0]].runner(self, key[1], key[2])
            return self._runners[key]

    def __call__(self, x):
        runner = self.runner("torch" if type(x).__module__.startswith("torch") else "auto")
        return runner(x)


def _float32(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items() if np.issubdtype(v.dtype, np.floating)}


def load_model(model: str | os.PathLike | None = None, device: str = "cpu", *,
               name_or_path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a shipped model by name or a model file: its card and weights (no PyTorch needed).

    A multi-style model needs a style choice, ``MODEL@style`` or a blend ``MODEL@a:0.7,b:0.3``:
    the result is then a plain style model of that style or blend. ``name_or_path`` is the
    former name of ``model``. ``device`` is where :attr:`LoadedModel.net` and the default
    runner go (``auto``: CUDA where PyTorch sees one).

    Raises :class:`UserError` naming the file for anything that is not a model we can run: no
    card, an unknown architecture, weights that do not fit it or hold NaN.
    """
    model = model if model is not None else name_or_path
    if model is None:
        raise UserError("load_model needs a model name or file")
    from .runtime.backends import resolve_device

    device = resolve_device(str(device))
    choice = split_style_choice(model)[1]
    path = resolve_model_path(model)
    card = read_card(path)
    try:
        arch_config(card)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        with safe_open(str(path), framework="numpy") as f:
            weights = _float32({k: f.get_tensor(k) for k in f.keys()})
    except Exception as e:  # noqa: BLE001 - a damaged tensor section reads as many error types
        raise UserError(f"{path}: unreadable weights ({e})") from None
    broken = [k for k, v in weights.items() if not np.isfinite(v).all()]
    if broken:
        raise UserError(f"{path}: {len(broken)} weight tensor(s) hold NaN or infinity ({broken[0]}, ...): "
                        "a diverged or damaged model")
    if card.get("task") == "multistyle" or choice is not None:
        weights, card, name = _chosen_style(weights, card, path, choice)
    else:
        name = path.stem
    loaded = LoadedModel(weights, card, name, device)
    _check_weights(loaded, path)
    return loaded


def _check_weights(model: LoadedModel, path: Path) -> None:
    """:class:`UserError` when the weights do not make the card's network (a tensor missing,
    unexpected or of the wrong shape; :func:`fastpercept.graphs.check_weights`)."""
    from .graphs import WeightsMismatch, check_weights

    try:
        check_weights(model.card, model.weights)
    except WeightsMismatch as e:
        raise UserError(f"{path}: weights do not match the card's architecture: {e}") from None


DENOISE_SUFFIX = "-real"  # x4 and x4-real: the model for clean inputs and its twin for real photos
# upscale's denoise when a model's twin is installed and none is asked for: what measured best on
# real photos. Set14 as JPEG q60 and fully degraded (seed 0), mean LPIPS of the two over denoise
# 0 / 0.25 / 0.5 / 0.75 / 1 for x4 + x4-real: 0.539 / 0.546 / 0.541 / 0.526 / 0.511, every one
# within 0.3 dB of bicubic's PSNR-Y or above it (docs/performance.md). 1 is x4-real itself.
DEFAULT_DENOISE = 1.0


def interpolate_models(a: LoadedModel, b: LoadedModel, t: float) -> LoadedModel:
    """The network whose every weight is ``(1 - t) * a + t * b`` (Real-ESRGAN's ``-dn``): two
    trainings of one architecture, ``t`` in [0, 1] (0 gives ``a``, 1 gives ``b``).

    Raises :class:`UserError` when the two do not share an architecture.
    """
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise UserError(f"denoise must be in [0, 1], not {t}")
    if arch_config(a.card) != arch_config(b.card) or a.weights.keys() != b.weights.keys():
        raise UserError(f"{a.name} and {b.name} are different networks; only two trainings of one architecture "
                        "can be interpolated")
    weights = {k: ((1 - t) * v + t * b.weights[k]).astype(np.float32) for k, v in a.weights.items()}
    card = {**a.card, "interpolated": {"from": a.name, "to": b.name, "t": t}}
    return LoadedModel(weights, card, f"{a.name}+{b.name}@{t:g}", a.device)


def denoise_pair(model: str | os.PathLike) -> tuple[Path, Path] | None:
    """``(NAME, NAME-real)``: the model files of ``model``'s pair when both lie side by side (shipped,
    a user's folder, a model file's folder), ``model`` naming either; None otherwise."""
    path = resolve_model_path(model)
    stem = path.stem.removesuffix(DENOISE_SUFFIX)
    pair = path.with_name(stem + MODEL_SUFFIX), path.with_name(stem + DENOISE_SUFFIX + MODEL_SUFFIX)
    return pair if all(p.is_file() for p in pair) else None


def with_denoise(model: str | os.PathLike, denoise: float | None = None) -> LoadedModel:
    """A model and its real-photo twin interpolated by ``denoise`` (0: the model, 1: the twin).

    ``model`` names either of the pair ``NAME`` / ``NAME-real`` (x4 and x4-real); the other one is
    the file of that name beside it (shipped models, a user's folder, or a model file's folder).
    ``denoise=None``: :data:`DEFAULT_DENOISE` when ``model`` is the first of an installed pair,
    otherwise the model as named; ``denoise=0``: the model as named, twin or not.
    """
    path = resolve_model_path(model)
    pair = denoise_pair(path)
    if denoise is None:
        denoise = DEFAULT_DENOISE if pair is not None and path == pair[0] else 0
    if denoise == 0:
        return load_model(path)
    if pair is None:
        stem = path.stem.removesuffix(DENOISE_SUFFIX)
        raise UserError(f"{stem}: denoise needs the models {stem} and {stem}{DENOISE_SUFFIX} (trained on real-photo "
                        f"degradations) side by side; one of them is not installed")
    if denoise == 1:
        return load_model(pair[1])
    return interpolate_models(load_model(pair[0]), load_model(pair[1]), denoise)


def _chosen_style(weights: dict[str, np.ndarray], card: dict[str, Any], path: Path,
                  choice: str | None) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    if card.get("task") != "multistyle":
        raise UserError(f"{path}: {STYLE_CHOICE}{choice}: only a multi-style model holds several styles")
    names = list(card.get("style_names", []))
    if choice is None:
        raise UserError(f"{path}: a multi-style model ({', '.join(names)}): choose a style as {path.name}"
                        f"{STYLE_CHOICE}{names[0]} or a blend as {path.name}{STYLE_CHOICE}{names[0]}:0.5,...")
    return bake_style(weights, card, parse_blend(choice, names))


def parse_blend(text: str, names: list[str]) -> dict[str, float]:
    """``"starry_night_crop:0.7,the_scream:0.3"`` (or one name) -> ``{name: weight}`` over ``names``.

    Weights must be finite and >= 0 and are normalized to sum 1; a name without a weight counts 1.
    """
    blend: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        if name not in names:
            raise UserError(f"style {name!r} is not in this model (it holds {', '.join(names)})")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"style weight {weight!r} of {name} is not a number") from None
        if not (value >= 0 and value < float("inf")):
            raise UserError(f"style weight of {name} must be a number >= 0, not {weight}")
        blend[name] = blend.get(name, 0.0) + value
    total = sum(blend.values())
    if not blend or not 0 < total < float("inf"):
        raise UserError(f"choose a style of this model: {', '.join(names)} (or a blend like {names[0]}:0.5,...), "
                        "with weights that sum to a finite number above 0")
    return {k: v / total for k, v in blend.items()}


def bake_style(weights: Mapping[str, np.ndarray], card: Mapping[str, Any], blend: Mapping[str, float]
               ) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """One style or a blend (``{name: weight}``, weights summing to 1) of a multi-style model as a
    plain style model: ``(weights, card, label)``.

    Each conditional instance norm's per-style ``scale`` and ``shift`` (S, C) become the plain
    instance norm's ``weight`` and ``bias`` (C,): their sums weighted by the blend.
    """
    names = list(card["style_names"])
    unknown = [n for n in blend if n not in names]
    if unknown:
        raise UserError(f"style {unknown[0]!r} is not in this model (it holds {', '.join(names)})")
    w = np.array([blend.get(n, 0.0) for n in names], dtype=np.float64)
    baked = {}
    for key, value in weights.items():
        if key.endswith(".scale"):
            baked[key.removesuffix(".scale") + ".weight"] = (w @ value.astype(np.float64)).astype(np.float32)
        elif key.endswith(".shift"):
            baked[key.removesuffix(".shift") + ".bias"] = (w @ value.astype(np.float64)).astype(np.float32)
        else:
            baked[key] = value
    style_weights = card.get("style_weights") or [1.0] * len(names)
    images = card.get("style_images") or names
    label = ",".join(f"{n}:{v:g}" for n, v in blend.items()) if len(blend) > 1 else next(iter(blend))
    arch = {k: card[k] for k in ("arch", "norm", "upsample", "residual_blocks") if k in card}
    style_card = {
        **{k: v for k, v in card.items() if k not in ("style_names", "style_images", "style_weights", "styles",
                                                       "style_images_sha256", "stages")},
        **arch, "task": "style", "multistyle_source": label,
        "style_image": images[names.index(label)] if label in names else label,
        "style_weight": float(sum(b * sw for b, sw in zip(w, style_weights))),
    }
    return baked, style_card, label
