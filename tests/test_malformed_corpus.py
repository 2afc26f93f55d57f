"""A corpus of malformed requests, each sent between two valid ones on one stream, and on its own as unary.

Every case names the graph it targets, builds the bad request (a message or raw bytes), and gives the
exact outcome: the in-band error text of a stream that lives on (OVMS's text, spec §2.2/§4.4/§5, or ours
where the spec README says so), or the final status of a stream that ends (graph errors, transport
errors, fatal first requests); and the unary code and details. Around each bad request a valid request
before (OVMS_MP_TIMESTAMP 10) and after (11) must come back with its value and timestamp, then the server
must still answer a fresh stream and ServerLive: the server, the stream where OVMS keeps it, and the
process (this one: the server runs in it) live on.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as triton_pb

import ovms_notebook
from ovms_notebook.codec import decode_output, encode_input
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import request, triton_stream
from tests.ovms_python_graphs import PYTHON_NODE, write_scripts
from tests.test_ovms_python_server import ADD_TWO_INPUTS, save_add_model
from tests.test_stream_ovms import SPLIT  # a graph whose calculator fails in Process
from tests.wire import Conversation, infer

MAX_MESSAGE = 64 * 1024
SUB = "; partial deserialization of subsequent requests"
FIRST = "; partial deserialization of first request"
VALIDATE = "; validate subsequent requests"
BEFORE, AFTER = 10, 11
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def passthrough(input_spec: str, output_spec: str) -> str:
    return f"""
input_stream: "{input_spec}"
output_stream: "{output_spec}"
node {{ calculator: "PassThroughCalculator" input_stream: "{input_spec.split(':')[-1]}"
       output_stream: "{output_spec.split(':')[-1]}" }}
"""


TWO = """
input_stream: "a"
input_stream: "b"
output_stream: "a_out"
output_stream: "b_out"
node { calculator: "PassThroughCalculator" input_stream: "a" output_stream: "a_out" }
node { calculator: "PassThroughCalculator" input_stream: "b" output_stream: "b_out" }
"""

RAISE_ON_NEGATIVE = '''
import struct
from pyovms import Tensor


class OvmsPythonModel:
    def execute(self, inputs):
        value = struct.unpack("f", bytes(inputs[0]))[0]
        if value < 0:
            raise ValueError(f"negative input {value}")
        return [Tensor("output", struct.pack("<f", value + 1.0), shape=(1,), datatype="FP32")]
'''

GRAPHS = {
    "ov": passthrough("in", "out"),
    "two": TWO,
    "tensor": passthrough("TENSOR:in", "TENSOR:out"),
    "tf": passthrough("TFTENSOR:in", "TFTENSOR:out"),
    "pyt": passthrough("OVMS_PY_TENSOR:in", "OVMS_PY_TENSOR:out"),
    "image": passthrough("IMAGE:in", "IMAGE:out"),
    "mpimage": passthrough("MP_IMAGE:in", "MP_IMAGE:out"),
    "int": passthrough("INT:in", "out"),
    "floats": passthrough("FLOATS:in", "out"),
    "string": passthrough("STRING:in", "out"),
    "matrix": passthrough("MATRIX:in", "out"),
    "split": SPLIT,
    "py_raises": PYTHON_NODE % "raise_on_negative.py",
    "ov_add": ADD_TWO_INPUTS % "add",
}

F = np.float32


# -- valid requests per graph: the inputs for value v, and the (output name, array) that must come back -------

def _image(v: float) -> np.ndarray:
    return np.full((2, 2, 3), int(v), dtype=np.uint8)


@dataclass(frozen=True)
class Valid:
    inputs: Callable[[float], dict[str, object]]
    output: Callable[[float], tuple[str, object]]


VALID: dict[str, Valid] = {
    "ov": Valid(lambda v: {"in": F([v])}, lambda v: ("out", F([v]))),
    "two": Valid(lambda v: {"a": F([v]), "b": F([v])}, lambda v: ("a_out", F([v]))),
    "tensor": Valid(lambda v: {"in": F([v])}, lambda v: ("out", F([v]))),
    "tf": Valid(lambda v: {"in": F([v])}, lambda v: ("out", F([v]))),
    "pyt": Valid(lambda v: {"in": F([v])}, lambda v: ("in", F([v]))),
    "image": Valid(lambda v: {"in": _image(v)}, lambda v: ("out", _image(v))),
    "mpimage": Valid(lambda v: {"in": _image(v)}, lambda v: ("out", _image(v))),
    "int": Valid(lambda v: {"in": np.int32([int(v)])}, lambda v: ("out", np.int32([int(v)]))),
    "floats": Valid(lambda v: {"in": F([v, v])}, lambda v: ("out", F([v, v]))),
    "string": Valid(lambda v: {"in": np.array([f"s{v}".encode()], dtype=object)},
                    lambda v: ("out", np.array([f"s{v}".encode()], dtype=object))),
    "matrix": Valid(lambda v: {"in": F([[v, v]])}, lambda v: ("out", F([[v, v]]))),
    "split": Valid(lambda v: {"in": F([v, v, v, v])}, lambda v: ("out", F([v, v, v]))),
    "py_raises": Valid(lambda v: {"input": F([v])}, lambda v: ("output", F([v + 1]))),
    "ov_add": Valid(lambda v: {"in": F([v]), "in2": F([1.0])}, lambda v: ("sum", F([v + 1]))),
}


def valid_request(graph: str, value: float, timestamp: int | None) -> pb.ModelInferRequest:
    return request(graph, VALID[graph].inputs(value), timestamp=timestamp)


def check_valid(graph: str, response: pb.ModelInferResponse, value: float, timestamp: int | None) -> None:
    name, expected = VALID[graph].output(value)
    assert response.outputs[0].name == name
    np.testing.assert_array_equal(decode_output(response.outputs[0], response.raw_output_contents[0]), expected)
    if timestamp is not None:
        assert response.parameters["OVMS_MP_TIMESTAMP"].int64_param == timestamp


# -- building bad requests ----------------------------------------------------------------------------------

def tensor_request(graph: str, name: str, datatype: str, shape: list[int], raw: bytes | None = None,
                   timestamp: int | None = None, **typed: list) -> pb.ModelInferRequest:
    """One input with exactly the given datatype, shape and raw bytes or typed contents (nothing checked)."""
    message = pb.ModelInferRequest(model_name=graph)
    tensor = message.inputs.add(name=name, datatype=datatype, shape=shape)
    for field_name, values in typed.items():
        getattr(tensor.contents, field_name).extend(values)
    if raw is not None:
        message.raw_input_contents.append(raw)
    if timestamp is not None:
        message.parameters["OVMS_MP_TIMESTAMP"].int64_param = timestamp
    return message


def with_parameter(message: pb.ModelInferRequest, key: str, **choice: object) -> pb.ModelInferRequest:
    parameter = message.parameters[key]
    if choice:
        (field_name, value), = choice.items()
        setattr(parameter, field_name, value)
    else:
        parameter.Clear()
    return message


def triton_parameter(message: pb.ModelInferRequest, key: str, **choice: object) -> bytes:
    """The message re-serialized through tritonclient's proto with a Triton-only parameter kind."""
    triton_message = triton_pb.ModelInferRequest.FromString(message.SerializeToString())
    (field_name, value), = choice.items()
    setattr(triton_message.parameters[key], field_name, value)
    return triton_message.SerializeToString()


