"""Timestamp arithmetic and the stream bookkeeping of MediaPipe's framework, in Python.

Mirrors mediapipe/framework at v0.10.21: `Timestamp::NextAllowedInStream` /
`PreviousAllowedInStream` (timestamp.cc), `InputStreamManager` (a queue and a
next timestamp bound per node input), `OutputStreamManager` (an output's bound
and its mirrors, the inputs it feeds) and `OutputStreamShard` (what one
Open/Process/Close call emitted). Error texts are MediaPipe's, including the
"; " its StatusBuilder puts in front of messages it builds.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ovms_notebook.framework.timestamps import (
    DONE,
    MAX,
    MIN,
    ONE_OVER_POSTSTREAM,
    POSTSTREAM,
    PRESTREAM,
    UNSET,
    UNSTARTED,
    debug_string,
    next_allowed,
)

log = logging.getLogger(__name__)

INVALID_ARGUMENT = "INVALID_ARGUMENT"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
INTERNAL = "INTERNAL"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Status:
    """A graph error: absl status code name and MediaPipe's message."""

    code: str
    message: str


ErrorSink = Callable[[Status], None]


def builder_status(code: str, message: str) -> Status:
    """An error MediaPipe builds with StatusBuilder: in 0.10.21 its text starts with "; " (wheel messages do)."""
    return Status(code, "; " + message)


def is_range(timestamp: int) -> bool:
    """`Timestamp::IsRangeValue()`."""
    return MIN <= timestamp <= MAX


def allowed_in_stream(timestamp: int) -> bool:
    """`Timestamp::IsAllowedInStream()`: a range value, PreStream() or PostStream()."""
    return is_range(timestamp) or timestamp in (PRESTREAM, POSTSTREAM)


def previous_allowed(timestamp: int) -> int:
    """`Timestamp::PreviousAllowedInStream()`: the settled timestamp just below a bound."""
    if timestamp <= MIN or timestamp == POSTSTREAM:
        return UNSTARTED
    if timestamp > MAX:
        return MAX
    return timestamp - 1


def add_offset(timestamp: int, offset: int) -> int:
    """`Timestamp + TimestampDiff` on a range value, clamped to [Min(), Max()]."""
    return min(max(timestamp + offset, MIN), MAX)


@dataclass
class StreamPacket:
    """A packet in a queue: a value (never None) at a timestamp."""

    timestamp: int
    value: object


