"""MediaPipe's own example graphs and modules (ovms_notebook/examples/mediapipe) served and streamed for real.

One server serves the gallery's config.json; every graph loads, and real frames go through each one
over ModelStreamInfer (StreamClient): scikit-image's astronaut for faces, poses and segmentation, and for
hands a frame with a hand drawn on it (neither the mediapipe wheel nor scikit-image ships a picture of a
hand; MediaPipe's palm detector finds this one). The checks are about meaning: boxes and landmarks where
the face or the hand is, the background tinted and the person left alone, nothing drawn on a frame
without the thing. The modules fed protos (ROIs, landmark lists as PROTO: inputs) get them from the image-fed
modules, as MediaPipe's own graphs wire them, and give the same landmarks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from mediapipe.framework.formats import landmark_pb2, rect_pb2

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.sources import astronaut

GALLERY = ovms_notebook.__path__[0] + "/examples/mediapipe"
#: Where the astronaut's face is (x0, y0, x1, y1, pixels of the 512x512 frame): landmarks, and what is drawn.
FACE, FACE_DRAWING = (160, 60, 290, 200), (130, 30, 320, 220)
#: Where hand_frame() draws the hand (x0, y0, x1, y1).
HAND = (124, 248, 324, 448)
BACKGROUND = (200, 200, 200)

GRAPHS = {
    "face_detection_desktop_live",
    "face_detection_full_range_desktop_live",
    "face_mesh_desktop_live",
    "hand_detection_desktop_live",
    "hand_tracking_desktop_live",
    "holistic_tracking_cpu",
    "iris_tracking_cpu",
    "iris_depth_cpu",  # tests/test_iris_depth.py streams it (a JPEG file with EXIF data in)
    "pose_tracking_cpu",
    "selfie_segmentation_cpu",
    # modules served as graphs
    "face_detection_short_range_cpu",
    "face_detection_full_range_cpu",
    "face_landmark_front_cpu",
    "face_landmark_front_cpu_image",
    "hand_landmark_tracking_cpu",
    "hand_landmark_tracking_cpu_image",
    "holistic_landmark_cpu",
    "palm_detection_cpu",
    "pose_detection_cpu",
    "pose_landmark_cpu",
    "selfie_segmentation_module_cpu",
    "selfie_segmentation_cpu_image",
    # modules fed MediaPipe protos (ROIs, landmark lists) through PROTO: inputs
    "face_detection_short_range_by_roi_cpu",
    "face_landmark_cpu",
    "face_landmarks_from_pose_cpu",
    "hand_landmark_cpu",
    "hand_landmarks_from_pose_cpu",
    "hand_landmarks_left_and_right_cpu",
    "hand_recrop_by_roi_cpu",
    "iris_landmark_cpu",
    "iris_landmark_left_and_right_cpu",
    "pose_landmark_by_roi_cpu",
}


def hand_frame() -> np.ndarray:
    """A 448x448 RGB frame with an open right hand (palm, four fingers, thumb) drawn at HAND on light grey."""
    import cv2

    frame = np.full((448, 448, 3), BACKGROUND, np.uint8)
    x0, y0 = HAND[:2]
    scale = (HAND[2] - x0) / 448
    mask = np.zeros(frame.shape[:2], np.uint8)

    def at(x: float, y: float) -> tuple[int, int]:
        return int(x0 + x * scale), int(y0 + y * scale)

    cv2.ellipse(mask, at(224, 300), (int(85 * scale), int(95 * scale)), 0, 0, 360, 255, -1)  # palm
    cv2.rectangle(mask, at(170, 330), at(280, 440), 255, -1)  # wrist
    fingers = [
        ((165, 320), (75, 220), 26),
        ((190, 220), (175, 70), 23),
        ((230, 215), (240, 50), 24),
        ((268, 225), (300, 75), 22),
        ((295, 260), (350, 140), 19),
    ]
    for start, end, width in fingers:
        cv2.line(mask, at(*start), at(*end), 255, int(2 * width * scale))
        cv2.circle(mask, at(*end), int(width * scale), 255, -1)
    shade = 0.75 + 0.25 * cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 6 * scale)
    skin = np.clip(np.float32([190, 140, 110]) * shade[..., None], 0, 255).astype(np.uint8)
    frame[mask > 0] = skin[mask > 0]
    for start, end, width in fingers:  # creases across each finger
        direction = np.subtract(end, start) / np.hypot(*np.subtract(end, start))
        across = np.array([direction[1], -direction[0]]) * width * 0.7
        for t in (0.35, 0.65):
            middle = np.add(start, np.subtract(end, start) * t)
            cv2.line(frame, at(*(middle - across)), at(*(middle + across)), (180, 120, 100), max(1, int(2 * scale)))
    return frame


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GALLERY)
    yield server
    server.stop()


def lockstep(
    server: ovms_notebook.Server, graph: str, name: str, frames: list[np.ndarray], done: str
) -> list[dict[str, object]]:
    """Stream `frames` on one stream, each sent once the `done` output of the one before arrived (so flow
    limiting drops none); returns the outputs of each frame by name. The stream must end OK, error-free."""
    client = StreamClient(server.address, graph)
    for index, frame in enumerate(frames):
        client.send({name: frame})
        while not any(e.timestamp == index and done in e.values for e in client.responses):
            client.wait_for(len(client.responses) + len(client.errors) + 1, timeout=120)
    return _outputs(client, len(frames))


def one_frame(server: ovms_notebook.Server, graph: str, frame: np.ndarray, **parameters: bool) -> dict[str, object]:
    """One frame on a fresh stream of a module graph (input `image`), half-closed: all its outputs by name."""
    return one_request(server, graph, {"image": frame}, **parameters)


def one_request(server: ovms_notebook.Server, graph: str, inputs: dict[str, object],
                **parameters: bool) -> dict[str, Any]:
    """One request on a fresh stream, half-closed: all its outputs by name."""
    client = StreamClient(server.address, graph)
    client.send(inputs, parameters=parameters or None)
    return _outputs(client, 1)[0]


def _outputs(client: StreamClient, frames: int) -> list[dict[str, object]]:
    end = client.close()
    assert end.text == "OK", end.text
    assert not client.errors, [e.text for e in client.errors]
    per_frame: list[dict[str, object]] = [{} for _ in range(frames)]
    for entry in client.responses:
        assert entry.timestamp is not None
        per_frame[entry.timestamp].update(entry.values)
    return per_frame


def changed(drawn: object, frame: np.ndarray) -> np.ndarray:
    """(x, y) of every pixel the graph changed, as an [N, 2] array."""
    assert isinstance(drawn, np.ndarray) and drawn.shape == frame.shape and drawn.dtype == np.uint8
    ys, xs = np.nonzero(np.any(drawn != frame, axis=-1))
    return np.stack([xs, ys], axis=1)


def within(points: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """True when there are points and every one lies in the box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return len(points) > 0 and bool(
        np.all((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1))
    )


