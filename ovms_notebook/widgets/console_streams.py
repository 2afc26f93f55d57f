"""The stream side of `StreamConsole`, without widgets: the current stream, its request numbers and the notes.

`ConsoleStream` owns every `StreamClient` the console opens (one per graph
selection or "New stream"; the previous one is half-closed in the background)
and the threads that wait for them. It numbers the requests of the current
stream for the log and keeps the console's own notes (a request that could not
be sent). It refers to no widget and to no console: `on_change` (the console's
pump, held weakly by it) is all it calls, so a console nobody refers to any more
can be collected, and its finalizer ends what this object holds
(`shutdown()`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import grpc

from ovms_notebook.client import LogEntry, StreamClient
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.console_log import LogNote
from ovms_notebook.widgets.render import THREAD_PREFIX

__all__ = [
    "ConsoleStream",
    "SentRequest",
    "StreamEnd",
    "StreamState",
    "TimestampPolicy",
    "timestamp_policy",
    "wait_answers",
]

log = logging.getLogger(__name__)

_JOIN_SECONDS = 15.0  # a retiring or closing stream gets this long to end before it is left to its cancel


TimestampPolicy = Literal["counter", "wallclock"]


def timestamp_policy(value: object) -> TimestampPolicy:
    """`value` as the server's automatic timestamp policy; ValueError for anything else."""
    if value == "counter":
        return "counter"
    if value == "wallclock":
        return "wallclock"
    raise ValueError(f"timestamps must be 'counter' or 'wallclock', got {value!r}")


@dataclass(frozen=True)
class SentRequest:
    """What `StreamConsole.send` sent: its number in the stream (from 0), its timestamp, who chose it."""

    number: int
    timestamp: int | None
    manual: bool
    seq: int  # the request's place in the client's log (`LogEntry.seq`)

    def __repr__(self) -> str:
        stamp = f"@{self.timestamp}" if self.timestamp is not None else "@? (server clock)"
        return f"<request #{self.number} {stamp} ({'manual' if self.manual else 'auto'})>"


@dataclass(frozen=True)
class StreamEnd:
    """How a console's stream ended: `code` ("OK" or a gRPC status name), `text`, and what came back."""

    code: str
    text: str
    responses: int
    errors: int

    def __repr__(self) -> str:
        return (
            f"<stream ended: {self.text} ({self.responses} response{'' if self.responses == 1 else 's'}, "
            f"{self.errors} error{'' if self.errors == 1 else 's'})>"
        )


@dataclass(frozen=True)
class StreamState:
    """A consistent copy of what the console draws: the client, request numbers, notes, whether it is closing."""

    client: StreamClient | None
    numbers: dict[int, int]
    notes: tuple[LogNote, ...]
    closing: bool