def ov(datatype: str, shape: list[int], raw: bytes | None = None, **typed: list) -> Callable[[], object]:
    return lambda: tensor_request("ov", "in", datatype, shape, raw, **typed)


def on(graph: str, datatype: str, shape: list[int], raw: bytes | None = None, **typed: list) -> Callable[[], object]:
    return lambda: tensor_request(graph, "in", datatype, shape, raw, **typed)


def ov_value(**changes: object) -> Callable[[], object]:
    """A valid "ov" request (value 5) with parameters or fields changed."""
    def build() -> pb.ModelInferRequest:
        message = valid_request("ov", 5.0, None)
        for key, value in changes.items():
            setattr(message, key, value)
        return message
    return build


def ov_timestamp(**choice: object) -> Callable[[], object]:
    return lambda: with_parameter(valid_request("ov", 5.0, None), "OVMS_MP_TIMESTAMP", **choice)


def two_inputs(first: str, second: str) -> Callable[[], object]:
    def build() -> pb.ModelInferRequest:
        message = request("ov", {first: F([1.0])})
        tensor, raw = encode_input(second, F([2.0]))
        message.inputs.append(tensor)
        message.raw_input_contents.append(raw)
        return message
    return build


def mixed_raw_and_typed() -> pb.ModelInferRequest:
    message = tensor_request("ov", "in", "FP32", [1], F([1.0]).tobytes())
    message.inputs[0].contents.fp32_contents.append(1.0)
    return message


def raw_count(inputs: int, raws: int) -> Callable[[], object]:
    def build() -> pb.ModelInferRequest:
        message = pb.ModelInferRequest(model_name="ov")
        for _ in range(inputs):
            message.inputs.add(name="in", datatype="FP32", shape=[1])
        message.raw_input_contents.extend([F([1.0]).tobytes()] * raws)
        return message
    return build


