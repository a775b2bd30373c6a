"""A VGG-16 weights file holding only the first convolutions (what the GPU campaign ships)."""

from __future__ import annotations

import pytest
import torch

from fastpercept.errors import UserError
from fastpercept.training.vgg import VGG16Features
from fastpercept.training.weights import resolve_vgg16, save_vgg16_prefix


@pytest.fixture(scope="module")
def full():
    return resolve_vgg16()


def test_prefix_file_keeps_the_true_hash_and_computes_the_same_features(full, tmp_path):
    path = tmp_path / "vgg16-relu4_3.safetensors"
    save_vgg16_prefix(full, path, convs=10, dtype=torch.bfloat16)
    prefix = resolve_vgg16(path)
    assert prefix.sha256 == full.sha256  # cards name the network the file was cut from
    assert "first 10 of 13 convolutions" in prefix.source and "bfloat16" in prefix.source
    assert sorted(prefix.state_dict) == sorted(k for k in full.state_dict if int(k.split(".")[1]) <= 21)
    for k, v in prefix.state_dict.items():
        assert v.dtype == torch.float32
        assert torch.equal(v, full.state_dict[k].to(torch.bfloat16).float())

    short = VGG16Features(prefix)
    assert len(short.features) == 23 and short.deepest == "relu4_3"
    # The same features as the whole network holding the same (bf16-rounded) weights.
    rounded = VGG16Features(full)
    rounded.load_state_dict(prefix.state_dict, strict=False)
    x = torch.rand(1, 3, 32, 32)
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    got, want = short(x, layers), rounded(x, layers)
    for name in layers:
        assert torch.equal(got[name], want[name])
    with pytest.raises(ValueError, match="relu5_1.*up to relu4_3"):
        short(x, ("relu2_2", "relu5_1"))


def test_full_file_unchanged_and_truncated_file_without_source_hash_refused(full, tmp_path):
    assert len(VGG16Features(full).features) == 30
    from safetensors.torch import save_file

    path = tmp_path / "cut.safetensors"
    save_file({k: v for k, v in full.state_dict.items() if k in ("features.0.weight", "features.0.bias")}, str(path))
    with pytest.raises(UserError, match="missing features.2.weight"):
        resolve_vgg16(path)
