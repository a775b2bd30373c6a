"""The style transfer network (:class:`fastpercept.nets.style.StyleNet`) as an ONNX graph."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..architectures import StyleNetConfig
from .blocks import GraphBuilder


def style_graph(config: StyleNetConfig, weights: Mapping[str, np.ndarray], kind: str = "plain",
                metadata: Mapping[str, str] | None = None):
    """``image`` (N, 3, H, W) in [0, 1], H and W >= 8 -> ``output`` (N, 3, H, W) in [0, 1].

    As the PyTorch network: reflection-pad the input to a multiple of 4 (the two stride-2
    stages), run, crop back. Every size is padded (by 0 where nothing is missing), computed in
    the graph from the input's shape.
    """
    g = GraphBuilder(weights, kind)
    hw = g.op("Slice", g.op("Shape", "image"), g.const([2]), g.const([4]))  # [H, W]
    four = g.const([config.stride, config.stride])
    missing = g.op("Mod", g.op("Sub", four, g.op("Mod", hw, four)), four)  # (-H) mod 4, (-W) mod 4
    pads = g.op("Concat", g.const([0, 0, 0, 0, 0, 0]), missing, axis=0)
    x = g.op("Pad", "image", pads, mode="reflect")
    norm, w = config.norm, config.width
    for i, (channels, kernel, stride) in enumerate(((w, 9, 1), (2 * w, 3, 2), (4 * w, 3, 2))):
        x = g.conv_norm_relu(x, f"encoder.{i}", channels, kernel, stride, norm)
    for i in range(config.residual_blocks):
        x = g.residual_block(x, f"residuals.{i}", norm)
    for i, channels in enumerate((2 * w, w)):
        x = g.upsample2x(x, f"decoder.{i}", channels, config.upsample, norm)
    x = g.scaled_tanh(g.conv_layer(x, "decoder.2", 3, 9))
    y = g.op("Slice", x, g.const([0, 0]), hw, g.const([2, 3]))
    return g.model(y, metadata)
