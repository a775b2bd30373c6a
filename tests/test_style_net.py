"""StyleNet: any input size maps to the same size, every option builds, gradients reach every layer."""

import pytest
import torch

from fastpercept.training.losses import StyleObjective
from fastpercept.nets.style import StyleNet, StyleNetConfig


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (17, 64), (5, 9)])
def test_output_has_input_size_and_range(size):
    net = StyleNet(StyleNetConfig(arch="half")).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert 0.0 <= y.min().item() and y.max().item() <= 1.0


@pytest.mark.parametrize("norm,upsample", [("instance", "nearest"), ("batch", "deconv"), ("instance", "deconv")])
def test_variants_build_and_run(norm, upsample):
    net = StyleNet(StyleNetConfig(norm=norm, upsample=upsample)).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 36, 36)).shape == (1, 3, 36, 36)
    kinds = {type(m).__name__ for m in net.modules()}
    assert ("InstanceNorm2d" if norm == "instance" else "BatchNorm2d") in kinds
    assert ("ConvTranspose2d" in kinds) == (upsample == "deconv")


def test_paper_architecture_widths():
    full = StyleNet(StyleNetConfig())
    half = StyleNet(StyleNetConfig(arch="half"))
    convs = [m for m in full.modules() if isinstance(m, torch.nn.Conv2d)]
    # c9s1-32, d64, d128, 5 x (2 x 128), u64, u32, c9s1-3
    assert [c.out_channels for c in convs] == [32, 64, 128] + [128] * 10 + [64, 32, 3]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9)
    n_full = sum(p.numel() for p in full.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert 3.5 < n_full / n_half < 4.5  # half width: about a quarter of the weights


def test_gradient_reaches_every_parameter(vgg):
    net = StyleNet(StyleNetConfig(arch="half"))
    obj = StyleObjective(vgg, torch.rand(1, 3, 40, 40))
    x = torch.rand(2, 3, 32, 32)
    terms = obj(net(x), obj.content_features(x))
    terms["total"].backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
