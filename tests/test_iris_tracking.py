"""OVMS's iris tracking demo graph, unchanged: face mesh, eye contours and iris ovals drawn onto the frame.

The server tests run graphs/iris_tracking (the demo's pbtxt) over tritonclient as OVMS's demo client
does; the unit tests pin the Python calculators it needs (nodes/iris.py, nodes/render_shapes.py,
nodes/tflite.py) on small inputs against MediaPipe v0.10.21's C++ semantics.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tritonclient.grpc as triton
from mediapipe.framework.formats import detection_pb2, landmark_pb2, rect_pb2
from mediapipe.util import color_pb2

import ovms_notebook
from ovms_notebook.calculators.iris import EYE_LANDMARK_INDICES, IrisOptions, iris_to_render_data, update_face_landmarks
from ovms_notebook.calculators.render_shapes import (
    DetectionsOptions,
    RectOptions,
    detections_to_render_data,
    rects_to_render_data,
)
from ovms_notebook.calculators.tflite import LandmarksOptions, crop_rotated, resolve_model_path, tensors_to_landmarks
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.sources import astronaut
from tests.conftest import GRAPHS, demo_frame_input, git_blob_sha1, triton_stream

DEMO = GRAPHS / "iris_tracking" / "iris_tracking.pbtxt"
IRIS_OVAL, IRIS_POINT, EYE_CONTOUR = (0, 0, 255), (0, 255, 0), (255, 0, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("iris")
    shutil.copytree(GRAPHS / "iris_tracking", root / "iris_tracking")
    (root / "config.json").write_text(
        '{"mediapipe_config_list": ['
        '{"name": "irisTracking", "base_path": "iris_tracking", "graph_path": "iris_tracking.pbtxt"}]}')
    server = ovms_notebook.serve(root)
    yield server
    server.stop()


def iris_ovals(image: np.ndarray) -> list[tuple[float, float, int, int]]:
    """(centre x, centre y, width, height) of each iris oval: blue pixels grouped by eye (left of x=225 or right)."""
    rows, cols = np.nonzero(np.all(image == IRIS_OVAL, axis=-1))
    ovals = []
    for side in (cols < 225, cols >= 225):
        r, c = rows[side], cols[side]
        if len(r):
            ovals.append(((c.min() + c.max()) / 2, (r.min() + r.max()) / 2, int(np.ptp(c)) + 1, int(np.ptp(r)) + 1))
    return ovals


def test_the_served_graph_is_ovms_demo_file_byte_for_byte() -> None:
    assert git_blob_sha1(DEMO) == "5d35b9b9ed656aec809f232e97f273cf4f0132f5"


def test_a_stream_draws_both_irises_on_the_eyes_and_leaves_a_faceless_frame_alone(server) -> None:
    person, empty = astronaut(), np.full((240, 320, 3), 90, np.uint8)
    frames = [person, empty, person]
    client = triton.InferenceServerClient(server.address)
    drawn = triton_stream(client, "irisTracking", [([demo_frame_input(f)], None) for f in frames])
    client.close()
    assert [error for _, error in drawn] == [None] * 3
    responses = [result.get_response() for result, _ in drawn]
    assert [r.parameters["OVMS_MP_TIMESTAMP"].int64_param for r in responses] == [0, 1, 2]
    assert [(r.outputs[0].name, r.outputs[0].datatype) for r in responses] == [("output", "UINT8")] * 3
    images = [result.as_numpy("output") for result, _ in drawn]
    assert [i.shape for i in images] == [f.shape for f in frames]
    np.testing.assert_array_equal(images[1], empty)  # no face, nothing drawn
    np.testing.assert_array_equal(images[0], images[2])  # same frame after a faceless one: same detection, same drawing

    image = images[0]
    ovals = iris_ovals(image)
    assert len(ovals) == 2
    (lx, ly, lw, lh), (rx, ry, rw, rh) = ovals
    # The astronaut's eyes are about 40 px apart at row ~100 of the 512x512 photo; an iris is ~10-15 px wide.
    assert 190 < lx < 220 and 230 < rx < 260 and 85 < ly < 115 and 85 < ry < 115 and abs(ly - ry) < 10
    assert all(6 <= size <= 25 for size in (lw, lh, rw, rh))
    for x, y, _, _ in ovals:  # the iris centre landmark is a green point inside its oval
        assert np.any(np.all(image[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] == IRIS_POINT, axis=-1))
    contour_rows, contour_cols = np.nonzero(np.all(image == EYE_CONTOUR, axis=-1))
    assert len(contour_rows) > 20 and abs(contour_rows.mean() - (ly + ry) / 2) < 10
    assert contour_cols.min() > lx - 20 and contour_cols.max() < rx + 20  # eye contours hug the two eyes
    changed = np.any(image != person, axis=-1)
    rows, cols = np.nonzero(changed)
    assert 2_000 < changed.sum() < 20_000
    assert rows.min() > 40 and rows.max() < 220 and cols.min() > 140 and cols.max() < 310  # the face only
    np.testing.assert_array_equal(image[:40], person[:40])
    np.testing.assert_array_equal(image[260:], person[260:])


def test_unary_infer_as_ovms_demo_client(server) -> None:
    client = triton.InferenceServerClient(server.address)
    frame = astronaut()
    result = client.infer("irisTracking", [demo_frame_input(frame)], outputs=[triton.InferRequestedOutput("output")])
    client.close()
    image = result.as_numpy("output")
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    ovals = iris_ovals(image)  # a fresh graph per request: detection, then the same landmarks as on a stream
    assert len(ovals) == 2 and 190 < ovals[0][0] < 220 and 230 < ovals[1][0] < 260


def test_the_graph_splits_with_the_tflite_chain_on_the_python_side() -> None:
    spec = parse_graph(DEMO.read_text())
    python = [node.calculator for node in spec.split.python.node]
    assert python.count("TfLiteInferenceCalculator") == 2 and python.count("IrisToRenderDataCalculator") == 1
    native = {node.calculator for node in spec.split.native.node}
    assert {"FaceLandmarkFrontCpu", "ImageTransformationCalculator", "LandmarkProjectionCalculator",
            "AnnotationOverlayCalculator"} <= native
    assert not {"SplitTfLiteTensorVectorCalculator", "IrisRendererCpu", "IrisLandmarkCpu"} & native
    model = next(node for node in spec.split.python.node if node.calculator == "TfLiteInferenceCalculator")
    assert "iris_landmark.tflite" in str(model.options) and resolve_model_path(
        "mediapipe/modules/iris_landmark/iris_landmark.tflite").is_file()


def test_check_asks_ovms_for_the_demo_models_and_nothing_else() -> None:
    findings = ovms_notebook.check(GRAPHS).graph("irisTracking").findings
    assert [(f.severity, f.kind, f.subject) for f in findings] == [
        ("error", "ovms-subgraph-models", "FaceLandmarkFrontCpu"),
        ("error", "ovms-subgraph-models", "IrisLandmarkLeftAndRightCpu")]  # the stand-ins are portable
    assert "lacks face_detection, face_landmark," in findings[0].reason
    assert "lacks iris_landmark," in findings[1].reason


# -- the pieces ------------------------------------------------------------------------------------------------


def landmarks(points: list[tuple[float, float]]) -> landmark_pb2.NormalizedLandmarkList:
    out = landmark_pb2.NormalizedLandmarkList()
    for x, y in points:
        out.landmark.add(x=x, y=y)
    return out


def test_update_face_landmarks_moves_exactly_the_142_eye_points() -> None:
    face = landmarks([(i / 1000, 0.5) for i in range(468)])
    eyes = landmarks([(0.9, i / 1000) for i in range(142)])
    updated = update_face_landmarks(face, eyes)
    assert len(set(EYE_LANDMARK_INDICES)) == 142
    assert (updated.landmark[33].x, updated.landmark[33].y) == pytest.approx((0.9, 0.0))  # left eye's first
    assert updated.landmark[263].y == pytest.approx(71 / 1000)  # the right eye's first is refined point 71
    untouched = [i for i in range(468) if i not in EYE_LANDMARK_INDICES]
    assert all(updated.landmark[i].x == pytest.approx(i / 1000) for i in untouched)
    with pytest.raises(ValueError, match="Wrong number of eye landmarks"):
        update_face_landmarks(face, landmarks([(0, 0)] * 71))


def test_iris_render_data_is_an_oval_of_the_mean_iris_span_then_five_points_per_eye() -> None:
    # MediaPipe reorders an eye's 5 landmarks as 0, 2, 4, 3, 1 and measures spans 1-2 and 3-4 of that order,
    # i.e. landmarks 2-4 (here vertical, 20 px) and 3-1 (horizontal, 10 px) on a 100x200 image.
    left = [(0.5, 0.5), (0.55, 0.5), (0.5, 0.45), (0.45, 0.5), (0.5, 0.55)]
    iris = landmarks(left + [(x + 0.2, y) for x, y in left])
    options = IrisOptions(oval_color=color_pb2.Color(b=255), landmark_color=color_pb2.Color(g=255),
                          oval_thickness=4.0, landmark_thickness=2.0)
    data = iris_to_render_data(iris, (100, 200), options)
    kinds = [a.WhichOneof("data") for a in data.render_annotations]
    assert kinds == (["oval"] + ["point"] * 5) * 2  # no depth given: no text
    oval = data.render_annotations[0]
    assert oval.scene_tag == "OVAL" and oval.thickness == 4.0 and oval.color.b == 255
    radius = (20 + 10) / 2 / 2  # mean of the two spans, halved
    rect = oval.oval.rectangle
    assert (rect.left, rect.right, rect.top, rect.bottom) == pytest.approx(
        (0.5 - radius / 100, 0.5 + radius / 100, 0.5 - radius / 200, 0.5 + radius / 200))
    # MediaPipe's point order per eye: 0, 2, 4, 3, 1.
    assert [v for a in data.render_annotations[1:6] for v in (a.point.x, a.point.y)] == pytest.approx(
        [v for i in (0, 2, 4, 3, 1) for v in left[i]])
    text = iris_to_render_data(iris, (100, 200), options, (455.0, float("inf"))).render_annotations[-1].text
    assert text.display_text == "Left : :46 cm" and text.baseline == 75  # ceil(50 * 1.5) below the top


def test_rects_and_detections_become_mediapipe_render_data() -> None:
    rect = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.4, width=0.2, height=0.4, rotation=0.3)
    options = RectOptions(color=color_pb2.Color(r=255), thickness=4.0)
    shape = rects_to_render_data([rect], options, normalized=True).render_annotations[0]
    box = shape.rectangle
    assert (box.left, box.top, box.right, box.bottom, box.rotation) == pytest.approx((0.4, 0.2, 0.6, 0.6, 0.3))
    assert shape.thickness == 4.0 and shape.color.r == 255
    outside = rect_pb2.NormalizedRect(x_center=1.5, y_center=0.5, width=0.2, height=0.2)
    assert not rects_to_render_data([outside], options, normalized=True).render_annotations[0].HasField("rectangle")

    face = detection_pb2.Detection(label=["Face"], score=[0.8749])
    face.location_data.format = face.location_data.RELATIVE_BOUNDING_BOX
    face.location_data.relative_bounding_box.xmin, face.location_data.relative_bounding_box.ymin = -0.1, 0.2
    face.location_data.relative_bounding_box.width = face.location_data.relative_bounding_box.height = 0.5
    face.location_data.relative_keypoints.add(x=0.3, y=0.4)
    data = detections_to_render_data([face], DetectionsOptions(thickness=4.0, color=color_pb2.Color(g=255)))
    assert [a.scene_tag for a in data.render_annotations] == ["LABEL", "FEATURE", "LOCATION", "KEYPOINT"]
    label = data.render_annotations[0].text
    assert label.display_text == "Face,0.87," and label.left == 0.0  # clamped to the image
    assert label.baseline == pytest.approx(0.2 + 0.5 * 0.1)
    location = data.render_annotations[2].rectangle
    assert (location.left, location.top, location.right, location.bottom) == pytest.approx((0.0, 0.2, 0.4, 0.7))
    assert detections_to_render_data([], DetectionsOptions()).render_annotations == []  # produce_empty_packet
    assert detections_to_render_data([], DetectionsOptions(produce_empty_packet=False)) is None


def test_tensor_landmarks_flip_and_normalise_like_mediapipe() -> None:
    options = LandmarksOptions(num_landmarks=2, input_image_width=64, input_image_height=32)
    values = np.array([[10.0, 8.0, 6.4, 48.0, 16.0, -3.2]], np.float32)
    absolute, normalized = tensors_to_landmarks(values, options, flip_horizontally=False, flip_vertically=False)
    assert [v for p in normalized.landmark for v in (p.x, p.y, p.z)] == pytest.approx(
        [10 / 64, 0.25, 0.1, 0.75, 0.5, -0.05])
    _, flipped = tensors_to_landmarks(values, options, flip_horizontally=True, flip_vertically=False)
    assert flipped.landmark[0].x == pytest.approx(54 / 64) and flipped.landmark[0].y == pytest.approx(0.25)
    assert not absolute.landmark[0].HasField("visibility")  # three values per landmark: no visibility


def test_a_rotated_crop_turns_the_rect_upright() -> None:
    import cv2

    image = np.zeros((40, 40, 3), np.uint8)
    image[10:14, 20] = (255, 0, 0)  # a vertical red bar, 4 px long, in column 20
    upright = crop_rotated(image, (20.5, 12.0), (8, 8), 0.0, cv2.BORDER_CONSTANT)
    turned = crop_rotated(image, (20.5, 12.0), (8, 8), np.pi / 2, cv2.BORDER_CONSTANT)
    assert upright.shape == turned.shape == (8, 8, 3)
    assert upright[:, :, 0].any(axis=1).sum() == 4 and upright[:, :, 0].any(axis=0).sum() <= 2  # still vertical
    assert turned[:, :, 0].any(axis=1).sum() <= 2 and turned[:, :, 0].any(axis=0).sum() >= 4  # now horizontal
