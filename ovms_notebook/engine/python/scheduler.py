"""`PythonGraph`: a graph of Python calculators run with MediaPipe's scheduling rules.

The API mirrors `mp.CalculatorGraph` so the engine drives a Python graph and a
native one the same way: observe, start_run, add_packet_to_input_stream,
close_input_stream, close_all_packet_sources, wait_until_idle,
wait_until_done, close, has_error, get_combined_error_message.

Execution is synchronous and deterministic. Every call that changes the
graph (start_run, add, close_input_stream, close_all_packet_sources) runs
every node that becomes ready before it returns, on the caller's thread, so
wait_until_idle only reports errors (pass `eager=False` to defer the work to
wait_until_idle instead). Among ready nodes the one latest in topological
order runs first, as in MediaPipe's scheduler queue; source nodes run only
when nothing else is ready. Observer callbacks run inline, under the graph's
lock: keep them short and do not block in them.

Errors behave as in the wheel: a failure inside the graph (a calculator that
raises, a timestamp that goes backwards) is recorded, not raised, by the call
that caused it; the graph stops running nodes, and the next add raises
"Graph has errors: ...", wait_until_idle / wait_until_done / close raise
"CalculatorGraph::Run() failed: ..." (`PythonGraphArgumentError`, a
ValueError, for INVALID_ARGUMENT; `PythonGraphError`, a RuntimeError,
otherwise). Graph inputs are throttled by the config's `max_queue_size` as in
MediaPipe (engine/python/throttle.py): an add whose downstream queue is full runs
the ready nodes first, and a graph idle while throttled raises the full queue's
bound (or fails with `report_deadlock`); `graph_input_stream_add_mode`
ADD_IF_NOT_FULL refuses instead ("Graph is throttled."). `cancel()` drops the
queued work (the run then only closes). With `trace=True` every
Process() call and graph input packet is recorded (`trace_events`).

The graph's edges — input streams and output stream observers — are
nodes/graph_io.py; this module schedules and runs the nodes between them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import operator
import threading
from collections.abc import Mapping
from typing import Any

from google.protobuf import text_format

from ovms_notebook.engine.python.api import EMPTY, Calculator, declares, default_registry
from ovms_notebook.engine.python.graph_io import GraphInput, ObservedStream, Observer
from ovms_notebook.engine.python.node import NodeRuntime, Task
from ovms_notebook.engine.python.streams import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    UNKNOWN,
    OutputStream,
    Status,
    allowed_in_stream,
    builder_status,
)
from ovms_notebook.engine.python.throttle import (
    ADD_IF_NOT_FULL,
    ADD_MODES,
    WAIT_TILL_NOT_FULL,
    Throttle,
    downstream,
    queue_bound,
)
from ovms_notebook.engine.python.tracing import NodeTracer
from ovms_notebook.engine.python.validate import NodePlan, StreamRef, plan_graph
from ovms_notebook.errors import GraphConfigError, PythonGraphArgumentError, PythonGraphError
from ovms_notebook.framework.timestamps import debug_string
from ovms_notebook.framework.trace import TraceEvent

log = logging.getLogger(__name__)

__all__ = ["GraphConfigError", "PythonGraph", "PythonGraphArgumentError", "PythonGraphError"]


def _error(code: str, message: str) -> PythonGraphError:
    cls = PythonGraphArgumentError if code == INVALID_ARGUMENT else PythonGraphError
    return cls(message, code)


class PythonGraph:
    """A graph made only of Python calculators, driven like `mp.CalculatorGraph`.

    `config` is a parsed `CalculatorGraphConfig` or its pbtxt text; each node's
    `calculator` is looked up in `registry` (default: the one `register`
    fills) when the graph is built, and a fresh instance of it is made for
    every run. Construction raises GraphConfigError (a ValueError) for
    unknown calculators or tags, streams produced twice or never, and cycles
    without a back edge.
    """

    def __init__(
        self,
        config: Any,
        registry: Mapping[str, type[Calculator]] | None = None,
        *,
        eager: bool = True,
        trace: bool = False,
    ) -> None:
        if isinstance(config, str):
            config = _parse(config)
        self.config = config
        self._plan = plan_graph(config, default_registry if registry is None else registry)
        self._eager = eager
        self._lock = threading.RLock()
        self._observers: list[ObservedStream] = []
        self._running = False
        self._started = False
        self._draining = False
        self._stopping = False
        self._errors: list[Status] = []
        self._nodes: list[NodeRuntime] = []
        self._side_values: dict[str, object] = {}  # the run's side packets: the graph's, then those nodes set
        self._made_sides: set[str] = set()  # side packets some node of the graph sets
        self._sides_changed = False
        self._queue: list[tuple[int, int, NodeRuntime, Task]] = []
        self._sequence = itertools.count()
        self._inputs: dict[str, GraphInput] = {}
        self._tracer = NodeTracer() if trace else None
        #: MediaPipe's `max_queue_size` from the config (None: no bound); read-only, as in the wheel.
        self.max_queue_size = queue_bound(config)
        self._add_mode = WAIT_TILL_NOT_FULL
        self._throttle: Throttle | None = None
        self._feeds = downstream(self._plan.input_streams, self._plan.nodes)
        self._cancelled = False

    @property
    def graph_input_stream_add_mode(self) -> str:
        """WAIT_TILL_NOT_FULL (default: an add waits while a queue behind it is full) or ADD_IF_NOT_FULL."""
        return self._add_mode

    @graph_input_stream_add_mode.setter
    def graph_input_stream_add_mode(self, mode: str) -> None:
        if mode not in ADD_MODES:
            raise ValueError(f"graph_input_stream_add_mode must be one of {', '.join(ADD_MODES)}, got {mode!r}")
        self._add_mode = mode

    @property
    def input_streams(self) -> tuple[str, ...]:
        """Graph input stream names, in pbtxt order."""
        return self._plan.input_streams

    @property
    def output_streams(self) -> tuple[str, ...]:
        """Graph output stream names, in pbtxt order."""
        return self._plan.output_streams

    def observe_output_stream(
        self, stream_name: str, callback: Observer, observe_timestamp_bounds: bool = False
    ) -> None:
        """Call `callback(stream_name, value, timestamp)` per packet, and with EMPTY per settled bound if asked."""
        with self._lock:
            if self._running:
                raise PythonGraphError("observe_output_stream() must be called before start_run()", FAILED_PRECONDITION)
            if stream_name not in self._plan.stream_names:
                raise PythonGraphError(
                    f'Unable to attach observer to output stream "{stream_name}" because it doesn\'t exist.'
                )
            if not callable(callback):
                raise TypeError(f"callback must be callable, got {callback!r}")
            self._observers.append(ObservedStream(stream_name, callback, bool(observe_timestamp_bounds)))

    def start_run(self, side_packets: Mapping[str, object] | None = None) -> None:
        """Start a run: fresh calculator instances, `open()` on each in topological order, sources run."""
        with self._lock:
            if self._running:
                raise PythonGraphError("start_run() was already called; close() the run first", FAILED_PRECONDITION)
            side_packets = dict(side_packets or {})
            made = {ref.name for node in self._plan.nodes for ref in node.output_side_packets}
            for node in self._plan.nodes:
                for ref in node.side_packets:
                    if ref.name not in side_packets and ref.name not in made and not _optional(node, ref):
                        raise PythonGraphArgumentError(f'Side packet "{ref.name}" is required but was not provided.')
            self._made_sides = made
            self._side_values = {name: value for name, value in side_packets.items() if name not in made}
            self._sides_changed = False
            self._errors = []
            self._stopping = False
            self._cancelled = False
            deadlock = bool(getattr(self.config, "report_deadlock", False))
            self._throttle = Throttle(self.max_queue_size, self._feeds, deadlock)
            streams = {name: OutputStream(name, self._record) for name in self._plan.stream_names}
            self._inputs = {name: GraphInput(streams[name]) for name in self._plan.input_streams}
            self._queue = []
            if self._tracer is not None:
                self._tracer.clear()
            self._nodes = [
                NodeRuntime(plan, streams, self._record, self._stop_sources, self._enqueue, self._tracer,
                            set_side=self._set_side)
                for plan in self._plan.nodes
            ]
            for observer in self._observers:
                observer.prepare(streams[observer.name], self._record)
            self._running = self._started = True
            for runtime in self._nodes:  # OpenNode() tasks run before any Process(), lower ids first
                if not self._sides_ready(runtime):
                    continue  # opens once a node sets the side packets it takes (its inputs wait meanwhile)
                if self._errors or not runtime.open(self._side_values):
                    break
                runtime.check_if_became_ready()
            self._open_waiting()
            self._drain_if_eager()

    def add_packet_to_input_stream(self, stream: str, value: object, timestamp: int) -> None:
        """Add `value` at `timestamp` to graph input `stream`; EMPTY only advances its bound to timestamp + 1."""
        with self._lock:
            graph_input = self._graph_input(stream, "AddPacketToInputStream")
            timestamp = operator.index(timestamp)
            if not allowed_in_stream(timestamp):
                raise PythonGraphArgumentError(
                    f"{debug_string(timestamp)} can't be the timestamp of a Packet in a stream."
                )
            if value is None:
                raise PythonGraphArgumentError("None can't be a packet value; add EMPTY for a bound-only update")
            if self._errors:
                raise self._combined("Graph has errors: ")
            if value is not EMPTY:
                self._wait_until_not_full(stream)
            if self._tracer is not None and value is not EMPTY:
                self._tracer.graph_input(stream, timestamp)
            graph_input.add(value, timestamp)
            self._drain_if_eager()

    def close_input_stream(self, stream: str) -> None:
        """Close one graph input: its consumers see it done once they used what it already carries."""
        with self._lock:
            if not self._running:
                return
            graph_input = self._graph_input(stream, "CloseInputStream")
            if not graph_input.stream.closed:
                graph_input.close()
            self._drain_if_eager()

    def close_all_packet_sources(self) -> None:
        """Close every graph input and stop every source node."""
        with self._lock:
            if not self._running:
                return
            for graph_input in self._inputs.values():
                if not graph_input.stream.closed:
                    graph_input.close()
            self._stopping = True
            self._drain_if_eager()

    def wait_until_idle(self) -> None:
        """Run every ready node (already done in eager mode); raise the graph's errors."""
        with self._lock:
            if not self._running:
                if not self._started:
                    raise PythonGraphError("wait_until_idle() called before start_run()", FAILED_PRECONDITION)
                return
            self._drain()
            if self._errors:
                raise self._combined("CalculatorGraph::Run() failed: ")

    def wait_until_done(self) -> None:
        """End the run once every graph input is closed: nodes still open are closed, errors raised once.

        MediaPipe would block forever with inputs still open; this raises instead.
        """
        with self._lock:
            if not self._running:
                return
            self._drain()
            if not self._errors:
                still_open = [name for name, item in self._inputs.items() if not item.stream.closed]
                if still_open:
                    raise PythonGraphError(
                        f"wait_until_done() would wait forever: graph input streams {', '.join(still_open)} are "
                        "still open; close them (close_input_stream / close_all_packet_sources) first",
                        FAILED_PRECONDITION,
                    )
            self._finish()
            if self._errors:
                error = self._combined("CalculatorGraph::Run() failed: ")
                self._errors = []  # like the wheel: the run is over, has_error() is False again
                raise error

    def cancel(self) -> None:
        """Drop the queued work: nothing more runs in this run (an invocation in progress finishes); close()
        then only closes the nodes. Safe from any thread (it takes no lock)."""
        self._cancelled = True

    def close(self) -> None:
        """close_all_packet_sources() then wait_until_done(); a no-op when no run is active."""
        with self._lock:
            self.close_all_packet_sources()
            self.wait_until_done()

    def has_error(self) -> bool:
        """True once the current run recorded an error (False again after wait_until_done/close reported it)."""
        return bool(self._errors)

    @property
    def trace_events(self) -> list[TraceEvent]:
        """The current run's trace events (Unix µs) when built with `trace=True`, else []."""
        return self._tracer.events if self._tracer is not None else []

    @property
    def error(self) -> str | None:
        """The run's error messages (e.g. 'Calculator::Process() for node "x" failed: ...'), or None."""
        return "\n".join(status.message for status in self._errors) if self._errors else None

    def get_combined_error_message(self) -> str:
        """The wheel's `CODE: CalculatorGraph::Run() failed: \\n<errors>`, or "" without errors."""
        if not self._errors:
            return ""
        error = self._combined("CalculatorGraph::Run() failed: ")
        return f"{error.code}: {error}"

    # Internals.

    def _graph_input(self, stream: str, method: str) -> GraphInput:
        if not self._running:
            raise PythonGraphError(f"CalculatorGraph::{method}() is called before StartRun()", FAILED_PRECONDITION)
        if stream not in self._inputs:
            raise PythonGraphError(f'{method} called on input stream "{stream}" which is not a graph input stream.')
        return self._inputs[stream]

    def _wait_until_not_full(self, stream: str) -> None:
        """MediaPipe's throttling of graph input `stream` (see engine/python/throttle.py)."""
        throttle = self._throttle
        if throttle is None or throttle.bound is None:
            return
        nodes = {node.id: node for node in self._nodes}
        if throttle.full_queue(stream, nodes) is None:
            return
        if self._add_mode == ADD_IF_NOT_FULL:
            raise PythonGraphError("Graph is throttled.", "UNAVAILABLE")
        self._drain()  # the producer waits: the ready nodes run now
        while (full := throttle.full_queue(stream, nodes)) is not None and not self._errors:
            if throttle.report_deadlock:
                self._record(builder_status("UNAVAILABLE", throttle.deadlock_message(full[2].name)))
                break
            throttle.resolve(*full)
        if self._errors:
            raise self._combined("Graph has errors: ")

    def _sides_ready(self, runtime: NodeRuntime) -> bool:
        """Every side packet the node takes is set, or optional and neither given nor made by any node."""
        return all(
            ref.name in self._side_values or (ref.name not in self._made_sides and _optional(runtime.plan, ref))
            for ref in runtime.plan.side_packets
        )

    def _set_side(self, name: str, value: object) -> None:
        """A node set output side packet `name` (`OutputSidePacketImpl::Set`): once per run."""
        if name in self._side_values:
            self._record(builder_status("ALREADY_EXISTS", f'Output side packet "{name}" was already set.'))
            return
        self._side_values[name] = value
        self._sides_changed = True

    def _open_waiting(self) -> None:
        """Open, lower ids first, the nodes whose input side packets other nodes have set since they were due."""
        while self._sides_changed and not self._errors:
            self._sides_changed = False
            for runtime in self._nodes:
                if runtime.state != "created" or not self._sides_ready(runtime):
                    continue
                if not runtime.open(self._side_values):
                    return
                runtime.check_if_became_ready()

    def _record(self, status: Status) -> None:
        log.debug("graph error: %s", status.message)
        self._errors.append(status)

    def _stop_sources(self) -> None:
        self._stopping = True

    def _enqueue(self, node: NodeRuntime, task: Task) -> bool:
        """`SchedulerQueue::AddNode`: nothing new is scheduled once the run has an error."""
        if self._errors:
            return False
        heapq.heappush(self._queue, (-node.id, next(self._sequence), node, task))
        return True

    def _combined(self, prefix: str) -> PythonGraphError:
        codes = {status.code for status in self._errors}
        code = codes.pop() if len(codes) == 1 else UNKNOWN
        return _error(code, prefix + "\n" + "\n".join(status.message for status in self._errors))

    def _drain_if_eager(self) -> None:
        if self._eager:
            self._drain()

    def _drain(self) -> None:
        """Run scheduled invocations, latest node in topological order first, then sources, until idle."""
        if self._draining or not self._running:
            return  # a callback re-entered the graph: the outer loop picks its work up
        self._draining = True
        try:
            while True:
                if self._cancelled:
                    self._queue.clear()
                    return
                if self._queue:
                    _, _, node, task = heapq.heappop(self._queue)
                    node.run(task)
                    self._open_waiting()
                    continue
                source = next((node for node in self._nodes if node.is_source and node.state == "opened"), None)
                if source is None or self._errors:
                    return
                if self._stopping:
                    source.close()
                else:
                    source.run_source()
        finally:
            self._draining = False

    def _finish(self) -> None:
        """`CleanupAfterRun`: nodes not closed yet get `close()`, their outputs dropped; the run ends."""
        for node in self._nodes:
            if node.state == "opened":
                node.close(propagate=False)
        self._running = False


def _optional(plan: NodePlan, ref: StreamRef) -> bool:
    """True when the node's calculator may run without side packet `ref` (its `optional_side_packets`)."""
    return declares(plan.cls.optional_side_packets, ref.tag, ref.index)


def _parse(text: str) -> Any:
    from ovms_notebook.framework.protos import parse_graph_config

    try:
        return parse_graph_config(text)
    except text_format.ParseError as error:
        raise GraphConfigError(f"Failed to parse: {error}") from error
