"""The KServe datatype table and the byte layouts every direction shares.

One place says which numpy dtype a KServe datatype is, how many bytes OVMS
counts per element, which `InferTensorContents` field carries it, and how a
BYTES tensor is laid out on the wire (each element a 4-byte little-endian
length, then its bytes: what tritonclient writes and reads).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

#: KServe datatype -> numpy dtype (BYTES elements are Python bytes in an object array).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

#: OVMS's `KFSDataTypeSize`: bytes per element; BYTES counts 1, unknown datatypes 0.
ELEMENT_SIZES: dict[str, int] = {
    "BOOL": 1,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
    "BYTES": 1,
}

#: The `InferTensorContents` field of each datatype; FP16 has none (raw contents only).
TYPED_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

#: The datatypes an ov::Tensor can have and their element sizes (OVMS's PyTensorOvTensorConverterCalculator
#: precision table): the numeric KServe datatypes and BF16.
OV_ELEMENT_SIZES: dict[str, int] = {**{name: size for name, size in ELEMENT_SIZES.items() if name != "BYTES"},
                                    "BF16": 2}

#: The struct format of each fixed-size datatype (OVMS's `datatypeToBufferFormat`, for pyovms.Tensor buffers);
#: all but "e" (half floats) are formats memoryview.cast takes.
StructFormat = Literal["?", "B", "H", "I", "Q", "b", "h", "i", "q", "e", "f", "d"]
STRUCT_FORMATS: dict[str, StructFormat] = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}

#: The numeric datatypes (everything but BYTES), in the table's order.
NUMERIC = tuple(name for name in DATATYPES if name != "BYTES")
#: The integer datatypes, signed and unsigned.
INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
#: The floating-point datatypes.
FLOATS = ("FP16", "FP32", "FP64")

_LENGTH = struct.Struct("<I")


def element_size(datatype: str) -> int:
    """Bytes OVMS counts per element of `datatype` (0 when it does not know the datatype)."""
    return ELEMENT_SIZES.get(datatype, 0)


def wire_dtype(datatype: str) -> np.dtype:
    """The little-endian numpy dtype of a numeric datatype's raw bytes."""
    return DATATYPES[datatype].newbyteorder("<")


def datatype_of(dtype: np.dtype) -> str:
    """The KServe datatype of a numpy dtype; ValueError when KServe has none."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    for name, known in DATATYPES.items():
        if known == dtype.newbyteorder("=") and name != "BYTES":
            return name
    raise ValueError(f"numpy dtype {dtype} has no KServe datatype; expected one of {', '.join(DATATYPES)} equivalents")


def int_range(datatype: str) -> tuple[int, int]:
    """The smallest and largest value of an integer datatype."""
    info = np.iinfo(DATATYPES[datatype])
    return int(info.min), int(info.max)


def shape_to_string(shape: Iterable[int]) -> str:
    """A shape as OVMS prints it (`tensorShapeToString`): `(d1,d2,...)`."""
    return "(" + ",".join(str(int(d)) for d in shape) + ")"


def element_count(shape: Iterable[int]) -> int:
    """The number of elements a shape declares (1 for a scalar shape `[]`)."""
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def serialize_bytes(items: Iterable[bytes]) -> bytes:
    """KServe BYTES wire form: each element as a 4-byte little-endian length, then its bytes."""
    parts: list[bytes] = []
    for item in items:
        parts.append(_LENGTH.pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes) -> list[bytes]:
    """The elements of a KServe BYTES buffer; ValueError saying where the buffer breaks."""
    items: list[bytes] = []
    view = memoryview(buffer)
    offset = 0
    while offset < len(view):
        if len(view) - offset < _LENGTH.size:
            raise ValueError(
                f"element {len(items)} at byte offset {offset} needs a 4-byte length prefix, "
                f"but only {len(view) - offset} bytes remain"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if length > len(view) - offset:
            raise ValueError(
                f"element {len(items)} declares {length} bytes at byte offset {offset}, "
                f"but only {len(view) - offset} bytes remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


def as_bytes(item: object) -> bytes:
    """One BYTES element from Python: bytes as they are, str as UTF-8, anything else as its str()."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, np.bytes_):
        return bytes(item)
    return str(item).encode("utf-8")


def bytes_array(items: Sequence[bytes], shape: Sequence[int]) -> np.ndarray:
    """An object array of bytes elements in `shape` (ValueError when the counts differ)."""
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array.reshape(tuple(shape))
