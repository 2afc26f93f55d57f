"""The client side of the codec: Python values to KServe input tensors, output tensors back to Python.

The inverse of the server side and KServe-standard, so what it writes any
KServe server reads and what it reads is what tritonclient's `as_numpy` gives:
requests always use raw contents; BYTES elements carry 4-byte little-endian
length prefixes. Proto outputs (see `codec.protos`) come back as parsed
messages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf.message import Message

from ovms_notebook.codec import protos
from ovms_notebook.codec.datatypes import (
    DATATYPES,
    as_bytes,
    bytes_array,
    datatype_of,
    deserialize_bytes,
    element_count,
    serialize_bytes,
    wire_dtype,
)
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb


def encode_input(
    name: str, value: object, datatype: str | None = None
) -> tuple[pb.ModelInferRequest.InferInputTensor, bytes]:
    """An input tensor (name, datatype, shape) and its raw contents for `value`.

    `value` may be a numpy array of any KServe dtype (object, bytes and str
    arrays become BYTES), a Python scalar (shape [1]: bool -> BOOL, int -> INT64,
    float -> FP64, str/bytes -> BYTES), a (nested) list, or a protobuf message (BYTES [1] holding it
    serialized, what a `PROTO:` input takes). `datatype` overrides the inferred datatype; values it cannot
    hold raise ValueError instead of wrapping.
    """
    if datatype is not None and datatype not in DATATYPES:
        raise ValueError(f"datatype must be one of {', '.join(DATATYPES)}; got {datatype!r}")
    if isinstance(value, Message):
        if datatype not in (None, "BYTES"):
            raise ValueError(f"a {value.DESCRIPTOR.full_name} message travels as BYTES, not {datatype}")
        tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="BYTES", shape=[1])
        return tensor, serialize_bytes([value.SerializeToString()])
    array = _as_array(value)
    target = datatype or datatype_of(array.dtype)
    if target == "BYTES":
        if array.dtype.kind not in "OSU":
            raise ValueError(f"BYTES needs str, bytes or object elements; got a {array.dtype} array")
        data = serialize_bytes(as_bytes(item) for item in array.reshape(-1))
    else:
        data = _convert(array, target).tobytes()
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=target, shape=list(array.shape))
    return tensor, data


def decode_output(tensor: pb.ModelInferResponse.InferOutputTensor, raw: bytes) -> object:
    """An output tensor as Python: a numpy array reshaped to `tensor.shape` (BYTES as an object array
    of bytes, like tritonclient's `as_numpy`); for proto outputs the parsed message, or a list of
    messages when `proto_repeated` is set (the packet was a std::vector). ValueError when the bytes
    do not fill the shape or the datatype or proto type is unknown here."""
    shape = [int(d) for d in tensor.shape]
    if tensor.datatype == "BYTES":
        items = deserialize_bytes(raw)
        if protos.PROTO_TYPE in tensor.parameters:
            return _messages(tensor, items)
        if len(items) != element_count(shape):
            raise ValueError(f"output {tensor.name!r} declares shape {shape} but holds {len(items)} BYTES elements")
        return bytes_array(items, shape)
    if tensor.datatype not in DATATYPES:
        raise ValueError(f"output {tensor.name!r} has datatype {tensor.datatype!r}, which is not a KServe datatype")
    dtype = wire_dtype(tensor.datatype)
    expected = element_count(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"output {tensor.name!r} declares {tensor.datatype} shape {shape} ({expected} bytes) "
            f"but holds {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=dtype).astype(DATATYPES[tensor.datatype], copy=False).reshape(shape)


def _messages(tensor: pb.ModelInferResponse.InferOutputTensor, items: Sequence[bytes]) -> object:
    full_name = tensor.parameters[protos.PROTO_TYPE].string_param
    cls = protos.message_class(full_name)
    if cls is None:
        raise ValueError(
            f"output {tensor.name!r} holds {full_name} messages, which this process does not know; "
            "import the module that defines them (its *_pb2) first"
        )
    messages = [cls.FromString(item) for item in items]  # parsing never checks proto2 required fields
    if tensor.parameters[protos.PROTO_REPEATED].bool_param:
        return messages
    if len(messages) != 1:
        raise ValueError(f"output {tensor.name!r} holds {len(messages)} {full_name} messages, expected 1")
    return messages[0]


def _as_array(value: object) -> np.ndarray:
    """`value` as an array; scalars get shape [1] (KServe has no 0-d tensors in practice)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, str | bytes | bytearray):
        array = np.empty(1, dtype=object)
        array[0] = value if isinstance(value, str) else bytes(value)
        return array
    if isinstance(value, bool | int | float | np.generic):
        return np.asarray([value])
    if isinstance(value, list | tuple):
        array = np.asarray(value)
        if array.dtype.kind in "SU":  # keep bytes exact: numpy's S dtype strips trailing NULs
            array = np.asarray(value, dtype=object)
        return array
    raise ValueError(f"cannot encode a {type(value).__name__}; expected a numpy array, scalar, str, bytes or list")


def _convert(array: np.ndarray, datatype: str) -> np.ndarray:
    """The array in the datatype's little-endian dtype; integers out of range or fractional -> ValueError."""
    target = wire_dtype(datatype)
    if array.dtype.kind in "OSU":
        raise ValueError(f"cannot encode {array.dtype} elements as {datatype}")
    if target.kind in "iu" and array.size:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (np.floor(array) == array)):
            raise ValueError(f"{datatype} holds whole numbers; the values have fractions, inf or nan")
        if array.dtype.kind in "iuf":
            info = np.iinfo(target)
            low, high = array.min(), array.max()
            if low < info.min or high > info.max:
                raise ValueError(f"values {low}..{high} do not fit {datatype} ({info.min}..{info.max})")
    return np.ascontiguousarray(array.astype(target, copy=False))
