"""Load: 8 concurrent tritonclient streams, every response accounted for, in order, with its own timestamps.

Bounded sizes for the default run (8 x 500 pass-through requests, 8 x 20 face-detection frames);
bench/load.py runs 8 x 10,000 and 8 x 300 with throughput and latency. No timing is asserted here.
"""

from __future__ import annotations

import pytest

import ovms_notebook
from ovms_notebook.sources import astronaut, pan_zoom
from tests.conftest import GRAPHS
from tests.loadgen import has_output, image_inputs, passthrough_check, passthrough_inputs, run_streams


@pytest.fixture(scope="module")
def server():
    with ovms_notebook.serve(GRAPHS) as running:
        yield running


def test_eight_pass_through_streams_of_500_requests_each_get_every_value_at_its_own_timestamps(server):
    result = run_streams(server.address, "passthrough", passthrough_inputs, passthrough_check, streams=8,
                         requests=500)
    assert result.problems() == []
    assert [len(s.timestamps) for s in result.streams] == [500] * 8
    assert all(s.timestamps == list(range(500)) for s in result.streams)
    assert server.sessions == []


def test_eight_face_detection_streams_of_20_frames_answer_every_frame_in_order(server):
    frames = list(pan_zoom(astronaut(), 20))  # a face in every frame, so every frame gets "detections"
    result = run_streams(server.address, "face_detection", image_inputs(frames), has_output("detections"),
                         streams=8, requests=20, window=4)
    assert result.problems() == []
    assert all(s.timestamps == list(range(20)) for s in result.streams)


def test_a_wrong_value_or_a_missing_response_is_reported():
    from tests.loadgen import LoadResult, StreamOutcome

    result = LoadResult([StreamOutcome([0, 2], ["timestamp 2: expected [2], got [5.]"]), StreamOutcome([0, 1, 2])],
                        seconds=1.0, requests=3)
    assert result.problems() == [
        "stream 0: 2 responses for 3 requests, in order: True, missing [1]",
        "stream 0: timestamp 2: expected [2], got [5.]",
    ]