def pixels(landmarks: object, size: tuple[int, int]) -> np.ndarray:
    """A NormalizedLandmarkList's points in pixels of a (width, height) frame, as [N, 2]."""
    width, height = size
    return np.array([(p.x * width, p.y * height) for p in landmarks.landmark])  # type: ignore[attr-defined]


def box_centre(detection: object, size: tuple[int, int]) -> np.ndarray:
    box = detection.location_data.relative_bounding_box  # type: ignore[attr-defined]
    return np.array([[(box.xmin + box.width / 2) * size[0], (box.ymin + box.height / 2) * size[1]]])


def test_every_gallery_graph_loads(server) -> None:
    states = {graph.name: (graph.state.name, graph.error) for graph in server.graphs}
    assert states == dict.fromkeys(GRAPHS, ("AVAILABLE", None))


@pytest.mark.parametrize("graph", ["face_detection_desktop_live", "face_detection_full_range_desktop_live"])
def test_face_detection_boxes_the_face_and_draws_nothing_on_an_empty_frame(server, graph: str) -> None:
    person, empty = astronaut(), np.full((240, 320, 3), 90, np.uint8)
    outputs = lockstep(server, graph, "input_video", [person, empty, person], done="output_video")
    assert within(changed(outputs[0]["output_video"], person), FACE_DRAWING)
    assert len(changed(outputs[0]["output_video"], person)) > 500  # a box, not a speck
    np.testing.assert_array_equal(outputs[1]["output_video"], empty)
    np.testing.assert_array_equal(outputs[2]["output_video"], outputs[0]["output_video"])
    if graph == "face_detection_desktop_live":  # this one also outputs the detections
        (face,) = outputs[0]["face_detections"]  # type: ignore[misc]
        assert within(box_centre(face, (512, 512)), FACE)
        assert "face_detections" not in outputs[1]


