"""The KServe service as it appears on the wire, for hand registration.

The messages live in a renamed proto package (see grpc_predict_v2.proto), so
gRPC's generated stubs would announce the wrong service path. This table is
the one place that says which method takes and returns which message; the
server registers handlers from it and the client builds callables from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovms_notebook.proto import grpc_predict_v2_pb2 as pb

SERVICE_NAME = "inference.GRPCInferenceService"


@dataclass(frozen=True)
class Method:
    """One RPC: its name, message classes and whether it streams."""

    name: str
    request: Any
    response: Any
    streaming: bool = False

    @property
    def path(self) -> str:
        """The HTTP/2 path gRPC uses for this method."""
        return f"/{SERVICE_NAME}/{self.name}"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ServerLive", pb.ServerLiveRequest, pb.ServerLiveResponse),
        Method("ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse),
        Method("ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse),
        Method("ServerMetadata", pb.ServerMetadataRequest, pb.ServerMetadataResponse),
        Method("ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse),
        Method("ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse),
        Method("ModelStreamInfer", pb.ModelInferRequest, pb.ModelStreamInferResponse, streaming=True),
    )
}
