"""OVMS's holistic tracking demo graph, unchanged: landmarks drawn onto the frame, over tritonclient.

The server tests run graphs/holistic_tracking (the demo's pbtxt) next to graphs/holistic (the same
landmarks, undrawn) and check the drawing against the landmarks; the unit tests pin the Python
render calculators and the subgraph expansion on small inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mediapipe as mp
import numpy as np
import pytest
import tritonclient.grpc as triton
from mediapipe.framework.formats import landmark_pb2, rect_pb2
from mediapipe.util import color_pb2

import ovms_notebook
from ovms_notebook.calculators.render import LandmarksOptions, landmarks_to_render_data, render_scale
from ovms_notebook.codec import decode_output
from ovms_notebook.engine.convert import image_size
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.engine.hybrid import HybridGraph
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.protos import parse_graph_config
from ovms_notebook.framework.subgraphs import expand_subgraphs
from ovms_notebook.sources import astronaut
from tests.conftest import GRAPHS, demo_frame_input, git_blob_sha1, triton_stream

DEMO = GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt"
CYAN, WHITE, ORANGE = (0, 217, 231), (255, 255, 255), (255, 138, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("holistic")
    for folder in ("holistic_tracking", "holistic"):
        shutil.copytree(GRAPHS / folder, root / folder)
    (root / "config.json").write_text(
        '{"mediapipe_config_list": ['
        '{"name": "holisticTracking", "base_path": "holistic_tracking", "graph_path": "holistic_tracking.pbtxt"},'
        '{"name": "holisticLandmarks", "base_path": "holistic", "graph_path": "graph.pbtxt"}]}')
    server = ovms_notebook.serve(root)
    yield server
    server.stop()


def near(image: np.ndarray, x: float, y: float, color: tuple[int, int, int], radius: int = 1) -> bool:
    """True when a pixel within `radius` of the normalized point (x, y) has exactly `color`."""
    h, w = image.shape[:2]
    col, row = int(x * w), int(y * h)
    patch = image[max(row - radius, 0):row + radius + 1, max(col - radius, 0):col + radius + 1]
    return bool(np.any(np.all(patch == color, axis=-1)))


# -- the demo graph over the server ------------------------------------------------------------------------------


def test_the_served_graph_is_ovms_demo_file_byte_for_byte() -> None:
    assert git_blob_sha1(DEMO) == "45d5131a11ee4f079fa70c58482fc5ec84a15bae"


def test_a_stream_of_frames_comes_back_drawn_where_the_landmarks_are(server) -> None:
    person, empty = astronaut(), np.full((240, 320, 3), 90, np.uint8)
    frames = [person, empty, person]
    client = triton.InferenceServerClient(server.address)
    drawn = triton_stream(client, "holisticTracking", [([demo_frame_input(f)], None) for f in frames])
    plain = triton_stream(client, "holisticLandmarks", [([demo_frame_input(person)], None)])
    client.close()
    assert all(error is None for _, error in drawn + plain)
    responses = [result.get_response() for result, _ in drawn]
    assert [r.parameters["OVMS_MP_TIMESTAMP"].int64_param for r in responses] == [0, 1, 2]
    assert [(r.outputs[0].name, r.outputs[0].datatype) for r in responses] == [("output", "UINT8")] * 3
    images = [result.as_numpy("output") for result, _ in drawn]
    assert [i.shape for i in images] == [f.shape for f in frames]
    np.testing.assert_array_equal(images[1], empty)  # no person, nothing drawn
    np.testing.assert_array_equal(images[0], images[2])  # same frame, same tracking outcome

    landmarks = {r.get_response().outputs[0].name: decode_output(r.get_response().outputs[0],
                                                                   r.get_response().raw_output_contents[0])
                 for r, _ in plain}
    face = landmarks["face_landmarks"].landmark
    pose = landmarks["pose_landmarks"].landmark
    image = images[0]
    # Every face landmark is a cyan dot (face joints: 0, 217, 231), as the subgraph's options say.
    assert sum(near(image, p.x, p.y, CYAN) for p in face) >= 0.95 * len(face)
    # Shoulders (pose 11 left, 12 right) are joints: orange for the left side, cyan for the right.
    assert near(image, pose[11].x, pose[11].y, ORANGE, radius=2)
    assert near(image, pose[12].x, pose[12].y, CYAN, radius=2)
    # The shoulder line is white halfway between them.
    assert near(image, (pose[11].x + pose[12].x) / 2, (pose[11].y + pose[12].y) / 2, WHITE, radius=2)
    # Pixels away from the person (the sky above the shuttle) are untouched.
    np.testing.assert_array_equal(image[:60, 400:], person[:60, 400:])
    changed = np.any(image != person, axis=-1)
    assert 2_000 < changed.sum() < 40_000


def test_unary_infer_as_ovms_demo_client(server) -> None:
    client = triton.InferenceServerClient(server.address)
    result = client.infer("holisticTracking", [demo_frame_input(astronaut())],
                          outputs=[triton.InferRequestedOutput("output")])
    client.close()
    image = result.as_numpy("output")
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    assert np.all(image[int(0.26 * 512) - 40:int(0.26 * 512) + 40, 180:270] == CYAN, axis=-1).sum() > 300


# -- the pieces ------------------------------------------------------------------------------------------------


def landmark_list(points: list[tuple[float, float, float | None]]) -> landmark_pb2.NormalizedLandmarkList:
    out = landmark_pb2.NormalizedLandmarkList()
    for x, y, visibility in points:
        landmark = out.landmark.add(x=x, y=y)
        if visibility is not None:
            landmark.visibility = visibility
    return out


def test_landmarks_become_lines_then_points_with_the_options_colours_and_scaled_thickness() -> None:
    options = LandmarksOptions(landmark_connections=[0, 1, 1, 2, 0, 7], thickness=4.0,
                               landmark_color=color_pb2.Color(r=255, g=138, b=0),
                               connection_color=color_pb2.Color(r=1, g=2, b=3),
                               utilize_visibility=True, visibility_threshold=0.5)
    data = landmarks_to_render_data(landmark_list([(0.1, 0.2, 0.9), (0.3, 0.4, None), (0.5, 0.6, 0.2)]),
                                    options, scale=0.5)
    kinds = [a.WhichOneof("data") for a in data.render_annotations]
    assert kinds == ["line", "point", "point"]  # 1-2 hidden (landmark 2 below 0.5), 0-7 out of range
    line = data.render_annotations[0]
    assert (line.line.x_start, line.line.y_start, line.line.x_end, line.line.y_end) == pytest.approx(
        (0.1, 0.2, 0.3, 0.4))
    assert line.line.normalized and (line.color.r, line.color.g, line.color.b) == (1, 2, 3)
    assert {a.thickness for a in data.render_annotations} == {2.0}
    point = data.render_annotations[1]
    assert point.scene_tag == "KEYPOINT" and (point.color.r, point.color.g, point.color.b) == ORANGE
    assert (point.point.x, point.point.y) == pytest.approx((0.1, 0.2))


def test_depth_visualisation_colours_lines_by_z() -> None:
    landmarks = landmark_pb2.NormalizedLandmarkList()
    landmarks.landmark.add(x=0.0, y=0.0, z=-1.0)
    landmarks.landmark.add(x=1.0, y=1.0, z=1.0)
    data = landmarks_to_render_data(landmarks, LandmarksOptions(landmark_connections=[0, 1],
                                                                visualize_landmark_depth=True, render_landmarks=False))
    (line,) = data.render_annotations
    # MediaPipe mixes max_depth_line_color (white) towards the camera (smaller z), min (black) away from it.
    assert (line.gradient_line.color1.r, line.gradient_line.color2.r) == (255, 0)


def test_render_scale_is_the_rect_longer_side_in_pixels_times_the_multiplier() -> None:
    rect = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=0.5, height=0.25)
    assert render_scale(rect, (640, 480), 0.01) == pytest.approx(3.2)
    assert render_scale(rect, (100, 1000), 0.01) == pytest.approx(2.5)
    assert render_scale(None, (640, 480), 0.0008) == pytest.approx(0.0008)


def test_an_image_size_pair_packet_reads_as_width_and_height() -> None:
    spec = parse_graph('input_stream: "IMAGE:img" output_stream: "size"\n'
                       'node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:img" '
                       'output_stream: "SIZE:size" }')
    graph = mp.CalculatorGraph(graph_config=spec.config)
    sizes: list[mp.Packet] = []
    graph.observe_output_stream("size", lambda _name, packet: sizes.append(packet))
    graph.start_run()
    frame = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB,
                                                 data=np.zeros((37, 91, 3), np.uint8))
    graph.add_packet_to_input_stream("img", frame.at(5))
    graph.close()
    assert image_size(sizes[0]) == (91, 37)


OVERLAY = """
input_stream: "IMAGE:img"
input_stream: "lm"
input_stream: "head"
output_stream: "IMAGE:out"
node { calculator: "SetLandmarkVisibilityCalculator" input_stream: "NORM_LANDMARKS:head"
       input_stream: "VISIBILITY:score" output_stream: "NORM_LANDMARKS:visible_head" }
