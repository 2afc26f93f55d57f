"""KServe request tensors read and validated exactly as OVMS does, with OVMS's error texts.

Each tensor kind has OVMS's own order of checks and wording
(OVMS's `src/kfs_frontend/kfs_graph_executor_impl.cpp`): the OpenVINO tensor
(untagged and `OVTENSOR` streams), `mediapipe::Tensor` (`TENSOR`),
`tensorflow::Tensor` (`TFTENSOR`) and `pyovms.Tensor` (`OVMS_PY_TENSOR`).
Every reader returns a `TensorValue` with little-endian bytes, or raises
`OvmsStatus`; nothing here touches MediaPipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovms_notebook.codec.blob import TensorValue
from ovms_notebook.codec.datatypes import (
    DATATYPES,
    NUMERIC,
    TYPED_FIELDS,
    bytes_array,
    deserialize_bytes,
    element_count,
    element_size,
    int_range,
    serialize_bytes,
    shape_to_string,
    wire_dtype,
)
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

InputTensor = pb.ModelInferRequest.InferInputTensor

_SIZE_MAX = 2**64 - 1  # size_t
_SSIZE_MAX = 2**63 - 1  # py::ssize_t (pyovms buffers)
_INT_MAX = 2**31 - 1  # mediapipe::Tensor dims are int
_TOO_LARGE = "Provided shape and datatype declare too large buffer."
_MP_TENSOR_DATATYPES = ("FP32", "FP16", "INT32", "INT8", "UINT8", "BOOL")
_TF_NOT_IMPLEMENTED = (
    "There is no support for types different than fp32, int64, int32, uint32, uint64, int8, uint8, bool"
)
_OV_NOT_IMPLEMENTED = "There is no support for types different than fp32, i64, i32, i16, i8, u64, u32, u16, u8, bool"
_NARROW_INTEGERS = ("INT8", "INT16", "UINT8", "UINT16")  # the ones a wider typed field can overflow


def check_request_coherency(request: pb.ModelInferRequest) -> None:
    """OVMS's raw-versus-typed rules for a whole request (src/kfs_frontend/kfs_utils.cpp):
    INVALID_MESSAGE_STRUCTURE otherwise."""
    if not request.raw_input_contents:
        return
    if len(request.raw_input_contents) != len(request.inputs):
        raise OvmsStatus(
            StatusCode.INVALID_MESSAGE_STRUCTURE,
            f"Size of raw_input_contents: {len(request.raw_input_contents)} is different than number of inputs: "
            f"{len(request.inputs)}",
        )
    for tensor in request.inputs:
        if tensor.HasField("contents"):
            raise OvmsStatus(
                StatusCode.INVALID_MESSAGE_STRUCTURE,
                "Passing buffers both in InferInputTensor contents and in raw_input_contents is not allowed. "
                f"Detected buffer in InferInputTensor contents for input: {tensor.name}",
            )


# ---------------------------------------------------------------- shared checks


def check_dims(tensor: InputTensor, name: str, *, allow_zero: bool = True) -> list[int]:
    """The shape as ints; INVALID_SHAPE with OVMS's text for a negative (or, if not allowed, zero) dimension."""
    shape = [int(d) for d in tensor.shape]
    if allow_zero and any(d < 0 for d in shape):
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE,
            f"Negative dimension size is not acceptable: {shape_to_string(shape)}; input name: {name}",
        )
    if not allow_zero and any(d <= 0 for d in shape):
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE,
            f"Negative or zero dimension size is not acceptable: {shape_to_string(shape)}; input name: {name}",
        )
    return shape


def expected_bytes(shape: Sequence[int], size: int, limit: int = _SIZE_MAX) -> int:
    """Element count times element size; INVALID_CONTENT_SIZE when it would overflow the C++ type."""
    total = element_count(shape) * size
    if total > limit or any(d > limit for d in shape):
        raise OvmsStatus(StatusCode.INVALID_CONTENT_SIZE, _TOO_LARGE)
    return total


def check_raw_size(expected: int, raw: bytes, name: str) -> None:
    """OVMS's `validateRawInputContent`."""
    if len(raw) != expected:
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE,
            f"Expected: {expected} bytes; Actual: {len(raw)} bytes; input name: {name}",
        )


