"""The names that travel on the wire besides the KServe messages: one module, so server and client agree.

`TIMESTAMP_PARAMETER` is OVMS's request/response parameter for a packet timestamp; `GRAPH_VERSION` is the
version OVMS reports for every MediaPipe graph ("1"), and `ACCEPTED_VERSIONS` the `model_version` values a
request to a graph may carry. The two metadata keys are this package's own: OVMS ignores unknown gRPC
metadata, so a client that sends them works against a real OVMS too.
"""

from __future__ import annotations

from typing import Final

#: The request/response parameter that carries a packet timestamp (OVMS's mediapipe stream API).
TIMESTAMP_PARAMETER: Final = "OVMS_MP_TIMESTAMP"
#: The version OVMS reports for a MediaPipe graph; requests may name it, "0" or nothing.
GRAPH_VERSION: Final = "1"
ACCEPTED_VERSIONS: Final = ("", "0", GRAPH_VERSION)
#: The server name OVMS answers ServerMetadata with.
SERVER_NAME: Final = "OpenVINO Model Server"
#: gRPC metadata key by which a client names its stream, so a widget can find the server-side session
#: (and its event log) of the stream it opened. Invisible to OVMS, which ignores unknown metadata.
STREAM_TAG_METADATA: Final = "ovms-notebook-stream"
#: gRPC metadata key by which a client asks for its stream's execution trace ("1"/"true"; "0"/"false" turns a
#: server-wide `trace=True` off for that stream). OVMS ignores it like any unknown metadata.
TRACE_METADATA: Final = "ovms-notebook-trace"
