"""The gRPC side of one `ModelStreamInfer` stream: requests in through a queue, responses out on a reader thread.

The request iterator gRPC consumes is a queue ended by a sentinel (the shape
of tritonclient's `_InferStream`); the reader thread body turns the call's
responses and its final status into calls of the client's receive and finish
methods, which it holds weakly so an abandoned client can still be collected
(and its call cancelled). `StreamClient` (client/stream.py) is the only user.
"""

from __future__ import annotations

import logging
import queue
import weakref
from typing import Any

import grpc

from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS
from ovms_notebook.proto.wire import STREAM_TAG_METADATA, TRACE_METADATA

# The stream client's logger: a failing reader has always been reported under this name.
log = logging.getLogger("ovms_notebook.client.stream")

__all__ = ["RequestIterator", "open_stream", "read_stream"]

_SENTINEL = object()


class RequestIterator:
    """The request iterator gRPC consumes on its own thread: a queue ended by a sentinel."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._done = False

    def put(self, request: pb.ModelInferRequest) -> None:
        self._queue.put(request)

    def finish(self) -> None:
        """Half-close after what is queued; also frees gRPC's thread if it waits for a request."""
        self._queue.put(_SENTINEL)

    def __iter__(self) -> RequestIterator:
        return self

    def __next__(self) -> pb.ModelInferRequest:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _SENTINEL:
            self._done = True
            raise StopIteration
        return item  # type: ignore[return-value]


def open_stream(channel: grpc.Channel, requests: RequestIterator, *, tag: str, trace: bool,
                timeout: float | None) -> Any:
    """Open the `ModelStreamInfer` call that reads `requests`, tagged for the in-kernel server (OVMS ignores it)."""
    method = METHODS["ModelStreamInfer"]
    callable_ = channel.stream_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    metadata = [(STREAM_TAG_METADATA, tag)] + ([(TRACE_METADATA, "1")] if trace else [])
    return callable_(requests, metadata=metadata, timeout=timeout)


def read_stream(
    receive: weakref.WeakMethod[Any],
    finish: weakref.WeakMethod[Any],
    call: Any,
    requests: RequestIterator,
) -> None:
    """Reader thread body: `receive(response)` for each response, then `finish(code, text, details)` once.

    Both are weak references to the client's methods, so an abandoned client can be collected; the call is
    then cancelled.
    """
    code, text, details = "OK", "OK", ""
    try:
        for response in call:
            receiver = receive()
            if receiver is None:
                call.cancel()
                return
            receiver(response)
            del receiver
    except grpc.RpcError as error:
        status = error.code()
        code, details = status.name, error.details() or ""
        text = f"[{status}] {details}"
    except Exception as error:  # a bug of ours: end the call rather than leave it unread
        log.exception("reading the stream failed")
        call.cancel()
        code, details = "UNKNOWN", f"client reader failed: {error!r}"
        text = f"[{grpc.StatusCode.UNKNOWN}] {details}"
    finally:
        requests.finish()
    finisher = finish()
    if finisher is not None:
        finisher(code, text, details)
