"""An in-kernel KServe client: one `ModelStreamInfer` stream per `StreamClient`, plus unary helpers.

It speaks only the protocol, so it works against the in-kernel server and a
real OVMS alike. Requests go through a queue that a sentinel ends (the shape
of tritonclient's `_InferStream`); one daemon reader thread turns responses,
in-band errors and the final status into an ordered `LogEntry` log and calls
the registered callbacks. Nothing blocks a cell except `close()`,
`wait_for()` and the unary helpers.

This module is the client's state: what was sent, what came back, how the
stream ends. The log records are client/entries.py, the gRPC call and its
reader thread client/stream_call.py, error attribution and timestamp
prediction client/attribution.py.

    with StreamClient(server.address, "passthrough") as client:
        client.send({"in": np.float32([1, 2])})      # LogEntry(kind="request", timestamp=0, manual=False)
        client.wait_for(1)[0].values["out"]          # array([1., 2.], dtype=float32)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import grpc

from ovms_notebook import display
from ovms_notebook.client.attribution import Sent, SentRequests
from ovms_notebook.client.entries import Callback, EntryKind, LogEntry
from ovms_notebook.client.messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    build_request,
    decode_outputs,
    open_channel,
    response_timestamp,
)
from ovms_notebook.client.stream_call import RequestIterator, open_stream, read_stream
from ovms_notebook.errors import ClientError
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb

log = logging.getLogger(__name__)

_JOIN_SECONDS = 5.0


class StreamClient:
    """One `ModelStreamInfer` stream to `graph` at `address`, with an ordered log of what happened.

    The gRPC call opens with the first `send()` (a stream that never sent anything ends "OK" without
    touching the server). `timeout` is the deadline of the whole stream; `credentials` make the channel
    secure; `max_message_bytes` bounds both directions; `max_log` keeps only the newest entries
    (None: all; request entries hold the inputs as given, so a long video stream needs a bound).
    `trace=True` asks the in-kernel server to record the stream's execution trace (metadata
    `ovms-notebook-trace: 1`, which OVMS ignores); read it with `server.trace_for(client)`.

    Timestamps: in "counter" mode (OVMS up to 2025.0, the in-kernel server's default) automatic
    requests get 0, then the last request's timestamp + 1, and a manual timestamp sets the base;
    request entries carry that prediction (`manual=False`). In "wallclock" mode (OVMS 2025.1+) the
    server stamps microseconds of its own clock, which the client cannot predict (None).

    Errors: OVMS's in-band errors carry no request id, but the server rejects one stream's requests
    in order, and the client predicts as it sends which requests OVMS must reject for their
    timestamp (not greater than the last one on an input stream it feeds, out of range). An error is
    pinned (`request_seq`) to a request sent after the one the previous error answered: a timestamp
    error to the earliest predicted bad, any other to the earliest not predicted bad and not yet seen
    answered by an output, else the earliest (client/attribution.py has the rule in full). Timestamp
    errors are so pinned exactly, pipelined or not. A rejected request does not advance the server's
    counter, so neither does a request predicted bad, and an error pinned to a request predicted good
    replays the prediction without it. OVMS 2025.0 itself lets a rejected manual timestamp set the
    base; the in-kernel server does not, and neither does this prediction.

    Callbacks (`on_response`, `on_error`, `on_end`) run on the client's reader thread (for a stream
    that never opened, `on_end` runs in the caller of close/cancel): they must be quick and must never
    print, display or enter `with output:` — set widget traits or feed a queue instead. An exception
    in a callback is logged and swallowed. As a context manager the stream is closed on exit
    (cancelled if the block raised).
    """

    def __init__(
        self,
        address: str,
        graph: str,
        *,
        timeout: float | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timestamps: Literal["counter", "wallclock"] = "counter",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_log: int | None = 1000,
        trace: bool = False,
    ) -> None:
        if timestamps not in ("counter", "wallclock"):
            raise ValueError(f"timestamps must be 'counter' or 'wallclock', got {timestamps!r}")
        self.address = address
        self.graph = graph
        self.timeout = timeout
        self.timestamps = timestamps
        self.tag = str(uuid.uuid4())
        self.tracing = trace
        self._channel = open_channel(address, credentials, max_message_bytes)
        self._requests = RequestIterator()
        self._call: Any = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._log: deque[LogEntry] = deque(maxlen=max_log)
        self._sent = SentRequests(counter=timestamps == "counter")
        self._callbacks: dict[str, list[Callback]] = {"response": [], "error": [], "end": []}
        self._seq = 0
        self._delivered = 0
        self._closing = False
        self._end: LogEntry | None = None
        self._details = ""

    # -- callbacks --------------------------------------------------------------------------------------------

    def on_response(self, callback: Callback) -> None:
        """Call `callback(entry)` for every response (on the reader thread: be quick, never print)."""
        self._register("response", callback)

    def on_error(self, callback: Callback) -> None:
        """Call `callback(entry)` for every in-band error (on the reader thread: be quick, never print)."""
        self._register("error", callback)

    def on_end(self, callback: Callback) -> None:
        """Call `callback(entry)` once with the end entry (on the reader thread: be quick, never print)."""
        self._register("end", callback)

    def _register(self, kind: str, callback: Callback) -> None:
        with self._lock:
            self._callbacks[kind] = [*self._callbacks[kind], callback]

    # -- sending ----------------------------------------------------------------------------------------------

    def send(
        self,
        inputs: Mapping[str, object],
        timestamp: int | None = None,
        parameters: Mapping[str, bool | int | str] | None = None,
        datatypes: Mapping[str, str] | None = None,
    ) -> LogEntry:
        """Queue one request and return its log entry at once.

        `inputs` maps input names to numpy arrays, Python scalars, lists, str or bytes (encoded by
        `codec.encode_input`; `datatypes` overrides a name's datatype). `timestamp` sets
        OVMS_MP_TIMESTAMP (also accepted inside `parameters`); other `parameters` become input side
        packets when sent on the first request and are ignored by OVMS afterwards. Raises ValueError or
        TypeError for values that cannot be sent and ClientError once the stream is closing or ended.
        """
        request, manual_value = build_request(self.graph, inputs, timestamp, parameters, datatypes)
        manual = manual_value is not None
        manual_int = manual_value if isinstance(manual_value, int) and not isinstance(manual_value, bool) else None
        with self._lock:
            if self._end is not None:
                raise ClientError(
                    f"cannot send: the stream to {self.graph!r} has ended: {self._details or 'OK'}; "
                    "start a new StreamClient",
                    self._end.code,
                )
            if self._closing:
                raise ClientError(f"cannot send: the stream to {self.graph!r} is closing")
            sent = self._sent.add(self._seq, manual, manual_int, tuple(inputs))
            entry = self._append(
                "request",
                timestamp=sent.timestamp,
                manual=manual,
                names=tuple(inputs),
                values=dict(inputs),
                parameters={key: getattr(p, p.WhichOneof("parameter_choice")) for key, p in request.parameters.items()},
                datatypes=dict(datatypes or {}),
            )
            self._start()
            self._requests.put(request)
        return entry

    def next_timestamp(self) -> int | None:
        """The timestamp the next automatic request will probably get (counter mode); None in wallclock mode."""
        with self._lock:
            return self._sent.next if self.timestamps == "counter" else None

    def _start(self) -> None:
        """Open the call and start the reader (under the lock, on the first send)."""
        if self._call is not None:
            return
        self._call = open_stream(self._channel, self._requests, tag=self.tag, trace=self.tracing, timeout=self.timeout)
        self._reader = threading.Thread(
            target=read_stream,
            args=(weakref.WeakMethod(self._receive), weakref.WeakMethod(self._finish), self._call, self._requests),
            name=f"ovms-client-{self.graph}-reader",
            daemon=True,
        )
        self._reader.start()

    # -- ending -----------------------------------------------------------------------------------------------

    def close(self, timeout: float | None = 30) -> LogEntry:
        """Half-close, wait until the server ends the stream (every output delivered), return the end entry.

        If the stream has not ended after `timeout` seconds it is cancelled (end code CANCELLED), so no
        thread outlives this call. Idempotent. Not callable from a callback (it would wait on itself).
        """
        self._not_on_reader("close()")
        with self._lock:
            self._closing = True
            started = self._call is not None
            if started:
                self._requests.finish()
        if not started:
            self._end_unopened("OK", "OK")
        elif self._reader is not None:
            self._reader.join(timeout)
            if self._reader.is_alive():
                log.warning("stream to %r did not end within %s s after half-close; cancelling", self.graph, timeout)
                self.cancel()
        self._channel.close()
        if self._end is None:  # only when a callback never returns
            raise ClientError(f"the stream to {self.graph!r} did not end: its reader is stuck in a callback")
        return self._end

    def cancel(self) -> None:
        """Cancel the stream now (end code CANCELLED unless it had already ended); outputs still due are lost."""
        with self._lock:
            self._closing = True
            call = self._call
            self._requests.finish()
        if call is None:
            self._end_unopened("CANCELLED", f"[{grpc.StatusCode.CANCELLED}] Locally cancelled by application!")
        else:
            call.cancel()
            if self._reader is not None and self._reader is not threading.current_thread():
                self._reader.join(_JOIN_SECONDS)
                if self._reader.is_alive():
                    log.warning("reader of the stream to %r still running after cancel", self.graph)
        if threading.current_thread() is not self._reader:
            self._channel.close()

    def _end_unopened(self, code: str, text: str) -> None:
        with self._lock:
            if self._end is not None:
                return
        self._finish(code, text, "")

    def _not_on_reader(self, what: str) -> None:
        if self._reader is not None and threading.current_thread() is self._reader:
            raise ClientError(f"{what} cannot wait inside a callback of the same stream; call cancel() there")

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if error is None:
            self.close()
        else:
            self.cancel()

    def __del__(self) -> None:
        # Never join here: cancel without waiting so an abandoned stream frees the server's graph.
        try:
            if self._call is not None and self._end is None:
                self._call.cancel()
            self._requests.finish()
        except Exception:  # interpreter shutdown or a half-built object
            pass

    # -- reading ----------------------------------------------------------------------------------------------

    def _receive(self, response: pb.ModelStreamInferResponse) -> None:
        """Reader thread: log one message and call its callbacks."""
        values = {} if response.error_message else decode_outputs(response.infer_response, strict=False)
        with self._lock:
            if response.error_message:
                sent = self._attribute(response.error_message)
                entry = self._append("error", text=response.error_message, request_seq=sent.seq if sent else None)
            else:
                timestamp = response_timestamp(response.infer_response)
                self._sent.accepted(timestamp)
                entry = self._append(
                    "response",
                    timestamp=timestamp,
                    names=tuple(values),
                    values=values,
                )
            callbacks = self._callbacks[entry.kind]
        _call_back(callbacks, entry)
        with self._arrived:
            self._delivered += 1
            self._arrived.notify_all()

    def _attribute(self, text: str) -> Sent | None:
        """The request an in-band error answers; replays the counter without it (under the lock)."""
        return self._sent.attribute(text)

    def _finish(self, code: str, text: str, details: str) -> None:
        """Log the end entry once, call on_end, wake every waiter."""
        with self._lock:
            if self._end is not None:
                return
            self._details = details
            self._end = self._append("end", text=text, code=code)
            callbacks = self._callbacks["end"]
        _call_back(callbacks, self._end)
        with self._arrived:
            self._arrived.notify_all()

    def _append(self, kind: EntryKind, **fields: Any) -> LogEntry:
        entry = LogEntry(kind, self._seq, time.monotonic(), **fields)
        self._seq += 1
        self._log.append(entry)
        return entry

    # -- reading the log --------------------------------------------------------------------------------------

    @property
    def log(self) -> list[LogEntry]:
        """Every entry kept, in order."""
        with self._lock:
            return list(self._log)

    @property
    def responses(self) -> list[LogEntry]:
        """The response entries kept."""
        return [e for e in self.log if e.kind == "response"]

    @property
    def errors(self) -> list[LogEntry]:
        """The in-band error entries kept."""
        return [e for e in self.log if e.kind == "error"]

    @property
    def delivered(self) -> int:
        """How many responses and in-band errors arrived so far (the bounded log may keep fewer)."""
        with self._lock:
            return self._delivered

    @property
    def ended(self) -> bool:
        """True once the stream has ended (the end entry is logged)."""
        return self._end is not None

    @property
    def status(self) -> LogEntry | None:
        """The end entry, None while the stream lives."""
        return self._end

    def wait_for(self, count: int, timeout: float = 10) -> list[LogEntry]:
        """Block until `count` responses and errors arrived in total; return the response and error entries kept.

        Raises TimeoutError after `timeout` seconds, ClientError if the stream ends first.
        """
        self._not_on_reader("wait_for()")
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self._delivered < count:
                if self._end is not None:
                    raise ClientError(
                        f"the stream to {self.graph!r} ended ({self._end.text}) after {self._delivered} "
                        f"of {count} responses and errors",
                        self._end.code,
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._delivered} of {count} responses and errors arrived within {timeout} s")
                self._arrived.wait(remaining)
            return [e for e in self._log if e.kind in ("response", "error")]

    def __repr__(self) -> str:
        with self._lock:
            counts = {kind: sum(e.kind == kind for e in self._log) for kind in ("request", "response", "error")}
            state = self._end.text if self._end else "closing" if self._closing else "open"
        return (
            f"<StreamClient {self.graph!r} at {self.address}: {counts['request']} requests, "
            f"{counts['response']} responses, {counts['error']} errors, {state}>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """A one-line summary, plus the stream's timeline as a static PNG when matplotlib is there."""
        return display.mimebundle(self, **kwargs)


def _call_back(callbacks: list[Callback], entry: LogEntry) -> None:
    for callback in callbacks:
        try:
            callback(entry)
        except Exception:
            log.exception("%s callback %r failed", entry.kind, callback)
