"""Extension tags: KServe tensors as stock MediaPipe packets (`INT:`, `FLOAT:`, `FLOATS:`, `MATRIX:`, ...)."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest

from ovms_notebook.codec import decode_input, encode_input, parse_stream
from ovms_notebook.codec.datatypes import TYPED_FIELDS
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

get = mp.packet_getter


def packet_for(stream: str, value: object, datatype: str | None = None) -> mp.Packet:
    tensor, raw = encode_input(parse_stream(stream).name, value, datatype)
    return decode_input(parse_stream(stream), tensor, raw)


def cpp(packet: mp.Packet) -> str:
    return repr(packet).split("C++ type: ", 1)[1][:-1]


def failure(stream: str, value: object, datatype: str | None = None) -> OvmsStatus:
    with pytest.raises(OvmsStatus) as caught:
        packet_for(stream, value, datatype)
    return caught.value


@pytest.mark.parametrize(
    ("stream", "value", "datatype", "ctype", "getter", "expected"),
    [
        ("BOOL:b", True, None, "bool", get.get_bool, True),
        ("INT:i", -5, None, "int", get.get_int, -5),
        ("INT:i", np.array([[200]], dtype=np.uint8), None, "int", get.get_int, 200),
        ("INT8:i", -128, "INT16", "signed char", get.get_int, -128),
        ("INT16:i", 32767, "INT32", "short", get.get_int, 32767),
        ("INT32:i", -(2**31), None, "int", get.get_int, -(2**31)),
        ("INT64:i", 2**63 - 1, None, "int64_t", get.get_int, 2**63 - 1),
        ("UINT8:u", 255, "UINT64", "unsigned char", get.get_uint, 255),
        ("UINT16:u", 65535, None, "unsigned short", get.get_uint, 65535),
        ("UINT32:u", 2**32 - 1, None, "unsigned int", get.get_uint, 2**32 - 1),
        ("UINT64:u", 2**64 - 1, "UINT64", "uint64_t", get.get_uint, 2**64 - 1),
        ("FLOAT:f", 1.5, "FP16", "float", get.get_float, 1.5),
        ("FLOAT:f", 0.25, "FP32", "float", get.get_float, 0.25),
        ("FLOAT:f", -2.5, "FP64", "float", get.get_float, -2.5),
        ("DOUBLE:d", 0.125, "FP64", "double", get.get_float, 0.125),
        ("DOUBLE:d", 0.5, "FP32", "double", get.get_float, 0.5),
        ("STRING:s", "héllo", None, "string", get.get_bytes, "héllo".encode()),
        ("STRING:s", np.frombuffer(b"a\x00\xff", dtype=np.uint8), None, "string", get.get_bytes, b"a\x00\xff"),
        (
            "BOOLS:b",
            [[True, False], [False, True]],
            None,
            "::std::vector<bool>",
            get.get_bool_list,
            [True, False, False, True],
        ),
        ("INTS:i", np.array([-3, 7], dtype=np.int8), None, "::std::vector<int>", get.get_int_list, [-3, 7]),
        ("FLOATS:f", [0.5, -1.0, 2.0], "FP64", "::std::vector<float>", get.get_float_list, [0.5, -1.0, 2.0]),
        ("FLOATS:f", np.zeros((0,), np.float32), None, "::std::vector<float>", get.get_float_list, []),
        ("STRINGS:s", ["a", "bc"], None, "::std::vector<std::string>", get.get_str_list, ["a", "bc"]),
    ],
)
def test_each_extension_tag_makes_its_stock_packet_type(stream, value, datatype, ctype, getter, expected):
    packet = packet_for(stream, value, datatype)
    assert cpp(packet) == ctype
    assert "timestamp: UNSET" in repr(packet)
    assert getter(packet) == expected


def test_the_wheel_reads_double_packets_back_with_float_precision_only():
    # mediapipe 0.10.21's get_float narrows a double to float: 0.1 reads back as 0.10000000149011612.
    assert get.get_float(packet_for("DOUBLE:d", 0.1)) == float(np.float32(0.1))


def test_matrix_takes_a_2d_tensor_as_rows_by_columns():
    matrix = np.arange(6, dtype=np.float64).reshape(2, 3)
    packet = packet_for("MATRIX:m", matrix)
    assert cpp(packet).startswith("Eigen::Matrix<float")
    np.testing.assert_array_equal(get.get_matrix(packet), matrix.astype(np.float32))


def test_matrix_reads_a_1d_tensor_as_a_column():
    packet = packet_for("MATRIX:m", np.array([1.0, 2.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(get.get_matrix(packet), [[1.0], [2.0], [3.0]])


def test_extension_tags_read_typed_contents_too():
    tensor = pb.ModelInferRequest.InferInputTensor(name="f", datatype="FP32", shape=[2])
    getattr(tensor.contents, TYPED_FIELDS["FP32"]).extend([1.5, 2.5])
    assert get.get_float_list(decode_input(parse_stream("FLOATS:f"), tensor, None)) == [1.5, 2.5]


@pytest.mark.parametrize(
    ("stream", "value", "datatype", "accepted"),
    [
        ("FLOAT:x", 1, "INT32", "FP32, FP64, FP16"),
        ("DOUBLE:x", 1.0, "FP16", "FP32, FP64"),
        ("INT:x", 1.0, "FP32", "INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64"),
        ("BOOL:x", 1, "UINT8", "BOOL"),
        ("STRING:x", 1, "INT8", "BYTES, UINT8"),
        ("STRINGS:x", [1, 2], "UINT8", "BYTES"),
        ("MATRIX:x", [1], "INT64", "FP32, FP64"),
    ],
)
def test_a_datatype_the_tag_does_not_take_is_an_invalid_precision_naming_the_accepted_ones(
    stream, value, datatype, accepted
):
    error = failure(stream, value, datatype)
    assert error.code is StatusCode.INVALID_PRECISION
    tag = stream.split(":")[0]
    assert str(error) == (
        f"Invalid input precision - Expected one of {accepted} for input stream tagged {tag}; Actual: {datatype}; "
        "input name: x"
    )


@pytest.mark.parametrize(
    ("stream", "value", "shape"),
    [
        ("BOOL:x", [True, False], "(2)"),
        ("INT:x", np.array([[1, 2]], dtype=np.int32), "(1,2)"),
        ("UINT64:x", np.zeros(0, np.uint64), "(0)"),
        ("FLOAT:x", np.ones((1, 2), np.float32), "(1,2)"),
        ("DOUBLE:x", np.ones((3, 1, 1)), "(3,1,1)"),
    ],
)
def test_a_scalar_tag_needs_exactly_one_value(stream, value, shape):
    error = failure(stream, value)
    assert error.code is StatusCode.INVALID_SHAPE
    assert (
        error.details == f"Expected 1 value for input stream tagged {stream[:-2]}; Actual shape: {shape}; input name: x"
    )


def test_a_scalar_tag_takes_any_shape_holding_one_value():
    assert get.get_int(packet_for("INT:x", np.array([[[7]]], dtype=np.int16))) == 7
    assert get.get_int(packet_for("INT:x", np.array(7, dtype=np.int64))) == 7  # shape []


def test_string_needs_one_bytes_element_or_a_1d_uint8_tensor():
    error = failure("STRING:x", ["a", "b"])
    assert (error.code, error.details) == (
        StatusCode.INVALID_SHAPE,
        "Expected 1 BYTES element for input stream tagged STRING; Actual shape: (2); input name: x",
    )
    error = failure("STRING:x", np.zeros((2, 2), np.uint8))
    assert error.details == (
        "Expected a 1-D UINT8 tensor (the string's bytes) for input stream tagged STRING; Actual shape: (2,2); "
        "input name: x"
    )


def test_matrix_needs_one_or_two_dimensions():
    error = failure("MATRIX:x", np.zeros((1, 2, 2), np.float32))
    assert (error.code, error.details) == (
        StatusCode.INVALID_SHAPE,
        "Expected 2 dimensions [rows, cols] (or 1 dimension [n], read as n x 1) for input stream tagged MATRIX; "
        "Actual shape: (1,2,2); input name: x",
    )


@pytest.mark.parametrize(
    ("stream", "value", "datatype", "details"),
    [
        ("INT:x", 2**31, None, "Value 2147483648 at index 0 does not fit C++ int (expected -2147483648..2147483647)"),
        ("INT8:x", 128, None, "Value 128 at index 0 does not fit C++ int8_t (expected -128..127)"),
        ("UINT8:x", -1, None, "Value -1 at index 0 does not fit C++ uint8_t (expected 0..255)"),
        ("UINT64:x", -1, None, "Value -1 at index 0 does not fit C++ uint64_t (expected 0..18446744073709551615)"),
        (
            "INT64:x",
            2**64 - 1,
            "UINT64",
            "Value 18446744073709551615 at index 0 does not fit C++ int64_t "
            "(expected -9223372036854775808..9223372036854775807)",
        ),
        (
            "INTS:x",
            [1, 2**40],
            None,
            "Value 1099511627776 at index 1 does not fit C++ int (expected -2147483648..2147483647)",
        ),
        ("FLOAT:x", 1e300, None, "Value 1e+300 at index 0 does not fit C++ float (largest 3.4028234663852886e+38)"),
        (
            "FLOATS:x",
            [1.0, -1e39],
            None,
            "Value -1e+39 at index 1 does not fit C++ float (largest 3.4028234663852886e+38)",
        ),
        (
            "MATRIX:x",
            [[1.0, 1e40]],
            None,
            "Value 1e+40 at index 1 does not fit C++ float (largest 3.4028234663852886e+38)",
        ),
    ],
)
def test_a_value_the_cpp_type_cannot_hold_is_rejected_before_the_packet_creator(stream, value, datatype, details):
    error = failure(stream, value, datatype)
    assert error.code is StatusCode.INVALID_VALUE_COUNT
    assert error.details == f"{details} for input stream tagged {stream[:-2]}; input name: x"


def test_strings_elements_must_be_utf8_because_the_wheel_reads_string_vectors_only_as_text():
    error = failure("STRINGS:x", np.array([b"ok", b"\xff"], dtype=object))
    assert error.code is StatusCode.INVALID_INPUT_FORMAT
    assert error.details == (
        "Expected UTF-8 text in every element for input stream tagged STRINGS (mediapipe 0.10.21 reads a "
        "std::vector<std::string> back only as text); Actual: element 1 is not UTF-8 (invalid start byte at byte 0); "
        "input name: x"
    )
    assert get.get_bytes(packet_for("STRING:x", b"\xff")) == b"\xff"  # a single string is read as bytes


def test_float_tags_pass_infinities_and_nan_through():
    assert get.get_float(packet_for("FLOAT:x", float("inf"))) == float("inf")
    assert np.isnan(get.get_float_list(packet_for("FLOATS:x", [float("nan")]))[0])


def test_extension_tags_report_size_errors_with_ovms_tensor_texts():
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT32", shape=[1])
    with pytest.raises(OvmsStatus) as caught:
        decode_input(parse_stream("INT:x"), tensor, b"\0\0")
    assert (
        str(caught.value) == "Invalid content size of tensor proto - Expected: 4 bytes; Actual: 2 bytes; input name: x"
    )
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[-1])
    with pytest.raises(OvmsStatus) as caught:
        decode_input(parse_stream("FLOATS:x"), tensor, b"")
    assert caught.value.details == "Negative dimension size is not acceptable: (-1); input name: x"