def check_value_count(tensor: InputTensor, expected: int, name: str) -> None:
    """OVMS's `validateInputContent`: both numbers are byte counts despite the word "values" (sic)."""
    field = TYPED_FIELDS.get(tensor.datatype)
    count = len(getattr(tensor.contents, field)) if field else 0
    actual = element_size(tensor.datatype) * count
    if actual != expected:
        raise OvmsStatus(
            StatusCode.INVALID_VALUE_COUNT,
            f"Expected: {expected} values; Actual: {actual} values; input name: {name}",
        )


def check_copy_helper(tensor: InputTensor) -> None:
    """OVMS's typed copy helper checks, which only bite once the value count matched (zero elements)."""
    if not tensor.HasField("contents"):
        raise OvmsStatus(StatusCode.INVALID_CONTENT_SIZE, "Input does not have input tensor contents field")
    field = TYPED_FIELDS[tensor.datatype]
    if not getattr(tensor.contents, field):
        prefix = field.removesuffix("_contents")
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE, f"Input does not have proper size of input tensor {prefix}contents field"
        )


def typed_data(tensor: InputTensor, name: str) -> bytes:
    """The typed values of a count-checked tensor as little-endian bytes; values the datatype cannot
    hold (e.g. 300 in `int_contents` for INT8) are rejected instead of wrapping."""
    datatype = tensor.datatype
    field = TYPED_FIELDS[datatype]
    values = getattr(tensor.contents, field)
    if datatype == "BYTES":
        return serialize_bytes(values)
    if datatype in _NARROW_INTEGERS and values:
        wide = np.fromiter(values, dtype=np.int64, count=len(values))
        low, high = int_range(datatype)
        bad = np.flatnonzero((wide < low) | (wide > high))
        if bad.size:
            index = int(bad[0])
            raise OvmsStatus(
                StatusCode.INVALID_VALUE_COUNT,
                f"Value {int(wide[index])} at index {index} of {field} is out of range for {datatype} "
                f"(expected {low}..{high}); input name: {name}",
            )
        return wide.astype(wire_dtype(datatype)).tobytes()
    return np.fromiter(values, dtype=wire_dtype(datatype), count=len(values)).tobytes()


def _bytes_elements(raw: bytes, count: int, name: str) -> list[bytes]:
    """The elements of a raw BYTES input, which must hold exactly `count` length-prefixed elements."""
    form = "BYTES elements (each a 4-byte little-endian length, then its bytes)"
    try:
        items = deserialize_bytes(raw)
    except ValueError as error:
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE,
            f"Expected: {count} {form}; Actual: a {len(raw)}-byte buffer where {error}; input name: {name}",
        ) from None
    if len(items) != count:
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE,
            f"Expected: {count} {form}; Actual: {len(items)} elements in {len(raw)} bytes; input name: {name}",
        )
    return items


def _bytes_tensor(name: str, tensor: InputTensor, raw: bytes | None, shape: list[int]) -> TensorValue:
    """A BYTES tensor whose element count must match its shape (our extension; OVMS cannot carry it)."""
    count = element_count(shape)
    if raw is not None:
        _bytes_elements(raw, count, name)
        return TensorValue(name, "BYTES", tuple(shape), bytes(raw))
    check_value_count(tensor, count, name)
    return TensorValue(name, "BYTES", tuple(shape), typed_data(tensor, name))


# ---------------------------------------------------------------- readers per kind


def read_ov_tensor(name: str, tensor: InputTensor, raw: bytes | None) -> TensorValue:
    """An untagged or `OVTENSOR` input, as OVMS builds its `ov::Tensor` (plus BYTES, which we carry)."""
    datatype = tensor.datatype
    shape = check_dims(tensor, name)
    if datatype == "BYTES":
        return _bytes_tensor(name, tensor, raw, shape)
    expected = expected_bytes(shape, element_size(datatype))
    if raw is not None:
        check_raw_size(expected, raw, name)
    else:
        check_value_count(tensor, expected, name)
    if datatype not in DATATYPES:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION, f"Not supported precision for OpenVINO tensor deserialization: {datatype}"
        )
    if raw is not None:
        return TensorValue(name, datatype, tuple(shape), bytes(raw))
    if expected == 0:  # OVMS pushes no tensor here; we push an empty one
        return TensorValue(name, datatype, tuple(shape), b"")
    return TensorValue(name, datatype, tuple(shape), typed_data(tensor, name))


