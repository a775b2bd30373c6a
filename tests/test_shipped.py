"""The models shipped inside the package: present, loadable, described by a complete card."""

import numpy as np
import pytest
import torch

import fastpercept
from fastpercept.api import DEFAULT_STYLE
from fastpercept.models import load_model, shipped_models

CARD_KEYS = {"task", "iterations", "batch_size", "lr", "seed", "train_seconds", "device",
             "precision", "dataset", "final_losses", "created", "version"}


def test_the_default_style_is_shipped():
    names = {m["name"]: m["task"] for m in shipped_models()}
    assert names.get(DEFAULT_STYLE) == "style"


@pytest.mark.parametrize("entry", shipped_models(), ids=lambda m: m["name"])
def test_shipped_model_loads_runs_and_has_a_full_card(entry):
    card = entry["card"]
    missing = CARD_KEYS - set(card)
    assert not missing, missing
    if card["task"] == "style":
        assert {"arch", "norm", "content_weight", "style_weight", "tv_weight", "style_image", "style_layers",
                "vgg_sha256"} <= set(card)
    elif card["task"] == "anystyle":  # decoders of VGG-16's features, the deepest trained with paintings
        assert {"deepest", "transform", "cascade", "image_size", "loss", "vgg_sha256"} <= set(card)
        if card["loss"] == "objective":
            assert {"paintings", "style_weight", "decoders_from"} <= set(card)
        y = fastpercept.stylize(torch.rand(1, 3, 19, 26), entry["name"], style_image=np.zeros((8, 8, 3), np.uint8))
        assert y.shape == (1, 3, 19, 26)
        return
    else:
        assert {"arch", "norm", "scale", "loss", "patch_size"} <= set(card)
    model = load_model(entry["name"])
    scale = int(card.get("scale", 1))
    with torch.no_grad():
        y = model(torch.rand(1, 3, 19, 26))
    assert y.shape == (1, 3, 19 * scale, 26 * scale)
    assert all(t.dtype == torch.float32 for t in model.net.state_dict().values() if t.is_floating_point())
