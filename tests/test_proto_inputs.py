"""`PROTO:` graph inputs: serialized MediaPipe messages fed to graphs and modules whose inputs are protos.

The message type comes from the graph (what the nodes reading the stream
require); a request is parsed with it before any packet is made. The server
test feeds MediaPipe's iris landmark module (IrisLandmarkLeftAndRightCpu) the
astronaut's eye corners, as found by the wheel's own face landmark subgraph,
over a real stream, and gets five iris landmarks per eye, inside each eye.
"""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest
import tritonclient.grpc as triton
from mediapipe.framework.formats import landmark_pb2

from ovms_notebook.codec import StreamKind, decode_input, encode_input, parse_stream
from ovms_notebook.codec.proto_inputs import resolve_proto_inputs
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.engine.python.api import Calculator
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.protos import parse_graph_config
from ovms_notebook.sources import astronaut
from ovms_notebook.status import OvmsStatus, StatusCode
from tests.conftest import triton_stream

#: MediaPipe's iris landmark module behind graph inputs: the image and two eye-corner landmark lists.
IRIS_MODULE = """
input_stream: "IMAGE:image"
input_stream: "PROTO:0:left_eye"
input_stream: "PROTO:1:right_eye"
output_stream: "left_iris"
output_stream: "right_iris"
node {
  calculator: "IrisLandmarkLeftAndRightCpu"
  input_stream: "IMAGE:image"
  input_stream: "LEFT_EYE_BOUNDARY_LANDMARKS:left_eye"
  input_stream: "RIGHT_EYE_BOUNDARY_LANDMARKS:right_eye"
  output_stream: "LEFT_EYE_IRIS_LANDMARKS:left_iris"
  output_stream: "RIGHT_EYE_IRIS_LANDMARKS:right_iris"
}
"""
LANDMARKS_TO_DETECTION = """
input_stream: "PROTO:landmarks"
output_stream: "detection"
node { calculator: "LandmarksToDetectionCalculator" input_stream: "NORM_LANDMARKS:landmarks"
       output_stream: "DETECTION:detection" }
"""
# MediaPipe's iris tracking graph takes the eye corners from the face mesh at these indices.
LEFT_CORNERS, RIGHT_CORNERS = (33, 133), (362, 263)


def landmark_list(*points: tuple[float, float]) -> landmark_pb2.NormalizedLandmarkList:
    message = landmark_pb2.NormalizedLandmarkList()
    for x, y in points:
        message.landmark.add(x=x, y=y, z=0.0)
    return message


@pytest.fixture(scope="module")
def face_mesh() -> landmark_pb2.NormalizedLandmarkList:
    """The astronaut's 468 face landmarks from the wheel's FaceLandmarkFrontCpu, run in-process."""
    from ovms_notebook.engine.native import use_wheel_resources

    use_wheel_resources()
    graph = mp.CalculatorGraph(
        graph_config=parse_graph_config("""
        input_stream: "image" output_stream: "faces"
        node { calculator: "FaceLandmarkFrontCpu" input_stream: "IMAGE:image" output_stream: "LANDMARKS:faces" }""")
    )
    found: list[list[landmark_pb2.NormalizedLandmarkList]] = []
    graph.observe_output_stream("faces", lambda _name, packet: found.append(mp.packet_getter.get_proto_list(packet)))
    graph.start_run()
    graph.add_packet_to_input_stream(
        "image", mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=astronaut()).at(0)
    )
    graph.close()
    assert len(found) == 1 and len(found[0]) == 1, "the wheel's face landmark subgraph finds the astronaut's face"
    return found[0][0]


def corners(mesh: landmark_pb2.NormalizedLandmarkList, indices: tuple[int, int]) -> landmark_pb2.NormalizedLandmarkList:
    return landmark_list(*((mesh.landmark[i].x, mesh.landmark[i].y) for i in indices))


