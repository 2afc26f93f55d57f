"""What one stream has for its client and the client has not taken yet, with the bound that holds requests back.

MediaPipe's observer callbacks put outputs here and must never block (they run behind one process-wide
mutex), so `put` always succeeds: the bound is enforced on the request side instead. The stream's reader
calls `wait_for_room()` before it reads the next request; while the outputs waiting for the client are at
their bound (count or bytes) it waits, gRPC stops reading that stream's requests from the connection, and
HTTP/2 flow control stalls the client's sends. Nothing is dropped; memory stays at the bound plus what the
graph already holds.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")
_CLOSED = object()

DEFAULT_MAX_PENDING_OUTPUTS = 100  # MediaPipe's default max_queue_size
DEFAULT_MAX_PENDING_BYTES = 64 << 20


class Outbox(Generic[T]):
    """A FIFO of items with a soft bound: `put` never blocks, `get` blocks until an item or `close()`,
    `wait_for_room` blocks while the bound is reached.

    Items travel through a `queue.SimpleQueue` (its get and put are C code: the writer's hot path); a lock
    only keeps the count and bytes, and the reader waits on a condition only when the bound is reached.
    """

    def __init__(
        self, max_items: int = DEFAULT_MAX_PENDING_OUTPUTS, max_bytes: int = DEFAULT_MAX_PENDING_BYTES
    ) -> None:
        check_bound("max_pending_outputs", max_items)
        check_bound("max_pending_bytes", max_bytes)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._queue: queue.SimpleQueue[tuple[object, int]] = queue.SimpleQueue()
        self._count = 0
        self._bytes = 0
        self._closed = False
        self._waiting = 0  # readers waiting for room
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.peak_items = 0
        self.peak_bytes = 0

    def put(self, item: T, size: int = 0) -> None:
        """Append `item` (of about `size` bytes); never blocks, never refuses (dropped after `close()`)."""
        with self._lock:
            if self._closed:
                return
            self._count += 1
            self._bytes += size
            if self._count > self.peak_items:
                self.peak_items = self._count
            if self._bytes > self.peak_bytes:
                self.peak_bytes = self._bytes
        self._queue.put((item, size))

    def get(self) -> T | None:
        """The oldest item, waiting for one; None once the outbox is closed."""
        item, size = self._queue.get()
        if item is _CLOSED:
            self._queue.put((_CLOSED, 0))  # every later get sees it too
            return None
        with self._lock:
            self._count -= 1
            self._bytes -= size
            if self._waiting and self._has_room():
                self._room.notify_all()
        return item  # type: ignore[return-value]

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Wait while the bound is reached; False once closed (or on timeout), True when there is room."""
        if self._has_room() and not self._closed:  # the common case, without the lock
            return True
        with self._lock:
            self._waiting += 1
            try:
                self._room.wait_for(lambda: self._closed or self._has_room(), timeout)
            finally:
                self._waiting -= 1
            return not self._closed and self._has_room()

    def close(self) -> int:
        """Drop what is queued and wake every waiter for good; returns how many items were dropped."""
        with self._lock:
            if self._closed:
                return 0
            dropped = self._count
            self._closed = True
            self._count = self._bytes = 0
            self._room.notify_all()
        while True:  # empty the queue so the dropped items are freed now, then leave the end mark
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put((_CLOSED, 0))
        return dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """About how many bytes the waiting items hold."""
        return self._bytes

    def _has_room(self) -> bool:
        return self._count < self.max_items and self._bytes < self.max_bytes


def check_bound(name: str, value: object) -> None:
    """A bound must be a positive int (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
