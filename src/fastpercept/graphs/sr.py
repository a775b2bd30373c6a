"""The super-resolution network (:class:`fastpercept.nets.sr.SRNet`) as an ONNX graph."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..architectures import SRNetConfig
from .blocks import GraphBuilder


def sr_graph(config: SRNetConfig, weights: Mapping[str, np.ndarray], kind: str = "plain",
             metadata: Mapping[str, str] | None = None):
    """``image`` (N, 3, H, W) in [0, 1] -> ``output`` (N, 3, scale H, scale W).

    ``skip="bicubic"``: bicubic(input) + the network's correction, unclamped (PyTorch's bicubic:
    a = -0.75, half-pixel centers, borders repeated); ``skip="none"``: a scaled tanh in [0, 1].
    """
    g = GraphBuilder(weights, kind)
    norm, c = config.norm, config.channels
    x = g.conv_norm_relu("image", "head", c, 9, 1, norm)
    for i in range(config.residual_blocks):
        x = g.residual_block(x, f"residuals.{i}", norm)
    for i in range(int(math.log2(config.scale))):
        x = g.upsample2x(x, f"upsample.{i}", c, config.upsample, norm)
    x = g.conv_layer(x, "tail", 3, 9)
    if config.skip == "none":
        return g.model(g.scaled_tanh(x), metadata)
    s = float(config.scale)
    base = g.op("Resize", "image", "", g.const([1.0, 1.0, s, s], np.float32), mode="cubic", cubic_coeff_a=-0.75,
                coordinate_transformation_mode="half_pixel", exclude_outside=0)
    return g.model(g.op("Add", base, x), metadata)
