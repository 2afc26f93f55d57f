"""Open streams never starve the server: health, metadata and unary calls answer next to any number of
streams up to the stream limit, and only the stream past the limit is refused, with OVMS's text."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from ovms_notebook.engine.python.api import Calculator, register, unregister
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import PASSTHROUGH, request, unary
from tests.flow import ManualStream

IDLE_STREAMS = 64


def test_64_idle_streams_leave_live_ready_and_infer_answering(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH})
    idle = [ManualStream(server.address) for _ in range(IDLE_STREAMS)]  # opened, nothing sent: start_stream()
    try:
        for stream in idle[:2]:  # two of them make sure the calls really are open on the server
            stream.send(request("g", {"in": np.float32([1])}))
            assert stream.read(1)[0].infer_response.outputs[0].name == "out"
        assert unary(server.address, "ServerLive", pb.ServerLiveRequest()).live is True
        assert unary(server.address, "ServerReady", pb.ServerReadyRequest()).ready is True
        assert unary(server.address, "ModelReady", pb.ModelReadyRequest(name="g")).ready is True
        assert unary(server.address, "ModelMetadata", pb.ModelMetadataRequest(name="g")).inputs[0].name == "in"
        answer = unary(server.address, "ModelInfer", request("g", {"in": np.float32([2.5])}))
        assert np.frombuffer(answer.raw_output_contents[0], np.float32).tolist() == [2.5]
        assert len(server.sessions) == 2  # idle calls hold no graph
    finally:
        for stream in idle:
            stream.close()


def test_the_stream_past_the_limit_gets_resource_exhausted_and_nothing_else_is_affected(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH}, max_streams=4)
    open_streams = [ManualStream(server.address) for _ in range(4)]
    try:
        for number, stream in enumerate(open_streams):
            stream.send(request("g", {"in": np.float32([number])}))
            assert len(stream.read(1)) == 1
        extra = ManualStream(server.address)
        extra.send(request("g", {"in": np.float32([9])}))
        with pytest.raises(grpc.RpcError) as refused:
            extra.read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == "Server Threadpool Exhausted"
        extra.close()
        assert unary(server.address, "ServerLive", pb.ServerLiveRequest()).live is True
        answer = unary(server.address, "ModelInfer", request("g", {"in": np.float32([3])}))
        assert np.frombuffer(answer.raw_output_contents[0], np.float32).tolist() == [3.0]
        for number, stream in enumerate(open_streams):  # the open ones carry on
            stream.send(request("g", {"in": np.float32([10 + number])}))
            (response,) = stream.read(1)
            assert np.frombuffer(response.infer_response.raw_output_contents[0], np.float32).tolist() == [10.0 + number]
        open_streams.pop().close()  # a slot frees up when a stream ends
        deadline = time.monotonic() + 30
        while server.servicer.open_calls > 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        again = ManualStream(server.address)
        again.send(request("g", {"in": np.float32([7])}))
        (response,) = again.read(1)
        assert response.infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param == 0
        again.close()
    finally:
        for stream in open_streams:
            stream.close()


def test_the_stream_limit_must_be_a_positive_integer(tmp_path):
    import ovms_notebook
    from tests.conftest import write_graphs

    config = write_graphs(tmp_path, {"g": PASSTHROUGH})
    with pytest.raises(ValueError, match="max_streams must be an integer of at least 1, got 0"):
        ovms_notebook.Server(config, max_streams=0)


class Held(Calculator):
    """Passes its input on once the test releases it; counts the invocations waiting."""

    inputs = (":0",)
    outputs = (":0",)
    waiting = 0
    release = threading.Event()
    lock = threading.Lock()

    def process(self, timestamp, inputs):
        with Held.lock:
            Held.waiting += 1
        Held.release.wait(60)
        return {":0": inputs[":0"]}


HELD = """
input_stream: "in"
output_stream: "out"
node { calculator: "TestHeld" input_stream: "in" output_stream: "out" }
"""


def test_unary_calls_beyond_max_workers_are_refused_while_health_answers(serve_graphs):
    register("TestHeld")(Held)
    Held.waiting, Held.release = 0, threading.Event()
    try:
        server = serve_graphs({"held": HELD}, max_workers=2)
        answers: list = []
        calls = [
            threading.Thread(
                target=lambda: answers.append(
                    unary(server.address, "ModelInfer", request("held", {"in": np.float32([1])}))
                )
            )
            for _ in range(2)
        ]
        for call in calls:
            call.start()
        deadline = time.monotonic() + 60
        while Held.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Held.waiting == 2
        with pytest.raises(grpc.RpcError) as refused:
            unary(server.address, "ModelInfer", request("held", {"in": np.float32([2])}))
        assert (refused.value.code(), refused.value.details()) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Server Threadpool Exhausted",
        )
        assert unary(server.address, "ServerLive", pb.ServerLiveRequest()).live is True
        Held.release.set()
        for call in calls:
            call.join(60)
        assert [np.frombuffer(a.raw_output_contents[0], np.float32).tolist() for a in answers] == [[1.0], [1.0]]
    finally:
        Held.release.set()
        unregister("TestHeld")