# -- the corpus ---------------------------------------------------------------------------------------------

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
UNKNOWN = grpc.StatusCode.UNKNOWN
CONTENT = "Invalid content size of tensor proto - "
COUNT = "Invalid number of values in tensor proto container - "
SHAPE = "Invalid input shape - "
PRECISION = "Invalid input precision - "
FORMAT = "Inputs inside buffer does not match expected format. - "
STRUCTURE = ("Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
             "ModelInferRequest::raw_input_contents is not allowed - ")
BAD_TS = "Malformed packet timestamp - "
TS_FORMAT = BAD_TS + "Invalid timestamp format in request parameter OVMS_MP_TIMESTAMP. Should be int64"
NOT_IMPLEMENTED = "Functionality not implemented - "
IMAGE_FORMAT = FORMAT + "Invalid KFS request datatype, conversion to Mediapipe ImageFrame format failed."
EXECUTION = "Mediapipe execution failed. MP status - "
OV_SHAPE = (EXECUTION + "INVALID_ARGUMENT: CalculatorGraph::Run() failed: \nCalculator::Process() for node "
            '"OpenVINOInferenceCalculator" failed: InferenceError: inference failed: Internal inference error - '
            "Eltwise shape infer input shapes dim index: 0 mismatch")


@dataclass(frozen=True)
class Case:
    """One malformed request and its exact outcome.

    `in_band`: the stream's in-band error without its context suffix (the stream lives on); the unary
    call fails with `unary_code` and the same text (or "Unknown error" for codes OVMS does not map).
    `final`: (code, details prefix) of a stream that ends; the valid request after is not sent.
    `first`: the bad request opens the stream (no valid request before it).
    `stream`/`unary`: whether to run that half (unary is off where the case is about streams).
    """

    id: str
    graph: str
    build: Callable[[], object]
    in_band: str | None = None
    unary_code: grpc.StatusCode | None = INVALID_ARGUMENT
    final: tuple[grpc.StatusCode, str] | None = None
    first: bool = False
    context: str = SUB
    stream: bool = True
    unary: bool = True
    unary_details: str | None = None
    exact: bool = False  # a final status whose whole text is known (else `final` gives its start)


def raw_size_case(datatype: str, size: int) -> Case:
    return Case(f"raw-size-{datatype}", "ov", ov(datatype, [2], b"\0" * (2 * size - 1)),
                CONTENT + f"Expected: {2 * size} bytes; Actual: {2 * size - 1} bytes; input name: in")


NUMERIC_SIZES = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
                 "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8}


def value_count(datatype: str, expected: int, actual: int, **typed: list) -> Case:
    field_name = next(iter(typed))
    return Case(f"typed-{datatype}-in-{field_name}", "ov", ov(datatype, [1], **typed),
                COUNT + f"Expected: {expected} values; Actual: {actual} values; input name: in")


def timestamp_case(name: str, value: int) -> Case:
    return Case(f"timestamp-{name}", "ov", ov_timestamp(int64_param=value), BAD_TS + name, UNKNOWN)