def test_face_mesh_puts_478_landmarks_on_the_face_and_draws_them_there(server) -> None:
    person = astronaut()
    (outputs,) = lockstep(server, "face_mesh_desktop_live", "input_video", [person], done="output_video")
    (face,) = outputs["multi_face_landmarks"]  # type: ignore[misc]
    assert len(face.landmark) == 478  # with_attention: the 468 mesh points and 10 iris points
    assert within(pixels(face, (512, 512)), FACE)
    drawn = changed(outputs["output_video"], person)
    assert within(drawn, FACE_DRAWING) and len(drawn) > 3000


def test_iris_tracking_finds_both_irises_inside_the_face(server) -> None:
    person = astronaut()
    (outputs,) = lockstep(server, "iris_tracking_cpu", "input_video", [person], done="output_video")
    face = outputs["face_landmarks_with_iris"]
    points = pixels(face, (512, 512))
    assert len(points) == 478 and within(points, FACE)
    left, right = points[468], points[473]  # iris centres: one eye each side, level
    assert abs(left[0] - right[0]) > 25 and abs(left[1] - right[1]) < 10
    assert within(changed(outputs["output_video"], person), FACE_DRAWING)


def test_selfie_segmentation_tints_the_background_blue_and_leaves_the_person(server) -> None:
    person = astronaut()
    (outputs,) = lockstep(server, "selfie_segmentation_cpu", "input_video", [person], done="output_video")
    image = outputs["output_video"]
    assert isinstance(image, np.ndarray)
    assert image[:40, :40].reshape(-1, 3).mean(axis=0).round().tolist() == [0, 0, 255]  # the flag: background
    np.testing.assert_array_equal(image[110:150, 200:250], person[110:150, 200:250])  # her face
    np.testing.assert_array_equal(image[380:440, 150:230], person[380:440, 150:230])  # her suit


def test_pose_tracking_finds_the_nose_on_the_face_and_tints_the_background(server) -> None:
    person = astronaut()
    (outputs,) = lockstep(server, "pose_tracking_cpu", "input_video", [person], done="output_video")
    pose = pixels(outputs["pose_landmarks"], (512, 512))
    assert len(pose) == 33 and within(pose[:11], FACE)  # nose, eyes, ears, mouth
    image = outputs["output_video"]
    assert isinstance(image, np.ndarray)
    assert image[:40, :40].reshape(-1, 3).mean(axis=0).round().tolist() == [0, 0, 255]
    np.testing.assert_array_equal(image[380:440, 150:230], person[380:440, 150:230])


def test_holistic_tracking_draws_on_the_face_and_the_body(server) -> None:
    person = astronaut()
    (outputs,) = lockstep(server, "holistic_tracking_cpu", "input_video", [person], done="output_video")
    drawn = changed(outputs["output_video"], person)
    on_face = within(drawn[(drawn[:, 1] < 200)], FACE_DRAWING)
    assert on_face and np.count_nonzero(drawn[:, 1] > 300) > 200  # the face mesh, and the pose down the body


def test_hand_detection_boxes_the_palm_and_nothing_on_the_astronaut(server) -> None:
    hand, person = hand_frame(), astronaut()
    outputs = lockstep(server, "hand_detection_desktop_live", "input_video", [hand, person], done="output_video")
    drawn = changed(outputs[0]["output_video"], hand)
    assert within(drawn, HAND) and len(drawn) > 300
    np.testing.assert_array_equal(outputs[1]["output_video"], person)


