"""Model files: fp16 safetensors with a JSON card, and the registry of shipped models.

A model file holds the network's tensors and, under the metadata key ``fastpercept``, its card
(SPEC, "Model files"): what it is (``task``, ``arch``, ``norm``, ...) and how it was trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import UserError

CARD_KEY = "fastpercept"
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


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's name (``mosaic``, ``x4``) or a path to a ``.safetensors`` file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == MODEL_SUFFIX or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"{candidate}: model file not found")
        return candidate
    shipped = shipped_dir() / f"{name_or_path}{MODEL_SUFFIX}"
    if shipped.is_file():
        return shipped
    names = ", ".join(m.stem for m in sorted(shipped_dir().glob(f"*{MODEL_SUFFIX}"))) or "none"
    raise UserError(f"{name_or_path}: no such model (shipped: {names}; or pass a .safetensors file)")


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a model file; :class:`UserError` if it is not one of ours."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise UserError(f"{path}: not a safetensors model file ({e})") from None
    if CARD_KEY not in meta:
        raise UserError(f"{path}: no fastpercept card in the file's metadata")
    try:
        return json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: unreadable model card ({e})") from None


def save_model(model: nn.Module, path: str | os.PathLike, card: dict[str, Any],
               dtype: torch.dtype = torch.float16) -> Path:
    """Write ``model``'s state dict in ``dtype`` with ``card`` as metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={CARD_KEY: json.dumps(card, sort_keys=True)})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"{path}: cannot write model ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# Values for architecture keys that model files written before the key existed must get
# (the defaults changed since): such files hold the paper's SR network.
_LEGACY_ARCH = {"sr": {"upsample": "deconv", "skip": "none"}}


def build_model(card: dict[str, Any]) -> nn.Module:
    """An untrained network with the architecture the card describes.

    The card holds the network config's fields (``**config.to_dict()`` at training time); any
    field it lacks takes its pre-field value from ``_LEGACY_ARCH``, else the config's default.
    """
    task = card.get("task")
    if task == "style":
        from .nets.style import StyleNet as net, StyleNetConfig as config
    elif task == "sr":
        from .nets.sr import SRNet as net, SRNetConfig as config
    else:
        raise UserError(f"unknown model task {task!r} in card")
    if task == "sr" and "scale" not in card:
        raise UserError("SR model card has no 'scale'")
    values = {**_LEGACY_ARCH.get(task, {}), **card}
    return net(config(**{f.name: values[f.name] for f in dataclasses.fields(config) if f.name in values}))


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a shipped model by name or a model file; the card is on ``.card``. Eval mode, fp32."""
    path = resolve_model_path(name_or_path)
    card = read_card(path)
    model = build_model(card)
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k).to(torch.float32) for k in f.keys()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match the card's architecture ({str(e).splitlines()[0]})") from None
    model.card = card
    model.name = path.stem
    return model.eval().to(device)