def test_a_proto_input_takes_its_message_type_from_the_graph() -> None:
    spec = parse_graph(LANDMARKS_TO_DETECTION)
    landmarks = spec.inputs["landmarks"]
    assert landmarks.kind is StreamKind.PROTO and landmarks.message == "mediapipe.NormalizedLandmarkList"
    module = parse_graph(IRIS_MODULE)
    assert [(s.tag, s.index, s.message) for s in module.inputs.values()] == [
        ("IMAGE", None, ""),
        ("PROTO", 0, "mediapipe.NormalizedLandmarkList"),
        ("PROTO", 1, "mediapipe.NormalizedLandmarkList"),
    ]


def test_a_proto_input_decodes_to_a_packet_of_that_message() -> None:
    spec = parse_graph(LANDMARKS_TO_DETECTION).inputs["landmarks"]
    tensor, raw = encode_input("landmarks", landmark_list((0.25, 0.5), (0.75, 0.5)))
    assert (tensor.datatype, list(tensor.shape)) == ("BYTES", [1])
    packet = decode_input(spec, tensor, raw)
    assert "NormalizedLandmarkList" in repr(packet)
    back = mp.packet_getter.get_proto(packet)
    assert [(p.x, p.y) for p in back.landmark] == [(0.25, 0.5), (0.75, 0.5)]


@pytest.mark.parametrize(
    ("value", "datatype", "code", "text"),
    [
        (
            np.float32([1.0]),
            None,
            StatusCode.INVALID_PRECISION,
            "Expected BYTES (one serialized mediapipe.NormalizedLandmarkList) for input stream tagged PROTO; "
            "Actual: FP32; input name: landmarks",
        ),
        (
            np.array([b"", b""], dtype=object),
            None,
            StatusCode.INVALID_SHAPE,
            "Expected 1 BYTES element (one serialized mediapipe.NormalizedLandmarkList) for input stream tagged "
            "PROTO; Actual shape: (2); input name: landmarks",
        ),
        (
            np.array([b"\xff\xff\xff"], dtype=object),
            None,
            StatusCode.INVALID_INPUT_FORMAT,
            "Expected a serialized mediapipe.NormalizedLandmarkList for input stream tagged PROTO; Actual: 3 bytes "
            "that do not parse",
        ),
    ],
)
def test_a_proto_input_refuses_what_is_not_one_serialized_message(value, datatype, code, text) -> None:
    spec = parse_graph(LANDMARKS_TO_DETECTION).inputs["landmarks"]
    tensor, raw = encode_input("landmarks", value, datatype)
    with pytest.raises(OvmsStatus) as caught:
        decode_input(spec, tensor, raw)
    assert caught.value.code is code
    assert text in caught.value.details


def test_a_proto_input_whose_type_the_graph_leaves_open_fails_the_load_saying_why() -> None:
    with pytest.raises(GraphLoadError, match=r"does not fix the message type of 'x'.*type-agnostic"):
        parse_graph(
            'input_stream: "PROTO:x" output_stream: "y" '
            'node { calculator: "PassThroughCalculator" input_stream: "x" output_stream: "y" }'
        )


def test_a_proto_input_where_the_graph_wants_an_image_says_tag_it_image() -> None:
    config = parse_graph_config(
        'input_stream: "PROTO:x" output_stream: "y" node { calculator: '
        '"ImagePropertiesCalculator" input_stream: "IMAGE:x" output_stream: "SIZE:y" }'
    )
    with pytest.raises(
        GraphLoadError,
        match=r"requires OneOf<::mediapipe::Image, ::mediapipe::ImageFrame>.*"
        r"not a protobuf message.*write input_stream: \"IMAGE:x\"",
    ):
        resolve_proto_inputs({"x": parse_stream("PROTO:x")}, config)


