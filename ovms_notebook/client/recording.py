"""A recorded stream session, saved to and loaded from one JSON file.

A `Recording` keeps what a `StreamClient` log says happened, losslessly (see `client.steps`): each
request's inputs as the KServe bytes that went out, its parameters and manual timestamp; each
response's OVMS_MP_TIMESTAMP and outputs (bytes when small, a SHA-256 digest always); each in-band
error with the request it answers; the end status. `client.replay` sends the same requests again and
compares two recordings: the lessons use it to show that the same requests get the same timestamps
every time.

    with StreamClient(server.address, "passthrough", max_log=None) as client:
        client.send({"in": np.float32([1])})
    Recording.from_client(client).save("session.json")
    compare(Recording.load("session.json"), replay(Recording.load("session.json"), server.address)).same  # True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ovms_notebook.client.steps import (
    EndStep,
    ErrorStep,
    RecordedTensor,
    RequestStep,
    ResponseStep,
    Step,
    step_of,
)
from ovms_notebook.client.stream import StreamClient

#: What a recording file says it is, and the version of its layout this module reads and writes.
FORMAT = "ovms_notebook.recording"
VERSION = 1

#: Outputs larger than this keep only their digest (inputs are always kept whole: replay needs them).
DEFAULT_MAX_VALUE_BYTES = 1 << 20


@dataclass(repr=False)
class Recording:
    """One stream session: the graph, the timestamps mode and every step in the order the client saw it.

    `seq` of a step is the client's log seq (for finding it in the log); an error's `request` is a
    position in `requests`, so it means the same thing in a replay.
    """

    graph: str
    timestamps: Literal["counter", "wallclock"] = "counter"
    steps: list[Step] = field(default_factory=list)

    @property
    def requests(self) -> list[RequestStep]:
        return [s for s in self.steps if isinstance(s, RequestStep)]

    @property
    def responses(self) -> list[ResponseStep]:
        return [s for s in self.steps if isinstance(s, ResponseStep)]

    @property
    def errors(self) -> list[ErrorStep]:
        return [s for s in self.steps if isinstance(s, ErrorStep)]

    @property
    def end(self) -> EndStep | None:
        """The end step, None when the stream had not ended when recorded."""
        return next((s for s in self.steps if isinstance(s, EndStep)), None)

    @classmethod
    def from_client(cls, client: StreamClient, *, max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES) -> Recording:
        """The recording of `client`'s log (close the client first to include the end).

        Outputs over `max_value_bytes` keep only their digest (None: keep all). Raises ValueError when
        the log lost its oldest entries: record with `StreamClient(..., max_log=None)`.
        """
        entries = client.log
        if entries and entries[0].seq != 0:
            raise ValueError(
                f"cannot record the stream to {client.graph!r}: its log starts at entry {entries[0].seq}, "
                "expected 0 (older entries were dropped); use StreamClient(..., max_log=None)"
            )
        request_index = {e.seq: i for i, e in enumerate(e for e in entries if e.kind == "request")}
        steps = [step_of(entry, request_index, max_value_bytes) for entry in entries]
        return cls(client.graph, client.timestamps, steps)

    def save(self, path: str | Path) -> Path:
        """Write the recording as one JSON file (bytes in base64, with a format version); returns the path."""
        path = Path(path)
        document = {"format": FORMAT, "version": VERSION, "graph": self.graph, "timestamps": self.timestamps}
        document["steps"] = [_step_json(step) for step in self.steps]
        path.write_text(json.dumps(document, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a file `save` wrote; ValueError saying what was expected and what came when it is not one."""
        path = Path(path)
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a recording: expected JSON, got {error}") from None
        return _Reader(str(path)).recording(document)

    def summary(self) -> str:
        """One line: how many requests, responses and errors, and how the stream ended."""
        counts = [(len(self.requests), "request"), (len(self.responses), "response"), (len(self.errors), "error")]
        end = self.end.text if self.end else "not ended"
        return ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in counts) + f", end {end}"

    def __repr__(self) -> str:
        return f"<Recording {self.graph!r} ({self.timestamps}): {self.summary()}>"


# -- the file -------------------------------------------------------------------------------------------------


def _tensor_json(tensor: RecordedTensor) -> dict[str, Any]:
    data = None if tensor.data is None else base64.b64encode(tensor.data).decode("ascii")
    document = {"datatype": tensor.datatype, "shape": list(tensor.shape), "digest": tensor.digest, "data": data}
    extra = {"proto_type": tensor.proto_type, "repeated": tensor.repeated, "error": tensor.error}
    return document | {key: value for key, value in extra.items() if value}


def _step_json(step: Step) -> dict[str, Any]:
    document: dict[str, Any] = {"kind": step.kind, "seq": step.seq}
    extra: dict[str, Any]
    if isinstance(step, RequestStep):
        inputs = {name: _tensor_json(t) for name, t in step.inputs.items()}
        extra = {"manual": step.manual, "timestamp": step.timestamp, "parameters": step.parameters, "inputs": inputs}
    elif isinstance(step, ResponseStep):
        extra = {"timestamp": step.timestamp, "outputs": {name: _tensor_json(t) for name, t in step.outputs.items()}}
    elif isinstance(step, ErrorStep):
        extra = {"text": step.text, "request": step.request}
    else:
        extra = {"code": step.code, "text": step.text}
    return document | extra


