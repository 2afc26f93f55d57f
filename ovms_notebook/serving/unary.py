"""Unary `ModelInfer` on a graph: a fresh graph instance per request
(OVMS's `inferWithoutQueue`, `src/mediapipe_internal/mediapipegraphexecutor.hpp`).

Every graph input is required; the first packet of every output is returned
in one response that echoes the request id. The graph is always closed,
whatever failed, so no native threads outlive the call.
"""

from __future__ import annotations

import threading

import mediapipe as mp

from ovms_notebook.codec import encode_output
from ovms_notebook.engine.engines import make_graph
from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.framework.timestamps import TimestampPolicy
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.wire import GRAPH_VERSION, TIMESTAMP_PARAMETER
from ovms_notebook.serving.events import EventLog, StreamEvent, next_stream_id
from ovms_notebook.serving.requests import decode_packets, side_packets
from ovms_notebook.serving.session import SessionOptions
from ovms_notebook.status import OvmsStatus, StatusCode


def run_unary(
    graph_name: str,
    spec: GraphSpec,
    request: pb.ModelInferRequest,
    options: SessionOptions,
    events: EventLog | None = None,
) -> pb.ModelInferResponse:
    """Run one request through a new graph instance; raises OvmsStatus on any failure."""
    first: dict[str, mp.Packet] = {}
    lock = threading.Lock()

    def keep_first(stream: str, packet: mp.Packet) -> None:
        with lock:
            first.setdefault(stream, packet)

    stream_id = next_stream_id()
    graph = make_graph(spec, keep_first)
    graph.start(side_packets(request.parameters))
    try:
        timestamp, manual = TimestampPolicy(options.timestamps).resolve(request.parameters)
        packets = decode_packets(spec, request)
        if len(packets) < len(spec.inputs):
            raise OvmsStatus(StatusCode.INVALID_NO_OF_INPUTS, "Not all input packets created")
        graph.push(packets, timestamp)
        if events is not None:
            events.append(StreamEvent("request", stream_id, graph_name, timestamp, tuple(packets), manual))
    finally:
        error = graph.close()
    if error is not None:
        raise error
    if any(name not in first for name in spec.outputs):
        raise OvmsStatus(StatusCode.MEDIAPIPE_EXECUTION_ERROR, "Unknown error during mediapipe execution")
    response = pb.ModelInferResponse(model_name=graph_name, model_version=GRAPH_VERSION, id=request.id)
    for name in spec.outputs:
        tensor, raw = encode_output(name, first[name])
        response.outputs.append(tensor)
        response.raw_output_contents.append(raw)
        response.parameters[TIMESTAMP_PARAMETER].int64_param = first[name].timestamp.value
        if events is not None:
            events.append(StreamEvent("output", stream_id, graph_name, first[name].timestamp.value, (name,)))
    return response