CASES: list[Case] = [
    # every KServe datatype with a raw buffer one byte short
    *[raw_size_case(datatype, size) for datatype, size in NUMERIC_SIZES.items()],
    Case("raw-size-BYTES", "ov", ov("BYTES", [1], b"\x05\0\0\0ab"),
         CONTENT + "Expected: 1 BYTES elements (each a 4-byte little-endian length, then its bytes); Actual: a "
         "6-byte buffer where element 0 declares 5 bytes at byte offset 4, but only 2 bytes remain; input name: in"),
    Case("raw-size-custom-datatype", "ov", ov("my_string", [3], b"abc"),
         CONTENT + "Expected: 0 bytes; Actual: 3 bytes; input name: in"),
    # typed contents in the wrong field, too many, out of range
    value_count("FP32", 4, 0, int_contents=[1]),
    value_count("INT64", 8, 0, int_contents=[1]),
    value_count("UINT8", 1, 0, int_contents=[1]),
    value_count("BOOL", 1, 0, int_contents=[1]),
    value_count("FP64", 8, 0, fp32_contents=[1.0]),
    value_count("FP16", 2, 0, fp32_contents=[1.0]),
    value_count("UINT64", 8, 0, uint_contents=[1]),
    Case("typed-INT32-too-many", "ov", ov("INT32", [1], int_contents=[1, 2]),
         COUNT + "Expected: 4 values; Actual: 8 values; input name: in"),
    Case("typed-BYTES-too-few", "ov", ov("BYTES", [2], bytes_contents=[b"x"]),
         COUNT + "Expected: 2 values; Actual: 1 values; input name: in"),
    Case("typed-INT8-out-of-range", "ov", ov("INT8", [1], int_contents=[300]),
         COUNT + "Value 300 at index 0 of int_contents is out of range for INT8 (expected -128..127); input name: in"),
    Case("typed-UINT16-out-of-range", "ov", ov("UINT16", [2], uint_contents=[1, 70000]),
         COUNT + "Value 70000 at index 1 of uint_contents is out of range for UINT16 (expected 0..65535); "
         "input name: in"),
    # raw and typed mixed, raw counts that do not match the inputs
    Case("raw-and-typed-mixed", "ov", mixed_raw_and_typed,
         STRUCTURE + "Passing buffers both in InferInputTensor contents and in raw_input_contents is not allowed. "
         "Detected buffer in InferInputTensor contents for input: in"),
    Case("raw-count-2-for-1-input", "ov", raw_count(1, 2),
         STRUCTURE + "Size of raw_input_contents: 2 is different than number of inputs: 1"),
    Case("raw-count-1-for-0-inputs", "ov", raw_count(0, 1),
         STRUCTURE + "Size of raw_input_contents: 1 is different than number of inputs: 0"),
    # shapes: negative, zero where not allowed, overflowing, scalar
    Case("shape-negative", "ov", ov("FP32", [-1], b""),
         SHAPE + "Negative dimension size is not acceptable: (-1); input name: in"),
    Case("shape-int64-min", "ov", ov("FP32", [1, INT64_MIN], b""),
         SHAPE + f"Negative dimension size is not acceptable: (1,{INT64_MIN}); input name: in"),
    Case("shape-overflow", "ov", ov("FP32", [2**62, 2**62], b""),
         CONTENT + "Provided shape and datatype declare too large buffer."),
    Case("shape-overflow-typed", "ov", ov("FP32", [INT64_MAX, 4], fp32_contents=[1.0]),
         CONTENT + "Provided shape and datatype declare too large buffer."),
    Case("shape-huge-one-byte", "ov", ov("INT8", [INT64_MAX], b"\1"),
         CONTENT + f"Expected: {INT64_MAX} bytes; Actual: 1 bytes; input name: in"),
    Case("shape-scalar-two-values", "ov", ov("FP32", [], F([1, 2]).tobytes()),
         CONTENT + "Expected: 4 bytes; Actual: 8 bytes; input name: in"),
    Case("tensor-zero-dim", "tensor", on("tensor", "FP32", [0], b""),
         SHAPE + "Negative or zero dimension size is not acceptable: (0); input name: in"),
    Case("tensor-negative-dim", "tensor", on("tensor", "FP32", [2, -3], b""),
         SHAPE + "Negative or zero dimension size is not acceptable: (2,-3); input name: in"),
    Case("tensor-over-int-max", "tensor", on("tensor", "FP32", [2**20, 2**20], b""),
         CONTENT + "Provided shape and datatype declare too large buffer."),
    Case("tensor-FP64", "tensor", on("tensor", "FP64", [1], F([1, 2]).tobytes()),
         PRECISION + "Not supported precision for Mediapipe tensor deserialization: FP64"),
    Case("tf-negative-dim", "tf", on("tf", "FP32", [-1], b""),
         SHAPE + "Negative dimension size is not acceptable: (-1); input name: in"),
    Case("tf-raw-size", "tf", on("tf", "FP32", [2], F([1]).tobytes()),
         CONTENT + "Mediapipe deserialization content size mismatch; allocated TF Tensor: 8 bytes vs KServe "
         "buffer: 4 bytes"),
    Case("tf-BYTES-raw", "tf", on("tf", "BYTES", [1], b"\1\0\0\0a"),
         NOT_IMPLEMENTED + "There is no support for types different than fp32, int64, int32, uint32, uint64, int8, "
         "uint8, bool", UNKNOWN),
    Case("tf-unknown-datatype", "tf", on("tf", "FP8", [1], b"\0"),
         PRECISION + "Not supported precision for Tensorflow tensor deserialization: FP8"),
    Case("pyt-custom-typed", "pyt", on("pyt", "my_string", [1], bytes_contents=[b"x"]),
         PRECISION + "Provided datatype is invalid, custom datatypes are allowed only when raw_input_contents is "
         "used."),
    Case("pyt-raw-size", "pyt", on("pyt", "FP32", [1], b"abc"),
         CONTENT + "Invalid Python tensor buffer size. Actual: 3; Expected: 4"),
    Case("pyt-negative-dim", "pyt", on("pyt", "UINT8", [-2], b""),
         SHAPE + "Negative dimension size is not acceptable: (-2); input name: in"),
    # missing, duplicate, unknown inputs
    Case("unknown-input", "ov", lambda: request("ov", {"nope": F([1.0])}), "Unexpected input - nope is unexpected"),
    Case("unnamed-input", "ov", lambda: request("ov", {"": F([1.0])}), "Unexpected input -  is unexpected"),
    Case("duplicate-input", "ov", two_inputs("in", "in"),
         "Unexpected input - in is given more than once; each input stream takes one packet per timestamp"),
    Case("unknown-after-known-input", "ov", two_inputs("in", "other"), "Unexpected input - other is unexpected"),
    Case("unary-missing-input", "two", lambda: request("two", {"a": F([1.0])}),
         "Invalid number of inputs - Not all input packets created", stream=False),
    Case("unary-no-inputs", "ov", lambda: pb.ModelInferRequest(model_name="ov"),
         "Invalid number of inputs - Not all input packets created", stream=False),
    # image layouts, channel counts, sizes
    Case("image-2-dims", "image", on("image", "UINT8", [4, 4], b"\0" * 16),
         SHAPE + "Invalid Mediapipe Image input shape size. Expected: 3; Actual: 2"),
    Case("image-NHWC", "image", on("image", "UINT8", [1, 2, 2, 3], b"\0" * 12),
         SHAPE + "Invalid Mediapipe Image input shape size. Expected: 3; Actual: 4"),
    Case("image-CHW", "image", on("image", "UINT8", [3, 8, 8], b"\0" * 192), IMAGE_FORMAT),
    Case("image-2-channels", "image", on("image", "UINT8", [2, 2, 2], b"\0" * 8), IMAGE_FORMAT),
    Case("image-FP32-3-channels", "image", on("image", "FP32", [2, 2, 3], b"\0" * 48), IMAGE_FORMAT),
    Case("image-BOOL", "image", on("image", "BOOL", [2, 2, 3], b"\0" * 12), IMAGE_FORMAT),
    Case("image-INT64", "image", on("image", "INT64", [1, 1, 1], b"\0" * 8), IMAGE_FORMAT),
    Case("image-zero-height", "image", on("image", "UINT8", [0, 2, 3], b""),
         SHAPE + "Invalid Mediapipe Image input height. Expected greater than 0; Actual: 0; Expected layout - HWC."),
    Case("image-negative-width", "image", on("image", "UINT8", [2, -2, 3], b""),
         SHAPE + "Invalid Mediapipe Image input width. Expected greater than 0; Actual: -2; Expected layout - HWC."),
    Case("image-zero-channels", "image", on("image", "UINT8", [2, 2, 0], b""),
         SHAPE + "Invalid Mediapipe Image input number of channels. Expected greater than 0; Actual: 0; "
         "Expected layout - HWC."),
    Case("image-buffer-short", "image", on("image", "UINT8", [2, 2, 3], b"\0" * 11),
         CONTENT + "Invalid Mediapipe Image input buffer size. Actual: 11; Expected: 12"),
    Case("image-overflow", "image", on("image", "UINT8", [2**40, 2**40, 2**40], b"\0"),
         CONTENT + "Invalid Mediapipe Image input: shape dimensions overflow size_t"),
    Case("image-typed-contents", "image", on("image", "UINT8", [1, 1, 3], uint_contents=[1, 2, 3]),
         "Mediapipe execution failed. MP status"),
    Case("mp-image-16-bit", "mpimage", on("mpimage", "UINT16", [2, 2, 3], b"\0" * 24),
         FORMAT + "Expected 8-bit (UINT8, INT8) or FP32 pixels for input stream tagged MP_IMAGE; Actual: UINT16 "
         "with 3 channels, which mediapipe 0.10.21 cannot hold in a mediapipe::Image (use an IMAGE stream for "
         "16-bit frames); input name: in"),
    # extension kinds with the wrong datatype or shape
    Case("int-given-FP32", "int", on("int", "FP32", [1], F([1]).tobytes()),
         PRECISION + "Expected one of INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 for input stream "
         "tagged INT; Actual: FP32; input name: in"),
    Case("int-given-two-values", "int", on("int", "INT32", [2], b"\0" * 8),
         SHAPE + "Expected 1 value for input stream tagged INT; Actual shape: (2); input name: in"),
    Case("int-out-of-range", "int", on("int", "INT64", [1], struct.pack("<q", 2**40)),
         COUNT + "Value 1099511627776 at index 0 does not fit C++ int (expected -2147483648..2147483647) for input "
         "stream tagged INT; input name: in"),
    Case("floats-given-INT32", "floats", on("floats", "INT32", [1], b"\0" * 4),
         PRECISION + "Expected one of FP16, FP32, FP64 for input stream tagged FLOATS; Actual: INT32; input name: in"),
    Case("string-given-FP32", "string", on("string", "FP32", [1], b"\0" * 4),
         PRECISION + "Expected one of BYTES, UINT8 for input stream tagged STRING; Actual: FP32; input name: in"),
    Case("matrix-3-dims", "matrix", on("matrix", "FP32", [1, 1, 1], b"\0" * 4),
         SHAPE + "Expected 2 dimensions [rows, cols] (or 1 dimension [n], read as n x 1) for input stream tagged "
         "MATRIX; Actual shape: (1,1,1); input name: in"),
    # OVMS_MP_TIMESTAMP of every wrong kind and value
    Case("timestamp-string", "ov", ov_timestamp(string_param="10"), TS_FORMAT, UNKNOWN),
    Case("timestamp-bool", "ov", ov_timestamp(bool_param=True), TS_FORMAT, UNKNOWN),
    Case("timestamp-unset-oneof", "ov", ov_timestamp(), TS_FORMAT, UNKNOWN),
    Case("timestamp-double", "ov", lambda: triton_parameter(valid_request("ov", 5.0, None), "OVMS_MP_TIMESTAMP",
                                                             double_param=12.5), TS_FORMAT, UNKNOWN),
    Case("timestamp-uint64", "ov", lambda: triton_parameter(valid_request("ov", 5.0, None), "OVMS_MP_TIMESTAMP",
                                                             uint64_param=12), TS_FORMAT, UNKNOWN),
    timestamp_case("Timestamp::Unset()", INT64_MIN),
    timestamp_case("Timestamp::Unstarted()", INT64_MIN + 1),
    timestamp_case("Timestamp::PreStream()", INT64_MIN + 2),
    timestamp_case("Timestamp::PostStream()", INT64_MAX - 2),
    timestamp_case("Timestamp::OneOverPostStream()", INT64_MAX - 1),
    timestamp_case("Timestamp::Done()", INT64_MAX),
    Case("timestamp-repeated", "ov", lambda: valid_request("ov", 5.0, BEFORE),
         BAD_TS + 'input stream "in" needs a timestamp greater than 10, the last one it received; got 10', UNKNOWN,
         unary=False),
    Case("timestamp-decreasing", "ov", lambda: valid_request("ov", 5.0, 3),
         BAD_TS + 'input stream "in" needs a timestamp greater than 10, the last one it received; got 3', UNKNOWN,
         unary=False),
    # first requests: bad ones are in-band, fatal ones end the stream before any response
    Case("first-request-bad-size", "ov", ov("FP32", [1], b""),
         CONTENT + "Expected: 4 bytes; Actual: 0 bytes; input name: in", first=True, context=FIRST),
    Case("first-request-bad-timestamp", "ov", ov_timestamp(int64_param=INT64_MAX), BAD_TS + "Timestamp::Done()",
         UNKNOWN, first=True, context=FIRST),
    Case("first-request-no-inputs", "ov", lambda: pb.ModelInferRequest(model_name="ov"), first=True, unary=False),
    Case("first-request-side-packet-double", "ov",
         lambda: triton_parameter(valid_request("ov", 5.0, None), "threshold", double_param=0.5),
         final=(UNKNOWN, "Unknown error"), first=True, unary_code=UNKNOWN, unary_details="Unknown error"),
    Case("first-request-side-packet-uint64", "ov",
         lambda: triton_parameter(valid_request("ov", 5.0, None), "priority", uint64_param=2**64 - 1),
         final=(UNKNOWN, "Unknown error"), first=True, unary_code=UNKNOWN, unary_details="Unknown error"),
    Case("first-request-side-packet-unset", "ov", lambda: with_parameter(valid_request("ov", 5.0, None), "x"),
         final=(UNKNOWN, "Unknown error"), first=True, unary_code=UNKNOWN, unary_details="Unknown error"),
    Case("first-request-side-packet-py", "ov",
         lambda: with_parameter(valid_request("ov", 5.0, None), "py", string_param="x"),
         final=(grpc.StatusCode.FAILED_PRECONDITION, "Failed to initialize mediapipe graph - Incoming input side "
                "packet: py is special reserved name and cannot be used"), first=True,
         unary_code=grpc.StatusCode.FAILED_PRECONDITION,
         unary_details="Failed to initialize mediapipe graph - Incoming input side packet: py is special reserved "
         "name and cannot be used"),
    Case("first-request-unknown-graph", "ov", lambda: request("nope", {"in": F([1.0])}),
         final=(grpc.StatusCode.NOT_FOUND, "Mediapipe graph definition with requested name is not found"),
         first=True, unary_code=grpc.StatusCode.NOT_FOUND,
         unary_details="Mediapipe graph definition with requested name is not found"),
    # name and version mid-stream
    Case("wrong-name-mid-stream", "ov", ov_value(model_name="two"),
         "Subsequent request with incorrect servable name", context=VALIDATE, unary=False),
    Case("wrong-version-mid-stream", "ov", ov_value(model_version="2"),
         "Subsequent request with incorrect servable version", context=VALIDATE, unary=False),
    Case("non-numeric-version", "ov", ov_value(model_version="abc"),
         "Subsequent request with incorrect servable version", context=VALIDATE,
         unary_details="invalid model version format in request"),
    # transport: over the size limit, garbage bytes
    Case("over-size-limit", "ov", ov("UINT8", [MAX_MESSAGE], b"\0" * MAX_MESSAGE),
         final=(grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER: Received message larger than max"),
         unary_code=grpc.StatusCode.RESOURCE_EXHAUSTED, unary_details="SERVER: Received message larger than max"),
    Case("garbage-bytes", "ov", lambda: b"\xff\xff\xff\xff not a ModelInferRequest",
         final=(grpc.StatusCode.INTERNAL, "Exception deserializing request!"),
         unary_code=grpc.StatusCode.INTERNAL, unary_details="Exception deserializing request!"),
    Case("truncated-message", "ov", lambda: valid_request("ov", 5.0, None).SerializeToString()[:-3],
         final=(grpc.StatusCode.INTERNAL, "Exception deserializing request!"),
         unary_code=grpc.StatusCode.INTERNAL, unary_details="Exception deserializing request!"),
    # graphs that fail while running
    Case("calculator-fails-in-process", "split", lambda: request("split", {"in": F([1.0])}),
         final=(INVALID_ARGUMENT, EXECUTION + "INTERNAL: CalculatorGraph::Run() failed: \nCalculator::Process() for "
                'node "SplitFloatVectorCalculator" failed: '),
         unary_details=EXECUTION + "INTERNAL: CalculatorGraph::Run() failed: \nCalculator::Process() for node "
         '"SplitFloatVectorCalculator" failed: '),
    Case("python-node-raises", "py_raises", lambda: request("py_raises", {"input": F([-1.0])}),
         final=(INVALID_ARGUMENT, EXECUTION + "INTERNAL: CalculatorGraph::Run() failed: \nCalculator::Process() for "
                'node "pythonNode" failed: Error occurred during graph execution'),
         unary_details=EXECUTION + "INTERNAL: CalculatorGraph::Run() failed: \nCalculator::Process() for node "
         '"pythonNode" failed: Error occurred during graph execution'),
    Case("openvino-wrong-input-shape", "ov_add", lambda: request("ov_add", {"in": F([1, 2, 3]), "in2": F([1, 2])}),
         final=(INVALID_ARGUMENT, OV_SHAPE), unary_details=OV_SHAPE, exact=True),
]


# -- the server ---------------------------------------------------------------------------------------------

def write_repository(root: Path) -> Path:
    """Every corpus graph, the Python node's scripts and the OpenVINO "add" model under `root`; returns it."""
    for name, text in GRAPHS.items():
        (root / name).mkdir()
        (root / name / "graph.pbtxt").write_text(text)
    write_scripts(root / "py_raises")
    (root / "py_raises" / "scripts" / "raise_on_negative.py").write_text(RAISE_ON_NEGATIVE)
    save_add_model(root / "add" / "1" / "model.xml")
    config = {"model_config_list": [{"config": {"name": "add", "base_path": "add"}}],
              "mediapipe_config_list": [{"name": name, "base_path": name} for name in GRAPHS]}
    (root / "config.json").write_text(json.dumps(config))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    server = ovms_notebook.serve(write_repository(tmp_path_factory.mktemp("corpus")), max_message_bytes=MAX_MESSAGE)
    assert not [d.name for d in server.repository.definitions if not d.available]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def assert_server_serves(channel: grpc.Channel, graph: str) -> None:
    """ServerLive answers and a fresh stream on the case's graph gets its valid request back."""
    assert unary_live(channel)
    talk = Conversation(channel)
    talk.send(valid_request(graph, 7.0, 100))
    check_valid(graph, talk.receive().infer_response, 7.0, 100)
    ending = talk.end()
    assert (ending.code, ending.responses) == (grpc.StatusCode.OK, [])


def unary_live(channel: grpc.Channel) -> bool:
    from ovms_notebook.proto.service import METHODS
    method = METHODS["ServerLive"]
    call = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                               response_deserializer=method.response.FromString)
    return call(pb.ServerLiveRequest(), timeout=10).live


