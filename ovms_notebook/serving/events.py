"""What happened on a stream, as plain records: the feed of the widgets' timeline.

Sessions append events from server threads; readers take snapshots or subscribe.
A subscriber is called on the appending thread for every new event, in the log's
order, and must return at once (the widgets only note the event and wake their
own drawing thread), so a slow UI cannot stall a graph; one that raises is
logged and dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

EventKind = Literal["open", "request", "output", "error", "end"]
_ids = itertools.count(1)


def next_stream_id() -> int:
    """A process-unique id for a new stream session."""
    return next(_ids)


@dataclass(frozen=True)
class StreamEvent:
    """One thing on a stream's timeline.

    `request`: inputs accepted at `timestamp` (`manual` says who chose it);
    `output`: a packet on output stream `stream` at `timestamp`;
    `error`: an in-band error answering a request (`timestamp` None when none was assigned);
    `open`/`end`: the stream's life, `detail` holding the graph name or the final status.
    `client_tag` is what the client sent as `ovms-notebook-stream` metadata (empty if nothing).
    """

    kind: EventKind
    stream_id: int
    graph: str
    timestamp: int | None = None
    streams: tuple[str, ...] = ()
    manual: bool = False
    detail: str = ""
    client_tag: str = ""
    time: float = field(default_factory=time.monotonic)


class EventLog:
    """A bounded, thread-safe log of stream events, newest last, with per-stream packet counts."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._events: deque[StreamEvent] = deque(maxlen=maxlen)
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._subscribers: tuple[Callable[[StreamEvent], None], ...] = ()
        self.version = 0

    def append(self, event: StreamEvent) -> None:
        """Record an event (called from server threads)."""
        with self._lock:
            self._events.append(event)
            if event.kind in ("request", "output"):
                for name in event.streams:
                    key = (event.graph, name)
                    self._counts[key] = self._counts.get(key, 0) + 1
            self.version += 1
            for callback in self._subscribers:
                self._call(callback, event)

    def subscribe(self, callback: Callable[[StreamEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event kept now, then for every new one; returns `unsubscribe()`.

        The replay and the registration happen under the log's lock, so the subscriber sees each event
        exactly once and in order.
        """
        with self._lock:
            for event in self._events:
                self._call(callback, event)
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(c for c in self._subscribers if c is not callback)

        return unsubscribe

    def _call(self, callback: Callable[[StreamEvent], None], event: StreamEvent) -> None:
        """Under the lock: one subscriber call; a failing subscriber is logged and dropped."""
        try:
            callback(event)
        except Exception:
            log.exception("event log subscriber %r failed; unsubscribed", callback)
            self._subscribers = tuple(c for c in self._subscribers if c is not callback)

    def snapshot(self, stream_id: int | None = None, client_tag: str | None = None) -> list[StreamEvent]:
        """The events kept, optionally of one stream only (by server id or by the client's tag)."""
        with self._lock:
            events = list(self._events)
        if stream_id is not None:
            events = [e for e in events if e.stream_id == stream_id]
        if client_tag is not None:
            events = [e for e in events if e.client_tag == client_tag]
        return events

    def packet_counts(self, graph: str) -> dict[str, int]:
        """Packets seen so far per input/output stream of `graph`."""
        with self._lock:
            return {name: count for (g, name), count in self._counts.items() if g == graph}
