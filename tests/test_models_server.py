"""Real models and images through the server: the graphs in graphs/ with tritonclient, as OVMS's demos use them."""

from __future__ import annotations

import queue

import numpy as np
import pytest
import tritonclient.grpc as triton

import ovms_notebook
from ovms_notebook.codec import decode_output
from ovms_notebook.sources import ASTRONAUT_FACE, astronaut, pan_zoom
from tests.conftest import GRAPHS, request, stream

IMAGE_ECHO = """
input_stream: "IMAGE:in"
output_stream: "IMAGE:out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""


@pytest.fixture(scope="module")
def server():
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


def image_input(name: str, frame: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput(name, list(frame.shape), "UINT8")
    tensor.set_data_from_numpy(frame)
    return tensor


def test_every_example_graph_loads(server):
    assert {d.name: d.available for d in server.graphs} == {
        "passthrough": True, "concat_default": True, "concat_immediate": True, "previous_value": True,
        "side_packet_ticker": True, "image_flip": True, "face_detection": True, "face_detection_openvino": True,
        "face_tracking": True, "holisticLandmarks": True, "holisticTracking": True, "irisTracking": True}
    assert server.repository.models.names == ["face_detection_short_range"]


def test_face_detection_finds_the_astronauts_face(server):
    result = stream(server.address, [request("face_detection", {"image": astronaut()})])
    (response,) = result.outputs
    assert response.outputs[0].datatype == "BYTES"
    assert response.outputs[0].parameters["proto_type"].string_param == "mediapipe.Detection"
    detections = decode_output(response.outputs[0], response.raw_output_contents[0])
    assert len(detections) == 1
    box = detections[0].location_data.relative_bounding_box
    centre_y, centre_x = box.ymin + box.height / 2, box.xmin + box.width / 2
    assert abs(centre_y - ASTRONAUT_FACE[0]) < 0.08 and abs(centre_x - ASTRONAUT_FACE[1]) < 0.08
    assert detections[0].score[0] > 0.8


def test_a_frame_without_a_face_gets_no_response(server):
    empty = np.full((256, 256, 3), 127, np.uint8)
    result = stream(server.address, [request("face_detection", {"image": empty}, timestamp=0),
                                     request("face_detection", {"image": astronaut()}, timestamp=1)])
    assert result.stamped() == [("detections", 1)]


def test_holistic_tracking_over_a_synthetic_video_with_tritonclient(server):
    frames = list(pan_zoom(astronaut(), 6, size=(320, 320)))
    responses: queue.Queue = queue.Queue()
    client = triton.InferenceServerClient(server.address)
    client.start_stream(lambda result, error: responses.put((result, error)))
    for frame in frames:  # as OVMS's stream_client.py: UINT8 HWC frames, no parameters
        client.async_stream_infer("holisticLandmarks", [image_input("first_input_video", frame)])
    client.stop_stream()
    client.close()
    by_output: dict[str, list[int]] = {}
    while not responses.empty():
        result, error = responses.get()
        assert error is None
        response = result.get_response()
        by_output.setdefault(response.outputs[0].name, []).append(response.parameters["OVMS_MP_TIMESTAMP"].int64_param)
        if response.outputs[0].name == "pose_landmarks":
            landmarks = decode_output(response.outputs[0], response.raw_output_contents[0])
            assert len(landmarks.landmark) == 33
        if response.outputs[0].name == "face_landmarks":
            assert len(decode_output(response.outputs[0], response.raw_output_contents[0]).landmark) == 468
    assert by_output["pose_landmarks"] == list(range(6))
    assert by_output["face_landmarks"] == list(range(6))


@pytest.mark.parametrize(
    ("datatype", "channels", "returned"),
    [("UINT8", 1, "UINT8"), ("UINT8", 3, "UINT8"), ("UINT8", 4, "UINT8"),
     ("INT8", 1, "UINT8"), ("INT8", 3, "UINT8"), ("INT8", 4, "UINT8"),
     ("UINT16", 1, "UINT16"), ("UINT16", 3, "UINT16"), ("UINT16", 4, "UINT16"),
     ("INT16", 1, "UINT16"), ("INT16", 3, "UINT16"), ("INT16", 4, "UINT16"),
     ("FP16", 1, "UINT16"), ("FP16", 3, "UINT16"), ("FP16", 4, "UINT16"),
     ("FP32", 1, "FP32"), ("FP32", 2, "FP32"), ("FP32", 4, "UINT8")],
)
def test_images_of_every_allowed_datatype_and_channel_count_round_trip(serve_graphs, datatype, channels, returned):
    # MediapipeFlowImageInput.*: shape [H, W, C] back, with OVMS's datatype labels
    server = serve_graphs({"echo": IMAGE_ECHO})
    dtype = {"UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16, "FP16": np.float16,
             "FP32": np.float32}[datatype]
    image = (np.arange(5 * 7 * channels) % 100).astype(dtype).reshape(5, 7, channels)
    (response,) = stream(server.address, [request("echo", {"in": image}, datatype=datatype)]).outputs
    assert (response.outputs[0].datatype, list(response.outputs[0].shape)) == (returned, [5, 7, channels])
    assert response.raw_output_contents[0] == image.tobytes()


def test_image_flip_mirrors_the_photo(server):
    photo = astronaut()[:64, :96]
    (response,) = stream(server.address, [request("image_flip", {"in": photo})]).outputs
    flipped = decode_output(response.outputs[0], response.raw_output_contents[0])
    np.testing.assert_array_equal(flipped, photo[:, ::-1])
