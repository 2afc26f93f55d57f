"""Input stream handlers: when a node may run, at which timestamp, and with which inputs.

Python renderings of mediapipe/framework/input_stream_handler.cc (`SyncSet`)
and stream_handler/{default,immediate,sync_set}_input_stream_handler.cc at
v0.10.21. Each handler answers `readiness()` with (state, timestamp) and,
when ready, `fill(timestamp)` gives every input's (value or None, packet
timestamp, done). Back edges get no special treatment here, as in MediaPipe:
they only matter for the topological order and for stream headers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from ovms_notebook.engine.python.streams import InputStream, previous_allowed
from ovms_notebook.framework.timestamps import DONE, ONE_OVER_POSTSTREAM, POSTSTREAM, UNSET, UNSTARTED

InputSlot = tuple[object | None, int, bool]


class Readiness(enum.Enum):
    NOT_READY = "not ready"
    READY_FOR_PROCESS = "ready for process"
    READY_FOR_CLOSE = "ready for close"


class SyncSet:
    """Input streams whose packets are aligned by timestamp (`InputStreamHandler::SyncSet`)."""

    def __init__(self, streams: Sequence[tuple[str, InputStream]], process_timestamps: bool) -> None:
        self.streams = list(streams)
        self.process_timestamps = process_timestamps
        self.last_processed = UNSET

    def readiness(self) -> tuple[Readiness, int]:
        """`SyncSet::GetReadiness`.

        Without timestamp-bound processing the set is ready at the smallest
        queued packet once every empty stream's bound is past it; with it, at
        the highest settled timestamp not yet processed. OneOverPostStream()
        or Done() everywhere means ready for close.
        """
        min_bound = DONE
        min_packet = DONE
        for _key, stream in self.streams:
            timestamp, empty = stream.min_timestamp_or_bound()
            if empty:
                min_bound = min(min_bound, timestamp)
            else:
                min_packet = min(min_packet, timestamp)
        minimum = min(min_packet, min_bound)
        if minimum >= ONE_OVER_POSTSTREAM:
            self.last_processed = previous_allowed(DONE)
            return Readiness.READY_FOR_CLOSE, DONE
        if not self.process_timestamps:
            if min_bound > min_packet:
                self.last_processed = minimum
                return Readiness.READY_FOR_PROCESS, minimum
        else:
            # The settled timestamp: nothing can arrive at or below it (PostStream() is its own case).
            post_stream = min_packet == POSTSTREAM and min_bound > min_packet
            settled = min_packet if post_stream else previous_allowed(min_bound)
            input_timestamp = min(min_packet, settled)
            if input_timestamp > max(self.last_processed, UNSTARTED):
                self.last_processed = input_timestamp
                return Readiness.READY_FOR_PROCESS, input_timestamp
        return Readiness.NOT_READY, minimum

    def fill(self, timestamp: int, slots: dict[str, InputSlot]) -> None:
        """`SyncSet::FillInputSet`: the packets at `timestamp` (EMPTY where there is none)."""
        for key, stream in self.streams:
            slots[key] = stream.pop_packet_at(timestamp)

    def fill_bounds(self, slots: dict[str, InputSlot]) -> None:
        """`SyncSet::FillInputBounds`: EMPTY at each stream's settled bound."""
        for key, stream in self.streams:
            slots[key] = stream.bound_packet()


class InputStreamHandler:
    """Common interface; `sync_set_count` feeds MediaPipe's offset-with-several-sync-sets warning."""

    def readiness(self) -> tuple[Readiness, int]:
        raise NotImplementedError

    def fill(self, timestamp: int) -> dict[str, InputSlot]:
        raise NotImplementedError

    @property
    def sync_set_count(self) -> int:
        return 1


class DefaultHandler(InputStreamHandler):
    """`DefaultInputStreamHandler`: all inputs in one sync set."""

    def __init__(self, streams: Sequence[tuple[str, InputStream]], process_timestamps: bool) -> None:
        self._set = SyncSet(streams, process_timestamps)

    def readiness(self) -> tuple[Readiness, int]:
        return self._set.readiness()

    def fill(self, timestamp: int) -> dict[str, InputSlot]:
        slots: dict[str, InputSlot] = {}
        self._set.fill(timestamp, slots)
        return slots


