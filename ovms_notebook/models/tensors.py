"""Model inputs and outputs as KServe and OVMS describe them: `TensorSpec`, made from an OpenVINO port.

A spec keeps what serving needs from the model without touching OpenVINO
again: the KServe name, datatype and shape (-1 for a dynamic dimension), and
each dimension's bounds and OVMS's precision name, so request validation
(models/serving.py) can match shapes and print OVMS's own error texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

__all__ = ["TensorSpec", "port_tensor_spec"]

# OpenVINO element type name -> (KServe datatype, OVMS precision name used in error texts).
_ELEMENT_TYPES: dict[str, tuple[str, str]] = {
    "f32": ("FP32", "FP32"),
    "f16": ("FP16", "FP16"),
    "f64": ("FP64", "FP64"),
    "bf16": ("BF16", "BF16"),
    "i8": ("INT8", "I8"),
    "i16": ("INT16", "I16"),
    "i32": ("INT32", "I32"),
    "i64": ("INT64", "I64"),
    "u8": ("UINT8", "U8"),
    "u16": ("UINT16", "U16"),
    "u32": ("UINT32", "U32"),
    "u64": ("UINT64", "U64"),
    "boolean": ("BOOL", "BOOL"),
    "string": ("BYTES", "STRING"),
}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as KServe shows it: name, datatype, shape (-1 for a dynamic dimension).

    `bounds` keeps each dimension's (min, max) (max -1 = unbounded) for validation; `precision` is
    OVMS's name for the element type ("FP32", "U8"), the one its error texts print.
    """

    name: str
    datatype: str
    precision: str
    shape: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]
    dynamic_rank: bool = False

    @property
    def dtype(self) -> np.dtype | None:
        """The numpy dtype of the tensor's elements (little-endian), None when numpy has none."""
        from ovms_notebook.codec.datatypes import DATATYPES, wire_dtype

        return wire_dtype(self.datatype) if self.datatype in DATATYPES and self.datatype != "BYTES" else None

    def shape_text(self) -> str:
        """The shape as OVMS prints it (`Shape::toString`): "(1,128,128,3)", -1 dynamic, "[1~8]" a range."""
        if self.dynamic_rank:
            return "..."
        return "(" + ",".join(self.dimension_text(i) for i in range(len(self.bounds))) + ")"

    def dimension_text(self, index: int) -> str:
        """One dimension as OVMS prints it (`Dimension::toString`)."""
        low, high = self.bounds[index]
        if low == high:
            return str(low)
        if low == 0 and high < 0:
            return "-1"
        return f"[{low}~{high}]"

    def dimension_matches(self, index: int, value: int) -> bool:
        """OVMS's `Dimension::match`: equal to a static dimension, within a range, anything for -1."""
        low, high = self.bounds[index]
        return low <= value and (high < 0 or value <= high)

    def accepts(self, shape: Sequence[int]) -> bool:
        """True when a tensor of `shape` fits (same rank, every dimension matching)."""
        if self.dynamic_rank:
            return True
        return len(shape) == len(self.bounds) and all(self.dimension_matches(i, d) for i, d in enumerate(shape))

    def as_dict(self) -> TensorMetadata:
        """The KServe `TensorMetadata` of this tensor as a dict."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class TensorMetadata(TypedDict):
    """KServe's `TensorMetadata` message as a dict."""

    name: str
    datatype: str
    shape: list[int]


def port_tensor_spec(port: Any) -> TensorSpec:
    """The spec of an OpenVINO model input or output (`ov.Output`); an element type KServe lacks is "INVALID"."""
    type_name = port.get_element_type().get_type_name()
    datatype, precision = _ELEMENT_TYPES.get(type_name, ("INVALID", type_name.upper()))
    partial = port.get_partial_shape()
    if partial.rank.is_dynamic:
        return TensorSpec(port.get_any_name(), datatype, precision, (), (), dynamic_rank=True)
    bounds = []
    for dim in partial:
        if dim.is_static:
            bounds.append((dim.get_length(), dim.get_length()))
        else:
            bounds.append((max(dim.get_min_length(), 0), dim.get_max_length()))
    shape = tuple(low if low == high else -1 for low, high in bounds)
    return TensorSpec(port.get_any_name(), datatype, precision, shape, tuple(bounds))
