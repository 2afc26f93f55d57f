"""Tensor-kind inputs (untagged, OVTENSOR, TENSOR, TFTENSOR, OVMS_PY_TENSOR): round trips through a
packet and back, and OVMS's exact error texts (spec §5.2/§5.3)."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest

from ovms_notebook.codec import (
    DATATYPES,
    TensorValue,
    decode_input,
    decode_output,
    encode_output,
    pack_tensor,
    parse_stream,
    unpack_tensor,
)
from ovms_notebook.codec.datatypes import TYPED_FIELDS, serialize_bytes
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

Tensor = pb.ModelInferRequest.InferInputTensor

# One sample per datatype, with each integer type's extremes.
SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([0, 65535], dtype=np.uint16),
    "UINT32": np.array([0, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([-32768, 32767], dtype=np.int16),
    "INT32": np.array([[-(2**31)], [2**31 - 1]], dtype=np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
    "FP16": np.array([1.5, -2.25, np.inf], dtype=np.float16),
    "FP32": np.array([[1.5, -2.25], [3.0e38, 0.0]], dtype=np.float32),
    "FP64": np.array([1e300, -0.5], dtype=np.float64),
    "BYTES": np.array([b"", b"a\x00b", "héllo".encode()], dtype=object),
}


def raw_tensor(name: str, datatype: str, shape: list[int]) -> Tensor:
    return Tensor(name=name, datatype=datatype, shape=shape)


def typed_tensor(name: str, datatype: str, shape: list[int], values: list | None) -> Tensor:
    """A tensor with typed contents; values=None leaves `contents` unset."""
    tensor = Tensor(name=name, datatype=datatype, shape=shape)
    if values is not None:
        tensor.contents.SetInParent()
        if values:
            getattr(tensor.contents, TYPED_FIELDS[datatype]).extend(values)
    return tensor


def raw_bytes(array: np.ndarray) -> bytes:
    if array.dtype == object:
        return serialize_bytes(array.reshape(-1).tolist())
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def round_trip(stream: str, tensor: Tensor, raw: bytes | None, output: str = "out"):
    packet = decode_input(parse_stream(stream), tensor, raw)
    assert "timestamp: UNSET" in repr(packet)  # the caller stamps it
    out, data = encode_output(output, packet)
    return out, data, decode_output(out, data)


def failure(stream: str, tensor: Tensor, raw: bytes | None) -> OvmsStatus:
    with pytest.raises(OvmsStatus) as caught:
        decode_input(parse_stream(stream), tensor, raw)
    return caught.value


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_round_trips_raw_through_an_untagged_stream(datatype):
    array = SAMPLES[datatype]
    out, data, back = round_trip("in", raw_tensor("in", datatype, list(array.shape)), raw_bytes(array), "out")
    assert (out.name, out.datatype, list(out.shape)) == ("out", datatype, list(array.shape))
    assert data == raw_bytes(array)
    assert back.dtype == DATATYPES[datatype]
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("datatype", [d for d in SAMPLES if d != "FP16"])
def test_every_datatype_with_a_typed_field_round_trips_typed_through_an_ovtensor_stream(datatype):
    array = SAMPLES[datatype]
    tensor = typed_tensor("in", datatype, list(array.shape), array.reshape(-1).tolist())
    out, data, back = round_trip("OVTENSOR:in", tensor, None, "result")
    assert (out.name, out.datatype, list(out.shape)) == ("result", datatype, list(array.shape))
    assert data == raw_bytes(array)
    np.testing.assert_array_equal(back, array)


def test_the_packet_of_a_tensor_input_is_a_string_holding_the_tensor_blob():
    array = np.array([1.0, 2.0], dtype=np.float32)
    packet = decode_input(parse_stream("in"), raw_tensor("in", "FP32", [2]), array.tobytes())
    assert "C++ type: string>" in repr(packet)
    value = unpack_tensor(mp.packet_getter.get_bytes(packet))
    assert value == TensorValue("in", "FP32", (2,), array.tobytes(), py_tensor=False)
    np.testing.assert_array_equal(value.array(), array)


def test_a_zero_element_typed_tensor_becomes_an_empty_tensor_on_an_untagged_stream():
    out, data, back = round_trip("in", typed_tensor("in", "FP32", [0, 3], []), None)
    assert (out.datatype, list(out.shape), data) == ("FP32", [0, 3], b"")
    assert back.shape == (0, 3)


# ---------------------------------------------------------------- untagged / OVTENSOR errors


def test_a_raw_buffer_of_the_wrong_size_is_rejected_with_ovms_text():
    error = failure("in", raw_tensor("in", "FP32", [1]), b"")
    assert error.code is StatusCode.INVALID_CONTENT_SIZE
    assert str(error) == "Invalid content size of tensor proto - Expected: 4 bytes; Actual: 0 bytes; input name: in"


def test_a_typed_value_count_mismatch_reports_byte_counts_as_values_like_ovms():
    error = failure("in", typed_tensor("in", "INT64", [3], [1, 2]), None)
    assert error.code is StatusCode.INVALID_VALUE_COUNT
    assert str(error) == (
        "Invalid number of values in tensor proto container - Expected: 24 values; Actual: 16 values; input name: in"
    )


def test_a_typed_input_without_contents_fails_the_value_count_first_as_in_ovms():
    error = failure("OVTENSOR:in", typed_tensor("in", "FP32", [1], None), None)
    assert str(error) == (
        "Invalid number of values in tensor proto container - Expected: 4 values; Actual: 0 values; input name: in"
    )


def test_fp16_has_no_typed_field_so_typed_fp16_is_a_value_count_error():
    error = failure("in", typed_tensor("in", "FP16", [2], None), None)
    assert error.code is StatusCode.INVALID_VALUE_COUNT
    assert error.details == "Expected: 4 values; Actual: 0 values; input name: in"


def test_a_negative_dimension_is_rejected_with_the_shape_printed_like_ovms():
    error = failure("in", raw_tensor("in", "FP32", [1, -2]), b"")
    assert error.code is StatusCode.INVALID_SHAPE
    assert str(error) == "Invalid input shape - Negative dimension size is not acceptable: (1,-2); input name: in"


def test_a_shape_whose_byte_size_overflows_is_rejected_with_ovms_text():
    error = failure("in", raw_tensor("in", "FP64", [2**40, 2**40]), b"")
    assert error.code is StatusCode.INVALID_CONTENT_SIZE
    assert str(error) == "Invalid content size of tensor proto - Provided shape and datatype declare too large buffer."


def test_a_custom_datatype_has_element_size_zero_like_ovms():
    error = failure("in", raw_tensor("in", "my_string", [3]), b"abc")
    assert error.details == "Expected: 0 bytes; Actual: 3 bytes; input name: in"
    error = failure("in", typed_tensor("in", "my_string", [3], None), None)
    assert error.code is StatusCode.INVALID_PRECISION
    assert error.details == "Not supported precision for OpenVINO tensor deserialization: my_string"


@pytest.mark.parametrize(
    ("datatype", "values", "details"),
    [
        ("INT8", [1, 300], "Value 300 at index 1 of int_contents is out of range for INT8 (expected -128..127)"),
        (
            "INT16",
            [-40000],
            "Value -40000 at index 0 of int_contents is out of range for INT16 (expected -32768..32767)",
        ),
        ("UINT8", [256], "Value 256 at index 0 of uint_contents is out of range for UINT8 (expected 0..255)"),
        ("UINT16", [70000], "Value 70000 at index 0 of uint_contents is out of range for UINT16 (expected 0..65535)"),
    ],
)
def test_a_typed_value_out_of_range_for_its_datatype_is_rejected_instead_of_wrapping(datatype, values, details):
    error = failure("in", typed_tensor("in", datatype, [len(values)], values), None)
    assert error.code is StatusCode.INVALID_VALUE_COUNT
    assert error.details == f"{details}; input name: in"


def test_a_raw_bytes_tensor_must_hold_exactly_its_elements_in_length_prefixed_form():
    form = "BYTES elements (each a 4-byte little-endian length, then its bytes)"
    error = failure("in", raw_tensor("in", "BYTES", [3]), serialize_bytes([b"a", b"b"]))
    assert error.code is StatusCode.INVALID_CONTENT_SIZE
    assert error.details == f"Expected: 3 {form}; Actual: 2 elements in 10 bytes; input name: in"
    error = failure("in", raw_tensor("in", "BYTES", [1]), b"\x05\x00\x00\x00ab")
    assert error.details == (
        f"Expected: 1 {form}; Actual: a 6-byte buffer where element 0 declares 5 bytes at byte offset 4, "
        "but only 2 bytes remain; input name: in"
    )


def test_a_typed_bytes_tensor_counts_its_elements_as_values():
    error = failure("in", typed_tensor("in", "BYTES", [2], [b"x"]), None)
    assert error.details == "Expected: 2 values; Actual: 1 values; input name: in"


@pytest.mark.parametrize("stream", ["REQUEST:in", "RESPONSE:in", "TFLITE_TENSOR:in"])
def test_request_response_and_tflite_streams_are_not_implemented(stream):
    error = failure(stream, raw_tensor("in", "FP32", [1]), b"\0\0\0\0")
    assert error.code is StatusCode.NOT_IMPLEMENTED
    assert str(error).startswith("Functionality not implemented - ")


# ---------------------------------------------------------------- TENSOR (mediapipe::Tensor)


@pytest.mark.parametrize("datatype", ["FP32", "FP16", "INT32", "INT8", "UINT8", "BOOL"])
def test_a_tensor_stream_takes_the_six_mediapipe_tensor_datatypes(datatype):
    array = SAMPLES[datatype]
    _, _, back = round_trip("TENSOR:in", raw_tensor("in", datatype, list(array.shape)), raw_bytes(array))
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("datatype", ["FP64", "INT64", "INT16", "UINT64", "UINT32", "UINT16", "BYTES", "my_string"])
def test_a_tensor_stream_rejects_other_datatypes_with_ovms_text(datatype):
    error = failure("TENSOR:in", raw_tensor("in", datatype, [1]), b"")
    assert error.code is StatusCode.INVALID_PRECISION
    assert (
        str(error)
        == f"Invalid input precision - Not supported precision for Mediapipe tensor deserialization: {datatype}"
    )


def test_a_tensor_stream_rejects_zero_dimensions_too():
    error = failure("TENSOR_1:in", raw_tensor("in", "FP32", [2, 0]), b"")
    assert error.code is StatusCode.INVALID_SHAPE
    assert error.details == "Negative or zero dimension size is not acceptable: (2,0); input name: in"


def test_a_tensor_stream_checks_typed_fp16_by_value_count():
    error = failure("TENSOR:in", typed_tensor("in", "FP16", [1], None), None)
    assert (error.code, error.details) == (
        StatusCode.INVALID_VALUE_COUNT,
        "Expected: 2 values; Actual: 0 values; input name: in",
    )


# ---------------------------------------------------------------- TFTENSOR


def test_a_tftensor_stream_round_trips_typed_fp64():
    array = SAMPLES["FP64"]
    _, _, back = round_trip("TFTENSOR:in", typed_tensor("in", "FP64", [2], array.tolist()), None)
    np.testing.assert_array_equal(back, array)


def test_a_tftensor_raw_size_mismatch_uses_the_tensorflow_text():
    error = failure("TFTENSOR:in", raw_tensor("in", "INT64", [1]), b"\0\0\0\0")
    assert error.code is StatusCode.INVALID_CONTENT_SIZE
    assert error.details == (
        "Mediapipe deserialization content size mismatch; allocated TF Tensor: 8 bytes vs KServe buffer: 4 bytes"
    )


def test_a_tftensor_rejects_unknown_datatypes_and_negative_dimensions():
    error = failure("TFTENSOR:in", raw_tensor("in", "my_string", [1]), b"")
    assert (error.code, error.details) == (
        StatusCode.INVALID_PRECISION,
        "Not supported precision for Tensorflow tensor deserialization: my_string",
    )
    error = failure("TFTENSOR:in", raw_tensor("in", "FP32", [-1]), b"")
    assert error.details == "Negative dimension size is not acceptable: (-1); input name: in"


def test_a_zero_element_typed_tftensor_hits_ovms_copy_helper_texts():
    error = failure("TFTENSOR:in", typed_tensor("in", "FP32", [0], None), None)
    assert str(error) == "Invalid content size of tensor proto - Input does not have input tensor contents field"
    error = failure("TFTENSOR:in", typed_tensor("in", "INT8", [0], []), None)
    assert error.details == "Input does not have proper size of input tensor intcontents field"


@pytest.mark.parametrize(
    ("tensor", "raw"), [(raw_tensor("in", "BYTES", [1]), b"\1\0\0\0a"), (typed_tensor("in", "FP16", [0], []), None)]
)
def test_tftensor_bytes_and_typed_fp16_are_not_implemented_like_ovms(tensor, raw):
    error = failure("TFTENSOR:in", tensor, raw)
    assert error.code is StatusCode.NOT_IMPLEMENTED
    assert (
        error.details
        == "There is no support for types different than fp32, int64, int32, uint32, uint64, int8, uint8, bool"
    )


# ---------------------------------------------------------------- OVMS_PY_TENSOR


def test_a_py_tensor_raw_size_mismatch_uses_the_python_text():
    error = failure("OVMS_PY_TENSOR:in", raw_tensor("in", "FP32", [1]), b"abc")
    assert (
        str(error) == "Invalid content size of tensor proto - Invalid Python tensor buffer size. Actual: 3; Expected: 4"
    )


def test_a_py_tensor_carries_custom_raw_datatypes_unchecked_like_pyovms():
    out, data = encode_output(
        "out", decode_input(parse_stream("OVMS_PY_TENSOR:in"), raw_tensor("in", "my_string", [3]), b"hello")
    )
    assert (out.name, out.datatype, list(out.shape), data) == ("in", "my_string", [3], b"hello")


def test_a_py_tensor_output_is_named_after_the_tensor_not_the_stream():
    blob = pack_tensor("tensor_name", "INT32", [1], np.int32(7).tobytes(), py_tensor=True)
    out, data = encode_output("stream_name", mp.packet_creator.create_string(blob))
    assert (out.name, out.datatype, list(out.shape), data) == ("tensor_name", "INT32", [1], np.int32(7).tobytes())


def test_a_typed_py_tensor_of_bytes_becomes_the_length_prefixed_buffer_without_a_shape_check():
    packet = decode_input(parse_stream("OVMS_PY_TENSOR:in"), typed_tensor("in", "BYTES", [3], [b"ab", b"c"]), None)
    value = unpack_tensor(mp.packet_getter.get_bytes(packet))
    assert value == TensorValue("in", "BYTES", (3,), serialize_bytes([b"ab", b"c"]), py_tensor=True)


def test_a_typed_py_tensor_rejects_custom_datatypes_and_typed_fp16_like_ovms():
    error = failure("OVMS_PY_TENSOR:in", typed_tensor("in", "my_string", [1], None), None)
    assert (error.code, error.details) == (
        StatusCode.INVALID_PRECISION,
        "Provided datatype is invalid, custom datatypes are allowed only when raw_input_contents is used.",
    )
    error = failure("OVMS_PY_TENSOR:in", typed_tensor("in", "FP16", [0], None), None)
    assert (error.code, error.details) == (
        StatusCode.NOT_IMPLEMENTED,
        "There is no support for types different than fp32, i64, i32, i16, i8, u64, u32, u16, u8, bool",
    )
    error = failure("OVMS_PY_TENSOR:in", typed_tensor("in", "UINT16", [0], None), None)
    assert error.details == "Input does not have input tensor contents field"


# ---------------------------------------------------------------- the blob


def test_a_blob_round_trips_its_header_and_data():
    blob = pack_tensor("x", "UINT16", (2, 1), b"\1\0\2\0")
    assert unpack_tensor(blob) == TensorValue("x", "UINT16", (2, 1), b"\1\0\2\0")
    np.testing.assert_array_equal(unpack_tensor(blob).array(), np.array([[1], [2]], dtype=np.uint16))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"plain text",
        b"\x00OVMSNB-TENSOR\x01",
        b"\x00OVMSNB-TENSOR\x01\x09\0\0\0{}",
        b"\x00OVMSNB-TENSOR\x01\x02\0\0\0{}",
    ],
)
def test_anything_that_is_not_a_whole_blob_unpacks_to_none(blob):
    assert unpack_tensor(blob) is None


def test_an_ordinary_string_packet_is_output_as_one_bytes_element():
    out, data = encode_output("out", mp.packet_creator.create_string(b"plain"))
    assert (out.datatype, list(out.shape), data) == ("BYTES", [1], b"\5\0\0\0plain")


def test_tensor_value_arrays_explain_data_that_does_not_fill_the_shape():
    with pytest.raises(ValueError, match=r"declares FP32 shape \[2\] \(8 bytes\) but holds 4 bytes"):
        TensorValue("x", "FP32", (2,), b"\0\0\0\0").array()
    assert TensorValue("x", "my_string", (3,), b"abc").array().tolist() == [97, 98, 99]
