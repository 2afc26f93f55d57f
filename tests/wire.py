"""Raw-bytes gRPC calls for hostile-input tests: a stream driven one message at a time, and a unary call.

Requests travel as bytes (identity serializer), so a test can send what no
client library would: garbage, duplicated fields, unknown parameter kinds
serialized from tritonclient's own proto. Responses are parsed with our
messages. Every call has a deadline, so a hang shows up as DEADLINE_EXCEEDED
instead of a stuck test run.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field

import grpc

from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS

_STREAM = METHODS["ModelStreamInfer"]
_INFER = METHODS["ModelInfer"]
_END = object()


def wire(message: object) -> bytes:
    """A message as bytes on the wire (bytes pass through unchanged)."""
    return message if isinstance(message, bytes) else message.SerializeToString()  # type: ignore[attr-defined]


@dataclass
class Ending:
    """What a stream produced after the last awaited response: further responses, final code and details."""

    responses: list[pb.ModelStreamInferResponse] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str = ""


class Conversation:
    """One ModelStreamInfer call where the test sends a message, waits for the answer, then sends the next."""

    def __init__(self, channel: grpc.Channel, timeout: float = 30.0, metadata: tuple = ()) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        call = channel.stream_stream(_STREAM.path, request_serializer=None,
                                     response_deserializer=_STREAM.response.FromString)
        self._call = call(iter(self._requests.get, _END), timeout=timeout, metadata=metadata or None)

    def send(self, message: object) -> None:
        self._requests.put(wire(message))

    def receive(self) -> pb.ModelStreamInferResponse:
        """The next response; AssertionError if the stream ended instead (with its code and details)."""
        try:
            return next(self._call)
        except StopIteration:
            raise AssertionError("the stream ended with OK while a response was expected") from None
        except grpc.RpcError as error:
            raise AssertionError(f"the stream ended with {error.code()}: {error.details()!r}") from None

    def end(self) -> Ending:
        """Half-close and collect everything until the stream's final status."""
        self._requests.put(_END)
        ending = Ending()
        try:
            for response in self._call:
                ending.responses.append(response)
            ending.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            ending.code, ending.details = error.code(), error.details()
        return ending

    def cancel(self) -> None:
        self._call.cancel()


def infer(channel: grpc.Channel, message: object, timeout: float = 30.0) -> pb.ModelInferResponse:
    """One unary ModelInfer call with the request as bytes (grpc.RpcError on failure)."""
    call = channel.unary_unary(_INFER.path, request_serializer=None, response_deserializer=_INFER.response.FromString)
    return call(wire(message), timeout=timeout)