def test_the_corpus_is_big_and_its_ids_are_unique():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.stream], ids=lambda c: c.id)
def test_bad_request_on_a_stream_between_valid_ones(case: Case, channel: grpc.Channel):
    talk = Conversation(channel)
    if not case.first:
        talk.send(valid_request(case.graph, 1.0, BEFORE))
        check_valid(case.graph, talk.receive().infer_response, 1.0, BEFORE)
    talk.send(case.build())
    if case.final is not None:
        ending = talk.end()
        assert [r.error_message for r in ending.responses] == []
        assert [r.infer_response.outputs[0].name for r in ending.responses] == []
        code, details = case.final
        assert ending.code == code, ending.details
        assert ending.details == details if case.exact else ending.details.startswith(details), ending.details
    else:
        if case.in_band is not None:
            response = talk.receive()
            assert response.error_message == case.in_band + case.context
            assert not response.HasField("infer_response")
        talk.send(valid_request(case.graph, 2.0, AFTER))
        check_valid(case.graph, talk.receive().infer_response, 2.0, AFTER)
        ending = talk.end()
        assert (ending.code, ending.details, ending.responses) == (grpc.StatusCode.OK, "", [])
    assert_server_serves(channel, case.graph)


@pytest.mark.parametrize("case", [c for c in CASES if c.unary and (c.in_band or c.final)], ids=lambda c: c.id)
def test_bad_request_as_unary_then_a_valid_one(case: Case, channel: grpc.Channel):
    with pytest.raises(grpc.RpcError) as caught:
        infer(channel, case.build())
    expected = case.unary_details
    if expected is None:
        expected = case.in_band if case.unary_code != UNKNOWN else "Unknown error"
    assert caught.value.code() == case.unary_code
    if case.final is not None and not case.exact:
        assert caught.value.details().startswith(expected), caught.value.details()
    else:
        assert caught.value.details() == expected
    response = infer(channel, valid_request(case.graph, 3.0, None))
    check_valid(case.graph, response, 3.0, 0)
    assert unary_live(channel)


