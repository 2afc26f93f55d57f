"""What a server at an address can say about its graphs, when all there is is the address.

KServe v2 has no call that lists models, so the names come from the person: given outright, or
read from a copy of the server's config.json (`graph_names_from_config`). For each name the server
is asked ModelReady and, when it knows the name, ModelMetadata (inputs and outputs by name,
datatype and shape). Nothing here can draw a graph: the topology never crosses the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ovms_notebook.client.messages import DEFAULT_MAX_MESSAGE_BYTES, call_unary, open_channel
from ovms_notebook.errors import ClientError
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb

__all__ = ["RemoteGraph", "describe_remote", "graph_names_from_config"]


@dataclass(frozen=True)
class RemoteGraph:
    """One name as the server at an address sees it.

    `state` is "ready", "not ready" or "unknown to the server" (ModelReady answered NOT_FOUND);
    `inputs`/`outputs` are ModelMetadata's tensors as {"name", "datatype", "shape"} (empty when the
    server gave none); `error` is the text of a ModelMetadata failure for a known name.
    """

    name: str
    state: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def ready(self) -> bool:
        """True when the server would take streams and requests for this name."""
        return self.state == "ready"


def graph_names_from_config(config: str | Path) -> list[str]:
    """The graph names a config.json (or its folder) declares, in its order, for asking a remote server."""
    from ovms_notebook.repository.graphs import find_config, read_entries

    return [entry.name for entry in read_entries(find_config(config), validate=False)]


def describe_remote(address: str, names: Iterable[str], *, credentials: grpc.ChannelCredentials | None = None,
                    timeout: float | None = 10) -> list[RemoteGraph]:
    """ModelReady, then ModelMetadata, for each name over one channel.

    A name the server does not know is "unknown to the server"; any other failure (server down,
    TLS refused, deadline) raises ClientError with the gRPC code, as for the first name it met.
    """
    graphs: list[RemoteGraph] = []
    with open_channel(address, credentials, DEFAULT_MAX_MESSAGE_BYTES) as channel:
        for name in names:
            try:
                ready = call_unary(channel, "ModelReady", pb.ModelReadyRequest(name=name), timeout).ready
            except ClientError as error:
                if error.code != grpc.StatusCode.NOT_FOUND.name:
                    raise
                graphs.append(RemoteGraph(name, "unknown to the server"))
                continue
            try:
                metadata = call_unary(channel, "ModelMetadata", pb.ModelMetadataRequest(name=name), timeout)
            except ClientError as error:
                if error.code in (grpc.StatusCode.UNAVAILABLE.name, grpc.StatusCode.DEADLINE_EXCEEDED.name):
                    raise
                graphs.append(RemoteGraph(name, "ready" if ready else "not ready", error=str(error)))
                continue
            graphs.append(RemoteGraph(name, "ready" if ready else "not ready",
                                      _tensors(metadata.inputs), _tensors(metadata.outputs)))
    return graphs


def _tensors(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]} for t in items]