def test_hand_tracking_draws_the_hand_and_labels_its_handedness_top_left(server) -> None:
    hand, person = hand_frame(), astronaut()
    outputs = lockstep(server, "hand_tracking_desktop_live", "input_video", [hand, person], done="output_video")
    drawn = changed(outputs[0]["output_video"], hand)
    label = (drawn[:, 1] < 140) & (drawn[:, 0] < 260)  # font_height_px 50 at the top left, in red
    assert np.count_nonzero(label) > 500
    red = outputs[0]["output_video"][drawn[label][:, 1], drawn[label][:, 0]]  # type: ignore[index]
    assert np.mean(np.all(red == (255, 0, 0), axis=-1)) > 0.5
    hand_box = (HAND[0] - 100, HAND[1] - 40, HAND[2] + 20, HAND[3])  # landmarks, and the (larger) rects
    assert within(drawn[~label], hand_box) and np.count_nonzero(~label) > 2000
    np.testing.assert_array_equal(outputs[1]["output_video"], person)


@pytest.mark.parametrize(
    "graph", ["face_detection_short_range_cpu", "face_detection_full_range_cpu", "pose_detection_cpu"]
)
def test_detection_modules_find_one_face_or_person(server, graph: str) -> None:
    (found,) = one_frame(server, graph, astronaut())["detections"]  # type: ignore[misc]
    assert within(box_centre(found, (512, 512)), FACE if "face" in graph else (100, 60, 400, 512))
    assert one_frame(server, graph, hand_frame()) == {}  # no face, no person: no packet


def test_palm_detection_module_finds_the_palm_only_on_the_hand(server) -> None:
    (palm,) = one_frame(server, "palm_detection_cpu", hand_frame())["detections"]  # type: ignore[misc]
    assert within(box_centre(palm, (448, 448)), HAND)
    assert one_frame(server, "palm_detection_cpu", astronaut()) == {}


@pytest.mark.parametrize("graph", ["face_landmark_front_cpu", "face_landmark_front_cpu_image"])
def test_face_landmark_modules_put_the_mesh_on_the_face(server, graph: str) -> None:
    outputs = one_frame(server, graph, astronaut())
    (face,) = outputs["multi_face_landmarks"]  # type: ignore[misc]
    assert len(face.landmark) == 468 and within(pixels(face, (512, 512)), FACE)  # WITH_ATTENTION not sent: off
    refined = one_frame(server, graph, astronaut(), with_attention=True)  # a bool side packet from a request parameter
    assert len(refined["multi_face_landmarks"][0].landmark) == 478  # type: ignore[index]
    if graph.endswith("_image"):
        np.testing.assert_array_equal(outputs["throttled_image"], astronaut())


@pytest.mark.parametrize("graph", ["hand_landmark_tracking_cpu", "hand_landmark_tracking_cpu_image"])
def test_hand_landmark_modules_put_21_landmarks_on_the_hand(server, graph: str) -> None:
    outputs = one_frame(server, graph, hand_frame())
    (hand,) = outputs["multi_hand_landmarks"]  # type: ignore[misc]
    points = pixels(hand, (448, 448))
    assert len(points) == 21 and within(points, HAND)
    assert points[0][1] > points[12][1] + 60  # the wrist well below the middle fingertip: an upright hand
    (handedness,) = outputs["multi_handedness"]  # type: ignore[misc]
    assert handedness.classification[0].label in ("Left", "Right")
    assert "multi_hand_landmarks" not in one_frame(server, graph, astronaut())


def test_pose_and_holistic_modules_find_the_astronaut(server) -> None:
    pose = one_frame(server, "pose_landmark_cpu", astronaut())
    assert within(pixels(pose["pose_landmarks"], (512, 512))[:11], FACE)
    holistic = one_frame(server, "holistic_landmark_cpu", astronaut(), enable_segmentation=True)
    assert within(pixels(holistic["pose_landmarks"], (512, 512))[:11], FACE)
    assert len(holistic["face_landmarks"].landmark) == 468  # type: ignore[attr-defined]
    assert within(pixels(holistic["face_landmarks"], (512, 512)), FACE)
    mask = holistic["segmentation_mask"]
    assert isinstance(mask, np.ndarray) and mask.shape == (512, 512, 1)
    assert mask[110:150, 200:250].mean() > 0.9 and mask[:40, :40].mean() < 0.1