node { calculator: "ConstantSidePacketCalculator" output_side_packet: "PACKET:score_side"
       options { [mediapipe.ConstantSidePacketCalculatorOptions.ext] { packet { float_value: 0.9 } } } }
node { calculator: "SidePacketToStreamCalculator" input_stream: "TICK:head" input_side_packet: "score_side"
       output_stream: "AT_TICK:score" }
node { calculator: "ConcatenateNormalizedLandmarkListCalculator" input_stream: "visible_head" input_stream: "lm"
       output_stream: "all" }
node { calculator: "LandmarksToRenderDataCalculator" input_stream: "NORM_LANDMARKS:all"
       output_stream: "RENDER_DATA:rd"
       node_options: { [type.googleapis.com/mediapipe.LandmarksToRenderDataCalculatorOptions] {
         landmark_connections: [1, 2] landmark_color { r: 255 } connection_color { g: 255 } thickness: 3.0
         utilize_visibility: true visibility_threshold: 0.5 } } }
node { calculator: "ConcatenateRenderDataVectorCalculator" input_stream: "rd" output_stream: "rd_vector" }
node { calculator: "AnnotationOverlayCalculator" input_stream: "IMAGE:img" input_stream: "VECTOR:rd_vector"
       output_stream: "IMAGE:out" }
