"""Record and replay of stream sessions against real servers on port 0: the file, the replay, the comparison."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.client import Comparison, Recording, StreamClient, compare, replay
from ovms_notebook.client.steps import EndStep, ErrorStep, RecordedTensor, RequestStep, ResponseStep
from ovms_notebook.engine.python.api import Calculator, register, unregister
from tests.conftest import GRAPHS, PASSTHROUGH

F = np.float32
REPEATED_10 = (
    'Malformed packet timestamp - input stream "in" needs a timestamp greater than 10, the last one it received; '
    "got 10; partial deserialization of subsequent requests"
)
NOT_FOUND = "[StatusCode.NOT_FOUND] Mediapipe graph definition with requested name is not found"

FLOATS = """
input_stream: "FLOATS:in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""
ADD_ONE = """
input_stream: "FLOATS:in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }
node { calculator: "RecordingTestAddOne" input_stream: "a" output_stream: "out" }
"""


class AddOne(Calculator):
    """Adds 1 to a float vector: the same graph interface as FLOATS with different values."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": [x + 1.0 for x in inputs[":0"]]}


@pytest.fixture
def add_one() -> Iterator[None]:
    register("RecordingTestAddOne")(AddOne)
    yield
    unregister("RecordingTestAddOne")


def record_session(address: str, graph: str = "g") -> Recording:
    """Automatic, manual and mixed timestamps and a repeated manual one (an in-band error), answered one by one."""
    with StreamClient(address, graph, max_log=None) as client:
        client.send({"in": F([1, 2])})
        client.send({"in": F([3])})
        client.wait_for(2)
        client.send({"in": F([4])}, timestamp=10)
        client.wait_for(3)
        client.send({"in": F([5])}, timestamp=10)
        client.wait_for(4)
        client.send({"in": F([6.5])}, parameters={"note": "last"})
    return Recording.from_client(client)


def timeline(recording: Recording) -> list[tuple[str, object, object]]:
    """Every step as (kind, timestamp or text, values or attributed request)."""
    rows: list[tuple[str, object, object]] = []
    for step in recording.steps:
        if isinstance(step, RequestStep):
            rows.append(("request", step.timestamp, {n: t.value().tolist() for n, t in step.inputs.items()}))
        elif isinstance(step, ResponseStep):
            rows.append(("response", step.timestamp, {n: t.value().tolist() for n, t in step.outputs.items()}))
        elif isinstance(step, ErrorStep):
            rows.append(("error", step.text, step.request))
        else:
            rows.append(("end", step.code, step.text))
    return rows


SESSION = [
    ("request", 0, {"in": [1.0, 2.0]}),
    ("request", 1, {"in": [3.0]}),
    ("response", 0, {"out": [1.0, 2.0]}),
    ("response", 1, {"out": [3.0]}),
    ("request", 10, {"in": [4.0]}),
    ("response", 10, {"out": [4.0]}),
    ("request", 10, {"in": [5.0]}),
    ("error", REPEATED_10, 3),
    ("request", 11, {"in": [6.5]}),
    ("response", 11, {"out": [6.5]}),
    ("end", "OK", "OK"),
]


def test_a_recording_keeps_requests_with_their_timestamps_responses_errors_and_the_end(serve_graphs):
    server = serve_graphs({"g": FLOATS})
    recording = record_session(server.address)
    assert (recording.graph, recording.timestamps) == ("g", "counter")
    assert timeline(recording) == SESSION
    assert [(r.manual, r.parameters) for r in recording.requests] == [
        (False, {}),
        (False, {}),
        (True, {"OVMS_MP_TIMESTAMP": 10}),
        (True, {"OVMS_MP_TIMESTAMP": 10}),
        (False, {"note": "last"}),
    ]
    first = recording.requests[0].inputs["in"]
    assert (first.datatype, first.shape, first.data) == ("FP32", (2,), F([1, 2]).tobytes())
    assert [s.seq for s in recording.steps] == list(range(11))
    assert repr(recording) == "<Recording 'g' (counter): 5 requests, 4 responses, 1 error, end OK>"


def test_inputs_are_kept_as_the_bytes_that_went_out(serve_graphs):
    server = serve_graphs({"p": PASSTHROUGH})
    with StreamClient(server.address, "p", max_log=None) as client:
        client.send({"in": [1, 2]}, datatypes={"in": "FP16"})
        client.send({"in": "hé"})
        client.send({"in": np.arange(6, dtype=np.int32).reshape(2, 3)})
    inputs = [r.inputs["in"] for r in Recording.from_client(client).requests]
    assert [(t.datatype, t.shape, t.data) for t in inputs] == [
        ("FP16", (2,), np.float16([1, 2]).tobytes()),
        ("BYTES", (1,), b"\x03\x00\x00\x00h\xc3\xa9"),
        ("INT32", (2, 3), np.arange(6, dtype=np.int32).tobytes()),
    ]
    recording = Recording.from_client(client)
    assert [r.outputs["out"] for r in recording.responses] == inputs
    again = replay(recording, server.address)
    assert compare(recording, again).same
    assert [r.inputs["in"] for r in again.requests] == inputs


def test_save_and_load_give_back_an_equal_recording_in_one_versioned_json_file(serve_graphs, tmp_path):
    server = serve_graphs({"g": FLOATS})
    recording = record_session(server.address)
    path = recording.save(tmp_path / "session.json")
    document = json.loads(path.read_text())
    assert (document["format"], document["version"], len(document["steps"])) == ("ovms_notebook.recording", 1, 11)
    assert base64.b64decode(document["steps"][0]["inputs"]["in"]["data"]) == F([1, 2]).tobytes()
    loaded = Recording.load(path)
    assert loaded == recording
    assert timeline(loaded) == SESSION


def test_a_replay_against_the_same_server_gives_the_same_timestamps_values_and_errors(serve_graphs, tmp_path):
    server = serve_graphs({"g": FLOATS})
    recording = record_session(server.address)
    again = replay(Recording.load(recording.save(tmp_path / "session.json")), server.address)
    comparison = compare(recording, again)
    assert comparison.same and comparison.differences == []
    assert timeline(again) == SESSION
    assert [r.parameters for r in again.requests] == [r.parameters for r in recording.requests]
    assert str(comparison) == "same: 5 requests, 4 responses, 1 error, end OK"
    assert comparison._repr_html_() == "<p><b>same</b>: 5 requests, 4 responses, 1 error, end OK</p>"


def test_a_replay_against_a_graph_that_adds_one_shows_every_value_difference(serve_graphs, add_one):
    recording = record_session(serve_graphs({"g": FLOATS}).address)
    other = serve_graphs({"g": ADD_ONE})
    again = replay(recording, other.address)
    assert [r.timestamp for r in again.responses] == [0, 1, 10, 11]
    assert [e.text for e in again.errors] == [REPEATED_10]
    comparison = compare(recording, again)
    assert not comparison.same
    assert comparison.differences == [
        "response 0 (out): out values [1.0, 2.0] != [2.0, 3.0]",
        "response 1 (out): out values [3.0] != [4.0]",
        "response 2 (out): out values [4.0] != [5.0]",
        "response 3 (out): out values [6.5] != [7.5]",
    ]
    assert str(comparison).splitlines()[0] == (
        "4 differences between a (5 requests, 4 responses, 1 error, end OK) "
        "and b (5 requests, 4 responses, 1 error, end OK):"
    )
    assert "<li><code>response 3 (out): out values [6.5] != [7.5]</code></li>" in comparison._repr_html_()
    assert compare(recording, again, atol=1.0).same  # floats compare within a tolerance


def test_wall_clock_recordings_compare_without_their_automatic_timestamps_unless_asked(serve_graphs):
    server = serve_graphs({"g": FLOATS}, timestamps="wallclock")
    with StreamClient(server.address, "g", timestamps="wallclock", max_log=None) as client:
        client.send({"in": F([1])})
        client.wait_for(1)
        client.send({"in": F([2])})
    recording = Recording.from_client(client)
    again = replay(recording, server.address)
    assert again.timestamps == "wallclock" and [r.timestamp for r in again.requests] == [None, None]
    assert compare(recording, again).same
    stamps = [(a.timestamp, b.timestamp) for a, b in zip(recording.responses, again.responses, strict=True)]
    assert all(b > a for a, b in stamps)  # type: ignore[operator]
    assert compare(recording, again, timestamps=True).differences == [
        f"response {i} (out): timestamp {a} != {b}" for i, (a, b) in enumerate(stamps)
    ]


def test_proto_outputs_are_kept_as_their_messages_and_replay_the_same(tmp_path):
    from ovms_notebook.sources import astronaut

    server = ovms_notebook.serve(GRAPHS)
    try:
        with StreamClient(server.address, "face_detection", max_log=None) as client:
            client.send({"image": astronaut()})
        recording = Recording.load(Recording.from_client(client).save(tmp_path / "faces.json"))
        again = replay(recording, server.address)
    finally:
        server.stop()
    (response,) = recording.responses
    detections = response.outputs["detections"]
    assert (detections.datatype, detections.proto_type, detections.repeated) == ("BYTES", "mediapipe.Detection", True)
    assert detections.value() == client.responses[0].values["detections"]
    assert compare(recording, again).same


def test_different_manual_timestamps_show_as_request_and_response_timestamp_differences(serve_graphs):
    server = serve_graphs({"g": FLOATS})
    with StreamClient(server.address, "g", max_log=None) as client:
        client.send({"in": F([1])}, timestamp=3)
    with StreamClient(server.address, "g", max_log=None) as other:
        other.send({"in": F([1])}, timestamp=4)
    assert compare(Recording.from_client(client), Recording.from_client(other)).differences == [
        "request 0: timestamp 3 (manual) != 4 (manual)",
        "response 0 (out): timestamp 3 != 4",
    ]


def test_a_replay_to_a_missing_graph_stops_and_shows_the_end_and_what_never_came(serve_graphs):
    server = serve_graphs({"g": FLOATS})
    recording = record_session(server.address)
    again = replay(recording, server.address, graph="missing")
    assert (again.graph, again.responses, again.end) == ("missing", [], again.steps[-1])
    assert again.end is not None and (again.end.code, again.end.text) == ("NOT_FOUND", NOT_FOUND)
    differences = compare(recording, again).differences
    assert [line for line in differences if not line.startswith("request ")] == [
        "response 0 (out): only in a (timestamp 0)",
        "response 1 (out): only in a (timestamp 1)",
        "response 2 (out): only in a (timestamp 10)",
        "response 3 (out): only in a (timestamp 11)",
        f"error 0: only in a ({REPEATED_10!r})",
        f"end: OK != {NOT_FOUND}",
    ]
    sent = len(again.requests)  # the second request goes out unless the end beat it
    assert sent in (1, 2)
    assert [line for line in differences if line.startswith("request ")] == [
        f"request {i}: only in a" for i in range(sent, 5)
    ]


def test_outputs_over_the_size_limit_keep_only_a_digest_and_still_compare_exactly(serve_graphs, add_one):
    recording = record_session(serve_graphs({"g": FLOATS}).address)
    again = replay(recording, serve_graphs({"g": ADD_ONE}).address, max_value_bytes=4)
    kept = [r.outputs["out"].data for r in again.responses]
    assert kept == [None, F([4]).tobytes(), F([5]).tobytes(), F([7.5]).tobytes()]
    assert (
        compare(recording, again).differences[0]
        == "response 0 (out): out values differ (compared by digest: no data kept)"
    )
    with pytest.raises(ValueError, match=r"only the digest of this FP32 \[2\] value was kept"):
        again.responses[0].outputs["out"].value()


def test_a_log_that_dropped_its_oldest_entries_cannot_be_recorded(serve_graphs):
    server = serve_graphs({"g": FLOATS})
    with StreamClient(server.address, "g", max_log=2) as client:
        for value in range(3):
            client.send({"in": F([value])})
    with pytest.raises(ValueError) as dropped:
        Recording.from_client(client)
    assert str(dropped.value) == (
        f"cannot record the stream to 'g': its log starts at entry {client.log[0].seq}, expected 0 "
        "(older entries were dropped); use StreamClient(..., max_log=None)"
    )


def a_recording() -> Recording:
    request = RequestStep(0, {"in": RecordedTensor.of("FP32", (1,), F([1]).tobytes())})
    return Recording("g", "counter", [request, EndStep(1, "OK", "OK")])


def set_input(**fields: object):
    return lambda document: document["steps"][0]["inputs"]["in"].update(fields)


DIGEST_1, DIGEST_2 = (RecordedTensor.of("FP32", (1,), F([v]).tobytes()).digest for v in (1, 2))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "{",
            "is not a recording: expected JSON, got Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        ("[1]", "is not a recording: expected a JSON object with format 'ovms_notebook.recording', got a JSON array"),
        ('{"format": "other"}', "is not a recording: expected format 'ovms_notebook.recording', got 'other'"),
        (lambda d: d.update(version=2), ": expected recording format version 1, got 2"),
        (lambda d: d.pop("version"), ": expected recording format version 1, got None"),
        (
            lambda d: d.update(timestamps="sometimes"),
            ": recording.timestamps must be 'counter' or 'wallclock', got 'sometimes'",
        ),
        (lambda d: d["steps"][0].update(timestamp="0"), ": steps[0].timestamp must be an int or null, got '0'"),
        (lambda d: d["steps"][0].update(manual=1), ": steps[0].manual must be true or false, got 1"),
        (lambda d: d["steps"][0].update(seq=True), ": steps[0].seq must be an int, got True"),
        (
            lambda d: d["steps"][1].update(kind="pause"),
            ": steps[1].kind must be one of 'request', 'response', 'error', 'end', got 'pause'",
        ),
        (lambda d: d["steps"][1].pop("text"), ": steps[1] must have 'text', got keys ['code', 'kind', 'seq']"),
        (set_input(shape=[-1]), ": steps[0].inputs['in'].shape must be a list of non-negative ints, got [-1]"),
        (set_input(data=None), ": steps[0].inputs['in'].data must be a string, got None"),
        (set_input(data="!!"), ": steps[0].inputs['in'].data must be base64, got '!!'"),
        (
            set_input(data=base64.b64encode(F([2]).tobytes()).decode()),
            f": steps[0].inputs['in'].data does not match its digest: expected sha256 {DIGEST_1}, got {DIGEST_2} "
            "(the file is corrupt)",
        ),
    ],
)
def test_loading_a_corrupt_or_foreign_file_raises_value_error_saying_what_was_expected(tmp_path, change, message):
    path = a_recording().save(tmp_path / "recording.json")
    if isinstance(change, str):
        path.write_text(change)
    else:
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document))
    with pytest.raises(ValueError) as failed:
        Recording.load(path)
    assert str(failed.value) == f"{path}{' ' if message.startswith('is ') else ''}{message}"


def test_an_untouched_file_loads_back_equal(tmp_path):
    assert Recording.load(a_recording().save(tmp_path / "recording.json")) == a_recording()


def test_comparison_reads_well_in_a_notebook():
    comparison = Comparison(["end: OK != <cancelled>"], ("1 request", "0 requests"))
    assert str(comparison) == "1 difference between a (1 request) and b (0 requests):\n  end: OK != <cancelled>"
    assert comparison._repr_html_() == (
        "<p><b>1 difference</b> between a (1 request) and b (0 requests):</p>"
        "<ul><li><code>end: OK != &lt;cancelled&gt;</code></li></ul>"
    )
