"""The edges of a `PythonGraph`: its graph input streams and the observers of its output streams.

MediaPipe keeps these apart from the scheduler too (`GraphInputStream`,
`OutputStreamObserver`): a graph input is one reusable shard in front of the
stream's consumers, where an empty packet only moves the bound; an observer
mirrors an output stream and hands its packets (and, if asked, its settled
bounds as EMPTY) to a user callback, recording a callback failure as a graph
error instead of raising it. nodes/scheduler.py wires them into a run.
"""

from __future__ import annotations

from collections.abc import Callable

from ovms_notebook.engine.python.api import EMPTY
from ovms_notebook.engine.python.node import describe
from ovms_notebook.engine.python.streams import (
    INTERNAL,
    InputStream,
    OutputStream,
    Status,
    next_allowed,
    previous_allowed,
)
from ovms_notebook.framework.timestamps import DONE, POSTSTREAM, UNSTARTED

__all__ = ["GraphInput", "ObservedStream", "Observer"]

Observer = Callable[[str, object, int], None]
"""callback(stream_name, value or EMPTY, timestamp)."""


class ObservedStream:
    """`OutputStreamObserver`: delivers a stream's packets and, if asked, its settled bounds as EMPTY."""

    def __init__(self, name: str, callback: Observer, bounds: bool) -> None:
        self.name = name
        self.callback = callback
        self.bounds = bounds
        self.stream = InputStream(name, lambda status: None)
        self.last = UNSTARTED
        self._record: Callable[[Status], None] = lambda status: None

    def prepare(self, stream: OutputStream, record: Callable[[Status], None]) -> None:
        self.stream = InputStream(self.name, record)
        self.last = UNSTARTED
        self._record = record
        stream.mirrors.append((self.stream, self.notify))

    def notify(self) -> None:
        while True:
            timestamp, empty = self.stream.min_timestamp_or_bound()
            if empty:
                if self.bounds and timestamp < DONE:
                    settled = POSTSTREAM if timestamp == POSTSTREAM else previous_allowed(timestamp)
                    if self.last < settled:
                        self.last = settled
                        self._deliver(EMPTY, settled)
                return
            value, _, _ = self.stream.pop_packet_at(timestamp)
            self.last = timestamp
            self._deliver(value, timestamp)

    def _deliver(self, value: object, timestamp: int) -> None:
        try:
            self.callback(self.name, value, timestamp)
        except Exception as error:
            self._record(Status(INTERNAL, f'Observer of output stream "{self.name}" failed: {describe(error)}'))


class GraphInput:
    """`CalculatorGraph::GraphInputStream`: one reusable shard in front of the stream's consumers."""

    def __init__(self, stream: OutputStream) -> None:
        self.stream = stream
        self.shard = stream.shard()

    def add(self, value: object, timestamp: int) -> None:
        if value is EMPTY:  # an empty packet only moves the bound (OutputStreamShard::AddPacket)
            self.shard.set_next_timestamp_bound(next_allowed(timestamp))
        else:
            self.shard.add(value, timestamp)
        self.stream.propagate(self.shard.next_bound, self.shard)

    def close(self) -> None:
        if self.shard.queue:
            self.stream.propagate(DONE, self.shard)
        self.stream.close()
