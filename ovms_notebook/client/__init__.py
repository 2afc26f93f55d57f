"""An in-kernel KServe client that works against our server and a real OVMS alike.

`StreamClient` holds one `ModelStreamInfer` stream with an ordered log of
requests, responses, in-band errors and the end; `infer`, `model_metadata`,
`model_ready`, `server_metadata` and `list_ready` are the unary calls;
`describe_remote` asks a server known only by its address about the graphs named.
`Recording` saves a stream session to a file, `replay` sends it again and
`compare` says what differs between two recordings.
"""

from ovms_notebook.client.calls import infer, list_ready, model_metadata, model_ready, server_metadata
from ovms_notebook.client.recording import Recording
from ovms_notebook.client.remote import RemoteGraph, describe_remote, graph_names_from_config
from ovms_notebook.client.replay import Comparison, compare, replay
from ovms_notebook.client.stream import LogEntry, StreamClient

__all__ = [
    "Comparison",
    "LogEntry",
    "Recording",
    "RemoteGraph",
    "StreamClient",
    "compare",
    "describe_remote",
    "graph_names_from_config",
    "infer",
    "list_ready",
    "model_metadata",
    "model_ready",
    "replay",
    "server_metadata",
]
