"""A graph with Python-side nodes: one native CalculatorGraph plus our scheduler, joined at the cut edges.

Native outputs that feed Python nodes are observed with their timestamp
bounds; MediaPipe's callbacks only enqueue them (they run behind a
process-wide mutex), and one engine thread per graph instance hands them to
the Python half. What a Python node emits towards native nodes is added to
the native graph from that engine thread or from the request's thread, never
from a MediaPipe callback; when it emits nothing at t, an empty packet at t
advances the native input's bound so native nodes downstream are not held
back (the one bound setter mediapipe's Python API has).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Mapping

import mediapipe as mp

from ovms_notebook.codec import parse_stream
from ovms_notebook.engine.convert import packet_to_value, value_to_packet
from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.engine.native import NativeGraph, PacketSink, graph_error_status
from ovms_notebook.engine.native_trace import canonical_names
from ovms_notebook.engine.python.api import EMPTY, default_registry
from ovms_notebook.engine.python.scheduler import PythonGraph
from ovms_notebook.engine.split import Split, python_side, split_graph
from ovms_notebook.framework import timestamps as ts
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.trace import NodeKind, Trace, TraceEvent, build_trace, order_nodes
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

_STOP = object()
_SETTLE_ROUNDS = 50
_SETTLE_SECONDS = 10.0  # wait_until_idle's bound on one delivery across the cut
_JOIN_SECONDS = 10.0  # close()'s bound on the engine thread finishing what it holds


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
        split = self.split
        self._tracing = trace
        self._names = _half_names(spec.config, split) if trace else ({}, {})
        self.native: NativeGraph | None = None
        if split.native is not None:
            self.native = NativeGraph(
                _part_spec(split.native, (*split.native_inputs, *split.to_native),
                           (*split.native_outputs, *split.to_python)),
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
        events = [*_without_cut_inputs(self.native.trace_events() if self.native is not None else [],
                                       self.split.to_native),
                  *_without_cut_inputs(self.python.trace_events, self.split.to_python)]
        events = [dataclasses.replace(e, node=python_names[e.node]) if e.kind == "python" and e.node in python_names
                  else e for e in events]
        known = [*(self.native.trace_node_names if self.native is not None else []), *python_names.values()]
        kinds: dict[str, NodeKind] = {**dict.fromkeys(known, "native"),
                                      **dict.fromkeys(python_names.values(), "python")}
        return build_trace(events, origin_us, order_nodes(canonical_names(self.spec.config), known), kinds)

    # -- callbacks ----------------------------------------------------------------------------------------------

    def _on_native(self, stream: str, packet: mp.Packet) -> None:
        # MediaPipe thread, behind the process-wide observer mutex: enqueue only.
        if stream in self.split.to_python:
            with self._settled:
                self._in_flight += 1
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
            log.info('packet on "%s" at %s not added to the native half: %s', stream, ts.debug_string(timestamp),
                     status)
        except (TypeError, ValueError) as error:
            self._fail(f'stream "{stream}" into native nodes at {ts.debug_string(timestamp)}: {error}')

    def _fail(self, message: str) -> None:
        if self._engine_error is None:
            self._engine_error = OvmsStatus(
                StatusCode.MEDIAPIPE_EXECUTION_ERROR, f"INTERNAL: CalculatorGraph::Run() failed: \n{message}"
            )

    # -- engine thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while isinstance(item := self._inbox.get(), tuple):  # anything else is _STOP
            stream, packet = item
            try:
                self._deliver(stream, packet)
            finally:
                self._delivered()

    def _delivered(self) -> None:
        with self._settled:
            self._in_flight -= 1
            if self._in_flight <= 0:
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
        moved = False
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return moved
            if not isinstance(item, tuple):  # _STOP
                continue
            stream, packet = item
            try:
                self._deliver(stream, packet)
            finally:
                self._delivered()
            moved = True

    # -- the NativeGraph interface ------------------------------------------------------------------------------

    def start(self, side_packets: Mapping[str, mp.Packet]) -> None:
        """Start both halves; Python nodes get the side packets as Python values, plus the definition's own
        (`py`, OpenVINO sessions), which a request cannot override."""
        with self._lock:
            if self.native is not None:
                self.native.start(side_packets)
            values = {name: packet_to_value(p) for name, p in side_packets.items()}
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
        """Add one request's packets: native inputs to the native half, Python inputs to the Python half."""
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
                        raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM,
                                         f"INVALID_ARGUMENT: {error}") from error

    def has_error(self) -> bool:
        """True once either half (or the edge between them) recorded an error."""
        return (
            self._engine_error is not None
            or (self.native is not None and self.native.has_error())
            or self.python.has_error()
        )

    def wait_until_idle(self) -> None:
        """Let both halves settle: the native half idle and every packet it sent across delivered, including
        one the engine thread is still working on (errors are reported by close)."""
        for _ in range(_SETTLE_ROUNDS):
            if self.native is not None:
                self.native.wait_until_idle()
            moved = self._drain_inbox()
            with self._settled:
                busy = self._in_flight > 0
                if not self._settled.wait_for(lambda: self._in_flight <= 0, timeout=_SETTLE_SECONDS):
                    log.warning("%d packet(s) from the native half still undelivered to the Python half after "
                                "%.0f s; not waiting longer for them", self._in_flight, _SETTLE_SECONDS)
            if not moved and not busy:
                return
        log.warning("the two halves did not settle within %d rounds; returning with packets in flight",
                    _SETTLE_ROUNDS)

    def close(self) -> OvmsStatus | None:
        """Close graph inputs, let data flow across the cut until it settles, then finish both halves."""
        with self._lock:
            if self._state != "running":
                return self._engine_error
            self._state = "closing"
            for name in self.split.python_inputs:
                self.python.close_input_stream(name)
        # From here on this thread alone moves data across the cut: stop the engine thread (it finishes
        # what it holds first), so nothing is pushed into the native half behind our back while it closes.
        self._inbox.put(_STOP)
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)
            if self._thread.is_alive():
                log.warning("engine thread %s still busy %.0f s after it was told to stop; closing without it "
                            "(what it still holds may not reach the native half)", self._thread.name, _JOIN_SECONDS)
        if self.native is not None:
            for name in self.split.native_inputs:
                self.native.close_input_stream(name)
            closed: set[str] = set()  # Python -> native streams whose Python producers finished
            ended: set[str] = set()  # native -> Python streams closed on the Python side
            for _ in range(_SETTLE_ROUNDS):
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
            else:
                log.warning("closing: the two halves still moved packets after %d rounds; finishing them anyway "
                            "(later packets across the cut are lost)", _SETTLE_ROUNDS)
            native_error = self.native.close()
        else:
            native_error = None
        self._drain_inbox()
        with self._lock:
            python_error = None
            combined = self.python.get_combined_error_message()
            try:
                self.python.close()
            except Exception as error:
                combined = combined or getattr(error, "code", "INTERNAL") + f": {error}"
            if combined:
                python_error = graph_error_status(combined)
            self._state = "closed"
        return self._engine_error or native_error or python_error


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
