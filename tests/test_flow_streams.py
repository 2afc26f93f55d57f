"""Open streams never starve the server: health, metadata and unary calls answer next to any number of
streams up to the stream limit, and only the stream past the limit is refused, with OVMS's text."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

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