class ConsoleStream:
    """The console's current stream to `address` and the streams it retired; `on_change()` after every change.

    `on_entry(client, entry)` is called on a client's reader thread for every response, error and end of the
    current stream (never of a retired one); it must return quickly.
    """

    def __init__(
        self,
        address: str,
        *,
        name: str,
        credentials: grpc.ChannelCredentials | None,
        timestamps: TimestampPolicy,
        max_log: int | None,
        on_change: Callable[[], None],
        on_entry: Callable[[StreamClient, LogEntry], None],
    ) -> None:
        self.address = address
        self.credentials = credentials
        self.timestamps = timestamps
        self.max_log = max_log
        self._name = name
        self._on_change = on_change
        self._on_entry = on_entry
        self._lock = threading.RLock()
        self._client: StreamClient | None = None
        self._numbers: dict[int, int] = {}
        self._next_number = 0
        self._notes: list[LogNote] = []
        self._closing = False
        self._retiring: list[StreamClient] = []
        self._threads: list[threading.Thread] = []
        self._shut = False

    @property
    def client(self) -> StreamClient | None:
        """The current stream's client (None before a graph is chosen)."""
        return self._client

    def open(self, graph: str) -> StreamClient:
        """A fresh stream to `graph` becomes the current one; the previous one is half-closed in the background."""
        if self._shut:
            raise ClientError("this console is closed: make a new one")
        client = StreamClient(
            self.address, graph, credentials=self.credentials, timestamps=self.timestamps, max_log=self.max_log
        )
        on_entry = self._on_entry

        def forward(entry: LogEntry, client: StreamClient = client) -> None:
            if client is self._client:
                on_entry(client, entry)

        for register in (client.on_response, client.on_error, client.on_end):
            register(forward)
        with self._lock:
            old, self._client = self._client, client
            self._numbers, self._next_number, self._notes, self._closing = {}, 0, [], False
            if old is not None and not old.ended:
                self._retiring = [c for c in self._retiring if not c.ended] + [old]
        if old is not None and not old.ended:
            self.background("retire", lambda: old.close(timeout=10))
        self._on_change()
        return client

    def send(self, inputs: Mapping[str, object], timestamp: int | None) -> tuple[SentRequest, LogEntry]:
        """Send one request on the current stream: what was sent, and its entry in the client's log."""
        client = self._client
        if client is None:
            raise ClientError("no stream: pick a graph first")
        if client.ended:
            status = client.status.text if client.status is not None else "OK"
            raise ClientError(f"the stream has ended ({status}): press New stream to send again")
        with self._lock:
            entry = client.send(inputs, timestamp=timestamp)
            number = self._next_number
            if client is self._client:
                self._numbers[entry.seq] = number
                self._next_number += 1
        self._on_change()
        return SentRequest(number, entry.timestamp, entry.manual, entry.seq), entry

    def half_close(self, timeout: float) -> StreamEnd:
        """Half-close the current stream and wait until every output has arrived."""
        client = self._client
        if client is None:
            raise ClientError("no stream: pick a graph first")
        with self._lock:
            self._closing = True
        self._on_change()
        end = client.close(timeout=timeout)
        log = client.log
        return StreamEnd(
            end.code or "OK", end.text, sum(e.kind == "response" for e in log), sum(e.kind == "error" for e in log)
        )

    def note(self, text: str) -> None:
        """Add a line of the console's own (a request that could not be sent) to the log."""
        with self._lock:
            self._notes.append(LogNote(time.monotonic(), text))
        self._on_change()

    def state(self) -> StreamState:
        with self._lock:
            return StreamState(self._client, dict(self._numbers), tuple(self._notes), self._closing)

    def forget_before(self, seq: int) -> None:
        """Drop the numbers of requests older than `seq` (the client's log dropped them)."""
        with self._lock:
            self._numbers = {k: v for k, v in self._numbers.items() if k >= seq}

    def background(self, name: str, work: Callable[[], object]) -> None:
        """Run `work` on a daemon thread this object joins at `shutdown()`."""
        thread = threading.Thread(target=work, name=f"{THREAD_PREFIX}{self._name}-{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def shutdown(self) -> None:
        """Cancel every stream (current and retiring) and join every thread. Idempotent."""
        with self._lock:
            self._shut = True
            clients = [self._client, *self._retiring]
            threads = list(self._threads)
        for client in clients:
            if client is not None and not client.ended:
                client.cancel()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=_JOIN_SECONDS)
                if thread.is_alive():
                    log.warning("console thread %s still running after %s s", thread.name, _JOIN_SECONDS)


def wait_answers(
    client: StreamClient, count: int, timeout: float, after: int, mark: SentRequest | None
) -> list[LogEntry]:
    """The first `count` answers (responses, in-band errors) logged after seq `after` that are not answers to a
    request sent before `mark` (see `StreamConsole.wait_for`), waiting for them at most `timeout` seconds.

    Raises TimeoutError, or ClientError when the stream ends first.
    """
    deadline = time.monotonic() + timeout
    while True:
        ended, delivered = client.ended, client.delivered  # read first: the log then holds all they count
        found = [entry for entry in client.log if _answers(entry, after, mark)]
        if len(found) >= count:
            return found[:count]
        if ended:
            status = client.status.text if client.status is not None else "OK"
            raise ClientError(f"the stream to {client.graph!r} ended ({status}) after {len(found)} of the "
                              f"{count} answers waited for")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{len(found)} of the {count} answers waited for arrived within {timeout} s "
                               "(a graph may answer a request with nothing: a FlowLimiterCalculator drops what "
                               "comes while a frame is in flight, and a node may emit nothing at a timestamp)")
        try:
            client.wait_for(delivered + 1, remaining)
        except (ClientError, TimeoutError):
            continue  # ended or timed out: the checks above say which, with this call's counts


def _answers(entry: LogEntry, after: int, mark: SentRequest | None) -> bool:
    """Whether `entry` is an answer `wait_for` counts: after `after` (a log seq) and, with a marked request,
    not an answer to a request sent before it."""
    if entry.kind not in ("response", "error") or entry.seq <= after:
        return False
    if mark is None:
        return True
    if entry.seq <= mark.seq:
        return False
    if entry.kind == "error":
        return entry.request_seq is None or entry.request_seq >= mark.seq
    return entry.timestamp is None or mark.timestamp is None or entry.timestamp >= mark.timestamp
