"""The live camera's kernel half on a real server and real graphs, without a browser.

Frames go in through `CameraWidget`'s own message handler (what the browser's comm messages reach),
encoded as the browser encodes them; what would go back to the browser is read from the widget's
`send` (the one place replaced here: there is no front end to receive it). The browser half is
tests/browser/test_camera_browser.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("anywidget")

import ovms_notebook
from ovms_notebook.client import compare, replay
from ovms_notebook.widgets.camera import LiveCamera
from ovms_notebook.widgets.camera_fake import frame_index, moving_face_frames
from ovms_notebook.widgets.camera_shapes import answer_of, is_track_rows, shapes_of
from ovms_notebook.widgets.camera_widget import CameraWidget
from tests.conftest import GRAPHS, write_graphs

FACE_TRACKING = (GRAPHS / "face_tracking" / "graph.pbtxt").read_text()
FACE_DETECTION = (GRAPHS / "face_detection" / "graph.pbtxt").read_text()
IMAGE_FLIP = (GRAPHS / "image_flip" / "graph.pbtxt").read_text()


class Sent:
    """What a widget would send to the browser: (content, buffers) per message."""

    def __init__(self, widget: CameraWidget) -> None:
        self.messages: list[tuple[dict[str, Any], list[Any] | None]] = []
        self._lock = threading.Lock()
        widget.model.send = self._send

    def _send(self, content: dict[str, Any], buffers: list[Any] | None = None) -> None:
        with self._lock:
            self.messages.append((content, buffers))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c, _ in self.messages if c["type"] == kind]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_face_frames(30, size=(240, 320), face_size=210)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ovms_notebook.Server]:
    config = write_graphs(
        tmp_path / "a", {"face_tracking": FACE_TRACKING, "face_detection": FACE_DETECTION, "image_flip": IMAGE_FLIP}
    )
    with ovms_notebook.serve(config) as running:
        yield running


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[ovms_notebook.Server]:
    config = write_graphs(tmp_path / "b", {"face_tracking": FACE_TRACKING, "face_detection": FACE_DETECTION})
    with ovms_notebook.serve(config) as running:
        yield running


@pytest.fixture
def camera(server: ovms_notebook.Server) -> Iterator[LiveCamera]:
    live = LiveCamera(server, "face_tracking", timeline=False)
    yield live
    live.close()


def test_tracks_follow_the_moving_face_and_timestamps_are_capture_times(
    camera: LiveCamera, frames: list[np.ndarray]
) -> None:
    sent = Sent(camera.camera)
    seen: list[tuple[int, int, np.ndarray]] = []
    camera.on_answer(
        lambda timestamp, outputs, frame: seen.append((timestamp, frame_index(frame), np.asarray(outputs["tracks"])))
    )
    assert camera.input_name == "image"
    assert camera.feed(frames, fps=30) == len(frames)
    results = sent.of("result")
    assert len(results) == len(frames) and sent.of("drop") == []
    # Manual timestamps: microseconds since the first frame, 1/30 s apart.
    assert [r["timestamp"] for r in results] == [round(i * 1e6 / 30) for i in range(len(frames))]
    assert [index for _, index, _ in seen] == list(range(len(frames)))
    # One face per frame, one id for the whole stream (the stream's state lives across frames), and the
    # boxes the browser gets are the tracker's rows.
    assert all(tracks.shape == (1, 6) for _, _, tracks in seen)
    assert {int(tracks[0, 0]) for _, _, tracks in seen} == {1}
    for result, (_, _, tracks) in zip(results, seen, strict=True):
        (box,) = result["shapes"]
        assert box["kind"] == "box" and box["label"].startswith("id 1 ")
        assert box["x"] == pytest.approx(float(tracks[0, 1])) and box["w"] == pytest.approx(float(tracks[0, 3]))
    # The face slides right for the first half of the loop, then back.
    centres = [float(t[0, 1] + t[0, 3] / 2) for _, _, t in seen]
    assert centres[14] - centres[0] > 0.2 and centres[14] - centres[-1] > 0.2
    stats = camera.stats
    assert (stats["received"], stats["answered"], stats["dropped_kernel"], stats["errors"]) == (30, 30, 0, 0)
    picture = camera.annotated()
    assert picture is not None and picture.size == (320, 240)


def test_raw_frames_give_the_same_answers_as_jpeg_ones_within_two_pixels(
    server: ovms_notebook.Server, frames: list[np.ndarray]
) -> None:
    boxes = {}
    for kind in ("jpeg", "raw"):
        live = LiveCamera(server, "face_tracking", timeline=False)
        sent = Sent(live.camera)
        live.feed(frames[:5], format=kind)
        boxes[kind] = np.array([r["shapes"][0]["x"] for r in sent.of("result")])
        if kind == "raw":
            assert np.array_equal(live.loop.latest[2], frames[4]), "raw frames arrive bit for bit"  # type: ignore[index]
        live.close()
    assert np.abs(boxes["jpeg"] - boxes["raw"]).max() < 2 / 320  # JPEG moves the detector's box about a pixel


def test_newer_frames_replace_waiting_ones_and_every_frame_gets_one_reply(
    server: ovms_notebook.Server, frames: list[np.ndarray]
) -> None:
    live = LiveCamera(server, "face_tracking", timeline=False, max_graph_in_flight=1)
    sent = Sent(live.camera)
    try:
        # As fast as the main thread hands frames over (a burst from the browser): nothing waits for answers.
        live.feed(frames * 3, wait=False)
        live.wait_answered(len(frames) * 3)
        results, drops = sent.of("result"), sent.of("drop")
        replied = sorted(m["id"] for m in results + drops)
        assert replied == sorted(set(replied)) and len(replied) == len(frames) * 3, "one reply per frame"
        assert len(drops) == live.stats["dropped_kernel"] == live.camera.kernel_dropped
        assert len(drops) > 0, "a burst of 90 frames into one graph slot drops some (nondeterministic count)"
        assert max(m["id"] for m in results) == max(replied), "the newest frame is never dropped"
        assert drops[-1]["kernel_dropped"] == len(drops)
    finally:
        live.close()


@pytest.mark.parametrize(
    ("content", "buffers", "expected"),
    [
        (
            {"type": "frame", "id": 1, "t": 0, "width": 4, "height": 2, "format": "raw"},
            [b"\0" * 31],
            "a raw 4x2 RGBA frame must have 32 bytes, got 31",
        ),
        (
            {"type": "frame", "id": 2, "t": 0, "width": 4, "height": 2, "format": "jpeg"},
            [b"\x89PNG...."],
            "frame 2 is not a JPEG picture (8 bytes starting 89504e47)",
        ),
        (
            {"type": "frame", "id": 3, "t": 0, "width": 4, "height": 2, "format": "png"},
            [b""],
            "camera frame 3: format must be one of ('jpeg', 'raw'), got 'png'",
        ),
        (
            {"type": "frame", "id": 4, "t": float("nan"), "width": 4, "height": 2, "format": "raw"},
            [b""],
            "camera frame 4 needs a finite capture time t (ms), got nan",
        ),
        (
            {"type": "frame", "id": 5, "t": 0, "width": 0, "height": 2, "format": "raw"},
            [b""],
            "camera frame 5: width must be an integer from 1 to 4096, got 0",
        ),
        (
            {"type": "frame", "id": 6, "t": 0, "width": 4, "height": 2, "format": "raw"},
            [],
            "camera frame 6 must come with one binary buffer, got 0",
        ),
    ],
)
def test_bad_frames_are_answered_with_what_was_expected_and_the_stream_lives_on(
    camera: LiveCamera, frames: list[np.ndarray], content: dict[str, Any], buffers: list[bytes], expected: str
) -> None:
    sent = Sent(camera.camera)
    camera.camera._on_message(camera.camera.model, content, [memoryview(b) for b in buffers])
    deadline = time.monotonic() + 10  # checked on arrival, or when the worker decodes it
    while not sent.of("result") and time.monotonic() < deadline:
        time.sleep(0.01)
    (reply,) = sent.of("result")
    assert reply["error"] and reply["id"] == content["id"]
    assert expected in reply["text"]
    camera.feed(frames[:2])  # the next good frames go through the same stream
    assert [r["error"] for r in sent.of("result")] == [True, False, False]
    decoded = content["id"] in (1, 2)  # these pass the message check and fail when decoded
    assert camera.camera.rejected == ([] if decoded else [expected])
    assert camera.loop.client is not None and not camera.loop.client.ended


def test_a_recording_replays_exactly_on_another_server_and_on_another_graph(
    camera: LiveCamera, other_server: ovms_notebook.Server, frames: list[np.ndarray], tmp_path: Path
) -> None:
    camera.feed(frames[:3])  # live frames before the recording are not in it
    camera.start_recording(max_frames=50)
    camera.feed(frames[3:15])
    recording = camera.stop_recording()
    assert len(recording.requests) == 12 and len(recording.responses) == 12 and recording.end.code == "OK"
    assert [s.timestamp for s in recording.requests] == [round(i * 1e6 / 30) for i in range(12)]
    camera.feed(frames[15:17])  # live again, on a fresh stream
    assert camera.loop.client is not None and not camera.loop.client.ended

    from ovms_notebook.client import Recording

    loaded = Recording.load(recording.save(tmp_path / "camera.json"))
    again = replay(loaded, other_server.address)
    assert compare(recording, again).same, compare(recording, again).differences
    detections = replay(loaded, other_server.address, "face_detection")
    assert [s.timestamp for s in detections.responses] == [s.timestamp for s in recording.responses]


def test_a_recording_ends_by_itself_at_max_frames(camera: LiveCamera, frames: list[np.ndarray]) -> None:
    camera.start_recording(max_frames=4)
    camera.feed(frames[:6])
    assert not camera.loop.recording_active
    recording = camera.stop_recording()
    assert len(recording.requests) == 4 and recording.end.code == "OK"


def test_image_outputs_go_back_as_jpeg(server: ovms_notebook.Server, frames: list[np.ndarray]) -> None:
    live = LiveCamera(server, "image_flip", timeline=False)
    sent = Sent(live.camera)
    try:
        assert live.input_name == "in"
        live.feed(frames[:2])
        (content, buffers), _ = [m for m in sent.messages if m[0]["type"] == "result"]
        assert content["image"] and content["shapes"] == []
        import cv2

        flipped = cv2.imdecode(np.frombuffer(buffers[0], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert flipped.shape == (240, 320, 3)
        assert np.abs(flipped.astype(int) - frames[0][:, ::-1].astype(int)).mean() < 4  # JPEG twice
    finally:
        live.close()


def test_close_ends_the_stream_and_threads_and_a_new_camera_replaces_the_old(
    server: ovms_notebook.Server, frames: list[np.ndarray]
) -> None:
    first = LiveCamera(server, "face_tracking")
    first.feed(frames[:3])
    client = first.loop.client
    assert client is not None and first.threads
    second = LiveCamera(server, "face_tracking")  # a re-run cell: same graph and address
    try:
        assert first.threads == [] and client.ended and repr(first).endswith("closed>")
        second.feed(frames[:1])
        assert second.stats["answered"] == 1
    finally:
        second.close()
    assert second.threads == []
    assert [t.name for t in threading.enumerate() if "camera" in t.name] == []


def test_graphs_without_an_image_input_are_refused_with_what_they_have(server: ovms_notebook.Server) -> None:
    with pytest.raises(ValueError, match="'nope' is not a graph of this server; it has face_tracking"):
        LiveCamera(server, "nope")
    with pytest.raises(ValueError, match="'face_tracking' has no input stream 'frames'; it has image"):
        LiveCamera(server, "face_tracking", input_name="frames")
    with pytest.raises(
        ValueError, match=r"resolution must be one of \('320x240', '640x480', '1280x720'\), got '800x600'"
    ):
        CameraWidget(resolution="800x600")
    camera = CameraWidget(max_in_flight=3)
    try:
        assert (camera.max_in_flight, camera.model.max_in_flight, camera.key) == (3, 3, camera.model.model_id)
        with pytest.raises(ValueError, match="max_in_flight must be an integer from 1 to 8, got 0"):
            camera.max_in_flight = 0
        assert camera.model.max_in_flight == 3
    finally:
        camera.close()


def test_shapes_of_detections_and_track_rows() -> None:
    from mediapipe.framework.formats import detection_pb2

    detection = detection_pb2.Detection(label=["face"], score=[0.9])
    box = detection.location_data.relative_bounding_box
    box.xmin, box.ymin, box.width, box.height = 0.1, 0.2, 0.3, 0.4
    point = detection.location_data.relative_keypoints.add()
    point.x, point.y = 0.5, 0.6
    (shape,) = shapes_of([detection], 2)  # type: ignore[misc]
    assert shape == {
        "kind": "box",
        "colour": 2,
        "x": pytest.approx(0.1),
        "y": pytest.approx(0.2),
        "w": pytest.approx(0.3),
        "h": pytest.approx(0.4),
        "label": "face 0.90",
        "points": [[pytest.approx(0.5), pytest.approx(0.6)]],
    }
    rows = np.array([[7, 0.1, 0.2, 0.3, 0.4, 0.8]], np.float32)
    assert is_track_rows(rows) and not is_track_rows(rows.astype(np.int32)) and not is_track_rows(rows[:, :5])
    assert shapes_of(rows, 0)[0]["label"] == "id 7 0.80"  # type: ignore[index]
    assert shapes_of(np.float32([1.5]), 0) is None
    order: list[str] = []
    answer = answer_of({"tracks": rows, "count": np.int64(1)}, order)
    assert order == ["tracks", "count"] and answer.text == "tracks: 1 shape · count: 1" and answer.image is None
