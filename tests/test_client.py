"""The in-kernel streaming client against a real server on port 0: timestamps, values, errors, threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.client import (
    LogEntry,
    StreamClient,
    infer,
    list_ready,
    model_metadata,
    model_ready,
    server_metadata,
)
from ovms_notebook.errors import ClientError
from tests.conftest import GRAPHS, PASSTHROUGH

F = np.float32
REPEATED_5 = (
    'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it received; '
    "got 5; partial deserialization of subsequent requests"
)


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


def stamped(entries: list[LogEntry]) -> list[tuple[str, int | None]]:
    return [(e.names[0], e.timestamp) for e in entries if e.kind == "response"]


def client_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ovms-client-")]


def test_automatic_manual_and_mixed_timestamps_are_predicted_as_the_server_assigns_them(server):
    with StreamClient(server.address, "passthrough") as client:
        assert client.next_timestamp() == 0
        sent = [client.send({"in": F([1])}), client.send({"in": F([2])})]
        assert client.next_timestamp() == 2
        sent.append(client.send({"in": F([3])}, timestamp=100))
        assert client.next_timestamp() == 101
        sent.append(client.send({"in": F([4])}))
        client.wait_for(4)
        assert client.next_timestamp() == 102
    assert [(e.timestamp, e.manual) for e in sent] == [(0, False), (1, False), (100, True), (101, False)]
    assert stamped(client.responses) == [("out", 0), ("out", 1), ("out", 100), ("out", 101)]
    assert [float(e.values["out"][0]) for e in client.responses] == [1, 2, 3, 4]
    assert [e.seq for e in client.log] == list(range(len(client.log)))
    assert client.status is not None and (client.status.code, client.status.text) == ("OK", "OK")


def test_a_timestamp_given_in_parameters_counts_as_manual(server):
    with StreamClient(server.address, "passthrough") as client:
        entry = client.send({"in": F([1])}, parameters={"OVMS_MP_TIMESTAMP": 7})
        assert (entry.timestamp, entry.manual, client.next_timestamp()) == (7, True, 8)
        (response,) = client.wait_for(1)
    assert response.timestamp == 7


def test_wallclock_mode_predicts_nothing_and_the_server_stamps_the_request(serve_graphs):
    server = serve_graphs({"p": PASSTHROUGH}, timestamps="wallclock")
    with StreamClient(server.address, "p", timestamps="wallclock") as client:
        entry = client.send({"in": F([1])})
        (response,) = client.wait_for(1)
    assert (entry.timestamp, entry.manual, client.next_timestamp()) == (None, False, None)
    assert response.timestamp is not None and abs(response.timestamp - time.time() * 1e6) < 60e6


def test_outputs_come_back_decoded_with_their_datatype_and_shape(server):
    with StreamClient(server.address, "passthrough") as client:
        client.send({"in": np.arange(6, dtype=np.int32).reshape(2, 3)})
        client.send({"in": "hello"})
        client.send({"in": [1, 2]}, datatypes={"in": "FP16"})
        matrix, text, halves = (e.values["out"] for e in client.wait_for(3))
    np.testing.assert_array_equal(matrix, np.arange(6, dtype=np.int32).reshape(2, 3))
    assert matrix.dtype == np.int32
    assert text.tolist() == [b"hello"]
    assert halves.dtype == np.float16 and halves.tolist() == [1.0, 2.0]


def test_face_detection_on_the_astronaut_comes_back_as_detection_messages(server):
    from ovms_notebook.sources import astronaut

    with StreamClient(server.address, "face_detection") as client:
        client.send({"image": astronaut()})
        (response,) = client.wait_for(1, timeout=30)
    detections = response.values["detections"]
    assert response.names == ("detections",) and response.timestamp == 0
    assert len(detections) == 1 and type(detections[0]).__name__ == "Detection"
    assert detections[0].score[0] > 0.9
    box = detections[0].location_data.relative_bounding_box
    assert (box.xmin, box.ymin, box.width, box.height) == pytest.approx((0.347, 0.162, 0.186, 0.186), abs=0.01)


def test_an_in_band_error_is_attributed_to_its_request_and_a_rejected_request_does_not_advance_the_counter(server):
    with StreamClient(server.address, "passthrough") as client:
        client.send({"in": F([1])}, timestamp=5)
        client.wait_for(1)
        repeated = client.send({"in": F([2])}, timestamp=5)
        client.wait_for(2)
        assert client.next_timestamp() == 6
        automatic = client.send({"in": F([3])})
        client.wait_for(3)
        wrong_name = client.send({"nope": F([4])})
        assert wrong_name.timestamp == 7 and client.next_timestamp() == 8
        client.wait_for(4)
        assert client.next_timestamp() == 7  # the automatic request was rejected: rolled back
        last = client.send({"in": F([5])})
        client.wait_for(5)
    first_error, second_error = client.errors
    assert (first_error.text, first_error.request_seq) == (REPEATED_5, repeated.seq)
    assert second_error.text == "Unexpected input - nope is unexpected; partial deserialization of subsequent requests"
    assert second_error.request_seq == wrong_name.seq
    assert (automatic.timestamp, last.timestamp) == (6, 7)
    assert stamped(client.responses) == [("out", 5), ("out", 6), ("out", 7)]


def test_an_error_on_the_first_request_is_attributed_to_it(server):
    with StreamClient(server.address, "passthrough") as client:
        first = client.send({"nope": F([1])})
        second = client.send({"in": F([2])})
        error, response = sorted(client.wait_for(2), key=lambda e: e.kind)
    assert error.text == "Unexpected input - nope is unexpected; partial deserialization of first request"
    assert error.request_seq == first.seq
    assert (second.timestamp, response.timestamp) == (1, 0)  # predicted 1 while the first was in flight; it got 0
    assert client.next_timestamp() == 1


def test_an_unknown_graph_ends_the_stream_with_not_found_and_later_sends_raise(server):
    client = StreamClient(server.address, "no_such_graph")
    client.send({"in": F([1])})
    with pytest.raises(ClientError) as ended:
        client.wait_for(1)
    assert ended.value.code == "NOT_FOUND"
    assert client.ended
    assert client.status is not None and client.status.code == "NOT_FOUND"
    assert client.status.text == "[StatusCode.NOT_FOUND] Mediapipe graph definition with requested name is not found"
    with pytest.raises(ClientError, match="has ended: Mediapipe graph definition with requested name is not found"):
        client.send({"in": F([2])})
    assert client.close() is client.status
    assert [e.kind for e in client.log] == ["request", "end"]


def test_close_drains_every_output_still_due(server):
    with StreamClient(server.address, "concat_default") as client:
        for t in range(1, 6):
            client.send({"a": F([t])}, timestamp=t)  # "b" never comes: answered only when the inputs close
        frames = StreamClient(server.address, "passthrough")
        for i in range(20):
            frames.send({"in": F([i])})
        assert frames.close().text == "OK"
        end = client.close()
    assert end.text == "OK" and end.seq == len(client.log) - 1
    assert stamped(client.responses) == [("out", t) for t in range(1, 6)]
    assert [e.values["out"].tolist() for e in client.responses] == [[t] for t in range(1, 6)]
    assert [float(e.values["out"][0]) for e in frames.responses] == list(range(20))


def test_a_stateful_graph_answers_with_the_previous_value_after_each_send(server):
    with StreamClient(server.address, "previous_value") as client:
        for value in (10, 11, 12, 13):
            client.send({"in": np.int32([value])})
    current = [(e.timestamp, e.values["current"].tolist()) for e in client.responses if e.names == ("current",)]
    previous = [(e.timestamp, e.values["previous"].tolist()) for e in client.responses if e.names == ("previous",)]
    assert current == [(0, [10]), (1, [11]), (2, [12]), (3, [13])]
    assert previous == [(1, [10]), (2, [11]), (3, [12])]


def test_callbacks_run_on_the_reader_thread_in_log_order(server):
    seen: list[tuple[str, str, int]] = []
    with StreamClient(server.address, "passthrough") as client:
        for register in (client.on_response, client.on_error, client.on_end):
            register(lambda e: seen.append((e.kind, threading.current_thread().name, e.seq)))
        client.send({"in": F([1])}, timestamp=3)
        client.send({"in": F([1])}, timestamp=2)
        client.wait_for(2)
    assert sorted(kind for kind, _, _ in seen) == ["end", "error", "response"]
    assert {name for _, name, _ in seen} == {"ovms-client-passthrough-reader"}
    assert [seq for _, _, seq in seen] == sorted(seq for _, _, seq in seen)


def test_a_callback_that_raises_is_logged_and_the_stream_lives_on(server, caplog):
    values: list[float] = []

    def broken(entry: LogEntry) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="ovms_notebook.client"), StreamClient(
        server.address, "passthrough"
    ) as client:
        client.on_response(broken)
        client.on_response(lambda e: values.append(float(e.values["out"][0])))
        for i in range(3):
            client.send({"in": F([i])})
        client.wait_for(3)
    assert values == [0, 1, 2]
    assert client.status is not None and client.status.text == "OK"
    assert sum("callback bug" in (r.exc_text or "") for r in caplog.records) == 3


def test_no_thread_outlives_close_or_cancel(server):
    before = {t.ident for t in threading.enumerate()}
    closed = StreamClient(server.address, "passthrough")
    cancelled = StreamClient(server.address, "concat_default")
    closed.send({"in": F([1])})
    cancelled.send({"a": F([1])})
    assert sorted(client_threads()) == ["ovms-client-concat_default-reader", "ovms-client-passthrough-reader"]
    closed.close()
    cancelled.cancel()
    assert client_threads() == []
    assert cancelled.status is not None and cancelled.status.code == "CANCELLED"
    assert cancelled.status.text == "[StatusCode.CANCELLED] Locally cancelled by application!"
    assert cancelled.responses == []
    with pytest.raises(ClientError, match="has ended"):
        cancelled.send({"a": F([2])})
    deadline = time.monotonic() + 2  # gRPC's own helper threads end a moment after the call
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.ident not in before and not t.name.startswith("ovms-grpc")]
        if not left:
            break
        time.sleep(0.02)
    assert left == []


def test_a_stream_that_never_sent_ends_ok_without_touching_the_server(server):
    client = StreamClient(server.address, "passthrough")
    end = client.close()
    assert (end.kind, end.text, end.code) == ("end", "OK", "OK")
    assert server.events.snapshot(client_tag=client.tag) == []
    with pytest.raises(ClientError, match="has ended"):
        client.send({"in": F([1])})


def test_wait_for_gives_up_after_its_timeout(server):
    with StreamClient(server.address, "concat_default") as client:
        client.send({"a": F([1])}, timestamp=1)
        with pytest.raises(TimeoutError, match=r"0 of 1 responses and errors arrived within 0\.2 s"):
            client.wait_for(1, timeout=0.2)


def test_the_stream_tag_reaches_the_server_with_the_same_timestamps(server):
    with StreamClient(server.address, "passthrough") as client:
        sent = [client.send({"in": F([1])}), client.send({"in": F([2])}, timestamp=50), client.send({"in": F([3])})]
    events = server.events.snapshot(client_tag=client.tag)
    requests = [(e.timestamp, e.manual) for e in events if e.kind == "request"]
    assert requests == [(e.timestamp, e.manual) for e in sent] == [(0, False), (50, True), (51, False)]
    assert [e.detail for e in events if e.kind == "end"] == ["OK"]


def test_infer_returns_decoded_outputs_and_raises_client_error_with_the_grpc_code(server):
    assert infer(server.address, "concat_default", {"a": F([1, 2]), "b": F([3])})["out"].tolist() == [1, 2, 3]
    assert infer(server.address, "passthrough", {"in": np.int64([7])}, timestamp=4, request_id="r1")["out"] == [7]
    with pytest.raises(ClientError) as failed:
        infer(server.address, "concat_default", {"a": F([1])})
    assert failed.value.code == "INVALID_ARGUMENT"
    assert str(failed.value) == "[INVALID_ARGUMENT] Invalid number of inputs - Not all input packets created"


def test_metadata_and_readiness_helpers_read_the_server(server):
    assert model_metadata(server.address, "passthrough") == {
        "name": "passthrough",
        "versions": ["1"],
        "platform": "OpenVINO",
        "inputs": [{"name": "in", "datatype": "INVALID", "shape": []}],
        "outputs": [{"name": "out", "datatype": "INVALID", "shape": []}],
    }
    assert model_ready(server.address, "passthrough") is True
    with pytest.raises(ClientError) as missing:
        model_ready(server.address, "no_such_graph")
    assert missing.value.code == "NOT_FOUND"
    assert list_ready(server.address, ["passthrough", "no_such_graph"]) == {"passthrough": True, "no_such_graph": False}
    assert server_metadata(server.address)["name"] == "OpenVINO Model Server"



def test_an_abandoned_client_is_cancelled_when_collected_so_the_server_frees_its_graph(server):
    client = StreamClient(server.address, "concat_default")
    client.send({"a": F([1])}, timestamp=1)
    tag = client.tag
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not server.events.snapshot(client_tag=tag):
        time.sleep(0.02)  # let the stream open on the server first
    del client
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and client_threads():
        time.sleep(0.02)
    assert client_threads() == []
    while time.monotonic() < deadline and not any(e.kind == "end" for e in server.events.snapshot(client_tag=tag)):
        time.sleep(0.02)
    assert [e.kind for e in server.events.snapshot(client_tag=tag) if e.kind in ("open", "end")] == ["open", "end"]


def test_stream_client_shows_a_summary_and_its_timeline_png(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH})
    with StreamClient(server.address, "g") as client:
        client.send({"in": F([1.0])})
        client.send({"in": F([2.0])}, timestamp=7)
        client.wait_for(2)
    bundle = client._repr_mimebundle_()
    assert bundle["text/plain"].startswith("<StreamClient 'g' at ")
    assert "2 requests, 2 responses" in bundle["text/plain"]
    assert bundle["image/png"].startswith(b"\x89PNG\r\n\x1a\n")


def test_pipelined_timestamp_errors_are_pinned_to_the_requests_the_server_rejected(server):
    """Sent without waiting: the error of a bad manual timestamp arrives after later requests were sent,
    and is still pinned to the bad one, whose rejection leaves the counter where the server has it."""
    with StreamClient(server.address, "passthrough") as client:
        sent = [
            client.send({"in": F([0])}),  # @0
            client.send({"in": F([1])}),  # @1
            client.send({"in": F([2])}, timestamp=0),  # rejected: 0 is not greater than 1
            client.send({"in": F([3])}),  # @2: the rejected request did not advance the counter
            client.send({"in": F([4])}, timestamp=5),  # @5
            client.send({"in": F([5])}, timestamp=5),  # rejected: 5 again
            client.send({"nope": F([6])}),  # rejected: no such input (not predictable)
            client.send({"in": F([7])}),  # @6
        ]
        client.wait_for(8)
        assert client.next_timestamp() == 7
    assert [e.timestamp for e in sent] == [0, 1, 0, 2, 5, 5, 6, 7]
    assert stamped(client.responses) == [("out", 0), ("out", 1), ("out", 2), ("out", 5), ("out", 6)]
    assert [(e.request_seq, e.text.split(";")[0]) for e in client.errors] == [
        (sent[2].seq, 'Malformed packet timestamp - input stream "in" needs a timestamp greater than 1, '
                      "the last one it received"),
        (sent[5].seq, 'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, '
                      "the last one it received"),
        (sent[6].seq, "Unexpected input - nope is unexpected"),
    ]


def test_an_error_the_client_cannot_predict_skips_requests_already_answered(server):
    """A wrong input name is no timestamp error: it goes to the earliest request not seen answered (the
    responses at 0 and 1 say the first two were), even with a later request already sent."""
    with StreamClient(server.address, "passthrough") as client:
        sent = [client.send({"in": F([0])}), client.send({"in": F([1])})]
        client.wait_for(2)
        sent += [client.send({"nope": F([2])}), client.send({"in": F([3])})]
        client.wait_for(4)
        assert client.next_timestamp() == 3  # the rejected automatic request replayed away: the last got 2
    (error,) = client.errors
    assert error.request_seq == sent[2].seq
    assert stamped(client.responses) == [("out", 0), ("out", 1), ("out", 2)]
