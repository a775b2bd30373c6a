"""Inference graphs built from a model's card and weights, without PyTorch.

One builder per architecture (:mod:`.style`, :mod:`.sr`), each the ONNX form of the PyTorch
network of the same name in :mod:`fastpercept.nets`; a parity test holds the two equal. The
graph is made in memory from the model file — no export step, no cache — and run by OpenVINO
or ONNX Runtime (:mod:`fastpercept.runtime.backends`), or written by ``fastpercept export``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..architectures import SRNetConfig, StyleNetConfig, WCTConfig, arch_config
from .blocks import GRAPH_KINDS, ONNX_OPSET, GraphBuilder, WeightsMismatch
from .sr import sr_graph
from .style import style_graph

__all__ = ["GRAPH_KINDS", "ONNX_OPSET", "GraphBuilder", "WeightsMismatch", "build_graph", "check_weights", "sr_graph",
           "style_graph"]


def build_graph(card: Mapping[str, Any], weights: Mapping[str, np.ndarray], kind: str = "plain",
                metadata: Mapping[str, str] | None = None):
    """The serialized ONNX model (bytes) of the network a card describes, with these weights.

    Args:
        card: a ``style`` or ``sr`` model card (a multi-style model's choice is baked into a
            style card first: :func:`fastpercept.models.load_model`).
        weights: the network's tensors by state-dict name.
        kind: ``plain``, ``stats`` or ``given_stats`` (:data:`GRAPH_KINDS`).
        metadata: strings for the model's ``metadata_props`` (export writes the card there).
    Raises:
        WeightsMismatch: the weights do not make the card's network.
    """
    config = arch_config(card)
    if type(config) is StyleNetConfig:
        return style_graph(config, weights, kind, metadata)
    if isinstance(config, SRNetConfig):
        return sr_graph(config, weights, kind, metadata)
    raise ValueError(f"no inference graph for a {card.get('task')} card; choose a style of a multi-style model first")


def check_weights(card: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> None:
    """:class:`WeightsMismatch` unless ``weights`` make the card's network (a tensor missing,
    unexpected or of another shape): the plain graph is built, or for a cascade of graphs
    (any-painting models) every tensor's name and shape is compared with what it needs."""
    config = arch_config(card)
    if isinstance(config, WCTConfig):
        from .wct import check_wct_weights

        check_wct_weights(config, weights)
    else:
        build_graph(card, weights, "plain")
