"""The few ONNX protobuf messages our graphs need, written without the ``onnx`` package.

Why not ``onnx.helper``: importing ``onnx`` takes about 2 s on a 2-core CPU (most of it in
``ml_dtypes``) — longer than OpenVINO's whole pass over a photo — and serialization is all we
need of it. OpenVINO and ONNX Runtime parse the bytes themselves. The encoder below is the
protobuf wire format (varints, length-delimited fields, fixed32 floats) for the messages of
``onnx.proto`` (IR version 8, opset 17) by their field numbers; repeated scalars are written
unpacked, which every protobuf parser accepts. A test checks the result with ``onnx.checker``
where ``onnx`` is installed.

Each ``make_*`` returns the message's encoded bytes; a message containing another embeds those.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np

IR_VERSION = 8  # the IR of opset 17 (ONNX 1.12)
# TensorProto.DataType
FLOAT, INT64 = 1, 7
_DTYPES = {np.dtype(np.float32): (FLOAT, "<f4"), np.dtype(np.int64): (INT64, "<i8")}
# AttributeProto.AttributeType
_FLOAT_ATTR, _INT_ATTR, _STRING_ATTR, _FLOATS_ATTR, _INTS_ATTR = 1, 2, 3, 6, 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def make_tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: a float32 or int64 array as raw little-endian data."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _DTYPES:
        raise TypeError(f"{name}: tensors are float32 or int64, not {array.dtype}")
    elem_type, little_endian = _DTYPES[array.dtype]
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, elem_type) + _bytes(8, name) + _bytes(9, array.astype(little_endian).tobytes())


def _attribute(name: str, value: object) -> bytes:
    if isinstance(value, bool) or isinstance(value, int):
        body = _int(3, int(value)) + _int(20, _INT_ATTR)
    elif isinstance(value, float):
        body = _float(2, value) + _int(20, _FLOAT_ATTR)
    elif isinstance(value, str):
        body = _bytes(4, value) + _int(20, _STRING_ATTR)
    elif isinstance(value, Sequence) and all(isinstance(v, int) for v in value):
        body = b"".join(_int(8, v) for v in value) + _int(20, _INTS_ATTR)
    elif isinstance(value, Sequence):
        body = b"".join(_float(7, float(v)) for v in value) + _int(20, _FLOATS_ATTR)
    else:
        raise TypeError(f"attribute {name}: cannot encode a {type(value).__name__}")
    return _bytes(1, name) + body


def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str = "", **attributes) -> bytes:
    """NodeProto of the default domain; ``""`` as an input leaves an optional input out."""
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
            + (_bytes(3, name) if name else b"") + _bytes(4, op_type)
            + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attributes.items())))


def make_tensor_value_info(name: str, elem_type: int, shape: Sequence[int | str | None]) -> bytes:
    """ValueInfoProto of a tensor; a dimension is a size, a symbolic name or ``None`` (unknown)."""
    dims = b""
    for d in shape:
        dim = b"" if d is None else (_int(1, d) if isinstance(d, int) else _bytes(2, d))
        dims += _bytes(1, dim)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def make_graph(nodes: Sequence[bytes], name: str, inputs: Sequence[bytes], outputs: Sequence[bytes],
               initializers: Sequence[bytes]) -> bytes:
    """GraphProto."""
    return (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
            + b"".join(_bytes(5, t) for t in initializers)
            + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs))


def make_model(graph: bytes, opset: int, producer_name: str = "",
               metadata: Mapping[str, str] | None = None) -> bytes:
    """ModelProto, serialized: what ``onnx.ModelProto.SerializeToString()`` would give."""
    opset_import = _bytes(1, "") + _int(2, opset)
    props = b"".join(_bytes(14, _bytes(1, k) + _bytes(2, v)) for k, v in (metadata or {}).items())
    return (_int(1, IR_VERSION) + (_bytes(2, producer_name) if producer_name else b"")
            + _bytes(7, graph) + _bytes(8, opset_import) + props)
