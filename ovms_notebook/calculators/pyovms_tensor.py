"""`pyovms.Tensor`: the tensor OVMS hands to and takes from Python node handlers, in pure Python.

OVMS's `Tensor(name, buffer, shape=None, datatype=None)` (src/python/ovms_py_tensor.{hpp,cpp}
and its pybind11 binding) wraps any object that supports the buffer protocol:

* `name` (str), `shape` (tuple: the `shape` given, else the buffer's), `datatype`
  (the `datatype` given, else the KServe name of the buffer's struct format, else the
  raw format string, e.g. "3w" for a numpy unicode array), `data` (a read-only
  memoryview with the buffer's format and shape), `size` (bytes), `ptr` (the data
  address, an int here) and `ref_obj` (the wrapped object, kept alive) are read-only.
  `shape` and `datatype` overrides do not reshape or convert anything.
* The buffer is read-only: `bytes(t)`, `np.array(t)`, `np.asarray(t)` (no copy) work.

One deliberate fix: numpy's int64 exports struct format "l" on Linux, which OVMS maps to
INT32 (a quirk its header admits); here "l"/"L" map by their real size, so an int64
array is INT64 (and uint64 UINT64).

Python 3.11 has no way for a class written in Python to export a C-level buffer
(PEP 688's `__buffer__` arrived in 3.12), so on 3.11 `memoryview(t)`, `np.frombuffer(t)`
and `struct.unpack(fmt, t)` raise TypeError: use `t.data` for those (`np.frombuffer(t.data,
...)`, `struct.unpack(fmt, t.data)`). `bytes(t)` works through `__bytes__` and numpy
through `__array_interface__` on every version; on 3.12+ `__buffer__` makes the rest work.

Tensors built from a request (`Tensor._from_value`) follow OVMS's request path: known
datatypes get their struct format and the request shape; BYTES and custom datatypes keep
the raw buffer, format "B" and buffer shape (size,) (BYTES being `[uint32 length][bytes]`
per element, as KServe carries it), while `shape` and `datatype` are the request's.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from ovms_notebook.codec.blob import TensorValue
from ovms_notebook.codec.datatypes import STRUCT_FORMATS, StructFormat

__all__ = ["DATATYPE_TO_FORMAT", "FORMAT_TO_DATATYPE", "Tensor", "datatype_of_format"]

#: KServe datatype -> struct format (OVMS's `datatypeToBufferFormat`), from the codec's table.
TensorFormat = StructFormat
DATATYPE_TO_FORMAT = STRUCT_FORMATS

_SIGNED = {1: "INT8", 2: "INT16", 4: "INT32", 8: "INT64"}
_UNSIGNED = {1: "UINT8", 2: "UINT16", 4: "UINT32", 8: "UINT64"}

#: Native struct format -> KServe datatype. OVMS adds "l" -> INT32 and "L" -> UINT32; here the
#: C long formats map by their real size (8 bytes on 64-bit Linux: numpy int64 is INT64).
FORMAT_TO_DATATYPE: dict[str, str] = {
    **{fmt: datatype for datatype, fmt in DATATYPE_TO_FORMAT.items()},
    "l": _SIGNED[struct.calcsize("l")],
    "L": _UNSIGNED[struct.calcsize("L")],
}

#: Sizes of the formats with an explicit standard-size prefix ("<", "="): "l" is 4 bytes there.
_STANDARD: dict[str, str] = {**{fmt: datatype for datatype, fmt in DATATYPE_TO_FORMAT.items()},
                             "l": "INT32", "L": "UINT32"}

RAW_BINARY_FORMAT: Final = "B"


def datatype_of_format(fmt: str) -> str:
    """The KServe datatype of a buffer's struct format, or the format itself when it has none.

    A native prefix ("@", or none) uses native sizes; "=" and, on little-endian machines, "<"
    use standard sizes; anything else (big-endian data, structs, numpy unicode "3w") is
    returned unchanged, as OVMS does.
    """
    if fmt.startswith("@"):
        return FORMAT_TO_DATATYPE.get(fmt[1:], fmt)
    if fmt[:1] == "=" or (fmt[:1] == "<" and sys.byteorder == "little"):
        return _STANDARD.get(fmt[1:], fmt)
    return FORMAT_TO_DATATYPE.get(fmt, fmt)


def _view_of(buffer: object) -> memoryview:
    """A C-contiguous memoryview of `buffer` (a copy when it is strided)."""
    if isinstance(buffer, Tensor):
        view = buffer._view
    else:
        try:
            view = memoryview(buffer)  # type: ignore[arg-type]
        except TypeError:
            if hasattr(buffer, "__array_interface__") or hasattr(buffer, "__array_struct__"):
                view = np.asarray(buffer).data  # the array's own memoryview
            else:
                raise TypeError(
                    f"Tensor(): buffer must support the buffer protocol (numpy array, bytes, bytearray, memoryview, "
                    f"...), got {type(buffer).__name__}"
                ) from None
    if not view.c_contiguous:
        view = np.ascontiguousarray(np.asarray(view)).data
    return view


def _typed_view(data: bytes, fmt: TensorFormat, shape: tuple[int, ...]) -> memoryview[Any]:
    """`data` seen with struct format `fmt` and `shape` (memoryview.cast where it can, numpy otherwise)."""
    raw = memoryview(data)
    if all(shape) and fmt != "e":
        return raw.cast(fmt, shape)
    dtype = np.dtype(fmt) if sys.byteorder == "little" else np.dtype(fmt).newbyteorder("<")
    return np.frombuffer(data, dtype=dtype).reshape(shape).data


def _shape(shape: Iterable[int], what: str) -> tuple[int, ...]:
    if isinstance(shape, str | bytes):
        raise TypeError(f"{what} must be a sequence of ints, got {shape!r}")
    try:
        return tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a sequence of ints, got {shape!r}") from None


class Tensor:
    """OVMS's `pyovms.Tensor(name, buffer, shape=None, datatype=None)`: see the module docstring."""

    __slots__ = ("__weakref__", "_datatype", "_name", "_ref_obj", "_shape", "_view")

    def __init__(
        self,
        name: str,
        buffer: Any,
        shape: Iterable[int] | None = None,
        datatype: str | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Tensor(): name must be a str, got {type(name).__name__}")
        if datatype is not None and not isinstance(datatype, str):
            raise TypeError(f"Tensor(): datatype must be a str, got {type(datatype).__name__}")
        view = _view_of(buffer)
        self._init(name, view.toreadonly(), buffer, shape, datatype)

    def _init(
        self, name: str, view: memoryview, ref_obj: object, shape: Iterable[int] | None, datatype: str | None
    ) -> None:
        self._name = name
        self._view = view
        self._ref_obj = ref_obj
        self._shape = _shape(shape, "Tensor(): shape") if shape is not None else tuple(view.shape or ())
        self._datatype = datatype if datatype is not None else datatype_of_format(view.format)

    # Read-only attributes (OVMS's def_readonly / def_property_readonly).

    @property
    def name(self) -> str:
        """The tensor's name; a handler's output Tensor name picks the output stream."""
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        """The user shape: the `shape` given (or the request's), else the buffer's."""
        return self._shape

    @property
    def datatype(self) -> str:
        """KServe datatype (FP32, INT64, BYTES, ...) or a custom/raw format string."""
        return self._datatype

    @property
    def data(self) -> memoryview:
        """A read-only memoryview of the data, with the buffer's format and shape."""
        return memoryview(self._view)

    @property
    def size(self) -> int:
        """Size of the data in bytes (product of the buffer shape x itemsize)."""
        return self._view.nbytes

    @property
    def ptr(self) -> int:
        """Address of the first byte of the data (OVMS exposes an opaque pointer; an int here)."""
        return int(np.asarray(self._view).__array_interface__["data"][0])

    @property
    def ref_obj(self) -> object:
        """The object whose memory this tensor wraps (kept alive by the tensor)."""
        return self._ref_obj

    # Buffer access.

    def __bytes__(self) -> bytes:
        return self._view.tobytes()

    def __buffer__(self, flags: int) -> memoryview:  # PEP 688, Python 3.12+
        return memoryview(self._view)

    @property
    def __array_interface__(self) -> dict[str, Any]:
        """numpy's array interface: `np.array(t)` copies, `np.asarray(t)` is a read-only view."""
        interface = dict(np.asarray(self._view).__array_interface__)
        interface["data"] = (interface["data"][0], True)
        return interface

    def __repr__(self) -> str:
        return f"Tensor(name={self._name!r}, datatype={self._datatype!r}, shape={self._shape!r}, size={self.size})"

    # Conversions to and from the codec's TensorValue, and OVMS's internal factories.

    @classmethod
    def _from_value(cls, value: TensorValue) -> Tensor:
        """The Tensor OVMS builds for a request input: known datatypes typed and shaped, BYTES and custom
        datatypes as the raw buffer (format "B", buffer shape (size,)); `shape`/`datatype` as in the request."""
        return cls._create_from_data(value.name, value.data, value.shape, value.datatype, len(value.data), copy=False)

    def to_value(self) -> TensorValue:
        """The codec's TensorValue for this tensor (`py_tensor=True`: the response output is named after it)."""
        return TensorValue(self._name, self._datatype, self._shape, self._view.tobytes(), py_tensor=True)

    @classmethod
    def _create_from_data(
        cls,
        name: str,
        data: Any,
        shape: Iterable[int],
        datatype: str,
        size: int,
        copy: bool = True,
    ) -> Tensor:
        """OVMS's `_create_from_data`: `size` bytes of `data` (a buffer, or an int address which is copied)
        seen as `datatype` with `shape` (BYTES/custom: format "B", buffer shape (size,))."""
        user_shape = _shape(shape, "shape")
        raw: bytes
        if isinstance(data, int):
            raw = ctypes.string_at(data, size)
        else:
            view = _view_of(data)
            if view.nbytes != size:
                raise ValueError(f"tensor {name!r}: {view.nbytes} bytes of data, {size} declared")
            raw = data if isinstance(data, bytes) and not copy else view.tobytes()
        fmt = DATATYPE_TO_FORMAT.get(datatype)
        if fmt is None:
            view = memoryview(raw).cast(RAW_BINARY_FORMAT)
        else:
            itemsize = struct.calcsize(fmt)
            expected = itemsize * int(np.prod(user_shape, dtype=np.int64)) if user_shape else itemsize
            if any(d < 0 for d in user_shape) or expected != len(raw):
                raise ValueError(
                    f"tensor {name!r}: {datatype} shape {list(user_shape)} needs {expected} bytes, got {len(raw)}"
                )
            view = _typed_view(raw, fmt, user_shape)
        tensor = cls.__new__(cls)
        tensor._init(name, view.toreadonly(), raw, user_shape, datatype)
        return tensor

    @classmethod
    def _create_without_data(cls, name: str, shape: Iterable[int], datatype: str, size: int) -> Tensor:
        """OVMS's `_create_without_data`: a zero-filled tensor of `size` bytes."""
        return cls._create_from_data(name, bytes(size), shape, datatype, size)



Tensor.__module__ = "pyovms"