@pytest.mark.parametrize("graph", ["selfie_segmentation_module_cpu", "selfie_segmentation_cpu_image"])
def test_selfie_segmentation_modules_mask_the_person(server, graph: str) -> None:
    mask = one_frame(server, graph, astronaut())["segmentation_mask"]
    assert isinstance(mask, np.ndarray) and mask.shape == (512, 512, 1) and mask.dtype == np.float32
    assert mask[110:150, 200:250].mean() > 0.9 and mask[380:440, 150:230].mean() > 0.9  # face, suit
    assert mask[:40, :40].mean() < 0.1  # the flag


def test_every_gallery_graph_draws_with_a_box_per_node_of_its_pbtxt(server) -> None:
    from ovms_notebook.framework.protos import parse_graph_config
    from ovms_notebook.widgets.graphview import GraphView

    for graph in server.graphs:
        svg = GraphView(graph.spec, title=graph.name).svg()
        assert svg is not None and svg.startswith(b"<?xml"), graph.name
        written = parse_graph_config(graph.spec.text).node  # subgraphs drawn as the pbtxt names them
        assert svg.count(b'class="node"') >= len(written), graph.name
        for node in written:
            assert node.calculator.encode() in svg, (graph.name, node.calculator)


def test_check_says_ovms_lacks_the_renderers_the_package_inlines() -> None:
    from ovms_notebook.portability.check import calculator_findings

    (finding,) = calculator_findings(["FaceRendererCpu"])
    assert (finding.severity, finding.kind, finding.subject) == ("error", "ovms-lacks-calculator", "FaceRendererCpu")
    assert finding.reason.startswith("a MediaPipe subgraph ovms_notebook inlines from MediaPipe's own pbtxt")
    assert finding.reason.endswith("registers it, so OVMS fails to load the graph")


# Modules fed protos: the ROIs and landmark lists come from the image-fed modules above (as MediaPipe's own graphs
# wire them) or are written from where hand_frame() draws the hand, and travel as PROTO: inputs.


def rect(centre: tuple[float, float], side: float, size: tuple[int, int]) -> rect_pb2.NormalizedRect:
    """A square NormalizedRect of `side` pixels around `centre` (pixels) in a (width, height) frame."""
    return rect_pb2.NormalizedRect(x_center=centre[0] / size[0], y_center=centre[1] / size[1],
                                   width=side / size[0], height=side / size[1])


def hand_points() -> landmark_pb2.NormalizedLandmarkList:
    """Pose's four hand landmarks (wrist, pinky, index, thumb) where hand_frame() draws them, normalized."""
    x0, y0 = HAND[:2]
    scale = (HAND[2] - x0) / 448
    drawn = [(224, 420), (295, 250), (190, 215), (150, 300)]  # hand_frame's own 448-unit coordinates
    return landmark_pb2.NormalizedLandmarkList(landmark=[
        landmark_pb2.NormalizedLandmark(x=(x0 + x * scale) / 448, y=(y0 + y * scale) / 448, visibility=1, presence=1)
        for x, y in drawn])


def test_pose_and_face_landmark_modules_fed_their_rois_give_what_the_image_fed_modules_give(server) -> None:
    whole = one_frame(server, "pose_landmark_cpu", astronaut())
    by_roi = one_request(server, "pose_landmark_by_roi_cpu",
                         {"image": astronaut(), "roi": whole["pose_rect_from_detection"]})
    np.testing.assert_allclose(pixels(by_roi["landmarks"], (512, 512)),
                               pixels(whole["pose_landmarks"], (512, 512)), atol=1.0)
    front = one_frame(server, "face_landmark_front_cpu", astronaut())
    face = one_request(server, "face_landmark_cpu",
                       {"image": astronaut(), "roi": front["face_rects_from_detections"][0]})["face_landmarks"]
    assert len(face.landmark) == 468
    np.testing.assert_allclose(pixels(face, (512, 512)),
                               pixels(front["multi_face_landmarks"][0], (512, 512)), atol=1.0)
    # holistic's face step: the face found again from the pose's eleven face landmarks
    head = landmark_pb2.NormalizedLandmarkList(landmark=whole["pose_landmarks"].landmark[:11])
    from_pose = one_request(server, "face_landmarks_from_pose_cpu",
                            {"input_video": astronaut(), "face_landmarks_from_pose": head})
    assert len(from_pose["face_landmarks"].landmark) == 468
    assert within(pixels(from_pose["face_landmarks"], (512, 512)), FACE)