@pytest.mark.parametrize(("parameters", "text"), [
    ({"OVMS_MP_TIMESTAMP": 12.5}, TS_FORMAT),
    ({"OVMS_MP_TIMESTAMP": "12"}, TS_FORMAT),
    ({"OVMS_MP_TIMESTAMP": True}, TS_FORMAT),
    ({"OVMS_MP_TIMESTAMP": -(2**63)}, BAD_TS + "Timestamp::Unset()"),
])
def test_tritonclient_parameters_of_every_kind_are_in_band_errors(server, parameters, text):
    def fp32(value: float) -> list:
        tensor = triton.InferInput("in", [1], "FP32")
        tensor.set_data_from_numpy(F([value]))
        return [tensor]

    with triton.InferenceServerClient(server.address) as client:
        items = triton_stream(client, "ov", [(fp32(1.0), {"OVMS_MP_TIMESTAMP": BEFORE}), (fp32(9.0), parameters),
                                             (fp32(2.0), {"OVMS_MP_TIMESTAMP": AFTER})])
    # The in-band error is written by the reader while the graph may still be emitting the first output,
    # so it can arrive before it (as in OVMS, where observers and the reader write independently).
    errors = [error.message() for result, error in items if error is not None]
    results = [result for result, error in items if error is None]
    assert errors == [text + SUB]
    assert [(r.as_numpy("out").tolist(), r.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param)
            for r in results] == [([1.0], BEFORE), ([2.0], AFTER)]


