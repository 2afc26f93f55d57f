"""A node's calculator options, read the way MediaPipe reads them: the one implementation in the package.

A pbtxt node gives options in two forms, and MediaPipe's `CalculatorContract` (framework/calculator_contract.cc,
`GetOptions`) merges both: the proto2 extension `options { [mediapipe.X.ext] { ... } }` and the proto3 `Any`
list `node_options { [type.googleapis.com/mediapipe.X] { ... } }`. `node_options` reads them into one message;
`has_node_options` says whether a node gives any of that type.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import Message

__all__ = ["has_node_options", "node_options"]

M = TypeVar("M", bound=Message)


def node_options(node: Any, message_type: type[M]) -> M:
    """The node's options of `message_type`: the extension form merged with every matching `node_options` entry.

    `node` is a `CalculatorGraphConfig.Node` (None gives the defaults); a type without a registered
    extension (`message_type.ext`) is read from `node_options` only.
    """
    result = message_type()
    if node is None:
        return result
    extension = getattr(message_type, "ext", None)
    if extension is not None and node.HasField("options") and node.options.HasExtension(extension):
        result.MergeFrom(node.options.Extensions[extension])
    for packed in node.node_options:
        if packed.Is(message_type.DESCRIPTOR):
            packed.Unpack(result)
    return result


def has_node_options(node: Any, message_type: type[Message]) -> bool:
    """True when the node gives options of `message_type` in either form."""
    extension = getattr(message_type, "ext", None)
    if extension is not None and node.HasField("options") and node.options.HasExtension(extension):
        return True
    return any(packed.Is(message_type.DESCRIPTOR) for packed in node.node_options)
