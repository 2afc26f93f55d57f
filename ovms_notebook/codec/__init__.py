"""The one place that converts KServe tensors to MediaPipe packets and back.

Server side: `parse_stream` reads a graph stream's tag into a `StreamKind`,
`check_request_coherency` and `decode_input` turn request inputs into packets
(OVMS's validation order and texts), `encode_output` turns any output packet
into an output tensor by the packet's C++ type. Client side: `encode_input`
and `decode_output`, KServe-standard. Tensor-kind inputs travel through native
nodes as string packets holding a `pack_tensor` blob.

Module map: `streams` (stream specs, kinds), `datatypes` (the KServe/numpy
table, BYTES layout), `tensors` (request tensors per OVMS kind), `images`,
`values` (extension kinds), `protos`, `blob`, `packets` (both packet
directions), `client`.

The client side (`encode_input`, `decode_output`, the tables) imports no MediaPipe: `packets`, the only
module that needs it, loads on first use of `cpp_type`, `decode_input` or `encode_output`, so that
`import ovms_notebook.client` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ovms_notebook.codec.blob import MAGIC, TensorValue, pack_tensor, unpack_tensor
from ovms_notebook.codec.client import decode_output, encode_input
from ovms_notebook.codec.datatypes import DATATYPES, ELEMENT_SIZES, shape_to_string
from ovms_notebook.codec.protos import PROTO_REPEATED, PROTO_TYPE
from ovms_notebook.codec.streams import (
    EXTENSION_KINDS,
    TENSOR_KINDS,
    UNSUPPORTED_KINDS,
    StreamKind,
    StreamSpec,
    parse_stream,
)
from ovms_notebook.codec.tensors import check_request_coherency

if TYPE_CHECKING:
    from ovms_notebook.codec.packets import cpp_type, decode_input, encode_output

__all__ = [
    "DATATYPES",
    "ELEMENT_SIZES",
    "EXTENSION_KINDS",
    "MAGIC",
    "PROTO_REPEATED",
    "PROTO_TYPE",
    "TENSOR_KINDS",
    "UNSUPPORTED_KINDS",
    "StreamKind",
    "StreamSpec",
    "TensorValue",
    "check_request_coherency",
    "cpp_type",
    "decode_input",
    "decode_output",
    "encode_input",
    "encode_output",
    "pack_tensor",
    "parse_stream",
    "shape_to_string",
    "unpack_tensor",
]

#: The server-side names, which need MediaPipe: loaded from `packets` on first access.
_PACKET_NAMES = frozenset({"cpp_type", "decode_input", "encode_output"})


def __getattr__(name: str) -> Any:
    if name not in _PACKET_NAMES:
        raise AttributeError(f"module 'ovms_notebook.codec' has no attribute {name!r}")
    value = getattr(importlib.import_module("ovms_notebook.codec.packets"), name)
    globals()[name] = value
    return value
