"""A graph with Python-side nodes: one native CalculatorGraph plus our scheduler, joined at the cut edges.

Native outputs that feed Python nodes are observed with their timestamp
bounds; MediaPipe's callbacks only enqueue them (they run behind a
process-wide mutex), and one engine thread per graph instance hands them to
the Python half. What a Python node emits towards native nodes is added to
the native graph from that engine thread or from the request's thread, never
from a MediaPipe callback; when it emits nothing at t, an empty packet at t
advances the native input's bound so native nodes downstream are not held
back (an empty packet is the one bound setter the Python API has).

Flow control follows MediaPipe's `max_queue_size` (the graph's own, 100 when
it sets none, -1 for no bound). The hand-over queue counts the packets the
native half sent across and the engine thread has not delivered yet. The
producers of those packets are MediaPipe callbacks, which must never block,
so the bound is kept one step earlier, on the input side: while the hand-over
is at its bound, `push()` waits before it adds the next request's packets, as
MediaPipe's own graph inputs wait while a queue behind them is full. Memory
then stays at the bound plus what the native half itself queues.

One thread, the engine thread, moves data across the cut for the whole life
of the graph, closing included: `close()` hands it the closing sequence and
waits for it however long the backlog takes (logging progress), so packets
never cross out of order. `cancel()` makes it drop the backlog and close at
once.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Mapping

import mediapipe as mp

from ovms_notebook.codec import parse_stream
from ovms_notebook.engine.convert import packet_to_value, value_to_packet
from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.engine.native import NativeGraph, PacketSink, graph_error_status
from ovms_notebook.engine.native_trace import canonical_names
from ovms_notebook.engine.python.api import EMPTY, default_registry
from ovms_notebook.engine.python.scheduler import PythonGraph
from ovms_notebook.engine.python.throttle import queue_bound
from ovms_notebook.engine.split import Split, python_side, split_graph
from ovms_notebook.framework import timestamps as ts
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.trace import NodeKind, Trace, TraceEvent, build_trace, order_nodes
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

_CLOSE = object()
#: How often a close or a waiting request logs that the graph is still working off its backlog.
LIVENESS_SECONDS = 10.0


def _part_spec(config: GraphConfig, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> GraphSpec:
    return GraphSpec(
        text="",
        config=config,
        inputs={name: parse_stream(name) for name in inputs},
        outputs={name: parse_stream(name) for name in outputs},
        side_packets=(),
    )


class HybridGraph:
    """Same interface as NativeGraph (start, push, has_error, wait_until_idle, close) for split graphs."""

    def __init__(self, spec: GraphSpec, sink: PacketSink, split: Split | None = None, *, trace: bool = False) -> None:
        self.spec = spec
        self._sink = sink
        self.split = split or split_graph(spec.config, default_registry)
        self._lock = threading.RLock()
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Packets taken by the native->Python edge and not yet delivered (queued, or in the engine thread's hands):
        # wait_until_idle waits for none, not just for an empty inbox.
        self._in_flight = 0
        self._settled = threading.Condition()
        self._engine_error: OvmsStatus | None = None
        self._python_done: set[str] = set()
        self._state = "created"
        self._thread: threading.Thread | None = None
        self.max_queue_size = queue_bound(spec.config)
        self.handover_peak = 0  # the most packets that waited at the hand-over at once
        self._delivered_count = 0
        self._cancelled = False
        self._closed = threading.Event()
        self._close_result: OvmsStatus | None = None
        split = self.split
        self._tracing = trace
        self._names = _half_names(spec.config, split) if trace else ({}, {})
        self.native: NativeGraph | None = None
        if split.native is not None:
            self.native = NativeGraph(
                _part_spec(
                    split.native, (*split.native_inputs, *split.to_native), (*split.native_outputs, *split.to_python)
                ),
                self._on_native,
                bounds=frozenset(split.to_python),
                trace=trace,
                trace_names=self._names[0],
            )
        try:
            self.python = PythonGraph(split.python, default_registry, trace=trace)
        except ValueError as error:
            raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_INITIALIZATION_ERROR, str(error)) from error
        for name in split.python_outputs:
            self.python.observe_output_stream(name, self._on_python_output)
        for name in split.to_native:
            self.python.observe_output_stream(name, self._on_python_to_native, observe_timestamp_bounds=True)

    # -- tracing ------------------------------------------------------------------------------------------------

    def trace(self, origin_us: int) -> Trace | None:
        """Both halves' trace so far on µs since `origin_us` (Unix µs); None without tracing.

        Packets crossing the cut are shown once, as outputs of the node that made them: the halves'
        own "graph input" records of them are left out.
        """
        if not self._tracing:
            return None
        python_names = self._names[1]
        events = [
            *_without_cut_inputs(self.native.trace_events() if self.native is not None else [], self.split.to_native),
            *_without_cut_inputs(self.python.trace_events, self.split.to_python),
        ]
        events = [
            dataclasses.replace(e, node=python_names[e.node]) if e.kind == "python" and e.node in python_names else e
            for e in events
        ]
        known = [*(self.native.trace_node_names if self.native is not None else []), *python_names.values()]
        kinds: dict[str, NodeKind] = {
            **dict.fromkeys(known, "native"),
            **dict.fromkeys(python_names.values(), "python"),
        }
        return build_trace(events, origin_us, order_nodes(canonical_names(self.spec.config), known), kinds)

    # -- callbacks ----------------------------------------------------------------------------------------------

    def _on_native(self, stream: str, packet: mp.Packet) -> None:
        # MediaPipe thread, behind the process-wide observer mutex: enqueue only.
        if stream in self.split.to_python:
            with self._settled:
                self._in_flight += 1
                self.handover_peak = max(self.handover_peak, self._in_flight)
            self._inbox.put((stream, packet))
        if stream in self.split.native_outputs and not packet.is_empty():
            self._sink(stream, packet)

    def _on_python_output(self, stream: str, value: object, timestamp: int) -> None:
        if value is EMPTY:
            return
        try:
            self._sink(stream, value_to_packet(value, timestamp))
        except (TypeError, ValueError) as error:
            self._fail(f'output stream "{stream}" at {ts.debug_string(timestamp)}: {error}')

    def _on_python_to_native(self, stream: str, value: object, timestamp: int) -> None:
        if self.native is None:
            return
        if value is EMPTY and timestamp >= ts.POSTSTREAM:
            self._python_done.add(stream)  # the Python producer closed this stream
            return
        if not ts.is_range_value(timestamp) and timestamp not in (ts.PRESTREAM, ts.POSTSTREAM):
            return
        try:
            packet = mp.Packet() if value is EMPTY else value_to_packet(value)
            self.native.push({stream: packet}, timestamp)
        except OvmsStatus as status:  # the native graph is in error or closed: close() reports it
            log.info(
                'packet on "%s" at %s not added to the native half: %s', stream, ts.debug_string(timestamp), status
            )
        except (TypeError, ValueError) as error:
            self._fail(f'stream "{stream}" into native nodes at {ts.debug_string(timestamp)}: {error}')

    def _fail(self, message: str) -> None:
        if self._engine_error is None:
            self._engine_error = OvmsStatus(
                StatusCode.MEDIAPIPE_EXECUTION_ERROR, f"INTERNAL: CalculatorGraph::Run() failed: \n{message}"
            )

    # -- engine thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        """The engine thread: deliver what the native half sends across, in order, until told to close; then
        run the closing sequence, which keeps delivering, so no other thread ever moves data across the cut."""
        try:
            while (item := self._inbox.get()) is not _CLOSE:
                self._take(item)
            self._close_result = self._closing()
        except BaseException as error:
            log.exception("the engine thread failed")
            self._fail(f"engine thread: {error}")
            self._close_result = self._engine_error
        finally:
            self._closed.set()
            with self._settled:
                self._settled.notify_all()

    def _take(self, item: object) -> None:
        if not isinstance(item, tuple):  # _CLOSE
            return
        stream, packet = item
        try:
            if not self._cancelled:
                self._deliver(stream, packet)
        finally:
            self._delivered()

    def _delivered(self) -> None:
        with self._settled:
            self._in_flight -= 1
            self._delivered_count += 1
            self._settled.notify_all()

    def _deliver(self, stream: str, packet: mp.Packet) -> None:
        stamp = packet.timestamp.value
        try:
            value = packet_to_value(packet)
        except Exception as error:  # the engine thread must live on: the graph fails instead
            self._fail(f'stream "{stream}" into Python nodes at {ts.debug_string(stamp)}: {error}')
            return
        with self._lock:
            if self._state not in ("running", "closing"):
                return
            try:
                self.python.add_packet_to_input_stream(stream, value, stamp)
            except Exception:  # recorded on the Python graph: has_error/close report it
                log.debug("delivering %s@%s to Python nodes failed", stream, stamp, exc_info=True)

    def _drain_inbox(self) -> bool:
        """Deliver what waits at the hand-over (engine thread only); True if anything was there."""
        moved = False
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return moved
            self._take(item)
            moved = True

    def _closing(self) -> OvmsStatus | None:
        """Close graph inputs and let data flow across the cut until both halves are done (engine thread)."""
        with self._lock:
            for name in self.split.python_inputs:
                self.python.close_input_stream(name)
        native_error = None
        if self.native is not None:
            for name in self.split.native_inputs:
                self.native.close_input_stream(name)
            closed: set[str] = set()  # Python -> native streams whose Python producers finished
            ended: set[str] = set()  # native -> Python streams closed on the Python side
            while not self._cancelled:
                self.native.wait_until_idle()
                moved = self._drain_inbox()
                newly = self._python_done - closed
                for name in newly:
                    self.native.close_input_stream(name)
                closed |= newly
                if moved or newly:
                    continue
                # Quiet: what the native half still sends the Python nodes can only follow from streams that are
                # still open. End the cut streams whose native producers wait on nothing from the Python side,
                # as one MediaPipe graph would close those nodes; with a cycle across the cut, end the rest.
                left = [s for s in self.split.to_python if s not in ended]
                ready = [s for s in left if self.split.cut_dependencies[s] <= closed] or left
                if not ready:
                    break
                with self._lock:
                    for name in ready:
                        self.python.close_input_stream(name)
                ended.update(ready)
            # Python producers that never closed their streams (a Python half that failed, a node that keeps its
            # outputs open): close those native inputs one at a time and let what follows run to idle first.
            # CloseAllPacketSources, inside close(), holds the GIL while it closes every input; the native nodes
            # its closing wakes call our observers, which need the GIL, behind MediaPipe's process-wide callback
            # mutex, so a cascade started there can deadlock. One stream at a time with the GIL free in between
            # leaves close() nothing to wake.
            for name in self.split.to_native:
                if name not in closed and not self._cancelled:
                    self.native.close_input_stream(name)
                    self.native.wait_until_idle()
                    self._drain_inbox()
            native_error = self.native.close()
        self._drain_inbox()
        with self._lock:
            python_error = None
            combined = self.python.get_combined_error_message()
            try:
                self.python.close()
            except Exception as error:
                combined = combined or getattr(error, "code", "INTERNAL") + f": {error}"
            if combined and not self._cancelled:
                python_error = graph_error_status(combined)
            self._state = "closed"
        return self._engine_error or native_error or python_error

    # -- the NativeGraph interface ------------------------------------------------------------------------------

    def start(self, side_packets: Mapping[str, mp.Packet]) -> None:
        """Start both halves; Python nodes get the side packets as Python values, plus the definition's own
        (`py`, OpenVINO sessions), which a request cannot override."""
        with self._lock:
            if self.native is not None:
                self.native.start(side_packets)
            values = {name: packet_to_value(p) for name, p in side_packets.items()}
            values.update(self.split.python_constants)
            values.update(self.spec.python_side_packets)
            try:
                self.python.start_run(values)
            except Exception as error:
                if self.native is not None:
                    self.native.close()
                raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_START_ERROR, f"INVALID_ARGUMENT: {error}") from error
            self._state = "running"
            self._thread = threading.Thread(target=self._run, name="ovms-engine", daemon=True)
            self._thread.start()

    def push(self, packets: Mapping[str, mp.Packet], timestamp: int) -> None:
        """Add one request's packets: native inputs to the native half, Python inputs to the Python half.

        Waits first while the hand-over to the Python half holds `max_queue_size` packets (MediaPipe's
        throttling of a graph input whose downstream queue is full), so a slow Python node holds requests back.
        """
        self._wait_for_room()
        if self._state != "running":
            raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM, f"graph is {self._state}, not running")
        native = {name: p for name, p in packets.items() if name in self.split.native_inputs}
        if native and self.native is not None:
            self.native.push(native, timestamp)
        python = [name for name in packets if name in self.split.python_inputs]
        if python:
            with self._lock:
                for name in python:
                    try:
                        self.python.add_packet_to_input_stream(name, packet_to_value(packets[name]), timestamp)
                    except Exception as error:
                        raise OvmsStatus(
                            StatusCode.MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM, f"INVALID_ARGUMENT: {error}"
                        ) from error

    def has_error(self) -> bool:
        """True once either half (or the edge between them) recorded an error."""
        return (
            self._engine_error is not None
            or (self.native is not None and self.native.has_error())
            or self.python.has_error()
        )

    def _wait_for_room(self) -> None:
        bound = self.max_queue_size
        if bound is None:
            return
        with self._settled:
            since = time.monotonic()
            while (
                self._in_flight >= bound and self._state == "running" and not self._cancelled and not self.has_error()
            ):
                if self._settled.wait(LIVENESS_SECONDS) or time.monotonic() - since < LIVENESS_SECONDS:
                    continue
                log.info(
                    "a request has waited %.0f s for the Python nodes: %d packets wait at the hand-over "
                    "(max_queue_size %d)",
                    time.monotonic() - since,
                    self._in_flight,
                    bound,
                )

    def wait_until_idle(self) -> None:
        """Let both halves settle: the native half idle and every packet it sent across delivered by the engine
        thread, including one it is still working on (errors are reported by close)."""
        while True:
            with self._settled:
                before = self._delivered_count
            if self.native is not None:
                self.native.wait_until_idle()
            with self._settled:
                self._settled.wait_for(lambda: self._in_flight <= 0 or self._closed.is_set())
                if self._delivered_count == before or self._closed.is_set():
                    return

    def cancel(self) -> None:
        """End without working off the backlog: what waits at the hand-over is dropped, the Python half runs
        nothing more, and a `close()` (running or to come) returns as soon as the native half closed."""
        self._cancelled = True
        self.python.cancel()
        with self._settled:
            self._settled.notify_all()

    def close(self) -> OvmsStatus | None:
        """Close graph inputs, let data flow across the cut until both halves are done, then finish them.

        The engine thread does the work; this waits for it however long the backlog takes (the graph's own
        progress is the only bound), logging every 10 s how much is still crossing. Idempotent.
        """
        with self._lock:
            if self._state == "running":
                self._state = "closing"
                self._inbox.put(_CLOSE)
            elif self._state == "created":
                return self._engine_error
        with self._settled:
            self._settled.notify_all()  # a request waiting for room stops waiting
        started, delivered = time.monotonic(), self._delivered_count
        while not self._closed.wait(LIVENESS_SECONDS):
            log.info(
                "closing a graph with Python nodes for %.0f s: %d packets delivered to them in the last %.0f s, "
                "%d waiting",
                time.monotonic() - started,
                self._delivered_count - delivered,
                LIVENESS_SECONDS,
                self._in_flight,
            )
            delivered = self._delivered_count
        return self._close_result


def _without_cut_inputs(events: list[TraceEvent], cut: tuple[str, ...]) -> list[TraceEvent]:
    """A half's graph-input records without the packets the other half made (MediaPipe's tracer folds every
    graph input added at one timestamp into one record)."""
    kept = []
    for event in events:
        if event.kind == "input":
            outputs = tuple(packet for packet in event.outputs if packet[0] not in cut)
            if not outputs:
                continue
            event = dataclasses.replace(event, outputs=outputs)
        kept.append(event)
    return kept


def _half_names(config: GraphConfig, split: Split) -> tuple[dict[str, str], dict[str, str]]:
    """Canonical node names in each half -> the whole graph's (native half, Python half).

    The halves keep the graph's node order, so the i-th node of a half is the i-th node of that side.
    """
    full = canonical_names(config)
    python_indexes = set(python_side(config, default_registry))
    sides: dict[bool, list[str]] = {True: [], False: []}
    for index, name in enumerate(full):
        sides[index in python_indexes].append(name)
    halves = []
    for part, names in ((split.native, sides[False]), (split.python, sides[True])):
        own = canonical_names(part) if part is not None else []
        halves.append(dict(zip(own, names, strict=False)) if len(own) == len(names) else {n: n for n in own})
    return halves[0], halves[1]
