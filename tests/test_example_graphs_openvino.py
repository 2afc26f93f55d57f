"""The example graphs with OpenVINO and Python nodes, over the server with real clients.

face_detection_openvino (OpenVINO inference + OVMS Python pre/post-processing) must give the detections of
MediaPipe's own FaceDetectionShortRangeCpu (graphs/face_detection) on the same frames; face_tracking must keep
one id per face across a stream's frames, and separate tracks per stream.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tritonclient.grpc as triton

import ovms_notebook
from ovms_notebook.calculators.tracking import IouTracker, boxes_of, iou
from ovms_notebook.codec import TensorValue, decode_output
from ovms_notebook.sources import astronaut, pan_zoom
from tests.conftest import GRAPHS, request, stream, triton_stream


@pytest.fixture(scope="module")
def server():
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


def native_detections(address: str, frame: np.ndarray) -> np.ndarray:
    """FaceDetectionShortRangeCpu's detections as rows like face_detection_openvino's (empty when none)."""
    result = stream(address, [request("face_detection", {"image": frame})])
    if not result.outputs:
        return np.zeros((0, 17), np.float32)
    response = result.outputs[0]
    rows = []
    for detection in decode_output(response.outputs[0], response.raw_output_contents[0]):
        box = detection.location_data.relative_bounding_box
        points = [c for k in detection.location_data.relative_keypoints for c in (k.x, k.y)]
        rows.append([box.xmin, box.ymin, box.width, box.height, *points, detection.score[0]])
    return np.array(rows, np.float32)


def openvino_detections(address: str, frame: np.ndarray) -> np.ndarray:
    result = stream(address, [request("face_detection_openvino", {"image": frame})])
    assert result.errors == [] and result.code.name == "OK", (result.errors, result.details)
    (response,) = result.outputs
    assert (response.outputs[0].name, response.outputs[0].datatype) == ("detections", "FP32")
    shape = list(response.outputs[0].shape)
    return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(shape)


def two_faces() -> np.ndarray:
    photo = astronaut()[:, 64:448]  # 512x384, face near the top middle
    return np.ascontiguousarray(np.hstack([photo, photo[:, ::-1]]))


FRAMES = {
    "square": lambda: astronaut(),
    "wide crop": lambda: np.ascontiguousarray(astronaut()[100:400]),
    "tall crop": lambda: np.ascontiguousarray(astronaut()[:, 64:448]),
    "two faces": two_faces,
    **{f"pan/zoom {i}": (lambda i=i: list(pan_zoom(astronaut(), 4, size=(240, 320)))[i]) for i in range(4)},
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_openvino_face_detection_matches_mediapipes_own(server, name):
    frame = FRAMES[name]()
    ours = openvino_detections(server.address, frame)
    theirs = native_detections(server.address, frame)
    assert ours.shape == theirs.shape and len(ours) == (2 if name == "two faces" else 1)
    order = np.argsort(ours[:, 0]), np.argsort(theirs[:, 0])
    np.testing.assert_allclose(ours[order[0]], theirs[order[1]], atol=1e-4)


def test_openvino_face_detection_answers_every_frame_even_without_a_face(server):
    empty = np.full((200, 300, 3), 90, np.uint8)
    assert openvino_detections(server.address, empty).shape == (0, 17)


def track_stream(address: str, frames: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """Send frames on one stream with tritonclient; (timestamp, tracks [N, 6]) per response, in order."""
    requests = []
    for frame in frames:
        tensor = triton.InferInput("image", list(frame.shape), "UINT8")
        tensor.set_data_from_numpy(frame)
        requests.append(([tensor], None))
    with triton.InferenceServerClient(address) as client:
        items = triton_stream(client, "face_tracking", requests)
    answers = []
    for result, error in items:
        assert error is None, error
        response = result.get_response()
        answers.append((response.parameters["OVMS_MP_TIMESTAMP"].int64_param, result.as_numpy("tracks")))
    return answers


def test_the_tracker_keeps_one_id_for_the_face_across_a_video(server):
    frames = list(pan_zoom(astronaut(), 16, size=(320, 320)))  # ~0.4-0.9 IoU from frame to frame
    answers = track_stream(server.address, frames)
    assert [stamp for stamp, _ in answers] == list(range(16))
    assert [tracks[:, 0].tolist() for _, tracks in answers] == [[1.0]] * 16
    assert all(tracks[0, 5] > 0.7 for _, tracks in answers)


def test_two_faces_keep_their_ids_and_a_face_that_leaves_for_long_comes_back_new(server):
    both = two_faces()
    blank = np.full_like(both, 128)
    frames = [both, both, np.ascontiguousarray(both[:, ::-1]), blank, *[blank] * 6, both]
    answers = track_stream(server.address, frames)
    ids = [sorted(tracks[:, 0].tolist()) for _, tracks in answers]
    assert ids[:3] == [[1.0, 2.0]] * 3
    assert ids[3:10] == [[]] * 7  # no face: empty tracks, the node still answers (it runs on bounds)
    assert ids[10] == [3.0, 4.0]  # gone for more than max_missed=5 frames: new identities
    first, mirrored = answers[1][1], answers[2][1]
    left_id = first[np.argmin(first[:, 1]), 0]
    # the mirrored frame swaps the two (symmetric) faces' places, not their ids' boxes: same ids, same places
    assert mirrored[np.argmin(mirrored[:, 1]), 0] == left_id


def test_two_streams_keep_separate_tracks(server):
    frames = list(pan_zoom(astronaut(), 16, size=(320, 320)))
    results: dict[str, list] = {}

    def run(key: str) -> None:
        results[key] = track_stream(server.address, frames)

    threads = [threading.Thread(target=run, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for key in ("a", "b"):  # each stream's tracker starts at id 1: no state is shared
        assert [tracks[:, 0].tolist() for _, tracks in results[key]] == [[1.0]] * 16


def test_iou_and_the_tracker_logic():
    assert iou((0, 0, 1, 1), (0.5, 0, 1, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0.0
    tracker = IouTracker(min_iou=0.3, max_missed=1)
    a, b = ((0.1, 0.1, 0.2, 0.2), 0.9), ((0.6, 0.6, 0.2, 0.2), 0.8)
    assert [t.id for t in tracker.update([a, b])] == [1, 2]
    assert [t.id for t in tracker.update([b, a])] == [2, 1]
    assert tracker.update([]) == [] and len(tracker.tracks) == 2
    tracker.update([])
    assert tracker.tracks == []
    rows = np.array([[0.1, 0.2, 0.3, 0.4, 0.9]], np.float32)
    value = TensorValue("detections", "FP32", (1, 5), rows.tobytes())
    assert boxes_of(value) == boxes_of(rows) == [((pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3),
                                                    pytest.approx(0.4)), pytest.approx(0.9))]
    assert boxes_of(np.zeros((0, 17), np.float32)) == [] and boxes_of(None) == []
    with pytest.raises(ValueError, match=r"expected Detection protos or an array \[N, >=5\].*got shape \(3,\)"):
        boxes_of(np.zeros(3))
