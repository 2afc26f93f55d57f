"""Output packets -> KServe output tensors, by the packet's own C++ type (spec §5.4 plus our types)."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest
import tritonclient.grpc as triton
from mediapipe.framework.formats import classification_pb2, detection_pb2, landmark_pb2, rect_pb2
from mediapipe.util import render_data_pb2

from ovms_notebook.codec import PROTO_REPEATED, PROTO_TYPE, cpp_type, decode_output, encode_output
from ovms_notebook.codec.protos import message_name
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

create = mp.packet_creator


@pytest.mark.parametrize(
    ("packet", "datatype", "shape", "expected"),
    [
        (create.create_int(-7), "INT32", [1], np.array([-7], np.int32)),
        (create.create_int8(-128), "INT8", [1], np.array([-128], np.int8)),
        (create.create_int16(-300), "INT16", [1], np.array([-300], np.int16)),
        (create.create_int32(2**31 - 1), "INT32", [1], np.array([2**31 - 1], np.int32)),
        (create.create_int64(-(2**63)), "INT64", [1], np.array([-(2**63)], np.int64)),
        (create.create_uint8(255), "UINT8", [1], np.array([255], np.uint8)),
        (create.create_uint16(65535), "UINT16", [1], np.array([65535], np.uint16)),
        (create.create_uint32(2**32 - 1), "UINT32", [1], np.array([2**32 - 1], np.uint32)),
        (create.create_uint64(2**64 - 1), "UINT64", [1], np.array([2**64 - 1], np.uint64)),
        (create.create_float(1.5), "FP32", [1], np.array([1.5], np.float32)),
        (create.create_double(-0.25), "FP64", [1], np.array([-0.25], np.float64)),
        (create.create_bool(True), "BOOL", [1], np.array([True])),
        (create.create_string(b"a\x00\xff"), "BYTES", [1], np.array([b"a\x00\xff"], dtype=object)),
        (create.create_float_vector([1.0, 2.5]), "FP32", [2], np.array([1.0, 2.5], np.float32)),
        (create.create_float_vector([]), "FP32", [0], np.zeros(0, np.float32)),
        (create.create_int_vector([3, -4]), "INT32", [2], np.array([3, -4], np.int32)),
        (create.create_bool_vector([False, True]), "BOOL", [2], np.array([False, True])),
        (create.create_string_vector(["x", "yz"]), "BYTES", [2], np.array([b"x", b"yz"], dtype=object)),
        (
            create.create_matrix(np.arange(6, dtype=np.float32).reshape(2, 3)),
            "FP32",
            [2, 3],
            np.arange(6, dtype=np.float32).reshape(2, 3),
        ),
        (
            create.create_image_frame(
                np.arange(12, dtype=np.uint16).reshape(2, 2, 3), image_format=mp.ImageFormat.SRGB48
            ),
            "UINT16",
            [2, 2, 3],
            np.arange(12, dtype=np.uint16).reshape(2, 2, 3),
        ),
        (
            create.create_image_frame(np.arange(6, dtype=np.uint8).reshape(2, 3), image_format=mp.ImageFormat.GRAY8),
            "UINT8",
            [2, 3, 1],
            np.arange(6, dtype=np.uint8).reshape(2, 3, 1),
        ),
        (
            create.create_image(np.ones((1, 2, 2), np.float32), image_format=mp.ImageFormat.VEC32F2),
            "FP32",
            [1, 2, 2],
            np.ones((1, 2, 2), np.float32),
        ),
    ],
    ids=lambda v: cpp_type(v) if isinstance(v, mp.Packet) else None,
)
def test_each_stock_packet_type_becomes_its_kserve_tensor(packet, datatype, shape, expected):
    out, data = encode_output("out", packet)
    assert (out.name, out.datatype, list(out.shape)) == ("out", datatype, shape)
    assert not out.parameters
    back = decode_output(out, data)
    assert back.dtype == expected.dtype
    np.testing.assert_array_equal(back, expected)


def test_tritonclient_as_numpy_reads_our_bytes_and_numeric_outputs():
    response = pb.ModelInferResponse(model_name="g", model_version="1")
    for name, packet in (("s", create.create_string_vector(["ab", ""])), ("f", create.create_float_vector([0.5]))):
        tensor, raw = encode_output(name, packet)
        response.outputs.append(tensor)
        response.raw_output_contents.append(raw)
    result = triton.InferResult(triton.service_pb2.ModelInferResponse.FromString(response.SerializeToString()))
    assert result.as_numpy("s").tolist() == [b"ab", b""]
    assert result.as_numpy("f").tolist() == [0.5]


def test_an_empty_packet_is_a_value_error_the_caller_never_triggers():
    with pytest.raises(ValueError, match="empty packet"):
        encode_output("out", mp.Packet())


@pytest.mark.parametrize(
    "packet",
    [
        create.create_string_to_packet_map({"a": create.create_int(1)}),
        create.create_packet_vector([create.create_int(1)]),
        create.create_int_array([1, 2]),
    ],
    ids=lambda p: cpp_type(p),
)
def test_a_type_without_a_conversion_fails_with_ovms_packet_text(packet):
    with pytest.raises(OvmsStatus) as caught:
        encode_output("out", packet)
    assert caught.value.code is StatusCode.UNKNOWN_ERROR
    assert str(caught.value) == (
        "Unknown error - Failed to get packetout with exception: "
        f"no KServe conversion for packet type {cpp_type(packet)}"
    )


def test_a_16_bit_mediapipe_image_is_refused_instead_of_aborting_the_process():
    # The wheel makes this Image but loses its format (reads 0); touching channels or pixels would abort.
    packet = create.create_image(np.zeros((2, 2), np.uint16), image_format=mp.ImageFormat.GRAY16)
    with pytest.raises(OvmsStatus) as caught:
        encode_output("out", packet)
    assert caught.value.details == (
        "Failed to get packetout with exception: mediapipe::Image format 0 cannot be read by mediapipe 0.10.21 "
        "(16-bit Images lose their format and abort when read)"
    )


def test_a_string_vector_that_is_not_utf8_cannot_be_read_from_the_wheel():
    with pytest.raises(OvmsStatus) as caught:
        encode_output("out", create.create_string_vector([b"\xff"]))
    assert caught.value.details.startswith("Failed to get packetout with exception: 'utf-8' codec can't decode")


# ---------------------------------------------------------------- protos


def proto_output(packet: mp.Packet, name: str = "out"):
    out, data = encode_output(name, packet)
    return out, data, decode_output(out, data)


@pytest.mark.parametrize(
    "message",
    [
        detection_pb2.Detection(score=[0.5], label=["face"]),
        landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark(x=0.1, y=0.2)]),
        landmark_pb2.LandmarkList(landmark=[landmark_pb2.Landmark(z=3.0)]),
        rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=0.25, height=1.0, rotation=0.5),
        classification_pb2.ClassificationList(classification=[classification_pb2.Classification(index=3)]),
        render_data_pb2.RenderData(scene_class="x"),
    ],
    ids=lambda m: m.DESCRIPTOR.full_name,
)
def test_a_proto_packet_becomes_one_serialized_message_with_its_full_name(message):
    out, _, back = proto_output(create.create_proto(message))
    assert (out.datatype, list(out.shape)) == ("BYTES", [1])
    assert out.parameters[PROTO_TYPE].string_param == message.DESCRIPTOR.full_name
    assert out.parameters[PROTO_REPEATED].bool_param is False
    assert back == message


CONCATENATE = """
input_stream: "a"
input_stream: "b"
output_stream: "lists"
node {
  calculator: "ConcatenateNormalizedLandmarkListVectorCalculator"
  input_stream: "a"
  input_stream: "b"
  output_stream: "lists"
}
"""


def test_a_vector_of_protos_from_a_real_graph_becomes_a_list_of_messages():
    first = landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark(x=1.0)])
    second = landmark_pb2.NormalizedLandmarkList()
    graph = mp.CalculatorGraph(graph_config=CONCATENATE)
    outputs: list[mp.Packet] = []
    graph.observe_output_stream("lists", lambda _, packet: outputs.append(packet))
    graph.start_run()
    graph.add_packet_to_input_stream("a", create.create_proto(first).at(0))
    graph.add_packet_to_input_stream("b", create.create_proto(second).at(0))
    graph.close()
    assert cpp_type(outputs[0]) == "::std::vector<::mediapipe::NormalizedLandmarkList>"
    out, _, back = proto_output(outputs[0], "lists")
    assert (out.name, out.datatype, list(out.shape)) == ("lists", "BYTES", [2])
    assert out.parameters[PROTO_TYPE].string_param == "mediapipe.NormalizedLandmarkList"
    assert out.parameters[PROTO_REPEATED].bool_param is True
    assert back == [first, second]


@pytest.mark.parametrize(
    ("cpp", "expected"),
    [
        ("::mediapipe::Detection", ("mediapipe.Detection", False)),
        ("mediapipe::NormalizedRect", ("mediapipe.NormalizedRect", False)),
        ("::std::vector<::mediapipe::Detection>", ("mediapipe.Detection", True)),
        ("std::vector<mediapipe::Detection, std::allocator<mediapipe::Detection> >", ("mediapipe.Detection", True)),
        ("::mediapipe::Detection_AssociatedDetection", ("mediapipe.Detection.AssociatedDetection", False)),
        ("::mediapipe::face_geometry::FaceGeometry", ("mediapipe.face_geometry.FaceGeometry", False)),
        ("::mediapipe::ImageFrame", None),
        ("::mediapipe::Tensor", None),
        ("int", None),
        ("::std::vector<::mediapipe::Packet>", None),
    ],
)
def test_cpp_type_names_map_to_proto_names_only_when_the_pool_knows_the_message(cpp, expected):
    assert message_name(cpp) == expected


def test_a_message_missing_proto2_required_fields_still_travels_and_parses_back():
    message = rect_pb2.NormalizedRect(x_center=0.5)
    packet = mp.packet_creator._packet_creator._create_proto(
        message.DESCRIPTOR.full_name, message.SerializePartialToString()
    )
    _, _, back = proto_output(packet)
    assert back == message and not back.IsInitialized()


def test_a_proto_output_of_a_type_this_process_does_not_know_cannot_be_parsed():
    tensor = pb.ModelInferResponse.InferOutputTensor(name="p", datatype="BYTES", shape=[1])
    tensor.parameters[PROTO_TYPE].string_param = "nowhere.Unknown"
    with pytest.raises(ValueError, match=r"holds nowhere\.Unknown messages, which this process does not know"):
        decode_output(tensor, b"\0\0\0\0")
