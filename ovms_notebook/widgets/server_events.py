"""One stream's events of an in-kernel server, kept by subscribing to the server's event log (never polling it).

`EventFollower.follow(event_log, client_tag=..., stream_id=...)` subscribes: the log hands over the events it
keeps, then every new one as it is appended (in the log's order); the follower keeps those of its stream and
calls `on_change()` (a widget's pump poke) so the widget redraws on its own thread. With neither a tag nor an
id it follows the most recently opened stream. The follower holds no widget: `on_change` is a `Pump.poke`,
which holds its widget weakly.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["EventFollower", "EventSource"]

MAX_EVENTS = 10_000  # events of one stream kept (the server's log keeps as many of all streams)


class EventSource(Protocol):
    """What is read of a server's `EventLog`: `subscribe` replays the kept events, then calls back on every new
    one, and returns the function that unsubscribes."""

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]: ...


class EventFollower:
    """The events of one stream of an event log, oldest first, updated by the log itself."""

    def __init__(self, on_change: Callable[[], None], maxlen: int = MAX_EVENTS) -> None:
        self._on_change = on_change
        self._lock = threading.Lock()
        self._events: deque[Any] = deque(maxlen=maxlen)
        self._unsubscribe: Callable[[], None] | None = None
        self._client_tag: str | None = None
        self._stream_id: int | None = None
        self._following = False
        self.count = 0  # events of the followed stream received so far

    def follow(
        self, event_log: EventSource | None, client_tag: str | None = None, stream_id: int | None = None
    ) -> None:
        """Follow one stream of `event_log` from now on (replacing what was followed); None: follow nothing."""
        self.stop()
        if event_log is None:
            return
        with self._lock:
            self._client_tag, self._stream_id, self._following = client_tag, stream_id, True
            self._events.clear()
        unsubscribe = event_log.subscribe(self._on_event)
        with self._lock:
            self._unsubscribe = unsubscribe
        self._on_change()

    def _matches(self, event: Any) -> bool:
        if self._client_tag is not None:
            return bool(event.client_tag == self._client_tag)
        if self._stream_id is not None:
            return bool(event.stream_id == self._stream_id)
        return True

    def _take(self, event: Any) -> bool:
        with self._lock:
            if not self._following or not self._matches(event):
                return False
            if self._client_tag is None and self._stream_id is None and self._events:
                newest = self._events[-1].stream_id
                if event.stream_id < newest:
                    return False
                if event.stream_id > newest:  # a newer stream opened: follow that one
                    self._events.clear()
            self._events.append(event)
            self.count += 1
            return True

    def _on_event(self, event: Any) -> None:
        """The appending server thread: keep the event if it is ours, poke. Returns at once."""
        if self._take(event):
            self._on_change()

    def events(self) -> list[Any] | None:
        """The followed stream's events (None when following nothing)."""
        with self._lock:
            return list(self._events) if self._following else None

    def stop(self) -> None:
        """Unsubscribe (the events kept stay readable until the next `follow`)."""
        with self._lock:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            self._following = False
        if unsubscribe is not None:
            unsubscribe()