class InputStream:
    """`InputStreamManager`: a node input's (or an observer's) queue and next timestamp bound."""

    def __init__(self, name: str, on_error: ErrorSink, *, back_edge: bool = False) -> None:
        self.name = name
        self.back_edge = back_edge
        self._on_error = on_error
        self.queue: deque[StreamPacket] = deque()
        self.next_bound = PRESTREAM
        self.closed = False
        self._added = 0

    def _fail(self, code: str, message: str) -> None:
        self._on_error(builder_status(code, message))

    def add_packets(self, packets: list[StreamPacket]) -> bool:
        """Queue packets; True when the queue became non-empty (the consumer should look)."""
        if self.closed:
            log.warning('Dropping %d packet(s) on attempt to add to a closed "%s" stream.', len(packets), self.name)
            return False
        became_non_empty = not self.queue and bool(packets)
        for packet in packets:
            timestamp = packet.timestamp
            if not allowed_in_stream(timestamp):
                self._fail(
                    INVALID_ARGUMENT,
                    f'In stream "{self.name}", timestamp not specified or set to illegal value: '
                    f"{debug_string(timestamp)}",
                )
                return became_non_empty
            if timestamp == POSTSTREAM and self._added > 0:
                self._fail(
                    INVALID_ARGUMENT,
                    f'In stream "{self.name}", a packet at Timestamp::PostStream() must be the only Packet in '
                    "an InputStream.",
                )
                return became_non_empty
            if timestamp < self.next_bound:
                self._fail(
                    INVALID_ARGUMENT,
                    f'Packet timestamp mismatch on a calculator receiving from stream "{self.name}". '
                    f"Current minimum expected timestamp is {debug_string(self.next_bound)} but received "
                    f"{debug_string(timestamp)}. Are you using a custom InputStreamHandler? Note that some "
                    "InputStreamHandlers allow timestamps that are not strictly monotonically increasing. "
                    "See for example the ImmediateInputStreamHandler class comment.",
                )
                return became_non_empty
            self.next_bound = next_allowed(timestamp)
            self._added += 1
            self.queue.append(packet)
        return became_non_empty

    def set_next_timestamp_bound(self, bound: int) -> bool:
        """Raise the bound; True when that is visible to the consumer (the queue is empty)."""
        if self.closed:
            return False
        if bound < self.next_bound:
            self._fail(
                UNKNOWN,
                "SetNextTimestampBound must be called with a timestamp greater than or equal to the current "
                f'bound. In stream "{self.name}". Current minimum expected timestamp is '
                f"{debug_string(self.next_bound)} but received {debug_string(bound)}",
            )
            return False
        if bound > self.next_bound:
            self.next_bound = bound
            return not self.queue
        return False

    def close(self) -> None:
        """The consumer is done: drop what is queued and refuse more (`InputStreamManager::Close`)."""
        self.queue.clear()
        self.next_bound = DONE
        self.closed = True

    def min_timestamp_or_bound(self) -> tuple[int, bool]:
        """(timestamp of the queue head, or the bound when empty; whether the queue is empty)."""
        if self.queue:
            return self.queue[0].timestamp, False
        return self.next_bound, True

    def is_done(self) -> bool:
        """No packet queued and none can come."""
        return not self.queue and self.next_bound == DONE

    def pop_packet_at(self, timestamp: int) -> tuple[object | None, int, bool]:
        """`PopPacketAtTimestamp`: (value or None, packet timestamp, stream done) for a run at `timestamp`.

        With no packet at `timestamp` the empty packet is stamped with the
        settled bound, `PreviousAllowedInStream(MinTimestampOrBound())`.
        """
        if self.next_bound <= timestamp:
            self.next_bound = next_allowed(timestamp)
        value: object | None = None
        current = UNSET
        while self.queue and self.queue[0].timestamp <= timestamp:
            packet = self.queue.popleft()
            value, current = packet.value, packet.timestamp
        if current != timestamp:
            value = None
            current = previous_allowed(self.min_timestamp_or_bound()[0])
        return value, current, self.is_done()

    def bound_packet(self) -> tuple[None, int, bool]:
        """What `SyncSet::FillInputBounds` gives a stream outside the ready set: EMPTY at the settled bound."""
        bound = self.min_timestamp_or_bound()[0]
        return None, previous_allowed(bound), bound == DONE


Mirror = tuple[InputStream, Callable[[], None]]


@dataclass
class OutputShard:
    """`OutputStreamShard`: the packets and bound one call emitted on one output."""

    name: str
    next_bound: int
    closed: bool
    on_error: ErrorSink
    queue: list[StreamPacket] = field(default_factory=list)
    updated_bound: int = UNSET

    def _fail(self, code: str, message: str) -> None:
        self.on_error(builder_status(code, message))

    def add(self, value: object, timestamp: int) -> None:
        """`AddPacket`: errors (closed stream, illegal timestamp) are graph errors, not exceptions."""
        if self.closed:
            self._fail(FAILED_PRECONDITION, f'Packet sent to closed stream "{self.name}".')
            return
        if not allowed_in_stream(timestamp):
            self._fail(
                INVALID_ARGUMENT,
                f'In stream "{self.name}", timestamp not specified or set to illegal value: {debug_string(timestamp)}',
            )
            return
        self.queue.append(StreamPacket(timestamp, value))
        self.next_bound = self.updated_bound = next_allowed(timestamp)

    def set_next_timestamp_bound(self, bound: int) -> None:
        """`SetNextTimestampBound`: any allowed timestamp or OneOverPostStream()."""
        if not allowed_in_stream(bound) and bound != ONE_OVER_POSTSTREAM:
            self._fail(
                INVALID_ARGUMENT,
                f'In stream "{self.name}", timestamp bound set to illegal value: {debug_string(bound)}',
            )
            return
        self.next_bound = self.updated_bound = bound

    def close(self) -> None:
        """`Close`: the bound becomes Done()."""
        self.closed = True
        self.next_bound = self.updated_bound = DONE


