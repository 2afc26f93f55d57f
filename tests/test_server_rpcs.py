"""Every RPC over a real server, with tritonclient 2.51 (the reference client) in the same process."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

import ovms_notebook
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import PASSTHROUGH, live_threads, request, stream, unary, write_graphs

STATEFUL = """
input_stream: "INT:in"
output_stream: "current"
output_stream: "previous"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "current" }
node {
  calculator: "PreviousLoopbackCalculator"
  input_stream: "MAIN:in"
  input_stream: "LOOP:current"
  input_stream_info: { tag_index: "LOOP" back_edge: true }
  output_stream: "PREV_LOOP:previous"
}
"""

TWO_OUT = """
input_stream: "b_in"
input_stream: "a_in"
output_stream: "z_out"
output_stream: "a_out"
node { calculator: "PassThroughCalculator" input_stream: "b_in" input_stream: "a_in"
       output_stream: "z_out" output_stream: "a_out" }
"""


@pytest.fixture
def server(serve_graphs):
    return serve_graphs({"my_graph": PASSTHROUGH, "stateful": STATEFUL, "two": TWO_OUT})


@pytest.fixture
def client(server):
    c = triton.InferenceServerClient(server.address)
    yield c
    c.close()


def fp32(name: str, values: list[float]) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values)], "FP32")
    tensor.set_data_from_numpy(np.array(values, dtype=np.float32))
    return tensor


def int_input(name: str, value: int) -> triton.InferInput:
    tensor = triton.InferInput(name, [1], "INT64")
    tensor.set_data_from_numpy(np.array([value], dtype=np.int64))
    return tensor


class Collector:
    """tritonclient stream callback that keeps (result, error) pairs in order."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()

    def __call__(self, result, error) -> None:
        self.items.put((result, error))

    def take(self, n: int, timeout: float = 10.0) -> list:
        return [self.items.get(timeout=timeout) for _ in range(n)]


def test_server_live_ready_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata.name == "OpenVINO Model Server"
    assert metadata.version == ovms_notebook.__version__
    assert list(metadata.extensions) == []


def test_model_ready_ignores_version_and_unknown_names_are_not_found(client):
    assert client.is_model_ready("my_graph")
    assert client.is_model_ready("my_graph", model_version="not-a-number")
    with pytest.raises(InferenceServerException) as error:
        client.is_model_ready("nope")
    assert error.value.status() == "StatusCode.NOT_FOUND"
    assert error.value.message() == "Model with requested name is not found"


def test_model_metadata_lists_sorted_streams_with_invalid_datatype(client):
    metadata = client.get_model_metadata("two")
    assert (metadata.name, list(metadata.versions), metadata.platform) == ("two", ["1"], "OpenVINO")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("a_in", "INVALID", []), ("b_in", "INVALID", [])]
    assert [t.name for t in metadata.outputs] == ["a_out", "z_out"]


def test_stream_with_tritonclient_gets_auto_manual_and_mixed_timestamps(client):
    results = Collector()
    client.start_stream(results)
    client.async_stream_infer("my_graph", [fp32("in", [1.0])])
    client.async_stream_infer("my_graph", [fp32("in", [2.0])], parameters={"OVMS_MP_TIMESTAMP": 100})
    client.async_stream_infer("my_graph", [fp32("in", [3.0])])
    client.stop_stream()
    got = results.take(3)
    assert all(error is None for _, error in got)
    stamps = [r.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param for r, _ in got]
    assert stamps == [0, 100, 101]
    assert [r.as_numpy("out").tolist() for r, _ in got] == [[1.0], [2.0], [3.0]]
    assert results.items.empty()


def test_tritonclient_sees_in_band_errors_and_the_stream_stays_usable(client):
    results = Collector()
    client.start_stream(results)
    client.async_stream_infer("my_graph", [fp32("in", [1.0])], parameters={"OVMS_MP_TIMESTAMP": 5})
    client.async_stream_infer("my_graph", [fp32("in", [2.0])], parameters={"OVMS_MP_TIMESTAMP": 5})
    client.async_stream_infer("other", [fp32("in", [3.0])])
    client.async_stream_infer("my_graph", [fp32("in", [4.0])], parameters={"OVMS_MP_TIMESTAMP": 1.5})
    client.async_stream_infer("my_graph", [fp32("in", [5.0])])
    client.stop_stream()
    got = results.take(5)
    # In-band errors are written by the reader at once, outputs when the graph emits them: only each kind's
    # own order is fixed (as in OVMS).
    outputs = [r for r, e in got if e is None]
    errors = [e.message() for r, e in got if e is not None]
    assert [r.as_numpy("out").tolist() for r in outputs] == [[1.0], [5.0]]
    assert [r.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param for r in outputs] == [5, 6]
    assert errors == [
        'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it received; '
        "got 5; partial deserialization of subsequent requests",
        "Subsequent request with incorrect servable name; validate subsequent requests",
        "Malformed packet timestamp - Invalid timestamp format in request parameter OVMS_MP_TIMESTAMP. "
        "Should be int64; partial deserialization of subsequent requests",
    ]