def read_mp_tensor(name: str, tensor: InputTensor, raw: bytes | None) -> TensorValue:
    """A `TENSOR` input, as OVMS builds its `mediapipe::Tensor`."""
    datatype = tensor.datatype
    if datatype not in _MP_TENSOR_DATATYPES:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION, f"Not supported precision for Mediapipe tensor deserialization: {datatype}"
        )
    shape = check_dims(tensor, name, allow_zero=False)
    expected = expected_bytes(shape, element_size(datatype), _INT_MAX)
    if raw is not None:
        check_raw_size(expected, raw, name)
        return TensorValue(name, datatype, tuple(shape), bytes(raw))
    check_value_count(tensor, expected, name)
    return TensorValue(name, datatype, tuple(shape), typed_data(tensor, name))


def read_tf_tensor(name: str, tensor: InputTensor, raw: bytes | None) -> TensorValue:
    """A `TFTENSOR` input, as OVMS builds its `tensorflow::Tensor`."""
    datatype = tensor.datatype
    if datatype not in DATATYPES:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION, f"Not supported precision for Tensorflow tensor deserialization: {datatype}"
        )
    shape = check_dims(tensor, name)
    expected = expected_bytes(shape, element_size(datatype))
    if raw is not None:
        if datatype == "BYTES":  # DT_STRING: OVMS cannot fill it from raw bytes
            raise OvmsStatus(StatusCode.NOT_IMPLEMENTED, _TF_NOT_IMPLEMENTED)
        if len(raw) != expected:
            raise OvmsStatus(
                StatusCode.INVALID_CONTENT_SIZE,
                f"Mediapipe deserialization content size mismatch; allocated TF Tensor: {expected} bytes "
                f"vs KServe buffer: {len(raw)} bytes",
            )
        return TensorValue(name, datatype, tuple(shape), bytes(raw))
    check_value_count(tensor, expected, name)
    if datatype in ("FP16", "BYTES"):
        raise OvmsStatus(StatusCode.NOT_IMPLEMENTED, _TF_NOT_IMPLEMENTED)
    check_copy_helper(tensor)
    return TensorValue(name, datatype, tuple(shape), typed_data(tensor, name))


def read_py_tensor(name: str, tensor: InputTensor, raw: bytes | None) -> TensorValue:
    """An `OVMS_PY_TENSOR` input, as OVMS builds its `pyovms.Tensor` (BYTES and custom raw data unchecked)."""
    datatype = tensor.datatype
    shape = check_dims(tensor, name)
    if raw is not None:
        if datatype in NUMERIC:
            expected = expected_bytes(shape, element_size(datatype), _SSIZE_MAX)
            if len(raw) != expected:
                raise OvmsStatus(
                    StatusCode.INVALID_CONTENT_SIZE,
                    f"Invalid Python tensor buffer size. Actual: {len(raw)}; Expected: {expected}",
                )
        return TensorValue(name, datatype, tuple(shape), bytes(raw), py_tensor=True)
    if datatype == "BYTES":
        return TensorValue(name, datatype, tuple(shape), typed_data(tensor, name), py_tensor=True)
    if datatype not in NUMERIC:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION,
            "Provided datatype is invalid, custom datatypes are allowed only when raw_input_contents is used.",
        )
    expected = expected_bytes(shape, element_size(datatype), _SSIZE_MAX)
    check_value_count(tensor, expected, name)
    if datatype == "FP16":
        raise OvmsStatus(StatusCode.NOT_IMPLEMENTED, _OV_NOT_IMPLEMENTED)
    check_copy_helper(tensor)
    return TensorValue(name, datatype, tuple(shape), typed_data(tensor, name), py_tensor=True)


def read_array(name: str, tensor: InputTensor, raw: bytes | None, shape: list[int]) -> np.ndarray:
    """A tensor of a known datatype as numpy, validated like an OpenVINO tensor (extension kinds use this).

    `shape` is the already dimension-checked shape; BYTES comes back as an object array of bytes.
    """
    datatype = tensor.datatype
    if datatype == "BYTES":
        value = _bytes_tensor(name, tensor, raw, shape)
        return bytes_array(deserialize_bytes(value.data), shape)
    expected = expected_bytes(shape, element_size(datatype))
    if raw is not None:
        check_raw_size(expected, raw, name)
        data = bytes(raw)
    else:
        check_value_count(tensor, expected, name)
        data = typed_data(tensor, name) if expected else b""
    return np.frombuffer(data, dtype=wire_dtype(datatype)).reshape(shape)
