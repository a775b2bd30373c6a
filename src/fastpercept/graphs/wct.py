"""The parts of universal style transfer's network (:class:`fastpercept.nets.wct.WCTNet`) as ONNX graphs.

The whitening and colouring transform between them runs in NumPy
(:mod:`fastpercept.runtime.anystyle`): one graph per encoder level and per decoder.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..architectures import IMAGENET_MEAN, IMAGENET_STD, WCT_LEVELS, WCTConfig, vgg_prefix
from .blocks import GraphBuilder, WeightsMismatch

def _only(weights: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in weights.items() if k.startswith(prefix)}


def wct_encoder_graph(config: WCTConfig, weights: Mapping[str, np.ndarray], level: str) -> bytes:
    """``image`` (N, 3, H, W) in [0, 1] -> ``output``, VGG-16's ``level`` relu (N, C, H / 2^p, W / 2^p),
    p the max-pools before it (floor, as PyTorch)."""
    prefix = vgg_prefix(level)
    convs = [i for i, v in _features(prefix) if v != "M"]
    g = GraphBuilder({k: v for k, v in _only(weights, "encoder.").items() if int(k.split(".")[2]) in convs})
    x = g.op("Div", g.op("Sub", "image", g.const(np.reshape(IMAGENET_MEAN, (1, 3, 1, 1)), np.float32)),
             g.const(np.reshape(IMAGENET_STD, (1, 3, 1, 1)), np.float32))
    for index, v in _features(prefix):
        if v == "M":
            x = g.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
            continue
        key = f"encoder.features.{index}"
        w = g.weight(f"{key}.weight", (int(v), g.channels(x), 3, 3))
        x = g.op("Relu", g.op("Conv", x, w, g.weight(f"{key}.bias", (int(v),)), pads=[1, 1, 1, 1], channels=int(v)))
    return g.model(x, output_channels=WCT_LEVELS[level][0])


def wct_decoder_graph(config: WCTConfig, weights: Mapping[str, np.ndarray], level: str) -> bytes:
    """``image`` — features (N, C, h, w) of ``level`` — -> ``output`` (N, 3, h 2^p, w 2^p), about [0, 1]."""
    prefix = vgg_prefix(level)
    g = GraphBuilder(_only(weights, f"decoders.{level}."), input_channels=WCT_LEVELS[level][0])
    x, i = "image", 0
    ins = [3] + [int(v) for v in prefix if v != "M"][:-1]
    for v in reversed(prefix):
        if v == "M":
            x = g.op("Resize", x, "", g.const([1.0, 1.0, 2.0, 2.0], np.float32), mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            i += 1
            continue
        out_ch = ins.pop()
        x = g.conv_layer(x, f"decoders.{level}.layers.{i}", out_ch, 3)
        i += 1
        if out_ch != 3:
            x = g.op("Relu", x)
            i += 1
    return g.model(x)


def check_wct_weights(config: WCTConfig, weights: Mapping[str, np.ndarray]) -> None:
    """:class:`WeightsMismatch` unless ``weights`` are exactly the encoder to ``config.deepest``
    and a decoder per level (every graph is built, so every shape is checked)."""
    for level in config.levels:
        wct_decoder_graph(config, weights, level)
    wct_encoder_graph(config, weights, config.deepest)
    levels = {f"decoders.{level}." for level in config.levels}
    deepest = {f"encoder.features.{i}." for i, v in _features(vgg_prefix(config.deepest)) if v != "M"}
    stray = sorted(k for k in weights if not any(k.startswith(p) for p in levels | deepest))
    if stray:
        raise WeightsMismatch(f"{stray[0]} unexpected" + (f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""))


def _features(prefix: list[int | str]) -> list[tuple[int, int | str]]:
    """``(index in features, entry)`` for each conv and pool of a VGG prefix (a ReLU follows each conv)."""
    out, index = [], 0
    for v in prefix:
        out.append((index, v))
        index += 1 if v == "M" else 2
    return out