def test_many_bad_requests_on_one_stream_lose_no_valid_packet(channel):
    """Every in-band case of the corpus on one stream, each followed by a valid request: all answered in order."""
    cases = [c for c in CASES if c.graph == "ov" and c.in_band and c.stream and c.unary and c.context == SUB]
    talk = Conversation(channel)
    talk.send(valid_request("ov", 1.0, BEFORE))
    check_valid("ov", talk.receive().infer_response, 1.0, BEFORE)
    for index, case in enumerate(cases):
        talk.send(case.build())
        assert talk.receive().error_message == case.in_band + SUB, case.id
        talk.send(valid_request("ov", float(index), 1000 + index))
        check_valid("ov", talk.receive().infer_response, float(index), 1000 + index)
    assert len(cases) >= 40
    ending = talk.end()
    assert (ending.code, ending.responses) == (grpc.StatusCode.OK, [])


def test_server_log_has_no_tracebacks_from_the_corpus(server, channel, caplog):
    with caplog.at_level("DEBUG", logger="ovms_notebook"):
        for case in CASES:
            if case.stream and case.in_band and not case.first:
                talk = Conversation(channel)
                talk.send(case.build())
                talk.receive()
                talk.end()
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def test_graph_errors_show_a_traceback_only_when_user_code_is_in_it():
    from ovms_notebook.engine.python.node import describe
    from ovms_notebook.framework.timestamps import check_range

    def calculator_method() -> None:  # user code that calls into the package, which raises
        check_range(2**63 - 1)

    # The first frame (the caller, here this test; in a graph the node runtime) is never shown.
    try:
        calculator_method()
    except Exception as error:
        user = describe(error)
    try:
        check_range(2**63 - 1)
    except Exception as error:
        ours = describe(error)
    assert user.startswith("OvmsStatus: Malformed packet timestamp - Timestamp::Done()\nTraceback (most recent call")
    assert "in calculator_method\n    check_range(2**63 - 1)" in user
    assert ours == "OvmsStatus: Malformed packet timestamp - Timestamp::Done()"
