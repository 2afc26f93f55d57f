"""Replay a recorded stream session against a server, and compare two recordings.

`replay` sends a `Recording`'s requests again on a fresh stream (same bytes, parameters and manual
timestamps) and records what comes back; `compare` lists what differs between two recordings in
lines a lesson can show: timestamps, output names and values, in-band errors, the end.

    again = replay(Recording.load("session.json"), server.address)
    compare(Recording.load("session.json"), again)     # same: 3 requests, 3 responses, 0 errors, end OK
"""

from __future__ import annotations

import html
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import grpc
import numpy as np

from ovms_notebook.client.recording import DEFAULT_MAX_VALUE_BYTES, Recording
from ovms_notebook.client.steps import ErrorStep, RecordedTensor, RequestStep, ResponseStep
from ovms_notebook.client.stream import StreamClient
from ovms_notebook.errors import ClientError
from ovms_notebook.proto.wire import TIMESTAMP_PARAMETER

log = logging.getLogger(__name__)

_FLOATS = ("FP16", "FP32", "FP64")
_SHOWN_ELEMENTS = 8  # values with at most this many elements are shown whole in a difference


def replay(
    recording: Recording,
    address: str,
    graph: str | None = None,
    *,
    timeout: float = 30.0,
    credentials: grpc.ChannelCredentials | None = None,
    max_value_bytes: int | None = DEFAULT_MAX_VALUE_BYTES,
) -> Recording:
    """Send `recording`'s requests in order on a fresh stream to `graph` (default: the recorded one) at
    `address`, wait for the stream to end, and return the new recording.

    Requests go out with the same bytes, parameters and manual timestamps. Before each one the replay
    waits until as many responses and errors have arrived as had before it in the recording, so
    in-band errors are attributed as they were; `timeout` bounds those waits together (once spent, the
    rest is sent at once) and, on its own, the wait for the end. A stream that ends early stops the
    replay: the new recording holds what was sent and how it ended.
    """
    client = StreamClient(
        address, graph or recording.graph, credentials=credentials, timestamps=recording.timestamps, max_log=None
    )
    deadline = time.monotonic() + timeout
    arrived = 0
    try:
        for step in recording.steps:
            if isinstance(step, ResponseStep | ErrorStep):
                arrived += 1
            elif isinstance(step, RequestStep):
                if arrived and not _wait(client, arrived, deadline):
                    break
                inputs = {name: tensor.value() for name, tensor in step.inputs.items()}
                datatypes = {name: tensor.datatype for name, tensor in step.inputs.items()}
                try:
                    client.send(inputs, parameters=step.parameters, datatypes=datatypes)
                except ClientError:  # the stream has ended
                    break
    except BaseException:
        client.cancel()
        raise
    client.close(timeout)
    return Recording.from_client(client, max_value_bytes=max_value_bytes)


