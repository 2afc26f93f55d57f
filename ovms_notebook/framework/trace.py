"""A stream's execution trace: which node ran at which input timestamp, when, on which thread, fed by what.

Native nodes' events come from MediaPipe's own tracer (`engine.native_trace`),
Python-side nodes record theirs (`engine.python.tracing`); both become `TraceEvent`s
on one clock, microseconds since the stream opened, so one `Trace` shows a
hybrid graph end to end. A `Trace` is plain data: the drawing lives in
`widgets.trace_plot`, which registers it with `ovms_notebook.display`.

    trace = server.trace_for(client)          # after a stream opened with StreamClient(..., trace=True)
    trace.timestamps("tracker")               # [0, 1, 2, 3]: input timestamps of the node's Process() calls
    trace.queue_waits()[0].wait_us            # how long a packet waited between producer and consumer
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from ovms_notebook import display

#: The lane of packets added to the graph's input streams (MediaPipe's node id -1).
INPUT = "(graph input)"
NodeKind = Literal["native", "python", "input"]
PROCESS = "PROCESS"


class Hop(NamedTuple):
    """One input packet of a call: its stream and timestamp, when its producer finished, when the call started."""

    stream: str
    timestamp: int
    producer_finish_us: int | None
    consumer_start_us: int | None


class QueueWait(NamedTuple):
    """A packet's wait between its producer finishing and its consumer's Process() starting."""

    stream: str
    timestamp: int
    producer: str | None
    consumer: str
    producer_finish_us: int
    consumer_start_us: int

    @property
    def wait_us(self) -> int:
        """Microseconds the packet waited in the consumer's input queue."""
        return self.consumer_start_us - self.producer_finish_us


@dataclass(frozen=True)
class TraceEvent:
    """One event of one node: MediaPipe's `GraphTrace.CalculatorTrace` with names instead of ids.

    `event_type` is MediaPipe's name (PROCESS, PACKET_QUEUED, READY_FOR_PROCESS, NOT_READY, OPEN, CLOSE, ...);
    a PROCESS of the `INPUT` node is a packet added to a graph input stream (finish time only). Times are
    microseconds since the trace's origin (absolute Unix µs while recorders collect them); None when the
    event type has no such time. `inputs` are the packets a call consumed, `outputs` the (stream,
    timestamp) packets it emitted.
    """

    node: str
    kind: NodeKind
    event_type: str
    input_timestamp: int | None
    start_us: int | None
    finish_us: int | None
    thread: str = ""
    inputs: tuple[Hop, ...] = ()
    outputs: tuple[tuple[str, int], ...] = ()

    @property
    def time_us(self) -> int:
        """When the event happened: its start, else its finish (0 when it has neither)."""
        return self.start_us if self.start_us is not None else self.finish_us or 0

    def shifted(self, offset_us: int) -> TraceEvent:
        """The same event with every time moved by `-offset_us` (absolute -> relative to an origin)."""

        def move(value: int | None) -> int | None:
            return None if value is None else value - offset_us

        hops = tuple(Hop(h.stream, h.timestamp, move(h.producer_finish_us), move(h.consumer_start_us))
                     for h in self.inputs)
        return dataclasses.replace(self, start_us=move(self.start_us), finish_us=move(self.finish_us), inputs=hops)