"""


def test_python_render_nodes_feed_the_native_overlay_which_draws_at_the_landmarks() -> None:
    spec = parse_graph(OVERLAY)
    assert {n.calculator for n in spec.split.python.node} == {
        "SetLandmarkVisibilityCalculator", "ConcatenateNormalizedLandmarkListCalculator",
        "LandmarksToRenderDataCalculator"}
    outputs: list[np.ndarray] = []
    graph = HybridGraph(spec, lambda _s, p: outputs.append(np.array(mp.packet_getter.get_image_frame(p).numpy_view())))
    graph.start({})
    image = np.zeros((100, 200, 3), np.uint8)
    head = landmark_list([(0.25, 0.5, 0.1)])  # visibility 0.1, raised to 0.9 by SetLandmarkVisibility
    body = landmark_list([(0.75, 0.2, None), (0.75, 0.8, None), (0.9, 0.9, 0.3)])  # the last one is hidden
    for t in (0, 1, 2):  # no head at 2, the last timestamp: only closing the graph settles it
        packets = {"img": mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=image),
                   "lm": mp.packet_creator.create_proto(body)}
        if t != 2:
            packets["head"] = mp.packet_creator.create_proto(head)
        graph.push(packets, t)
    assert graph.close() is None
    with_head, again, without_head = outputs
    red = np.all(with_head == (255, 0, 0), axis=-1)
    assert red[50, 50] and red[20, 150] and red[80, 150]  # head and both body points (x*200, y*100)
    assert not red[90, 180]  # visibility 0.3 < 0.5: not drawn
    assert np.all(with_head[35:65, 150] == (0, 255, 0), axis=-1).all()  # the 1-2 connection, green
    np.testing.assert_array_equal(again, with_head)
    # Without the head the list is the body alone: its points 0 and 1 are drawn, no head, and the
    # connection 1-2 now ends at the hidden point, so it is skipped.
    red = np.all(without_head == (255, 0, 0), axis=-1)
    assert red[20, 150] and red[80, 150] and not red[50, 50]
    assert not np.any(np.all(without_head == (0, 255, 0), axis=-1))


def test_the_demo_graph_expands_to_wheel_and_python_nodes_only() -> None:
    spec = parse_graph(DEMO.read_text())
    calculators = [n.calculator for n in spec.config.node]
    assert "HolisticTrackingToRenderData" not in calculators and "HandWristForPose" not in calculators
    assert calculators.count("LandmarksToRenderDataCalculator") == 10
    assert calculators[-1] == "AnnotationOverlayCalculator"
    concat = next(n for n in spec.config.node if n.calculator == "ConcatenateRenderDataVectorCalculator")
    assert list(concat.output_stream) == ["render_data_vector"]  # wired to the outer node's stream
    assert spec.output_names == ["output"] and spec.input_names == ["first_input_video"]


def test_a_subgraph_node_connecting_an_undeclared_tag_is_refused() -> None:
    config = parse_graph_config('input_stream: "a" node { calculator: "HandWristForPose" input_stream: '
                                '"HAND_LANDMARKS:a" input_stream: "NOPE:a" output_stream: "WRIST_LANDMARK:b" }')
    with pytest.raises(GraphLoadError, match=r"connects input streams \[\('NOPE', 0\)\]"):
        expand_subgraphs(config)


def test_graphs_without_our_subgraphs_are_left_as_they_are() -> None:
    config = parse_graph_config(Path(GRAPHS / "holistic" / "graph.pbtxt").read_text())
    assert expand_subgraphs(config) is config
