"""Every example graph in graphs/ runs on the real mediapipe 0.10.21 wheel.

Each test builds graphs/<name>/graph.pbtxt with ``mp.CalculatorGraph`` directly
(no server, no codec), feeds raw packets at explicit timestamps with
``wait_until_idle()`` after each step, and checks the exact outputs and their
timestamps. The packets a server's codec would make from each stream tag are
built by hand: untagged/OVTENSOR -> string packet, FLOATS -> float vector,
INT -> int, IMAGE -> SRGB ImageFrame.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mediapipe as mp
import numpy as np
import pytest
from mediapipe.python import packet_creator, packet_getter

from ovms_notebook.sources import astronaut, pan_zoom, test_pattern

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"

# Relative bounding box FaceDetectionShortRangeCpu finds on the astronaut (xmin, ymin, width, height).
ASTRONAUT_FACE_BOX = (0.347, 0.162, 0.186, 0.186)

Output = list[tuple[int, mp.Packet]]


@pytest.fixture(scope="module", autouse=True)
def _models_resolve_from_the_wheel() -> None:
    # Model paths in the wheel's subgraphs are "mediapipe/modules/...": relative to site-packages.
    mp.resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))


class Run:
    """One running graph from graphs/<name>: observers record packets, decoding happens later.

    Callbacks only append: anything that can raise inside a MediaPipe callback
    (a getter of the wrong type) would abort the process.
    """

    def __init__(
        self, name: str, *, bounds: tuple[str, ...] = (), side_packets: dict[str, mp.Packet] | None = None
    ) -> None:
        self.graph = mp.CalculatorGraph(graph_config=(GRAPHS / name / "graph.pbtxt").read_text())
        self.outputs: dict[str, Output] = {}
        for stream in _output_streams(name):
            self.outputs[stream] = []
            self.graph.observe_output_stream(
                stream,
                lambda s, packet: self.outputs[s].append((packet.timestamp.value, packet)),
                observe_timestamp_bounds=stream in bounds,
            )
        self.graph.start_run(side_packets or {})

    def add(self, stream: str, packet: mp.Packet, timestamp: int) -> dict[str, Output]:
        """Add one packet, wait until idle, return what each output stream produced meanwhile."""
        before = {s: len(v) for s, v in self.outputs.items()}
        self.graph.add_packet_to_input_stream(stream, packet, timestamp)
        self.graph.wait_until_idle()
        return {s: v[before[s] :] for s, v in self.outputs.items() if len(v) > before[s]}

    def close_input(self, stream: str) -> dict[str, Output]:
        """Close one graph input stream, wait until idle, return the new outputs."""
        before = {s: len(v) for s, v in self.outputs.items()}
        self.graph.close_input_stream(stream)
        self.graph.wait_until_idle()
        return {s: v[before[s] :] for s, v in self.outputs.items() if len(v) > before[s]}


def _output_streams(name: str) -> list[str]:
    """Graph-level output stream names of graphs/<name>, without their tags."""
    text = (GRAPHS / name / "graph.pbtxt").read_text()
    return [line.split('"')[1].split(":")[-1] for line in text.splitlines() if line.startswith("output_stream:")]


@pytest.fixture
def run() -> Iterator[Callable[..., Run]]:
    """Yield a factory of Run objects; every graph it started is closed at teardown, even when a test fails."""
    started: list[Run] = []

    def start(name: str, **kwargs: Any) -> Run:
        started.append(Run(name, **kwargs))
        return started[-1]

    yield start
    for graph_run in started:
        graph_run.graph.close()


def _floats(out: Output) -> list[tuple[int, list[float]]]:
    return [(t, packet_getter.get_float_list(p)) for t, p in out]


def _ints(out: Output) -> list[tuple[int, int | None]]:
    return [(t, None if p.is_empty() else packet_getter.get_int(p)) for t, p in out]


def _frame(image: np.ndarray) -> mp.Packet:
    return packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=image)


def test_config_json_lists_every_graph_folder_in_ovms_format() -> None:
    config = json.loads((GRAPHS / "config.json").read_text())
    entries = config["mediapipe_config_list"]
    folders = sorted({p.parent.name for p in GRAPHS.glob("*/*.pbtxt")})
    assert sorted(e["base_path"] for e in entries) == folders
    # graph.pbtxt, except where an OVMS demo's file is served under its own name
    assert all(e["graph_path"] == "graph.pbtxt" or e["base_path"] in ("holistic_tracking", "iris_tracking")
               for e in entries)
    assert all((GRAPHS / e["base_path"] / e["graph_path"]).is_file() for e in entries)
    assert {e["name"] for e in entries} >= {"passthrough", "face_detection", "holisticTracking"}
    assert all((GRAPHS / e["base_path"] / "README.md").is_file() for e in entries)


def test_graph_passthrough_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    g = run("passthrough")
    for timestamp, payload in [(0, b"\x00\x01"), (1, b"abc"), (7, b"")]:
        got = g.add("in", packet_creator.create_string(payload), timestamp)
        assert [(t, packet_getter.get_bytes(p)) for t, p in got["out"]] == [(timestamp, payload)]


def test_graph_concat_default_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    # Mirrors the golden default_handler_one_input_skips_timestamp.
    g = run("concat_default")
    a, b = packet_creator.create_float_vector, packet_creator.create_float_vector
    assert g.add("a", a([0.0]), 0) == {}
    assert _floats(g.add("b", b([100.0]), 0)["out"]) == [(0, [0.0, 100.0])]
    assert g.add("a", a([1.0]), 1) == {}  # waits: b has not moved past 1
    assert g.add("a", a([2.0]), 2) == {}
    assert _floats(g.add("b", b([102.0]), 2)["out"]) == [(1, [1.0]), (2, [2.0, 102.0])]
    assert g.add("a", a([3.0]), 3) == {}
    assert g.close_input("a") == {}
    assert _floats(g.close_input("b")["out"]) == [(3, [3.0])]


def test_graph_concat_immediate_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    # Mirrors the golden immediate_handler_concat_interleaved.
    g = run("concat_immediate")
    vec = packet_creator.create_float_vector
    assert _floats(g.add("a", vec([0.0]), 0)["out"]) == [(0, [0.0])]
    assert _floats(g.add("b", vec([101.0]), 1)["out"]) == [(1, [101.0])]
    assert _floats(g.add("a", vec([2.0]), 2)["out"]) == [(2, [2.0])]
    assert _floats(g.add("b", vec([103.0]), 3)["out"]) == [(3, [103.0])]
    assert _floats(g.close_input("a")["out"]) == [(4, [])]  # the quirk: one more run, both inputs empty
    assert g.close_input("b") == {}


def test_graph_previous_value_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    # Mirrors the golden previous_loopback (without its gate).
    g = run("previous_value", bounds=("previous",))
    first = g.add("in", packet_creator.create_int(10), 0)
    assert _ints(first["current"]) == [(0, 10)]
    assert _ints(first["previous"]) == [(0, None)]  # bound only: nothing came before
    for timestamp, value, previous in [(1, 11, 10), (2, 12, 11), (9, -5, 12)]:
        got = g.add("in", packet_creator.create_int(value), timestamp)
        assert _ints(got["current"]) == [(timestamp, value)]
        assert _ints(got["previous"]) == [(timestamp, previous)]


def test_graph_side_packet_ticker_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    g = run("side_packet_ticker", side_packets={"offset": packet_creator.create_int64(7)})
    for timestamp in (0, 3, 10):
        got = g.add("tick", packet_creator.create_string(b"tick"), timestamp)
        assert _ints(got["offset_value"]) == [(timestamp, 7)]


@pytest.mark.parametrize(
    ("side_packet", "getter", "value"),
    [
        (packet_creator.create_string("seven"), packet_getter.get_str, "seven"),  # a string_param
        (packet_creator.create_bool(True), packet_getter.get_bool, True),  # a bool_param
    ],
)
def test_graph_side_packet_ticker_streams_string_and_bool_parameters_too(
    run: Callable[..., Run], side_packet: mp.Packet, getter: Callable[[mp.Packet], Any], value: object
) -> None:
    g = run("side_packet_ticker", side_packets={"offset": side_packet})
    got = g.add("tick", packet_creator.create_string(b"tick"), 4)
    assert [(t, getter(p)) for t, p in got["offset_value"]] == [(4, value)]


def test_graph_side_packet_ticker_cannot_start_without_its_side_packet() -> None:
    graph = mp.CalculatorGraph(graph_config=(GRAPHS / "side_packet_ticker" / "graph.pbtxt").read_text())
    with pytest.raises(ValueError, match="offset"):
        graph.start_run()


def test_graph_image_flip_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    g = run("image_flip")
    image = test_pattern("gradient", (48, 64))
    ((timestamp, packet),) = g.add("in", _frame(image), 5)["out"]
    frame = packet_getter.get_image_frame(packet)
    assert timestamp == 5
    assert frame.image_format == mp.ImageFormat.SRGB
    np.testing.assert_array_equal(frame.numpy_view(), image[:, ::-1])


def test_graph_face_detection_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    g = run("face_detection")
    ((timestamp, packet),) = g.add("image", _frame(astronaut()), 0)["detections"]
    detections = packet_getter.get_proto_list(packet)
    assert timestamp == 0
    assert len(detections) == 1
    assert detections[0].score[0] > 0.9
    box = detections[0].location_data.relative_bounding_box
    assert (box.xmin, box.ymin, box.width, box.height) == pytest.approx(ASTRONAUT_FACE_BOX, abs=0.01)
    # A face-free frame (the far corner pan_zoom cuts to) produces no packet at all.
    face_free = next(pan_zoom(astronaut(), 1, cut=(0, 1)))
    assert g.add("image", _frame(face_free), 1) == {}
    assert len(g.add("image", _frame(astronaut()), 2)["detections"]) == 1


def test_graph_holistic_runs_in_the_wheel(run: Callable[..., Run]) -> None:
    g = run("holistic")
    got = g.add("first_input_video", _frame(astronaut()), 0)
    ((pose_t, pose_packet),) = got["pose_landmarks"]
    ((face_t, face_packet),) = got["face_landmarks"]
    pose = packet_getter.get_proto(pose_packet)
    face = packet_getter.get_proto(face_packet)
    assert (pose_t, face_t) == (0, 0)
    assert type(pose).__name__ == type(face).__name__ == "NormalizedLandmarkList"
    assert len(pose.landmark) == 33
    assert len(face.landmark) == 468
    # The pose's nose (landmark 0) and the face mesh's centre sit inside the detected face box.
    xmin, ymin, width, height = ASTRONAUT_FACE_BOX
    nose = pose.landmark[0]
    face_x = float(np.mean([p.x for p in face.landmark]))
    face_y = float(np.mean([p.y for p in face.landmark]))
    for x, y in [(nose.x, nose.y), (face_x, face_y)]:
        assert xmin < x < xmin + width
        assert ymin < y < ymin + height
    # Tracking carries on: the next frame has landmarks at its own timestamp.
    again = g.add("first_input_video", _frame(astronaut()), 1)
    assert [t for t, _ in again["pose_landmarks"]] == [1]