def test_face_detection_by_roi_finds_the_face_inside_the_roi_only(server) -> None:
    (face,) = one_request(server, "face_detection_short_range_by_roi_cpu",
                          {"image": astronaut(), "roi": rect((225, 130), 260, (512, 512))})["detections"]
    assert within(box_centre(face, (512, 512)), FACE)
    flag = one_request(server, "face_detection_short_range_by_roi_cpu",
                       {"image": astronaut(), "roi": rect((60, 60), 120, (512, 512))})
    assert flag == {}  # no face in the flag's corner: no packet


def test_iris_module_fed_eye_corners_puts_five_iris_points_in_each_eye(server) -> None:
    mesh = one_frame(server, "face_landmark_front_cpu", astronaut())["multi_face_landmarks"][0]
    corners = {side: landmark_pb2.NormalizedLandmarkList(landmark=[mesh.landmark[i] for i in indices])
               for side, indices in (("left", (33, 133)), ("right", (362, 263)))}
    irises = one_request(server, "iris_landmark_left_and_right_cpu", {
        "image": astronaut(),
        "left_eye_boundary_landmarks": corners["left"],
        "right_eye_boundary_landmarks": corners["right"],
    })
    for side in ("left", "right"):
        iris = pixels(irises[f"{side}_iris_landmarks"], (512, 512))
        eye = pixels(corners[side], (512, 512))
        assert len(iris) == 5 and len(irises[f"{side}_eye_contour_landmarks"].landmark) == 71
        (x0, y0), (x1, y1) = eye.min(0), eye.max(0)
        assert within(iris[:1], (x0, y0 - 8, x1, y1 + 8)), (side, iris[0], eye)  # the iris centre between the corners
        # The one-eye module, fed the eye's ROI and whether it is the right eye (a BOOL: input), agrees.
        one_eye = one_request(server, "iris_landmark_cpu", {
            "image": astronaut(), "roi": irises[f"{side}_eye_roi"], "is_right_eye": np.bool_([side == "right"])})
        np.testing.assert_allclose(pixels(one_eye["projected_iris_landmarks"], (512, 512)), iris, atol=1.0)


def test_hand_modules_fed_a_roi_or_pose_hand_points_put_21_landmarks_on_the_hand(server) -> None:
    landmarks = one_request(server, "hand_landmark_cpu",
                            {"image": hand_frame(), "hand_rect": rect((224, 340), 260, (448, 448))})
    hand = landmarks["hand_landmarks"]
    assert len(hand.landmark) == 21 and within(pixels(hand, (448, 448)), HAND)
    assert landmarks["handedness"].classification[0].label in ("Left", "Right")
    from_pose = one_request(server, "hand_landmarks_from_pose_cpu",
                            {"input_video": hand_frame(), "hand_landmarks_from_pose": hand_points()})
    assert within(pixels(from_pose["hand_landmarks"], (448, 448)), HAND)
    assert within(np.array([[from_pose["hand_roi_from_pose"].x_center * 448,
                             from_pose["hand_roi_from_pose"].y_center * 448]]), HAND)
    pose = landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark() for _ in range(33)])
    left_hand = (15, 17, 19, 21)  # the pose's left wrist, pinky, index, thumb
    for index, point in zip(left_hand, hand_points().landmark, strict=True):
        pose.landmark[index].CopyFrom(point)
    both = one_request(server, "hand_landmarks_left_and_right_cpu",
                       {"input_video": hand_frame(), "pose_landmarks": pose})
    assert within(pixels(both["left_hand_landmarks"], (448, 448)), HAND)
    refined = one_request(server, "hand_recrop_by_roi_cpu",
                          {"input_video": hand_frame(), "roi": rect((224, 340), 260, (448, 448))})
    roi = refined["hand_roi_from_recrop_refined"]
    assert within(np.array([[roi.x_center * 448, roi.y_center * 448]]), HAND) and roi.width < 260 / 448