class ImmediateHandler(InputStreamHandler):
    """`ImmediateInputStreamHandler`: every input is its own sync set; the earliest ready one runs.

    Its quirk is kept: when a stream becomes done (and bounds are not
    processed) the node runs once more at the smallest input bound with every
    input EMPTY (recorded golden `immediate_handler_concat_interleaved`).
    """

    def __init__(self, streams: Sequence[tuple[str, InputStream]], process_timestamps: bool) -> None:
        self._sets = [SyncSet([item], process_timestamps) for item in streams]
        self._ready = [UNSET] * len(self._sets)
        self._process_timestamps = process_timestamps

    @property
    def sync_set_count(self) -> int:
        return len(self._sets)

    def readiness(self) -> tuple[Readiness, int]:
        input_timestamp = DONE
        min_bound = DONE
        stream_became_done = False
        for i, sync_set in enumerate(self._sets):
            if self._ready[i] > UNSET:
                min_bound = min(min_bound, self._ready[i])
                input_timestamp = min(input_timestamp, self._ready[i])
                continue
            previous = sync_set.last_processed
            state, timestamp = sync_set.readiness()
            min_bound = min(min_bound, timestamp)
            if state is Readiness.READY_FOR_PROCESS:
                self._ready[i] = timestamp
                input_timestamp = min(input_timestamp, timestamp)
            elif state is Readiness.READY_FOR_CLOSE:
                if self._process_timestamps:
                    # A stream that just became done is processed once more, at the timestamp before Done().
                    done_preceding = previous_allowed(DONE)
                    if previous < done_preceding:
                        min_bound = min(min_bound, done_preceding)
                        input_timestamp = min(input_timestamp, done_preceding)
                        self._ready[i] = done_preceding
                    else:
                        self._ready[i] = DONE
                elif previous < DONE:
                    stream_became_done = True
                    self._ready[i] = DONE
        if min_bound == DONE:
            return Readiness.READY_FOR_CLOSE, DONE
        if input_timestamp < DONE:
            return Readiness.READY_FOR_PROCESS, input_timestamp
        if stream_became_done:
            return Readiness.READY_FOR_PROCESS, min_bound
        return Readiness.NOT_READY, min_bound

    def fill(self, timestamp: int) -> dict[str, InputSlot]:
        slots: dict[str, InputSlot] = {}
        for i, sync_set in enumerate(self._sets):
            if self._ready[i] == timestamp:
                sync_set.fill(timestamp, slots)
                self._ready[i] = UNSET
            else:
                sync_set.fill_bounds(slots)
        return slots


class SyncSetHandler(InputStreamHandler):
    """`SyncSetInputStreamHandler`: the listed sets (plus one of the remaining inputs) sync independently.

    OVMS's generative recipe puts LOOPBACK:0 alone in a set, so the loop-back
    packet at T+1 runs the node while the data input waits for its next packet.
    """

    def __init__(
        self, streams: Sequence[tuple[str, InputStream]], groups: Sequence[Sequence[str]], process_timestamps: bool
    ) -> None:
        by_key = dict(streams)
        used: set[str] = set()
        self._sets: list[SyncSet] = []
        for group in groups:
            self._sets.append(SyncSet([(key, by_key[key]) for key in group], process_timestamps))
            used.update(group)
        remaining = [(key, stream) for key, stream in streams if key not in used]
        if remaining:
            self._sets.append(SyncSet(remaining, process_timestamps))
        self._ready_index = -1
        self._ready_timestamp = DONE

    @property
    def sync_set_count(self) -> int:
        return len(self._sets)

    def readiness(self) -> tuple[Readiness, int]:
        if self._ready_index >= 0:
            return Readiness.READY_FOR_PROCESS, self._ready_timestamp
        timestamp = UNSET  # MediaPipe leaves it undefined when nothing is ready: it is the last set's value
        index = 0
        while index < len(self._sets):
            state, timestamp = self._sets[index].readiness()
            if state is Readiness.READY_FOR_CLOSE:
                del self._sets[index]
                continue
            if state is Readiness.READY_FOR_PROCESS and timestamp < self._ready_timestamp:
                self._ready_timestamp = timestamp
                self._ready_index = index
            index += 1
        if self._ready_index >= 0:
            return Readiness.READY_FOR_PROCESS, self._ready_timestamp
        if not self._sets:
            return Readiness.READY_FOR_CLOSE, DONE
        return Readiness.NOT_READY, timestamp

    def fill(self, timestamp: int) -> dict[str, InputSlot]:
        slots: dict[str, InputSlot] = {}
        for i, sync_set in enumerate(self._sets):
            if i == self._ready_index:
                sync_set.fill(timestamp, slots)
            else:
                sync_set.fill_bounds(slots)
        self._ready_index = -1
        self._ready_timestamp = DONE
        return slots


def make_handler(
    name: str,
    streams: Sequence[tuple[str, InputStream]],
    sync_sets: Sequence[Sequence[str]],
    process_timestamps: bool,
) -> InputStreamHandler:
    """The handler called `name` over `streams` (key, stream) in MediaPipe's collection order."""
    if name == "ImmediateInputStreamHandler":
        return ImmediateHandler(streams, process_timestamps)
    if name == "SyncSetInputStreamHandler":
        return SyncSetHandler(streams, sync_sets, process_timestamps)
    return DefaultHandler(streams, process_timestamps)