class OutputStream:
    """`OutputStreamManager`: an output's settled bound, offset and the inputs it feeds."""

    def __init__(self, name: str, on_error: ErrorSink) -> None:
        self.name = name
        self._on_error = on_error
        self.mirrors: list[Mirror] = []
        self.offset: int | None = None
        self.next_bound = PRESTREAM
        self.closed = False

    def prepare_for_run(self) -> None:
        self.offset = None
        self.next_bound = PRESTREAM
        self.closed = False

    def _fail(self, code: str, message: str) -> None:
        self._on_error(builder_status(code, message))

    def shard(self) -> OutputShard:
        """A fresh shard starting from the settled state (`ResetShard`)."""
        return OutputShard(self.name, self.next_bound, self.closed, self._on_error)

    def output_bound(self, shard: OutputShard, input_timestamp: int) -> int:
        """`ComputeOutputTimestampBound` after Open (Unstarted()) or Process at `input_timestamp`."""
        if input_timestamp != UNSTARTED and not allowed_in_stream(input_timestamp):
            self._fail(
                FAILED_PRECONDITION,
                "Invalid input timestamp to compute the output timestamp bound. "
                f'Stream: "{self.name}", Timestamp: {debug_string(input_timestamp)}.',
            )
            return UNSET
        input_bound = UNSET
        if self.offset is not None and input_timestamp != UNSTARTED:
            if input_timestamp == PRESTREAM:
                input_bound = MIN
            elif input_timestamp == MAX:
                input_bound = POSTSTREAM if self.offset >= 0 else next_allowed(add_offset(MAX, self.offset))
            elif input_timestamp == POSTSTREAM:
                input_bound = ONE_OVER_POSTSTREAM
            else:
                input_bound = add_offset(next_allowed(input_timestamp), self.offset)
        new_bound = UNSET
        if input_bound > shard.next_bound:
            new_bound = max(new_bound, input_bound)
        new_bound = max(new_bound, shard.updated_bound)
        if shard.queue:
            new_bound = max(new_bound, next_allowed(shard.queue[-1].timestamp))
        return new_bound

    def propagate(self, next_bound: int, shard: OutputShard | None = None) -> None:
        """`PropagateUpdatesToMirrors`: hand the shard's packets and the new bound to every consumer."""
        if next_bound != UNSET:
            self.next_bound = next_bound
        packets = list(shard.queue) if shard is not None else []
        set_bound = next_bound != UNSET and (not packets or next_allowed(packets[-1].timestamp) != next_bound)
        for stream, notify in self.mirrors:
            changed = stream.add_packets(packets) if packets else False
            if set_bound:
                changed = stream.set_next_timestamp_bound(next_bound) or changed
            if changed:
                notify()
        if shard is not None:
            shard.queue.clear()

    def close(self) -> None:
        """`OutputStreamManager::Close`: consumers see Done()."""
        if self.closed:
            return
        self.closed = True
        self.next_bound = DONE
        for stream, notify in self.mirrors:
            if stream.set_next_timestamp_bound(DONE):
                notify()

    def propagate_input_bound(self, input_bound: int) -> None:
        """`TryPropagateTimestampBound` for a node that is not ready: its offset outputs follow its inputs."""
        if self.offset is None or self.closed or not is_range(input_bound):
            return
        bound = add_offset(input_bound, self.offset)
        if bound > self.next_bound:
            self.propagate(bound)
