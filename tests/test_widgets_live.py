"""Live outputs and the frame player: frames with their detections drawn, tables, proto text, Play/Pause."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from mediapipe.framework.formats import landmark_pb2
from PIL import Image

import ovms_notebook
from ovms_notebook.client import LogEntry
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.sources import ASTRONAUT_FACE, astronaut, pan_zoom, test_pattern, write_video
from ovms_notebook.widgets import PNG_SIGNATURE, THREAD_PREFIX, FramePlayer, LiveOutputs, StreamConsole
from ovms_notebook.widgets.draw import OVERLAY_COLOURS, proto_text, summarize
from tests.conftest import GRAPHS

LIME = OVERLAY_COLOURS[0]


def widget_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


@pytest.fixture
def console_for(server: ovms_notebook.Server) -> Iterator[Callable[..., StreamConsole]]:
    consoles: list[StreamConsole] = []

    def make(graph: str) -> StreamConsole:
        consoles.append(StreamConsole(server, graph))
        return consoles[-1]

    yield make
    for console in consoles:
        console.close()
    assert widget_threads() == []


def entry(kind: str, seq: int, timestamp: int | None, **values: object) -> LogEntry:
    return LogEntry(kind, seq, time.monotonic(), timestamp=timestamp, names=tuple(values), values=values)  # type: ignore[arg-type]


def test_the_player_plays_frames_into_face_detection_and_the_live_view_draws_the_box(console_for) -> None:
    console = console_for("face_detection")
    frames = list(pan_zoom(astronaut(), 10, (240, 320), focus=ASTRONAUT_FACE))
    player = FramePlayer(console, frames, fps=0)
    assert player.input_name == "image" and player.progress.max == 10
    player.play_button.value = True  # what a click on Play does
    assert player.wait(30)
    assert (player.sent, player.progress.value, player.finished) == (10, 10, True)
    assert not player.play_button.value and player.play_button.description == "Play"
    console.wait_for(10)
    outputs = console.outputs
    assert outputs.drawn_timestamp == 9 and outputs.wait_drawn(9, timeout=0)
    timestamp, detections = outputs.latest["detections"]
    assert timestamp == 9 and len(detections) == 1
    panel = outputs.panels["image"]  # the request's own frame: face_detection outputs no image
    assert panel.header_text == "image @9" and "+ detections" in panel.header.value
    shown, raw = pixels(panel.png), frames[9]
    assert shown.shape == raw.shape
    box = detections[0].location_data.relative_bounding_box
    left, top = round(box.xmin * 320), round(box.ymin * 240)
    bottom = round((box.ymin + box.height) * 240)
    edge = shown[top + 5:bottom - 5, left]  # the box's left side
    assert (edge == LIME).all(axis=1).mean() > 0.9
    assert np.abs(edge.astype(int) - raw[top + 5:bottom - 5, left].astype(int)).sum(axis=1).min() > 60
    untouched = (slice(0, 20), slice(0, 20))  # a corner far from the face is the frame itself
    assert (shown[untouched] == raw[untouched]).all()
    assert "[1 x Detection]" in outputs.panels["detections"].header.value
    assert "relative_bounding_box" in outputs.panels["detections"].html.value


def test_pause_stops_the_player_and_play_resumes_where_it_stopped(console_for) -> None:
    console = console_for("passthrough")
    player = FramePlayer(console, lambda: (np.float32([i]) for i in range(6)), input_name="in", fps=20)
    player.play()
    deadline = time.monotonic() + 10
    while player.sent < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    player.pause()
    paused_at = player.sent
    assert 1 <= paused_at < 6 and not player.playing and widget_threads().count(f"{THREAD_PREFIX}player") == 0
    player.play_button.value = True
    assert player.wait(10) and player.sent == 6 and player.finished
    console.wait_for(6)
    assert [e.values["out"].tolist() for e in console.client.responses] == [[float(i)] for i in range(6)]
    player.play()  # a callable source plays again from the start
    assert player.wait(10) and player.sent == 6
    console.wait_for(6)  # the answers to the second play's requests

    once = FramePlayer(console, (np.float32([i]) for i in range(2)), input_name="in", fps=0)
    once.play()
    assert once.wait(10) and once.sent == 2
    once.play()
    assert "plays once" in once.progress_label.value and not once.playing


def test_a_video_file_plays_into_image_flip_and_the_output_image_is_shown(console_for, tmp_path) -> None:
    frames = [test_pattern("gradient", (48, 64)) for _ in range(4)]
    path = tmp_path / "clip.avi"
    write_video(path, frames, fps=10)
    console = console_for("image_flip")
    player = FramePlayer(console, path, fps=0)
    player.play()
    assert player.wait(10) and player.sent == 4
    console.wait_for(4)
    panel = console.outputs.panels["out"]
    assert panel.header_text == "out @3"
    shown = pixels(panel.png)
    assert shown.shape == (48, 64, 3)
    assert shown[:, 0, 0].mean() > shown[:, -1, 0].mean() + 100  # flipped: red now falls left to right


def test_numbers_vectors_and_protos_are_shown_by_type() -> None:
    live = LiveOutputs({"count": StreamKind.UNKNOWN, "text": StreamKind.UNKNOWN}, min_interval=0)
    try:
        log: list[LogEntry] = []
        for seq, value in enumerate((3, 5, 4)):
            log.append(entry("response", seq, seq, count=np.int32([value])))
        landmarks = landmark_pb2.NormalizedLandmarkList(
            landmark=[landmark_pb2.NormalizedLandmark(x=0.1 * i, y=0.5) for i in range(10)])
        log.append(entry("response", 3, 2, pose=landmarks))
        log.append(entry("response", 4, 2, text=np.array([b"hello"], dtype=object)))
        live.update(log)
        assert live.flush()
        count = live.panels["count"]
        assert count.header_text == "count @2" and ">4</td>" in count.html.value
        assert "last 3: 3 … 5" in count.html.value and bytes(count.sparkline.value).startswith(PNG_SIGNATURE)
        pose = live.panels["pose"]
        assert pose.header_text == "pose @2" and "NormalizedLandmarkList(10 landmark)" in pose.header.value
        assert pose.html.value.count("landmark {") == 3 and "… 7 more landmark" in pose.html.value
        assert "hello" in live.panels["text"].html.value
        assert list(live.panels)[:2] == ["count", "text"]  # declared outputs first, in order
        assert "5 responses" in live.status.value and "redrawn" not in live.status.value  # one drawing has no rate
        live.update([*log, LogEntry("end", 5, time.monotonic(), text="OK", code="OK")])
        live.flush()
        assert "stream ended: OK" in live.status.value
    finally:
        live.close()
    assert widget_threads() == []


def test_landmarks_at_an_image_outputs_timestamp_are_drawn_over_it() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    landmarks = landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark(x=0.5, y=0.5)])
    live = LiveOutputs({"video": StreamKind.IMAGE}, min_interval=0)
    try:
        live.update([entry("response", 0, 7, video=frame), entry("response", 1, 7, marks=[landmarks])])
        live.flush()
        shown = pixels(live.panels["video"].png)
        assert (shown[50, 50] == OVERLAY_COLOURS[0]).all() and not shown[5, 5].any()
        assert live.panels["video"].header_text == "video @7" and "image" not in live.panels
        live.reset(["video"])
        assert live.panels["video"].timestamp is None and live.latest == {}
    finally:
        live.close()


def test_text_helpers_are_short_and_readable() -> None:
    assert summarize(np.float32([1.5, 2])) == "[1.5, 2]"
    assert summarize(np.zeros((480, 640, 3), np.uint8)) == "uint8[480x640x3]"
    assert summarize(np.int32(5)) == "5"
    assert summarize(ValueError("bad")) == "cannot decode: bad"
    long = landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark(x=1)] * 33)
    text = proto_text(long)
    assert text.count("landmark {") == 3


def test_the_redraw_rate_shows_only_while_answers_flow_and_a_pause_starts_it_again() -> None:
    """Answers a second or more apart (sent by hand) have no rate; five redraws in a flow do, and say what it is."""
    live = LiveOutputs(["out"], min_interval=0)
    try:
        log: list[LogEntry] = []

        def answer(value: int) -> str:
            log.append(entry("response", len(log), len(log), out=np.float32([value])))
            live.update(list(log))
            assert live.flush()
            return live.status.value

        for value in range(4):
            assert "redrawn" not in answer(value) and live.fps == 0.0  # fewer than five redraws: no rate yet
        status = answer(4)
        assert live.fps > 0 and f"5 responses · redrawn {live.fps:.1f}/s" in status
        time.sleep(1.2)  # a pause (a person clicking): the run ends, its rate is not shown any more
        assert "redrawn" not in answer(5) and live.fps == 0.0
        log.append(LogEntry("end", len(log), time.monotonic(), text="OK", code="OK"))
        live.update(list(log))
        live.flush()
        assert "redrawn" not in live.status.value and "stream ended: OK" in live.status.value
    finally:
        live.close()
    assert widget_threads() == []


def test_a_detections_label_is_dark_text_on_a_tab_of_its_colour_above_the_box_or_inside_it_at_the_frames_top():
    from mediapipe.framework.formats import detection_pb2

    from ovms_notebook.widgets.draw import draw_overlays

    def detection(ymin: float) -> detection_pb2.Detection:
        found = detection_pb2.Detection(label=["id 1"], score=[0.98])
        found.location_data.format = found.location_data.RELATIVE_BOUNDING_BOX
        box = found.location_data.relative_bounding_box
        box.xmin, box.ymin, box.width, box.height = 0.25, ymin, 0.5, 0.5
        return found

    frame = np.full((240, 320, 3), 128, np.uint8)
    for ymin, rows in ((0.4, slice(60, 96)), (0.0, slice(0, 36))):  # above the edge at y=96; inside from y=0
        shown = np.asarray(draw_overlays(frame, [(0, [detection(ymin)])]))
        tab = shown[rows, 80:160]
        lime = (tab == OVERLAY_COLOURS[0]).all(axis=-1)
        dark = (tab < 80).all(axis=-1)
        text_rows = np.flatnonzero(dark.any(axis=1))
        assert lime.sum() > 300 and dark.sum() > 60, ymin  # a filled tab, with text on it
        assert len(text_rows) >= 9, ymin  # digits 9 px high or more: readable on a 320 x 240 frame
        assert not dark[:, 70:].any()  # "id 1 0.98" ends well inside the box's width