def test_iris_module_fed_eye_corner_landmark_lists_over_a_stream_gives_iris_landmarks(serve_graphs, face_mesh) -> None:
    server = serve_graphs({"iris_module": IRIS_MODULE})
    frame = astronaut()
    height, width = frame.shape[:2]
    left, right = corners(face_mesh, LEFT_CORNERS), corners(face_mesh, RIGHT_CORNERS)
    image = triton.InferInput("image", list(frame.shape), "UINT8")
    image.set_data_from_numpy(frame)
    inputs = [image]
    for name, message in (("left_eye", left), ("right_eye", right)):
        tensor = triton.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([message.SerializeToString()], dtype=object))
        inputs.append(tensor)
    client = triton.InferenceServerClient(server.address)
    try:
        items = triton_stream(client, "iris_module", [(inputs, None)])
    finally:
        client.close()
    assert [error for _, error in items] == [None, None]
    by_name = {}
    for result, _ in items:
        response = result.get_response()
        output = response.outputs[0]
        assert output.parameters["proto_type"].string_param == "mediapipe.NormalizedLandmarkList"
        assert response.parameters["OVMS_MP_TIMESTAMP"].int64_param == 0
        by_name[output.name] = landmark_pb2.NormalizedLandmarkList.FromString(result.as_numpy(output.name)[0])
    assert sorted(by_name) == ["left_iris", "right_iris"]
    for name, eye in (("left_iris", left), ("right_iris", right)):
        iris = by_name[name].landmark
        assert len(iris) == 5  # centre and four points on the iris edge
        xs = sorted(p.x * width for p in eye.landmark)
        eye_y = np.mean([p.y * height for p in eye.landmark])
        centre = (iris[0].x * width, iris[0].y * height)
        assert xs[0] < centre[0] < xs[1], f"{name}: the iris centre lies between the eye's corners"
        assert abs(centre[1] - eye_y) < (xs[1] - xs[0]) / 2, f"{name}: the iris centre is at the eye's height"
        radius = np.mean([np.hypot(p.x * width - centre[0], p.y * height - centre[1]) for p in iris[1:]])
        assert 0.1 * (xs[1] - xs[0]) < radius < 0.5 * (xs[1] - xs[0]), f"{name}: an iris, not the whole eye"


def test_stream_client_sends_a_message_itself_to_a_proto_input(serve_graphs) -> None:
    from mediapipe.framework.formats import detection_pb2

    from ovms_notebook.client.stream import StreamClient

    server = serve_graphs({"to_detection": LANDMARKS_TO_DETECTION})
    client = StreamClient(server.address, "to_detection")
    client.send({"landmarks": landmark_list((0.25, 0.5), (0.75, 0.25))})
    client.close()
    [response] = client.responses
    detection = response.values["detection"]
    assert isinstance(detection, detection_pb2.Detection) and response.timestamp == 0
    box = detection.location_data.relative_bounding_box
    assert (box.xmin, box.ymin, box.width, box.height) == pytest.approx((0.25, 0.25, 0.5, 0.25))
    assert client.status.text == "OK"


class _CountLandmarks(Calculator):
    """A notebook calculator reading a landmark list: it names the message, so a PROTO: input can feed it."""

    inputs = ("NORM_LANDMARKS",)
    outputs = ("COUNT",)
    input_messages = {"NORM_LANDMARKS": "mediapipe.NormalizedLandmarkList"}

    def process(self, timestamp, inputs):
        return {"COUNT": np.array([len(inputs["NORM_LANDMARKS"].landmark)], np.int32)}


def test_a_proto_input_read_only_by_a_python_node_takes_the_message_it_names(serve_graphs) -> None:
    from ovms_notebook.client.stream import StreamClient
    from ovms_notebook.engine.python.api import register, unregister

    graph = ('input_stream: "PROTO:landmarks" output_stream: "count" node { calculator: "TestCountLandmarks" '
             'input_stream: "NORM_LANDMARKS:landmarks" output_stream: "COUNT:count" }')
    register("TestCountLandmarks")(_CountLandmarks)
    try:
        assert parse_graph(graph).inputs["landmarks"].message == "mediapipe.NormalizedLandmarkList"
        server = serve_graphs({"count": graph})
        client = StreamClient(server.address, "count")
        client.send({"landmarks": landmark_list((0.25, 0.5), (0.75, 0.25), (0.5, 0.5))})
        client.close()
        assert [e.values["count"].tolist() for e in client.responses] == [[3]] and client.status.text == "OK"
    finally:
        unregister("TestCountLandmarks")
    with pytest.raises(GraphLoadError, match=r"or a Python calculator naming it in its input_messages"):
        parse_graph(graph.replace("TestCountLandmarks", "PassThroughCalculator").replace("NORM_LANDMARKS:", "")
                    .replace("COUNT:", ""))