def _wait(client: StreamClient, count: int, deadline: float) -> bool:
    """Wait for `count` responses and errors until `deadline`; False when the stream ended first."""
    try:
        client.wait_for(count, timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        log.debug("replay of %r: %d responses and errors did not arrive in time; sending on", client.graph, count)
    except ClientError:
        return False
    return True


@dataclass
class Comparison:
    """What differs between two recordings `a` and `b`, one readable line each (empty when they agree),
    with each recording's `summary()` for context."""

    differences: list[str] = field(default_factory=list)
    summaries: tuple[str, str] = ("", "")

    @property
    def same(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        if self.same:
            return f"same: {self.summaries[0]}"
        lines = [f"{_differences(len(self.differences))} between a ({self.summaries[0]}) and b ({self.summaries[1]}):"]
        return "\n".join([*lines, *(f"  {line}" for line in self.differences)])

    def _repr_html_(self) -> str:
        if self.same:
            return f"<p><b>same</b>: {html.escape(self.summaries[0])}</p>"
        items = "".join(f"<li><code>{html.escape(line)}</code></li>" for line in self.differences)
        a, b = (html.escape(s) for s in self.summaries)
        return f"<p><b>{_differences(len(self.differences))}</b> between a ({a}) and b ({b}):</p><ul>{items}</ul>"


def compare(
    a: Recording, b: Recording, *, rtol: float = 1e-5, atol: float = 1e-8, timestamps: bool | None = None
) -> Comparison:
    """The differences between two recordings: requests (manual timestamps, parameters, input bytes),
    responses (timestamps, output names, values), in-band errors (texts, requests answered), the end.

    Steps are numbered from 0 in each list. Responses are paired by output names, in order, so
    responses of different output streams may interleave differently without counting as a
    difference. Float values compare with numpy's `allclose(rtol, atol)`, everything else exactly
    (and by digest where a recording kept no data). `timestamps=None` compares response timestamps
    only when both recordings are in counter mode (wall-clock stamps differ on every run).
    """
    if timestamps is None:
        timestamps = a.timestamps == b.timestamps == "counter"
    lines = _requests(a.requests, b.requests)
    lines += _responses(a.responses, b.responses, rtol, atol, timestamps)
    lines += _errors(a.errors, b.errors)
    end_a, end_b = (r.end.text if r.end else "not ended" for r in (a, b))
    if end_a != end_b:
        lines.append(f"end: {end_a} != {end_b}")
    return Comparison(lines, (a.summary(), b.summary()))


def _differences(count: int) -> str:
    return f"{count} difference{'' if count == 1 else 's'}"


def _requests(a: list[RequestStep], b: list[RequestStep]) -> list[str]:
    lines: list[str] = []
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b):
            lines.append(f"request {i}: only in {'a' if i < len(a) else 'b'}")
            continue
        x, y = a[i], b[i]
        if _manual(x) != _manual(y):
            lines.append(f"request {i}: timestamp {_manual(x)} != {_manual(y)}")
        others = [{k: v for k, v in s.parameters.items() if k != TIMESTAMP_PARAMETER} for s in (x, y)]
        if others[0] != others[1]:
            lines.append(f"request {i}: parameters {others[0]} != {others[1]}")
        if tuple(x.inputs) != tuple(y.inputs):
            lines.append(f"request {i}: inputs {list(x.inputs)} != {list(y.inputs)}")
            continue
        for name in x.inputs:
            if x.inputs[name] != y.inputs[name]:
                lines.append(f"request {i}: input {name} differs: {_exact_difference(x.inputs[name], y.inputs[name])}")
    return lines


def _manual(step: RequestStep) -> str:
    return f"{step.parameters.get(TIMESTAMP_PARAMETER)!r} (manual)" if step.manual else "automatic"


def _responses(a: list[ResponseStep], b: list[ResponseStep], rtol: float, atol: float, timestamps: bool) -> list[str]:
    unpaired: dict[tuple[str, ...], deque[ResponseStep]] = defaultdict(deque)
    for step in b:
        unpaired[step.names].append(step)
    lines: list[str] = []
    for i, x in enumerate(a):
        label = f"response {i} ({', '.join(x.names)})"
        if not unpaired[x.names]:
            lines.append(f"{label}: only in a (timestamp {x.timestamp})")
            continue
        y = unpaired[x.names].popleft()
        if timestamps and x.timestamp != y.timestamp:
            lines.append(f"{label}: timestamp {x.timestamp} != {y.timestamp}")
        for name in x.names:
            difference = _value_difference(x.outputs[name], y.outputs[name], rtol, atol)
            if difference:
                lines.append(f"{label}: {name} {difference}")
    left = {id(step) for queue in unpaired.values() for step in queue}
    for j, y in enumerate(b):
        if id(y) in left:
            lines.append(f"response {j} ({', '.join(y.names)}): only in b (timestamp {y.timestamp})")
    return lines


def _errors(a: list[ErrorStep], b: list[ErrorStep]) -> list[str]:
    lines: list[str] = []
    for i in range(max(len(a), len(b))):
        if i >= len(b) or i >= len(a):
            only, step = ("a", a[i]) if i < len(a) else ("b", b[i])
            lines.append(f"error {i}: only in {only} ({step.text!r})")
            continue
        if a[i].text != b[i].text:
            lines.append(f"error {i} text differs: {a[i].text!r} != {b[i].text!r}")
        if a[i].request != b[i].request:
            lines.append(f"error {i}: answers request {a[i].request} != {b[i].request}")
    return lines


def _describe(tensor: RecordedTensor) -> str:
    if tensor.error:
        return f"undecodable ({tensor.error})"
    if tensor.proto_type or tensor.repeated:
        return f"{tensor.shape[0]} {tensor.proto_type or 'proto'} messages" if tensor.repeated else tensor.proto_type
    return f"{tensor.datatype} {list(tensor.shape)}"


def _exact_difference(a: RecordedTensor, b: RecordedTensor) -> str:
    if _describe(a) != _describe(b):
        return f"{_describe(a)} != {_describe(b)}"
    if a.data is None or b.data is None:
        return "values differ (compared by digest: no data kept)"
    if a.proto_type or a.repeated:
        return "messages differ"
    return _shown(np.asarray(a.value()), np.asarray(b.value()), None)


def _value_difference(a: RecordedTensor, b: RecordedTensor, rtol: float, atol: float) -> str | None:
    """None when the values agree (floats within tolerance), else what differs."""
    if a.digest == b.digest and _describe(a) == _describe(b):
        return None
    if a.datatype != b.datatype or a.shape != b.shape or a.datatype not in _FLOATS or None in (a.data, b.data):
        return _exact_difference(a, b)
    x, y = np.asarray(a.value()), np.asarray(b.value())
    close = np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
    return None if close.all() else _shown(x, y, close)


def _shown(x: np.ndarray, y: np.ndarray, close: np.ndarray | None) -> str:
    """Small values whole; big ones as how many elements differ (and by how much, for numbers)."""
    if x.size <= _SHOWN_ELEMENTS:
        return f"values {x.tolist()} != {y.tolist()}"
    differ = ~close if close is not None else x != y
    text = f"{int(differ.sum())} of {x.size} values differ"
    if x.dtype.kind in "iufb":
        largest = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
        text += f" (largest difference {largest:g})"
    return text
