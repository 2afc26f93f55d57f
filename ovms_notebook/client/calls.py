"""Unary calls against any KServe endpoint: inference, readiness, metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from ovms_notebook.client.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    build_request,
    call_unary,
    decode_outputs,
    open_channel,
)
from ovms_notebook.errors import ClientError
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb


def infer(
    address: str,
    graph: str,
    inputs: Mapping[str, object],
    *,
    timestamp: int | None = None,
    parameters: Mapping[str, bool | int | str] | None = None,
    request_id: str = "",
    timeout: float | None = 30,
    credentials: grpc.ChannelCredentials | None = None,
    datatypes: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """One unary ModelInfer: {output name: decoded value}. Raises ClientError with the gRPC code and details."""
    request, _ = build_request(graph, inputs, timestamp, parameters, datatypes, request_id)
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        response = call_unary(channel, "ModelInfer", request, timeout)
    return decode_outputs(response, strict=True)


def model_metadata(
    address: str, graph: str, *, credentials: grpc.ChannelCredentials | None = None, timeout: float | None = 10
) -> dict[str, Any]:
    """A graph's {"name", "versions", "platform", "inputs", "outputs"}; tensors as {"name", "datatype", "shape"}."""
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        response = call_unary(channel, "ModelMetadata", pb.ModelMetadataRequest(name=graph), timeout)

    def tensors(items: Iterable[Any]) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]} for t in items]

    return {
        "name": response.name,
        "versions": list(response.versions),
        "platform": response.platform,
        "inputs": tensors(response.inputs),
        "outputs": tensors(response.outputs),
    }


def model_ready(
    address: str, graph: str, *, credentials: grpc.ChannelCredentials | None = None, timeout: float | None = 10
) -> bool:
    """Whether the graph is ready; ClientError (NOT_FOUND) for a name the server does not know."""
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        return bool(call_unary(channel, "ModelReady", pb.ModelReadyRequest(name=graph), timeout).ready)


def server_metadata(
    address: str, *, credentials: grpc.ChannelCredentials | None = None, timeout: float | None = 10
) -> dict[str, Any]:
    """The server's {"name", "version", "extensions"}."""
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        response = call_unary(channel, "ServerMetadata", pb.ServerMetadataRequest(), timeout)
    return {"name": response.name, "version": response.version, "extensions": list(response.extensions)}


def list_ready(
    address: str,
    names: Iterable[str],
    *,
    credentials: grpc.ChannelCredentials | None = None,
    timeout: float | None = 10,
) -> dict[str, bool]:
    """Ready state of each name over one channel (for widgets); a name the server does not know is False."""
    ready: dict[str, bool] = {}
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        for name in names:
            try:
                ready[name] = bool(call_unary(channel, "ModelReady", pb.ModelReadyRequest(name=name), timeout).ready)
            except ClientError as error:
                if error.code != grpc.StatusCode.NOT_FOUND.name:
                    raise
                ready[name] = False
    return ready

