"""A validated KServe tensor carried through native nodes inside a std::string packet.

The mediapipe wheel has no `ov::Tensor`, `mediapipe::Tensor` or `pyovms.Tensor`
packet type, so a tensor-kind graph input travels as a string packet holding a
self-describing blob: a fixed magic prefix, a binary header (flags byte, rank
byte, int64 dims, then the length-prefixed UTF-8 name and datatype) and the raw
little-endian data (BYTES in its KServe length-prefixed form). The header is
packed with `struct`, not JSON: it is on every packet's path. Type-agnostic
calculators (PassThrough, Gate, FlowLimiter, ...) carry it unchanged, and the
output side recognises the magic and answers with the original tensor.
"""

from __future__ import annotations

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
_FIXED = struct.Struct("<BB")  # flags (bit 0: py tensor), rank
_TEXT_LENGTH = struct.Struct("<H")


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
    dims = [int(d) for d in shape]
    name_bytes, datatype_bytes = name.encode("utf-8"), datatype.encode("utf-8")
    if len(dims) > 255 or len(name_bytes) > 0xFFFF or len(datatype_bytes) > 0xFFFF:
        raise ValueError(f"tensor {name!r}: rank, name or datatype too large to carry ({len(dims)} dims)")
    return b"".join((
        MAGIC,
        _FIXED.pack(1 if py_tensor else 0, len(dims)),
        struct.pack(f"<{len(dims)}q", *dims),
        _TEXT_LENGTH.pack(len(name_bytes)), name_bytes,
        _TEXT_LENGTH.pack(len(datatype_bytes)), datatype_bytes,
        bytes(data),
    ))


def unpack_tensor(blob: bytes) -> TensorValue | None:
    """The tensor inside a blob, or None when `blob` is not one (an ordinary string)."""
    if not blob.startswith(MAGIC):
        return None
    try:
        rank = blob[len(MAGIC) + 1]
        offset = len(MAGIC) + _FIXED.size + 8 * rank
        (length,) = _TEXT_LENGTH.unpack_from(blob, offset)
        offset += _TEXT_LENGTH.size + length
        (length,) = _TEXT_LENGTH.unpack_from(blob, offset)
        end = offset + _TEXT_LENGTH.size + length
    except (IndexError, struct.error):
        return None
    if end > len(blob):
        return None
    header = blob[:end]
    known = _KNOWN_HEADERS.get(header)  # a stream's packets repeat one header: parse it once
    if known is None:
        known = _parse_header(header)
        if known is None:
            return None
        if len(_KNOWN_HEADERS) >= _KNOWN_HEADERS_MAX:
            _KNOWN_HEADERS.clear()
        _KNOWN_HEADERS[header] = known
    name, datatype, shape, py_tensor = known
    return TensorValue(name, datatype, shape, blob[end:], py_tensor)


#: Blob header -> (name, datatype, shape, py_tensor), bounded (starts afresh when full).
_KNOWN_HEADERS: dict[bytes, tuple[str, str, tuple[int, ...], bool]] = {}
_KNOWN_HEADERS_MAX = 1024


def _parse_header(header: bytes) -> tuple[str, str, tuple[int, ...], bool] | None:
    """A whole blob header read field by field, None when it is not a valid one."""
    try:
        offset = len(MAGIC)
        flags, rank = _FIXED.unpack_from(header, offset)
        offset += _FIXED.size
        shape = struct.unpack_from(f"<{rank}q", header, offset)
        offset += 8 * rank
        texts = []
        for _ in range(2):
            (length,) = _TEXT_LENGTH.unpack_from(header, offset)
            offset += _TEXT_LENGTH.size
            texts.append(header[offset : offset + length].decode("utf-8"))
            offset += length
    except (struct.error, UnicodeDecodeError):
        return None
    if flags > 1:
        return None
    return texts[0], texts[1], tuple(shape), bool(flags)
