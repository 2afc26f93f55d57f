"""An in-kernel KServe client that works against our server and a real OVMS alike.

`StreamClient` holds one `ModelStreamInfer` stream with an ordered log of
requests, responses, in-band errors and the end; `infer`, `model_metadata`,
`model_ready`, `server_metadata` and `list_ready` are the unary calls.
"""

from ovms_notebook.client.calls import infer, list_ready, model_metadata, model_ready, server_metadata
from ovms_notebook.client.stream import LogEntry, StreamClient

__all__ = ["LogEntry", "StreamClient", "infer", "list_ready", "model_metadata", "model_ready", "server_metadata"]
