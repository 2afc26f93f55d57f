"""The steps of a recorded stream session: requests, responses, in-band errors and the end, losslessly.

A request keeps its inputs as the KServe bytes that went out (datatype, shape, raw contents, as
`codec.encode_input` makes them from the log entry's values and datatype overrides), so a replay
sends them byte for byte; outputs come back to bytes the same way, proto messages serialized
deterministically. `client.recording` strings steps into a `Recording`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

from google.protobuf.message import Message

from ovms_notebook.client.stream import LogEntry
from ovms_notebook.codec import PROTO_REPEATED, PROTO_TYPE, decode_output, encode_input
from ovms_notebook.codec.datatypes import serialize_bytes
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.wire import TIMESTAMP_PARAMETER


@dataclass(frozen=True)
class RecordedTensor:
    """One input or output as KServe bytes: `data` are the raw contents (None when an output was larger
    than the recording keeps) and `digest` their SHA-256, so even a big output compares exactly.

    Proto outputs keep their messages serialized as BYTES elements (`proto_type` names the message,
    `repeated` says the packet was a std::vector); an output the client could not decode keeps only
    why (`error`).
    """

    datatype: str
    shape: tuple[int, ...]
    digest: str
    data: bytes | None = None
    proto_type: str = ""
    repeated: bool = False
    error: str = ""

    @classmethod
    def of(
        cls,
        datatype: str,
        shape: tuple[int, ...],
        data: bytes,
        max_bytes: int | None = None,
        *,
        proto_type: str = "",
        repeated: bool = False,
    ) -> RecordedTensor:
        """A tensor of `data`, keeping the bytes when `max_bytes` is None or they fit."""
        keep = max_bytes is None or len(data) <= max_bytes
        digest = hashlib.sha256(data).hexdigest()
        return cls(datatype, tuple(shape), digest, data if keep else None, proto_type, repeated)

    def value(self) -> object:
        """The value as the client decodes it: a numpy array, or the proto message(s).

        Raises ValueError when only the digest was kept, the output could not be decoded, or the
        proto message type is unknown in this process.
        """
        if self.error:
            raise ValueError(f"this output could not be decoded when recorded: {self.error}")
        if self.data is None:
            raise ValueError(f"only the digest of this {self.datatype} {list(self.shape)} value was kept")
        tensor = pb.ModelInferResponse.InferOutputTensor(name="value", datatype=self.datatype, shape=self.shape)
        if self.proto_type or self.repeated:
            if not self.proto_type:  # an empty std::vector: nothing says of what
                return []
            tensor.parameters[PROTO_TYPE].string_param = self.proto_type
            tensor.parameters[PROTO_REPEATED].bool_param = self.repeated
        return decode_output(tensor, self.data)


@dataclass(frozen=True)
class RequestStep:
    """A request as sent: `parameters` exactly as on the wire (OVMS_MP_TIMESTAMP among them when
    `manual`); `timestamp` is the manual one, or the client's prediction for an automatic one."""

    kind: ClassVar[str] = "request"
    seq: int
    inputs: dict[str, RecordedTensor]
    manual: bool = False
    timestamp: int | None = None
    parameters: dict[str, bool | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResponseStep:
    """A response: its OVMS_MP_TIMESTAMP and outputs by name."""

    kind: ClassVar[str] = "response"
    seq: int
    timestamp: int | None
    outputs: dict[str, RecordedTensor]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.outputs)


@dataclass(frozen=True)
class ErrorStep:
    """An in-band error: its text and the index (in `Recording.requests`) of the request it answers."""

    kind: ClassVar[str] = "error"
    seq: int
    text: str
    request: int | None = None


@dataclass(frozen=True)
class EndStep:
    """How the stream ended: `text` is "OK" or "[StatusCode.X] details", `code` the code name."""

    kind: ClassVar[str] = "end"
    seq: int
    code: str | None
    text: str


Step = RequestStep | ResponseStep | ErrorStep | EndStep


def step_of(entry: LogEntry, request_index: dict[int, int], max_bytes: int | None) -> Step:
    """The step of one log entry; `request_index` maps request seqs to positions, outputs over `max_bytes`
    keep only their digest (None: keep all)."""
    if entry.kind == "request":
        inputs = {}
        for name, value in entry.values.items():
            tensor, raw = encode_input(name, value, entry.datatypes.get(name))
            inputs[name] = RecordedTensor.of(tensor.datatype, tuple(tensor.shape), raw)
        parameters = dict(entry.parameters)
        if entry.manual and entry.timestamp is not None:  # entries made before LogEntry kept parameters
            parameters.setdefault(TIMESTAMP_PARAMETER, entry.timestamp)
        return RequestStep(entry.seq, inputs, entry.manual, entry.timestamp, parameters)
    if entry.kind == "response":
        outputs = {name: _output(name, value, max_bytes) for name, value in entry.values.items()}
        return ResponseStep(entry.seq, entry.timestamp, outputs)
    if entry.kind == "error":
        request = request_index.get(entry.request_seq) if entry.request_seq is not None else None
        return ErrorStep(entry.seq, entry.text, request)
    return EndStep(entry.seq, entry.code, entry.text)


def _output(name: str, value: object, max_bytes: int | None) -> RecordedTensor:
    """A decoded output back as bytes: numpy arrays by the codec, proto messages serialized deterministically."""
    if isinstance(value, Exception):
        return RecordedTensor("", (), "", error=str(value))
    if isinstance(value, Message) or (isinstance(value, list) and all(isinstance(m, Message) for m in value)):
        messages: list[Message] = value if isinstance(value, list) else [value]
        data = serialize_bytes(m.SerializeToString(deterministic=True) for m in messages)
        proto_type = messages[0].DESCRIPTOR.full_name if messages else ""
        return RecordedTensor.of(
            "BYTES", (len(messages),), data, max_bytes, proto_type=proto_type, repeated=isinstance(value, list)
        )
    tensor, raw = encode_input(name, value)
    return RecordedTensor.of(tensor.datatype, tuple(tensor.shape), raw, max_bytes)
