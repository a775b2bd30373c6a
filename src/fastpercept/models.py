"""Model files: fp16 safetensors with a JSON card, and the models shipped in the package.

A model file holds the network's tensors and, under the metadata key ``fastpercept``, its card:
a JSON object saying what the network is (``task``, which names a :mod:`fastpercept.tasks`
entry, and that task's architecture keys such as ``arch``, ``norm``, ``scale``) and how it was
trained (objective weights and layers, data, iterations, seed, wall time, device, final losses,
the VGG-16 weights' hash, and ``stages`` when it was fine-tuned from another model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import safe_open

from .atomic import atomic_write
from .errors import UserError
from .tasks import get_task

if TYPE_CHECKING:  # PyTorch is imported by what builds networks; finding and reading model files needs none
    import torch
    from torch import nn

    from .nets.blocks import TransformNet

CARD_KEY = "fastpercept"
DEFAULT_STYLE = "mosaic"  # what `stylize` uses when no style is named
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


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's name (``mosaic``, ``x4``) or a path to a ``.safetensors`` file (a
    ``@style`` choice after it is ignored here: see :func:`load_model`)."""
    candidate = Path(split_style_choice(name_or_path)[0]).expanduser()
    if candidate.suffix == MODEL_SUFFIX or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"{candidate}: model file not found")
        return candidate
    shipped = shipped_dir() / f"{candidate}{MODEL_SUFFIX}"
    if shipped.is_file():
        return shipped
    names = ", ".join(m.stem for m in sorted(shipped_dir().glob(f"*{MODEL_SUFFIX}"))) or "none"
    raise UserError(f"{candidate}: no such model (shipped: {names}; or pass a .safetensors file)")


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
    """An untrained network with the architecture the card describes (its task's ``build_net``)."""
    return get_task(card.get("task")).build_net(card)


@dataclass
class LoadedModel:
    """A trained network with its card: what :func:`load_model` returns.

    ``model(x)`` runs the network: (N, 3, H, W) in [0, 1] -> (N, 3, scale H, scale W), with no
    autograd graph. ``net`` is the :class:`~fastpercept.nets.blocks.TransformNet` itself (fp32,
    eval mode), ``card`` the model file's card and ``name`` its file name without suffix.
    """

    net: TransformNet
    card: dict[str, Any]
    name: str

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def scale(self) -> int:
        """Output size / input size (1 for style transfer)."""
        return self.net.scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return self.net(x)

    def to(self, device: str | torch.device) -> "LoadedModel":
        self.net.to(device)
        return self


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a shipped model by name or a model file: the network (eval mode, fp32) and its card.

    A multi-style model needs a style choice, ``MODEL@style`` or a blend ``MODEL@a:0.7,b:0.3``:
    the result is then a plain style model of that style or blend.
    """
    import torch

    choice = split_style_choice(name_or_path)[1]
    path = resolve_model_path(name_or_path)
    card = read_card(path)
    try:
        net = build_model(card)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k).to(torch.float32) for k in f.keys()}
    expected = net.state_dict()
    problems = [f"{k} missing" for k in expected if k not in state]
    problems += [f"{k} unexpected" for k in state if k not in expected]
    problems += [f"{k} is {tuple(state[k].shape)}, the card's network has {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{path}: weights do not match the card's architecture: {'; '.join(problems[:3])}{more}")
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise UserError(f"{path}: {len(broken)} weight tensor(s) hold NaN or infinity ({broken[0]}, ...): "
                        "a diverged or damaged model")
    net.load_state_dict(state)
    if card.get("task") == "multistyle" or choice is not None:
        return _chosen_style(net.eval(), card, path, choice).to(device)
    return LoadedModel(net.eval().to(device), card, path.stem)


def _chosen_style(net: TransformNet, card: dict[str, Any], path: Path, choice: str | None) -> LoadedModel:
    from .tasks.multistyle import bake, parse_blend

    if card.get("task") != "multistyle":
        raise UserError(f"{path}: {STYLE_CHOICE}{choice}: only a multi-style model holds several styles")
    names = list(card.get("style_names", []))
    if choice is None:
        raise UserError(f"{path}: a multi-style model ({', '.join(names)}): choose a style as {path.name}"
                        f"{STYLE_CHOICE}{names[0]} or a blend as {path.name}{STYLE_CHOICE}{names[0]}:0.5,...")
    return bake(net, card, parse_blend(choice, names))