def test_unknown_graph_closes_the_tritonclient_stream_with_not_found(client):
    results = Collector()
    client.start_stream(results)
    client.async_stream_infer("nope", [fp32("in", [1.0])])
    (result, error), = results.take(1)
    client.stop_stream()
    assert result is None
    assert error.status() == "StatusCode.NOT_FOUND"
    assert error.message() == "Mediapipe graph definition with requested name is not found"


def test_stateful_graph_answers_with_the_previous_value(client):
    results = Collector()
    client.start_stream(results)
    for value in (10, 11, 12):
        client.async_stream_infer("stateful", [int_input("in", value)])
    client.stop_stream()
    got = [r.get_response() for r, _ in results.take(5)]
    by_stream = {}
    for response in got:
        stamp = response.parameters["OVMS_MP_TIMESTAMP"].int64_param
        by_stream.setdefault(response.outputs[0].name, []).append(stamp)
    assert by_stream == {"current": [0, 1, 2], "previous": [1, 2]}


def test_two_concurrent_streams_on_a_stateful_graph_keep_separate_state(server):
    def run(values, out):
        out.extend(stream(server.address, [request("stateful", {"in": np.array([v], np.int64)}) for v in values],
                          pause=0.01).outputs)

    a, b = [], []
    threads = [threading.Thread(target=run, args=((1, 2, 3), a)), threading.Thread(target=run, args=((7, 8, 9), b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    def previous(responses):
        return [int(np.frombuffer(r.raw_output_contents[0], np.int32)[0]) for r in responses
                if r.outputs[0].name == "previous"]

    assert previous(a) == [1, 2]
    assert previous(b) == [7, 8]


def test_unary_infer_echoes_id_and_uses_timestamp_zero(client):
    result = client.infer("my_graph", [fp32("in", [4.5, 5.5])], request_id="req-7")
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == ("req-7", "my_graph", "1")
    assert response.parameters["OVMS_MP_TIMESTAMP"].int64_param == 0
    assert result.as_numpy("out").tolist() == [4.5, 5.5]


def test_unary_infer_honours_manual_timestamp(client):
    result = client.infer("my_graph", [fp32("in", [1.0])], parameters={"OVMS_MP_TIMESTAMP": 77})
    assert result.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param == 77


def test_unary_requires_every_graph_input(server):
    with pytest.raises(grpc.RpcError) as error:
        unary(server.address, "ModelInfer", request("two", {"a_in": np.float32([1])}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "Invalid number of inputs - Not all input packets created"


def test_unary_without_first_output_packet_fails(server):
    with pytest.raises(grpc.RpcError) as error:
        unary(server.address, "ModelInfer", request("stateful", {"in": np.array([3], np.int64)}))
    assert (error.value.code(), error.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Mediapipe execution failed. MP status - Unknown error during mediapipe execution")


def test_unary_errors_have_no_stream_suffix_and_bad_version_is_invalid(server):
    bad = request("my_graph", {"NONEXISTING": np.float32([1])})
    with pytest.raises(grpc.RpcError) as error:
        unary(server.address, "ModelInfer", bad)
    assert error.value.details() == "Unexpected input - NONEXISTING is unexpected"
    with pytest.raises(grpc.RpcError) as error:
        unary(server.address, "ModelInfer", request("my_graph", {"in": np.float32([1])}, version="x"))
    assert (error.value.code(), error.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "invalid model version format in request")
    with pytest.raises(grpc.RpcError) as error:
        unary(server.address, "ModelInfer", request("my_graph", {"in": np.float32([1])}, timestamp=-(2**63)))
    assert (error.value.code(), error.value.details()) == (grpc.StatusCode.UNKNOWN, "Unknown error")


def test_reload_retires_a_graph_while_an_open_stream_keeps_it(tmp_path):
    config = write_graphs(tmp_path / "repo", {"my_graph": PASSTHROUGH, "other": PASSTHROUGH})
    with ovms_notebook.serve(config) as server:
        method = grpc.insecure_channel(server.address)
        outbox: queue.Queue = queue.Queue()

        def requests():
            while (item := outbox.get()) is not None:
                yield item

        from ovms_notebook.proto.service import METHODS

        spec = METHODS["ModelStreamInfer"]
        call = method.stream_stream(spec.path, request_serializer=spec.request.SerializeToString,
                                    response_deserializer=spec.response.FromString)(requests())
        outbox.put(request("my_graph", {"in": np.float32([1])}))
        first = next(call)
        write_graphs(tmp_path / "repo", {"other": PASSTHROUGH})  # my_graph disappears from config.json
        assert server.reload() == {"other": "unchanged", "my_graph": "retired"}
        outbox.put(request("my_graph", {"in": np.float32([2])}))
        second = next(call)
        outbox.put(None)
        assert list(call) == []
        method.close()
        assert [r.infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param for r in (first, second)] == [0, 1]
        late = stream(server.address, [request("my_graph", {"in": np.float32([1])})])
        assert (late.code, late.details) == (grpc.StatusCode.NOT_FOUND, "Mediapipe is retired")
        ready = unary(server.address, "ModelReady", pb.ModelReadyRequest(name="my_graph"))
        assert ready.ready is False


def test_reload_picks_up_an_edited_graph_for_new_streams(tmp_path):
    config = write_graphs(tmp_path / "repo", {"g": PASSTHROUGH})
    with ovms_notebook.serve(config) as server:
        edited = PASSTHROUGH.replace('"in"', '"in1"')
        write_graphs(tmp_path / "repo", {"g": edited})
        assert server.reload() == {"g": "reloaded"}
        result = stream(server.address, [request("g", {"in": np.float32([1])})])
        assert result.errors == ["Unexpected input - in is unexpected; partial deserialization of first request"]


def test_a_graph_that_fails_to_load_does_not_stop_the_others(tmp_path):
    config = write_graphs(tmp_path / "repo", {"good": PASSTHROUGH, "broken": 'node { calculator: "Nope" }'})
    with ovms_notebook.serve(config) as server:
        states = {d.name: (d.available, d.error) for d in server.graphs}
        assert states["good"] == (True, None)
        assert states["broken"][0] is False and "at least one input_stream" in states["broken"][1]
        assert unary(server.address, "ModelReady", pb.ModelReadyRequest(name="broken")).ready is False


def test_serve_twice_for_one_config_replaces_the_server_and_stop_leaves_no_threads(tmp_path):
    config = write_graphs(tmp_path / "repo", {"g": PASSTHROUGH})
    first = ovms_notebook.serve(config)
    stream(first.address, [request("g", {"in": np.float32([1])})])
    second = ovms_notebook.serve(config)
    assert first.state == "stopped" and second.state == "running"
    assert stream(second.address, [request("g", {"in": np.float32([1])})]).stamped() == [("out", 0)]
    assert second.stop() is True and second.stop() is False
    deadline = time.monotonic() + 5
    while live_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_threads() == []


def test_fixed_port_in_use_fails_loudly(tmp_path):
    config_a = write_graphs(tmp_path / "a", {"g": PASSTHROUGH})
    config_b = write_graphs(tmp_path / "b", {"g": PASSTHROUGH})
    with ovms_notebook.serve(config_a) as server, pytest.raises(ovms_notebook.ServerError, match="cannot listen"):
        ovms_notebook.serve(config_b, port=server.port)


def test_server_event_log_records_a_tagged_stream_with_its_timestamps(server):
    from ovms_notebook.proto.service import METHODS

    method = METHODS["ModelStreamInfer"]
    bad = request("my_graph", {"in": np.float32([3])}, timestamp=1)
    messages = [request("my_graph", {"in": np.float32([1])}), request("my_graph", {"in": np.float32([2])}, timestamp=5),
                bad]
    with grpc.insecure_channel(server.address) as channel:
        call = channel.stream_stream(method.path, request_serializer=method.request.SerializeToString,
                                     response_deserializer=method.response.FromString)
        list(call(iter(messages), metadata=(("ovms-notebook-stream", "tag-1"),)))
    events = server.events.snapshot(client_tag="tag-1")
    assert [(e.timestamp, e.manual) for e in events if e.kind == "request"] == [(0, False), (5, True)]
    assert [(e.timestamp, e.streams) for e in events if e.kind == "output"] == [(0, ("out",)), (5, ("out",))]
    assert events[0].kind == "open" and events[-1].kind == "end" and events[-1].detail == "OK"
    assert [e.detail for e in events if e.kind == "error"] == [
        'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it received; '
        "got 1; partial deserialization of subsequent requests"]
    assert server.events.packet_counts("my_graph")["in"] >= 2
