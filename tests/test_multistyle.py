"""The multi-style network (conditional instance norm) and its training task."""

import numpy as np
import pytest
import torch
from PIL import Image

from fastpercept.training.data import RoundRobinLabels
from fastpercept.errors import UserError
from fastpercept.models import LoadedModel, bake_style, parse_blend, read_card
from fastpercept.nets.multistyle import MultiStyleNet, MultiStyleNetConfig
from fastpercept.training.tasks.multistyle import TASK, MultiStyleConfig


def _net(styles=3):
    torch.manual_seed(0)
    net = MultiStyleNet(MultiStyleNetConfig(arch="half", styles=styles)).eval()
    with torch.no_grad():  # styles that differ (a fresh network's are all identity)
        for name, p in net.named_parameters():
            if name.endswith((".scale", ".shift")):
                p.add_(torch.randn_like(p) * 0.3)
    return net


def _arrays(net):
    return {k: v.detach().float().numpy() for k, v in net.state_dict().items() if v.is_floating_point()}


def test_a_baked_style_net_computes_what_the_multi_style_pass_computes():
    net, x = _net(), torch.rand(1, 3, 37, 42)
    names = ["a", "b", "c"]
    card = {"task": "multistyle", **net.config.to_dict(), "style_names": names}
    with torch.no_grad():
        for weights in ([1.0, 0, 0], [0, 0, 1.0], [0.7, 0.3, 0]):
            blend = {n: w for n, w in zip(names, weights) if w}
            baked_weights, baked_card, label = bake_style(_arrays(net), card, blend)
            plain = LoadedModel(baked_weights, baked_card, label).net
            torch.testing.assert_close(plain(x), net(x, style=torch.tensor(weights)), atol=1e-5, rtol=0)
        # the styles really differ, so the comparison above could fail
        assert (net(x, style=torch.tensor([1.0, 0, 0])) - net(x, style=torch.tensor([0, 1.0, 0]))).abs().max() > 1e-2


