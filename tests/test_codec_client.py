"""The client side (encode_input/decode_output), tritonclient compatibility, and a fuzz test that any
tensor either decodes to a packet or raises OvmsStatus, never anything else."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest
import tritonclient.grpc as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovms_notebook.codec import (
    DATATYPES,
    StreamKind,
    decode_input,
    decode_output,
    encode_input,
    encode_output,
    parse_stream,
)
from ovms_notebook.codec.datatypes import TYPED_FIELDS, element_count, element_size
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus

ARRAYS: dict[str, np.ndarray] = {
    "BOOL": np.array([[True], [False]]),
    "UINT8": np.array([0, 255], np.uint8),
    "UINT16": np.array([[1, 65535]], np.uint16),
    "UINT32": np.array([2**32 - 1], np.uint32),
    "UINT64": np.array([2**64 - 1, 0], np.uint64),
    "INT8": np.array([-128, 127], np.int8),
    "INT16": np.array([-1], np.int16),
    "INT32": np.array([[-5, 6], [7, 8]], np.int32),
    "INT64": np.array([-(2**63)], np.int64),
    "FP16": np.array([0.5, -np.inf], np.float16),
    "FP32": np.array([[1.25]], np.float32),
    "FP64": np.array([np.pi, -0.0], np.float64),
    "BYTES": np.array([[b"ab", b""], [b"\x00", "é".encode()]], dtype=object),
}


def as_output(tensor: pb.ModelInferRequest.InferInputTensor) -> pb.ModelInferResponse.InferOutputTensor:
    return pb.ModelInferResponse.InferOutputTensor(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_every_datatype_round_trips_through_encode_input_and_decode_output(datatype):
    array = ARRAYS[datatype]
    tensor, raw = encode_input("x", array)
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("x", datatype, list(array.shape))
    assert not tensor.HasField("contents")
    back = decode_output(as_output(tensor), raw)
    assert back.dtype == DATATYPES[datatype]
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    ("value", "datatype", "shape", "expected"),
    [
        (True, "BOOL", [1], [True]),
        (7, "INT64", [1], [7]),
        (0.5, "FP64", [1], [0.5]),
        (np.float32(2.5), "FP32", [1], [2.5]),
        ("héllo", "BYTES", [1], ["héllo".encode()]),
        (b"a\x00", "BYTES", [1], [b"a\x00"]),
        ([[1, 2], [3, 4]], "INT64", [2, 2], [[1, 2], [3, 4]]),
        ([b"x\x00", b"y"], "BYTES", [2], [b"x\x00", b"y"]),
        (["a", "bc"], "BYTES", [2], [b"a", b"bc"]),
        (np.array(["u", "vw"]), "BYTES", [2], [b"u", b"vw"]),
        ([], "FP64", [0], []),
    ],
)
def test_python_values_get_kserve_datatypes_and_shapes(value, datatype, shape, expected):
    tensor, raw = encode_input("x", value)
    assert (tensor.datatype, list(tensor.shape)) == (datatype, shape)
    assert decode_output(as_output(tensor), raw).tolist() == expected


def test_a_datatype_override_converts_the_value():
    tensor, raw = encode_input("x", [1, 2], "FP16")
    assert tensor.datatype == "FP16" and raw == np.array([1, 2], "<f2").tobytes()
    tensor, raw = encode_input("x", 3.0, "UINT8")
    assert raw == b"\x03"


@pytest.mark.parametrize(
    ("value", "datatype", "message"),
    [
        (300, "INT8", r"values 300\.\.300 do not fit INT8 \(-128\.\.127\)"),
        (-1, "UINT64", r"do not fit UINT64"),
        (1.5, "INT32", r"INT32 holds whole numbers"),
        ([1, 2], "BYTES", r"BYTES needs str, bytes or object elements"),
        ("x", "FP32", r"cannot encode object elements as FP32"),
        (1, "BF16", r"datatype must be one of"),
        ({"a": 1}, None, r"cannot encode a dict"),
    ],
)
def test_values_a_datatype_cannot_hold_raise_value_error_instead_of_wrapping(value, datatype, message):
    with pytest.raises(ValueError, match=message):
        encode_input("x", value, datatype)


def test_decode_output_refuses_bytes_that_do_not_fill_the_shape():
    tensor = pb.ModelInferResponse.InferOutputTensor(name="y", datatype="INT32", shape=[2])
    with pytest.raises(ValueError, match=r"declares INT32 shape \[2\] \(8 bytes\) but holds 4 bytes"):
        decode_output(tensor, b"\0\0\0\0")
    tensor = pb.ModelInferResponse.InferOutputTensor(name="y", datatype="", shape=[1])
    with pytest.raises(ValueError, match="which is not a KServe datatype"):
        decode_output(tensor, b"")


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_a_tritonclient_input_is_byte_identical_to_ours_and_decodes_the_same(datatype):
    array = ARRAYS[datatype]
    theirs = triton.InferInput("x", list(array.shape), datatype)
    theirs.set_data_from_numpy(array)
    their_tensor = pb.ModelInferRequest.InferInputTensor.FromString(theirs._get_tensor().SerializeToString())
    their_raw = theirs._get_content()
    our_tensor, our_raw = encode_input("x", array)
    assert their_tensor == our_tensor
    assert their_raw == our_raw
    theirs_out = encode_output("y", decode_input(parse_stream("x"), their_tensor, their_raw))
    ours_out = encode_output("y", decode_input(parse_stream("x"), our_tensor, our_raw))
    assert theirs_out == ours_out


# ---------------------------------------------------------------- fuzz

_PROTO_RANGES = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=6),
}
_STREAMS = [f"{kind.value}:x" for kind in StreamKind if kind is not StreamKind.UNKNOWN] + [
    "x",
    "TENSOR_1:x",
    "IMAGE_FRAME:x",
]


@st.composite
def tensors(draw):
    datatype = draw(st.sampled_from([*DATATYPES, "my_string", "BF16", ""]))
    shape = draw(st.lists(st.integers(-1, 4), max_size=4) | st.just([2**40, 2**40]) | st.just([2, 2, 4]))
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=shape)
    count = max(element_count(shape), 0) if max(shape, default=0) < 2**20 else 0
    if draw(st.booleans()):  # raw contents: usually the right size, sometimes not
        size = count * element_size(datatype)
        raw = draw(st.binary(min_size=size, max_size=size) | st.binary(max_size=40))
        return tensor, raw
    field = TYPED_FIELDS.get(datatype, draw(st.sampled_from(sorted(_PROTO_RANGES))))
    if draw(st.booleans()):
        tensor.contents.SetInParent()
        values = draw(
            st.lists(_PROTO_RANGES[field], min_size=count, max_size=count) | st.lists(_PROTO_RANGES[field], max_size=5)
        )
        getattr(tensor.contents, field).extend(values)
    return tensor, None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.sampled_from(_STREAMS), case=tensors())
def test_any_tensor_on_any_stream_decodes_to_a_packet_or_raises_ovms_status_and_packets_encode_back(stream, case):
    tensor, raw = case
    try:
        packet = decode_input(parse_stream(stream), tensor, raw)
    except OvmsStatus:
        return
    assert isinstance(packet, mp.Packet) and not packet.is_empty()
    out, data = encode_output("out", packet)
    assert isinstance(data, bytes) and out.name in ("out", "x")  # a py tensor keeps its own name


@settings(max_examples=150, deadline=None)
@given(data=st.data(), datatype=st.sampled_from([d for d in DATATYPES if d != "BYTES"]))
def test_any_valid_raw_tensor_round_trips_exactly_through_an_untagged_stream(data, datatype):
    shape = data.draw(st.lists(st.integers(0, 3), max_size=3))
    size = element_count(shape) * element_size(datatype)
    raw = data.draw(st.binary(min_size=size, max_size=size))
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=shape)
    out, back = encode_output("x", decode_input(parse_stream("x"), tensor, raw))
    assert (out.datatype, list(out.shape), back) == (datatype, shape, raw)