_MISSING = object()
_KINDS = ("request", "response", "error", "end")
_JSON_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
_TYPES: dict[str, tuple[type, str]] = {
    "int": (int, "an int"),
    "str": (str, "a string"),
    "bool": (bool, "true or false"),
    "dict": (dict, "an object"),
    "list": (list, "a list"),
}


class _Reader:
    """Turns a loaded JSON document back into a Recording, checking every field on the way."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, expected: str, got: object) -> ValueError:
        shown = repr(got) if len(repr(got)) <= 80 else repr(got)[:77] + "..."
        return ValueError(f"{self.source}: {where} must be {expected}, got {shown}")

    def take(self, document: dict, key: str, where: str, kind: str, default: object = _MISSING) -> Any:
        """`document[key]`, checked against `kind`: a key of `_TYPES`, with "?" when null is allowed too."""
        if key not in document:
            if default is not _MISSING:
                return default
            raise ValueError(f"{self.source}: {where} must have {key!r}, got keys {sorted(document)}")
        value = document[key]
        types, expected = _TYPES[kind.rstrip("?")]
        optional = kind.endswith("?")
        if value is None and optional:
            return value
        if not isinstance(value, types) or (types is int and isinstance(value, bool)):
            raise self.fail(f"{where}.{key}", expected + (" or null" if optional else ""), value)
        return value

    def recording(self, document: object) -> Recording:
        if not isinstance(document, dict):
            raise ValueError(
                f"{self.source} is not a recording: expected a JSON object with format {FORMAT!r}, "
                f"got a JSON {_JSON_NAMES.get(type(document), type(document).__name__)}"
            )
        if document.get("format") != FORMAT:
            raise ValueError(
                f"{self.source} is not a recording: expected format {FORMAT!r}, got {document.get('format')!r}"
            )
        if document.get("version") != VERSION:
            raise ValueError(
                f"{self.source}: expected recording format version {VERSION}, got {document.get('version')!r}"
            )
        timestamps = self.take(document, "timestamps", "recording", "str")
        if timestamps not in ("counter", "wallclock"):
            raise self.fail("recording.timestamps", "'counter' or 'wallclock'", timestamps)
        steps = self.take(document, "steps", "recording", "list")
        return Recording(
            self.take(document, "graph", "recording", "str"),
            timestamps,
            [self.step(step, f"steps[{i}]") for i, step in enumerate(steps)],
        )

    def step(self, document: object, where: str) -> Step:
        if not isinstance(document, dict):
            raise self.fail(where, "an object", document)
        kind = document.get("kind")
        if kind not in _KINDS:
            raise self.fail(f"{where}.kind", "one of 'request', 'response', 'error', 'end'", kind)
        seq = self.take(document, "seq", where, "int")
        if kind == "request":
            parameters = self.take(document, "parameters", where, "dict")
            for key, value in parameters.items():
                if not isinstance(value, bool | int | str):
                    raise self.fail(f"{where}.parameters[{key!r}]", "a bool, an int or a string", value)
            inputs = self.tensors(self.take(document, "inputs", where, "dict"), f"{where}.inputs", needs_data=True)
            manual = self.take(document, "manual", where, "bool")
            return RequestStep(seq, inputs, manual, self.take(document, "timestamp", where, "int?"), parameters)
        if kind == "response":
            outputs = self.tensors(self.take(document, "outputs", where, "dict"), f"{where}.outputs", needs_data=False)
            return ResponseStep(seq, self.take(document, "timestamp", where, "int?"), outputs)
        if kind == "error":
            request = self.take(document, "request", where, "int?")
            return ErrorStep(seq, self.take(document, "text", where, "str"), request)
        return EndStep(seq, self.take(document, "code", where, "str?"), self.take(document, "text", where, "str"))

    def tensors(self, documents: dict, where: str, *, needs_data: bool) -> dict[str, RecordedTensor]:
        return {name: self.tensor(value, f"{where}[{name!r}]", needs_data) for name, value in documents.items()}

    def tensor(self, document: object, where: str, needs_data: bool) -> RecordedTensor:
        if not isinstance(document, dict):
            raise self.fail(where, "an object", document)
        shape = self.take(document, "shape", where, "list")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise self.fail(f"{where}.shape", "a list of non-negative ints", shape)
        encoded = self.take(document, "data", where, "str" if needs_data else "str?")
        digest = self.take(document, "digest", where, "str")
        data = None
        if encoded is not None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise self.fail(f"{where}.data", "base64", encoded) from None
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise ValueError(
                    f"{self.source}: {where}.data does not match its digest: expected sha256 {digest}, "
                    f"got {actual} (the file is corrupt)"
                )
        return RecordedTensor(
            self.take(document, "datatype", where, "str"),
            tuple(shape),
            digest,
            data,
            self.take(document, "proto_type", where, "str", ""),
            self.take(document, "repeated", where, "bool", False),
            self.take(document, "error", where, "str", ""),
        )
