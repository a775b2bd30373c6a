"""Building blocks of the inference graphs: the ONNX form of :mod:`fastpercept.nets.blocks`.

A :class:`GraphBuilder` collects the nodes and weights of one graph. Its blocks take the
weights by the PyTorch network's state-dict names (``encoder.0.0.1.weight``, ...), so a model
file's tensors go in as they are, and every block mirrors the PyTorch module of the same name.

Instance norm is where the three graph kinds differ (see :data:`GRAPH_KINDS`): ``plain``
normalizes each instance-norm layer's input by its own statistics; ``stats`` also returns them
(``mean_i``, ``var_i``, (N, C, 1, 1), the biased variance, in forward order); ``given_stats``
takes them as inputs and normalizes with them — the network is then a purely local operator,
which is what seamless tiling needs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import onnx_proto

# plain: image -> output; stats: image -> mean_0, var_0, ...; given_stats: image, mean_0, var_0, ... -> output.
GRAPH_KINDS = ("plain", "stats", "given_stats")
ONNX_OPSET = 17
# PyTorch's defaults for nn.InstanceNorm2d and nn.BatchNorm2d.
NORM_EPS = 1e-5


class WeightsMismatch(ValueError):
    """The weights do not make the network the config describes (a tensor missing, unexpected or
    of another shape)."""


class GraphBuilder:
    """Nodes and initializers of one ONNX graph with input ``image`` (N, 3, H, W) float32.

    Args:
        weights: the network's tensors by state-dict name (any float dtype; stored as float32).
        kind: one of :data:`GRAPH_KINDS`.
        input_channels: channels of ``image`` (3; a decoder of features takes more).

    Every tensor is checked as it is taken (its shape against the channels flowing in) and
    :meth:`model` checks that every tensor was taken: weights that do not fit raise
    :class:`WeightsMismatch`.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], kind: str = "plain", input_channels: int = 3) -> None:
        if kind not in GRAPH_KINDS:
            raise ValueError(f"graph kind must be one of {', '.join(GRAPH_KINDS)}, not {kind!r}")
        self.weights, self.kind = weights, kind
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self.inputs = [onnx_proto.make_tensor_value_info("image", onnx_proto.FLOAT,
                                                         ["batch", input_channels, "height", "width"])]
        self.outputs: list[bytes] = []
        self.norm_layers = 0  # instance-norm layers built so far: the index of the next one's statistics
        self._names = 0
        self._used: set[str] = set()
        self._channels: dict[str, int] = {"image": input_channels}  # channels of each 4-D value, where known

    # ------------------------------------------------------------------------------ primitives

    def _name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}_{self._names}"

    def const(self, value: np.ndarray | list, dtype=np.int64) -> str:
        """A constant tensor (an initializer); returns its name."""
        name = self._name("const")
        self.initializers.append(onnx_proto.make_tensor(name, np.asarray(value, dtype=dtype)))
        return name

    def weight(self, key: str, shape: tuple[int, ...]) -> str:
        """The network tensor ``key`` as a float32 initializer; ``shape`` is what the network needs there."""
        if key not in self.weights:
            raise WeightsMismatch(f"{key} missing")
        value = np.asarray(self.weights[key], dtype=np.float32)
        if value.shape != tuple(shape):
            expected = "x".join(map(str, shape))
            raise WeightsMismatch(f"{key} is {tuple(value.shape)}, the card's network has {expected}")
        if key not in self._used:
            self._used.add(key)
            self.initializers.append(onnx_proto.make_tensor(key, value))
        return key

    def op(self, op_type: str, *inputs: str, channels: int | None = None, **attributes) -> str:
        """One node with a single output; returns the output's name. The output has ``channels``
        channels, or as many as the first input."""
        out = self._name(op_type.lower())
        self.nodes.append(onnx_proto.make_node(op_type, inputs, [out], **attributes))
        known = channels if channels is not None else self._channels.get(inputs[0]) if inputs else None
        if known is not None:
            self._channels[out] = known
        return out

    def channels(self, x: str) -> int:
        return self._channels[x]

    # ---------------------------------------------------------------------------------- layers

    def conv_layer(self, x: str, prefix: str, channels: int, kernel: int, stride: int = 1) -> str:
        """``ConvLayer``: reflection padding of kernel // 2, then the convolution ``prefix.1`` to
        ``channels`` channels."""
        p = kernel // 2
        x_pad = self.op("Pad", x, self.const([0, 0, p, p, 0, 0, p, p]), mode="reflect")
        weight = self.weight(f"{prefix}.1.weight", (channels, self.channels(x), kernel, kernel))
        return self.op("Conv", x_pad, weight, self.weight(f"{prefix}.1.bias", (channels,)), strides=[stride, stride],
                       channels=channels)

    def norm(self, x: str, prefix: str, norm: str) -> str:
        """``norm_layer``: batch norm (its running statistics) or affine instance norm, the latter
        as the graph kind says."""
        c = (self.channels(x),)
        if norm == "batch":
            return self.op("BatchNormalization", x, *(self.weight(f"{prefix}.{name}", c) for name in
                                                      ("weight", "bias", "running_mean", "running_var")),
                           epsilon=NORM_EPS)
        scale, bias = self.weight(f"{prefix}.weight", c), self.weight(f"{prefix}.bias", c)
        if self.kind == "plain":
            return self.op("InstanceNormalization", x, scale, bias, epsilon=NORM_EPS)
        i = self.norm_layers
        self.norm_layers += 1
        mean_name, var_name = f"mean_{i}", f"var_{i}"
        if self.kind == "stats":
            mean = self.op("ReduceMean", x, axes=[2, 3], keepdims=1)
            centered = self.op("Sub", x, mean)
            var = self.op("ReduceMean", self.op("Mul", centered, centered), axes=[2, 3], keepdims=1)
            self.nodes += [onnx_proto.make_node("Identity", [mean], [mean_name]),
                           onnx_proto.make_node("Identity", [var], [var_name])]
            self.outputs += [onnx_proto.make_tensor_value_info(n, onnx_proto.FLOAT, ["batch", None, 1, 1])
                             for n in (mean_name, var_name)]
        else:
            self.inputs += [onnx_proto.make_tensor_value_info(n, onnx_proto.FLOAT, ["batch", c[0], 1, 1])
                            for n in (mean_name, var_name)]
            mean, var = mean_name, var_name
            centered = self.op("Sub", x, mean)
        inv_std = self.op("Reciprocal", self.op("Sqrt", self.op("Add", var, self.const(NORM_EPS, np.float32))))
        shape = self.const([1, -1, 1, 1])
        y = self.op("Mul", centered, inv_std)
        return self.op("Add", self.op("Mul", y, self.op("Reshape", scale, shape)), self.op("Reshape", bias, shape))

    def conv_norm_relu(self, x: str, prefix: str, channels: int, kernel: int, stride: int, norm: str) -> str:
        """``ConvNormReLU``: ``prefix.0`` convolution, ``prefix.1`` norm, ReLU."""
        y = self.conv_layer(x, f"{prefix}.0", channels, kernel, stride)
        return self.op("Relu", self.norm(y, f"{prefix}.1", norm))

    def residual_block(self, x: str, prefix: str, norm: str) -> str:
        """``ResidualBlock``: x + (3x3 conv, norm, ReLU, 3x3 conv, norm)(x) at ``prefix.body``."""
        body, c = f"{prefix}.body", self.channels(x)
        y = self.op("Relu", self.norm(self.conv_layer(x, f"{body}.0", c, 3), f"{body}.1", norm))
        y = self.norm(self.conv_layer(y, f"{body}.3", c, 3), f"{body}.4", norm)
        return self.op("Add", x, y)

    def upsample2x(self, x: str, prefix: str, channels: int, mode: str, norm: str) -> str:
        """``Upsample2x``: nearest x2 then a 3x3 convolution (``nearest``) or a fractionally
        strided 3x3 convolution (``deconv``), then norm and ReLU."""
        if mode == "nearest":
            x = self.op("Resize", x, "", self.const([1.0, 1.0, 2.0, 2.0], np.float32), mode="nearest",
                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            return self.op("Relu", self.norm(self.conv_layer(x, f"{prefix}.1", channels, 3), f"{prefix}.2", norm))
        x = self.op("ConvTranspose", x, self.weight(f"{prefix}.0.weight", (self.channels(x), channels, 3, 3)),
                    self.weight(f"{prefix}.0.bias", (channels,)), strides=[2, 2], pads=[1, 1, 1, 1],
                    output_padding=[1, 1], channels=channels)
        return self.op("Relu", self.norm(x, f"{prefix}.1", norm))

    def scaled_tanh(self, x: str) -> str:
        """(tanh(x) + 1) / 2: the paper's output layer, into [0, 1]."""
        half = self.const(0.5, np.float32)
        return self.op("Add", self.op("Mul", self.op("Tanh", x), half), half)

    # ------------------------------------------------------------------------------------ model

    def model(self, output: str | None, metadata: Mapping[str, str] | None = None, output_channels: int = 3) -> bytes:
        """The finished graph as a serialized ONNX model: ``output`` (of ``output_channels``
        channels) becomes the graph output ``output`` (ignored by the ``stats`` kind, whose
        outputs are the statistics)."""
        unexpected = sorted(set(self.weights) - self._used)
        if unexpected:
            raise WeightsMismatch(f"{unexpected[0]} unexpected" + (f" (and {len(unexpected) - 1} more)"
                                                                   if len(unexpected) > 1 else ""))
        nodes, outputs = list(self.nodes), list(self.outputs)
        if self.kind != "stats":
            nodes.append(onnx_proto.make_node("Identity", [output], ["output"]))
            outputs = [onnx_proto.make_tensor_value_info("output", onnx_proto.FLOAT,
                                                         ["batch", output_channels, "out_height", "out_width"])]
        graph = onnx_proto.make_graph(nodes, f"fastpercept_{self.kind}", self.inputs, outputs, self.initializers)
        return onnx_proto.make_model(graph, ONNX_OPSET, "fastpercept", metadata)
