"""The parts of universal style transfer's network (:class:`fastpercept.nets.wct.WCTNet`) as ONNX graphs.

The whitening and colouring transform between them runs in NumPy
(:mod:`fastpercept.runtime.anystyle`): one graph per encoder level and per decoder.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..architectures import (IMAGENET_MEAN, IMAGENET_STD, WCT_LEVELS, WCTConfig, wct_decoder_layers,
                             wct_encoder_layers, wct_tensor_shapes)
from .blocks import GraphBuilder, WeightsMismatch

def _part(weights: Mapping[str, np.ndarray], prefix: str, layers: list[tuple]) -> dict[str, np.ndarray]:
    """The tensors of one part's convolutions (the GraphBuilder checks each one's shape)."""
    convs = {f"{prefix}.{i}." for i, layer in enumerate(layers) if layer[0] == "conv"}
    return {k: v for k, v in weights.items() if any(k.startswith(c) for c in convs)}


def wct_encoder_graph(config: WCTConfig, weights: Mapping[str, np.ndarray], level: str) -> bytes:
    """``image`` (N, 3, H, W) in [0, 1] -> ``output``, VGG-16's ``level`` relu (N, C, H / 2^p, W / 2^p),
    p the max-pools before it (floor, as PyTorch)."""
    layers = wct_encoder_layers(level)
    g = GraphBuilder(_part(weights, "encoder.features", layers))
    x = g.op("Div", g.op("Sub", "image", g.const(np.reshape(IMAGENET_MEAN, (1, 3, 1, 1)), np.float32)),
             g.const(np.reshape(IMAGENET_STD, (1, 3, 1, 1)), np.float32))
    for i, layer in enumerate(layers):
        if layer[0] == "pool":
            x = g.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
        elif layer[0] == "relu":
            x = g.op("Relu", x)
        else:
            key, out_ch = f"encoder.features.{i}", layer[2]
            x = g.op("Conv", x, g.weight(f"{key}.weight", (out_ch, g.channels(x), 3, 3)),
                     g.weight(f"{key}.bias", (out_ch,)), pads=[1, 1, 1, 1], channels=out_ch)
    return g.model(x, output_channels=WCT_LEVELS[level][0])


def wct_decoder_graph(config: WCTConfig, weights: Mapping[str, np.ndarray], level: str) -> bytes:
    """``image`` — features (N, C, h, w) of ``level`` — -> ``output`` (N, 3, h 2^p, w 2^p), about [0, 1]."""
    layers, prefix = wct_decoder_layers(level), f"decoders.{level}.layers"
    g = GraphBuilder(_part(weights, prefix, layers), input_channels=WCT_LEVELS[level][0])
    x = "image"
    for i, layer in enumerate(layers):
        if layer[0] == "up":
            x = g.op("Resize", x, "", g.const([1.0, 1.0, 2.0, 2.0], np.float32), mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        elif layer[0] == "relu":
            x = g.op("Relu", x)
        else:
            x = g.conv_layer(x, f"{prefix}.{i}", layer[2], 3)
    return g.model(x)


def check_wct_weights(config: WCTConfig, weights: Mapping[str, np.ndarray]) -> None:
    """:class:`WeightsMismatch` unless ``weights`` are exactly the encoder to ``config.deepest``
    and a decoder per level (:func:`~fastpercept.architectures.wct_tensor_shapes`), in the
    words of :class:`GraphBuilder`."""
    expected = wct_tensor_shapes(config)
    missing = sorted(expected.keys() - weights.keys())
    if missing:
        raise WeightsMismatch(f"{missing[0]} missing")
    stray = sorted(weights.keys() - expected.keys())
    if stray:
        raise WeightsMismatch(f"{stray[0]} unexpected" + (f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""))
    for key, shape in expected.items():
        if tuple(np.shape(weights[key])) != shape:
            raise WeightsMismatch(f"{key} is {tuple(np.shape(weights[key]))}, the card's network has "
                                  + "x".join(map(str, shape)))
