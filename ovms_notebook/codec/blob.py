"""A validated KServe tensor carried through native nodes inside a std::string packet.

The mediapipe wheel has no `ov::Tensor`, `mediapipe::Tensor` or `pyovms.Tensor`
packet type, so a tensor-kind graph input travels as a string packet holding a
self-describing blob: a fixed magic prefix, a 4-byte little-endian header
length, a JSON header `{"name", "datatype", "shape", "py"}` and the raw
little-endian data (BYTES in its KServe length-prefixed form). Type-agnostic
calculators (PassThrough, Gate, FlowLimiter, ...) carry it unchanged, and the
output side recognises the magic and answers with the original tensor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ovms_notebook.codec.datatypes import (
    DATATYPES,
    bytes_array,
    deserialize_bytes,
    element_count,
    wire_dtype,
)

#: The first bytes of every tensor blob; a NUL first keeps it clear of ordinary text.
MAGIC = b"\x00OVMSNB-TENSOR\x01"
_HEADER_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class TensorValue:
    """A KServe tensor as the codec carries it: name, datatype, shape and raw little-endian bytes.

    `py_tensor` marks a tensor that came from (or goes to) an `OVMS_PY_TENSOR`
    stream: OVMS names such an output after the tensor, not after the stream.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes
    py_tensor: bool = False

    def array(self) -> np.ndarray:
        """The data as numpy: numeric datatypes reshaped to `shape`, BYTES as an object array of
        bytes, unknown (custom) datatypes as the flat uint8 buffer, as pyovms shows them.
        ValueError when the data does not fill the shape."""
        if self.datatype == "BYTES":
            items = deserialize_bytes(self.data)
            if len(items) != element_count(self.shape):
                raise ValueError(
                    f"tensor {self.name!r} declares shape {list(self.shape)} ({element_count(self.shape)} elements) "
                    f"but holds {len(items)} BYTES elements"
                )
            return bytes_array(items, self.shape)
        if self.datatype not in DATATYPES:
            return np.frombuffer(self.data, dtype=np.uint8)
        dtype = wire_dtype(self.datatype)
        expected = element_count(self.shape) * dtype.itemsize
        if len(self.data) != expected:
            raise ValueError(
                f"tensor {self.name!r} declares {self.datatype} shape {list(self.shape)} ({expected} bytes) "
                f"but holds {len(self.data)} bytes"
            )
        return np.frombuffer(self.data, dtype=dtype).reshape(self.shape)


def pack_tensor(name: str, datatype: str, shape: Sequence[int], data: bytes, *, py_tensor: bool = False) -> bytes:
    """The blob a tensor-kind input packet holds (see the module docstring for the layout)."""
    header = json.dumps(
        {"name": name, "datatype": datatype, "shape": [int(d) for d in shape], "py": bool(py_tensor)},
        separators=(",", ":"),
    ).encode("utf-8")
    return b"".join((MAGIC, _HEADER_LENGTH.pack(len(header)), header, bytes(data)))


def unpack_tensor(blob: bytes) -> TensorValue | None:
    """The tensor inside a blob, or None when `blob` is not one (an ordinary string)."""
    if not blob.startswith(MAGIC):
        return None
    start = len(MAGIC) + _HEADER_LENGTH.size
    if len(blob) < start:
        return None
    (length,) = _HEADER_LENGTH.unpack_from(blob, len(MAGIC))
    if len(blob) < start + length:
        return None
    try:
        header = json.loads(blob[start : start + length].decode("utf-8"))
        name, datatype, shape = header["name"], header["datatype"], header["shape"]
        py_tensor = header.get("py", False)
    except (ValueError, KeyError, TypeError):
        return None
    if not (
        isinstance(name, str)
        and isinstance(datatype, str)
        and isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        and isinstance(py_tensor, bool)
    ):
        return None
    return TensorValue(name, datatype, tuple(shape), blob[start + length :], py_tensor)