@dataclass(frozen=True)
class Trace:
    """Every recorded event of one stream's graph, on µs since the stream opened (`origin_us`, Unix µs).

    `nodes` are the graph's nodes in pbtxt order (a native subgraph's nodes, named `Node/Inner`, in place
    of the subgraph node), `streams` every stream a packet was seen on, `kinds` each node's kind.
    """

    events: tuple[TraceEvent, ...]
    nodes: tuple[str, ...]
    streams: tuple[str, ...]
    origin_us: int = 0
    kinds: Mapping[str, NodeKind] = field(default_factory=dict)

    @property
    def lanes(self) -> tuple[str, ...]:
        """Rows of a drawing: the graph input lane first (when packets were added), then every node."""
        has_input = any(e.kind == "input" for e in self.events)
        return (INPUT, *self.nodes) if has_input else self.nodes

    def process_spans(self, node: str) -> list[TraceEvent]:
        """The node's Process() calls (for `INPUT`: packets added to graph inputs), in time order."""
        return [e for e in self.events if e.node == node and e.event_type == PROCESS]

    def timestamps(self, node: str) -> list[int]:
        """Input timestamps of the node's Process() calls, in time order."""
        return [e.input_timestamp for e in self.process_spans(node) if e.input_timestamp is not None]

    def producer(self, stream: str, timestamp: int) -> str | None:
        """The node that emitted the packet (`INPUT` for a packet added to a graph input), or None."""
        return self._producers().get((stream, timestamp), (None, None))[0]

    def queue_waits(self) -> list[QueueWait]:
        """Every consumed packet whose producer finish and consumer start are known, in time order."""
        waits = []
        producers = self._producers()
        for event in self.events:
            if event.event_type != PROCESS:
                continue
            for hop in event.inputs:
                if hop.producer_finish_us is None or hop.consumer_start_us is None:
                    continue
                producer = producers.get((hop.stream, hop.timestamp), (None, None))[0]
                waits.append(QueueWait(hop.stream, hop.timestamp, producer, event.node, hop.producer_finish_us,
                                       hop.consumer_start_us))
        return waits

    def _producers(self) -> dict[tuple[str, int], tuple[str, int | None]]:
        found: dict[tuple[str, int], tuple[str, int | None]] = {}
        for event in self.events:
            if event.event_type == PROCESS:
                for stream, timestamp in event.outputs:
                    found.setdefault((stream, timestamp), (event.node, event.finish_us))
        return found

    def __repr__(self) -> str:
        calls = sum(e.event_type == PROCESS and e.kind != "input" for e in self.events)
        ends = [e.finish_us or e.time_us for e in self.events]
        span = (max(ends) - min(e.time_us for e in self.events)) / 1000 if ends else 0.0
        return f"<Trace: {len(self.nodes)} nodes, {calls} Process() calls, {len(self.events)} events, {span:.1f} ms>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """A one-line summary, plus the drawing as a PNG when the widgets (matplotlib) are there."""
        return display.mimebundle(self, **kwargs)


def build_trace(
    events: Iterable[TraceEvent],
    origin_us: int,
    nodes: Sequence[str],
    kinds: Mapping[str, NodeKind] | None = None,
) -> Trace:
    """A Trace from events recorded on absolute Unix µs: shifted to `origin_us`, sorted, hops completed.

    A hop whose producer finish is unknown (Python-side recorders do not see it) takes the finish of the
    call that emitted that packet.
    """
    shifted = sorted((e.shifted(origin_us) for e in events), key=lambda e: (e.time_us, e.finish_us or 0))
    finishes: dict[tuple[str, int], int | None] = {}
    for event in shifted:
        if event.event_type == PROCESS:
            for packet in event.outputs:
                finishes.setdefault(packet, event.finish_us)
    completed = []
    for event in shifted:
        if any(h.producer_finish_us is None for h in event.inputs):
            hops = tuple(h if h.producer_finish_us is not None else h._replace(
                producer_finish_us=finishes.get((h.stream, h.timestamp))) for h in event.inputs)
            event = dataclasses.replace(event, inputs=hops)
        completed.append(event)
    streams: dict[str, None] = {}
    for event in completed:
        streams.update(dict.fromkeys(h.stream for h in event.inputs))
        streams.update(dict.fromkeys(stream for stream, _ in event.outputs))
    known = dict(kinds or {})
    for event in completed:
        known.setdefault(event.node, event.kind)
    ordered = list(nodes) + [n for n in known if n not in nodes and n != INPUT]
    return Trace(tuple(completed), tuple(ordered), tuple(streams), origin_us, known)


def order_nodes(top_level: Sequence[str], known: Iterable[str]) -> tuple[str, ...]:
    """Node names in pbtxt order: each top-level node, or the `Node/...` nodes its subgraph expanded into."""
    known = list(dict.fromkeys(known))
    ordered: list[str] = []
    for name in top_level:
        inner = [k for k in known if k.startswith(name + "/")]
        ordered.extend(inner if inner and name not in known else [name])
    return tuple(ordered + [k for k in known if k not in ordered])