def test_each_image_of_a_batch_takes_its_own_style():
    net, x = _net(), torch.rand(2, 3, 32, 32)
    style = torch.tensor([[0, 1.0, 0], [0, 0, 1.0]])
    with torch.no_grad():
        both = net(x, style=style)
        torch.testing.assert_close(both[1:], net(x[1:], style=style[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(both[:1], net(x[:1], style=style[0]), atol=1e-5, rtol=0)


def test_style_weights_of_the_wrong_shape_are_refused():
    net = _net()
    with pytest.raises(ValueError, match="style="):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="expected"):
        net(torch.rand(1, 3, 16, 16), style=torch.ones(2))


def test_round_robin_labels_give_a_batch_one_style_and_cycle_over_steps():
    labelled = RoundRobinLabels(list(range(100)), labels=3, batch_size=4)
    steps = [[int(labelled[t * 4 + k][1]) for k in range(4)] for t in range(7)]
    assert steps == [[t % 3] * 4 for t in range(7)]
    assert labelled[9][0] == 9


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ms")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(root / f"p{i}.png")
    styles = []
    for name, color in (("red", (230, 40, 20)), ("blue", (20, 40, 230))):
        arr = np.zeros((48, 48, 3), np.uint8)
        arr[::4] = color
        (root / "styles").mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / "styles" / f"{name}.png")
        styles.append(str(root / "styles" / f"{name}.png"))
    return root, styles


def _cfg(inputs, out, **kw):
    root, styles = inputs
    base = dict(data=str(root), output=str(out), style_images=tuple(styles), style_weights=(5.0, 50.0), iters=4,
                batch_size=2, image_size=32, style_size=48, checkpoint_every=2, log_every=1, seed=3,
                precision="fp32", device="cpu", arch="half")
    base.update(kw)
    return MultiStyleConfig(**base)


def test_training_learns_a_scale_and_shift_per_style_and_resumes_exactly(inputs, tmp_path):
    straight = TASK.train(_cfg(inputs, tmp_path / "a.safetensors"))
    TASK.train(_cfg(inputs, tmp_path / "b.safetensors", iters=3))
    resumed = TASK.train(_cfg(inputs, tmp_path / "b.safetensors", resume=True))
    for (k, v), (k2, v2) in zip(straight.net.state_dict().items(), resumed.net.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    scale = straight.net.state_dict()["encoder.0.1.scale"]
    assert scale.shape == (2, 16)  # styles x channels (half width: 16)
    assert not torch.equal(scale[0], scale[1])  # each style trained its own row
    assert not torch.equal(scale[0], torch.ones(16)) and not torch.equal(scale[1], torch.ones(16))
    card = read_card(tmp_path / "a.safetensors")
    assert card["task"] == "multistyle" and card["style_names"] == ["red", "blue"]
    assert card["styles"] == 2 and card["style_weights"] == [5.0, 50.0]


@pytest.mark.parametrize("change, message", [
    (dict(style_weights=(1.0,)), "1 weights for 2 style images"),
    (dict(norm="batch"), "--norm must be instance"),
    (dict(style_images=()), "at least one"),
])
def test_bad_multi_style_settings_are_one_line_errors(inputs, tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        TASK.train(_cfg(inputs, tmp_path / "m.safetensors", **change))


def test_two_styles_with_one_name_are_refused(inputs, tmp_path):
    root, styles = inputs
    with pytest.raises(UserError, match="same name"):
        TASK.train(_cfg(inputs, tmp_path / "m.safetensors", style_images=(styles[0], styles[0])))


def test_a_blend_is_parsed_normalized_and_checked():
    names = ["mosaic", "udnie", "wave_crop"]
    assert parse_blend("udnie", names) == {"udnie": 1.0}
    assert parse_blend("mosaic:3, udnie:1", names) == {"mosaic": 0.75, "udnie": 0.25}
    for bad, message in (("starry", "not in this model"), ("mosaic:x", "not a number"), ("mosaic:-1", ">= 0"),
                         ("", "choose a style"), ("mosaic:0", "choose a style")):
        with pytest.raises(UserError, match=message):
            parse_blend(bad, names)


def test_baking_one_style_gives_a_plain_style_model_with_that_styles_card():
    net = _net(styles=2)
    card = {"task": "multistyle", **net.config.to_dict(), "style_names": ["red", "blue"],
            "style_images": ["red.png", "blue.png"], "style_weights": [5.0, 50.0], "content_weight": 1.0}
    model = LoadedModel(*bake_style(_arrays(net), card, {"blue": 1.0}))
    assert model.card["task"] == "style" and model.card["style_image"] == "blue.png"
    assert model.card["style_weight"] == 50.0 and "styles" not in model.card
    assert model.name == "blue"
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x, style=torch.tensor([0.0, 1.0])), atol=1e-5, rtol=0)
    blend = LoadedModel(*bake_style(_arrays(net), card, {"red": 0.5, "blue": 0.5}))
    assert blend.card["style_weight"] == 27.5 and blend.name == "red:0.5,blue:0.5"


def test_a_multi_style_model_file_is_used_as_model_at_style_or_blend(tmp_path):
    import fastpercept
    from fastpercept.models import load_model, save_model

    net = _net(styles=2)
    card = {"task": "multistyle", **net.config.to_dict(), "style_names": ["red", "blue"],
            "style_images": ["red.png", "blue.png"], "style_weights": [5.0, 50.0]}
    path = save_model(net, tmp_path / "two.safetensors", card)
    with pytest.raises(UserError, match="choose a style as two.safetensors@red"):
        load_model(path)
    x = torch.rand(1, 3, 32, 32)
    chosen = load_model(f"{path}@blue")
    assert chosen.card["task"] == "style" and chosen.name == "blue"
    with torch.no_grad():
        expected = net.float()(x, style=torch.tensor([0.3, 0.7]))
        torch.testing.assert_close(load_model(f"{path}@red:3,blue:7")(x), expected, atol=2e-3, rtol=0)
    out = fastpercept.stylize(x, f"{path}@red", backend="torch", precision="fp32", device="cpu")
    assert out.shape == x.shape
    with pytest.raises(UserError, match="only a multi-style model"):
        load_model("mosaic@red")
