"""Python-side nodes' own trace events, in the shape MediaPipe's tracer gives native nodes.

A `PythonGraph` built with `trace=True` owns one `NodeTracer`: every
Process() call of its nodes and every packet added to its graph inputs is
recorded as a `TraceEvent` on Unix microseconds (the clock MediaPipe's tracer
uses), so a hybrid graph's two halves line up on one time axis. Without
tracing the graph holds no tracer and the nodes skip recording with one
`is None` test.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from ovms_notebook.framework.trace import INPUT, PROCESS, Hop, TraceEvent

#: Events kept per graph run; beyond it the oldest go.
EVENT_LIMIT = 200_000


def now_us() -> int:
    """Unix time in µs, the clock of MediaPipe's tracer."""
    return time.time_ns() // 1000


class NodeTracer:
    """Collects the Process() spans of a Python graph's nodes and the packets added to its inputs."""

    def __init__(self, limit: int = EVENT_LIMIT) -> None:
        self._events: deque[TraceEvent] = deque(maxlen=limit)

    @property
    def events(self) -> list[TraceEvent]:
        """Every event kept, in the order recorded (times are Unix µs). Safe while nodes run on another
        thread: the copy is made in C, without letting Python code append in between."""
        return list(self._events.copy())

    def clear(self) -> None:
        """Forget what was recorded (a new run starts)."""
        self._events.clear()

    def graph_input(self, stream: str, timestamp: int) -> None:
        """A packet was added to graph input `stream` at `timestamp`."""
        self._events.append(TraceEvent(INPUT, "input", PROCESS, timestamp, None, now_us(),
                                       threading.current_thread().name, (), ((stream, timestamp),)))

    def process(
        self,
        node: str,
        timestamp: int | None,
        inputs: Iterable[tuple[str, int]],
        outputs: Iterable[tuple[str, int]],
        start_us: int,
    ) -> None:
        """A Process() call of `node` at input `timestamp` that started at `start_us` ended now.

        `inputs` are the (stream, timestamp) packets it was given; the producer's finish is filled in when
        the trace is built, from the call that emitted each packet.
        """
        hops = tuple(Hop(stream, stamp, None, start_us) for stream, stamp in inputs)
        self._events.append(TraceEvent(node, "python", PROCESS, timestamp, start_us, now_us(),
                                       threading.current_thread().name, hops, tuple(outputs)))
