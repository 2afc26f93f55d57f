"""One running native MediaPipe graph, guarded against the bindings' sharp edges.

The wheel's bindings abort the process on several misuses (probed on the 0.10.21 wheel): pushing to
an unknown stream, starting twice, observing after start, a callback that
raises. `NativeGraph` is the only code that touches `mp.CalculatorGraph`, and
it rules those out: streams are checked against the parsed spec, the
lifecycle is a one-way state machine, and observer callbacks only enqueue.
MediaPipe runs every observer behind one process-wide mutex, so a callback
that blocked would stall every graph in the kernel.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping

import mediapipe as mp

from ovms_notebook.engine.convert import native_timestamp
from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.engine.native_trace import (
    DEFAULT_INTERVAL_USEC,
    TraceFiles,
    canonical_names,
    native_trace,
    with_tracing,
)
from ovms_notebook.framework.trace import Trace, TraceEvent
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

PacketSink = Callable[[str, mp.Packet], None]

_instances: weakref.WeakSet[NativeGraph] = weakref.WeakSet()


def graph_instances(*, open_only: bool = True) -> int:
    """How many native graph instances exist in this process: by default those not closed yet (a stream or
    unary request is using them), with `open_only=False` every one still in memory.

    Both are 0 when nothing runs; anything else after every client left is a leak (tests/test_faults.py).
    """
    graphs = list(_instances)
    return sum(1 for graph in graphs if not open_only or graph.is_open)


@functools.cache
def use_wheel_resources() -> None:
    """Let the wheel's subgraphs find their .tflite models (`mediapipe/modules/...`) wherever the kernel runs.

    MediaPipe resolves model paths against a process-wide resource directory that
    defaults to the working directory; its own solutions point it at site-packages.
    """
    mp.resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))


def graph_error_status(message: str) -> OvmsStatus:
    """OVMS's status for a graph error, from the wheel's combined error message.

    The wheel writes `CODE: CalculatorGraph::Run() failed: \\n; <error>`; OVMS's
    build prints the same without the stray "; " after the newline (OVMS's `src/status.cpp` text).
    FailedPrecondition errors map to MEDIAPIPE_PRECONDITION_FAILED, the rest to
    MEDIAPIPE_EXECUTION_ERROR.
    """
    text = message.replace("\n; ", "\n")
    code = text.split(":", 1)[0].strip()
    if code == "FAILED_PRECONDITION":
        return OvmsStatus(StatusCode.MEDIAPIPE_PRECONDITION_FAILED, text)
    return OvmsStatus(StatusCode.MEDIAPIPE_EXECUTION_ERROR, text)


class NativeGraph:
    """A native graph instance: start once, push checked packets, close once."""

    def __init__(
        self,
        spec: GraphSpec,
        sink: PacketSink,
        *,
        bounds: frozenset[str] = frozenset(),
        trace: bool = False,
        trace_names: Mapping[str, str] | None = None,
    ) -> None:
        """`sink(stream, packet)` gets every output packet; streams in `bounds` also report bound-only updates
        (as empty packets), which the hybrid engine forwards to Python-side nodes.

        `trace` runs MediaPipe's tracer into a temporary directory, read while the graph runs and by
        `close()`, and removed once the closed graph is gone; `trace_names` maps the config's canonical node
        names to the names the trace shows (default: the names themselves).
        """
        self.spec = spec
        self._sink = sink
        self._lock = threading.Lock()
        self._state = "created"
        self._error: OvmsStatus | None = None
        self._closed_inputs: set[str] = set()
        self._trace: TraceFiles | None = None
        config = spec.config
        if trace:
            names = trace_names or {name: name for name in canonical_names(spec.config)}
            self._trace = TraceFiles(tempfile.mkdtemp(prefix="ovms-trace-"), names)
            config = with_tracing(config, self._trace.directory)
        use_wheel_resources()
        try:
            self._graph = mp.CalculatorGraph(graph_config=config)
        except Exception as error:
            if self._trace is not None:
                self._trace.remove()
            raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_INITIALIZATION_ERROR, str(error)) from error
        for name in spec.outputs:
            self._graph.observe_output_stream(name, self._observer(name), observe_timestamp_bounds=name in bounds)
        _instances.add(self)

    @property
    def is_open(self) -> bool:
        """True from construction until `close()` finished (or a failed start)."""
        return self._state != "closed"

    def _observer(self, name: str) -> Callable[[str, mp.Packet], None]:
        sink = self._sink

        def on_packet(_stream: str, packet: mp.Packet) -> None:
            try:
                sink(name, packet)
            except BaseException:  # an exception escaping into MediaPipe aborts the process
                log.exception("output observer for %r failed", name)

        return on_packet

    def start(self, side_packets: Mapping[str, mp.Packet]) -> None:
        """Start the run; MEDIAPIPE_GRAPH_START_ERROR when MediaPipe refuses (e.g. a missing side packet)."""
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"graph can be started once, it is {self._state}")
            try:
                self._graph.start_run(dict(side_packets))
            except Exception as error:
                self._state = "closed"
                self._release_graph()
                raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_START_ERROR, _absl_text(error)) from error
            self._state = "running"

    def push(self, packets: Mapping[str, mp.Packet], timestamp: int) -> None:
        """Add one request's packets at `timestamp` (checked range value) to known graph inputs."""
        stamp = native_timestamp(timestamp)
        with self._lock:
            if self._state != "running":
                raise OvmsStatus(
                    StatusCode.MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM, f"graph is {self._state}, not running"
                )
            for name, packet in packets.items():
                if name not in self.spec.inputs:  # the bindings segfault on unknown names
                    raise OvmsStatus(StatusCode.INVALID_UNEXPECTED_INPUT, f"{name} is unexpected")
                try:
                    self._graph.add_packet_to_input_stream(name, packet, stamp)
                except Exception as error:
                    text = self._add_error(error)
                    raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM, text) from error

    @staticmethod
    def _add_error(error: Exception) -> str:
        return _absl_text(error).replace("\n; ", "\n")

    def close_input_stream(self, name: str) -> None:
        """Close one graph input (a known name only: the bindings segfault on unknown ones). Idempotent."""
        if name not in self.spec.inputs:
            raise ValueError(f"{name!r} is not an input stream of this graph")
        with self._lock:
            if self._state == "running" and name not in self._closed_inputs:
                self._closed_inputs.add(name)
                try:
                    self._graph.close_input_stream(name)
                except Exception as error:  # an error is recorded on the graph; close() reports it
                    log.info('input "%s" not closed: %s (close() reports the graph\'s error)', name, error)

    def has_error(self) -> bool:
        """True once the graph recorded an error (it then accepts nothing more)."""
        return self._state == "running" and self._graph.has_error()

    def wait_until_idle(self) -> None:
        """Let every packet pushed so far be processed (errors are reported by close)."""
        with self._lock:
            if self._state == "running" and not self._graph.has_error():
                try:
                    self._graph.wait_until_idle()
                except Exception as error:  # recorded on the graph; close() reports it
                    log.info("native graph stopped waiting for idle: %s (close() reports the graph's error)", error)

    def close(self) -> OvmsStatus | None:
        """Close every input, wait until done; the graph's error as an OVMS status, or None. Idempotent."""
        with self._lock:
            if self._state != "running":
                return self._error
            self._state = "closing"
            try:
                self._graph.close_all_packet_sources()
                self._graph.wait_until_done()
            except Exception as error:
                self._error = graph_error_status(self._combined_error() or _absl_text(error))
            self._state = "closed"
            self._release_graph()
            return self._error

    def _release_graph(self) -> None:
        """The run is over: the native graph goes now (a traced one once its trace is in memory, then its
        directory).

        Its observers hold our sink, which holds whoever owns this graph: a cycle through C++ that Python's
        gc cannot see, so a graph kept here would stay alive for good, with its threads and its session.
        """
        if self._trace is not None:
            self._trace.read(final=True)
            _release_later(self._graph, self._trace)
        self._graph = None

    def trace_events(self) -> list[TraceEvent]:
        """The trace events recorded so far (Unix µs; [] without tracing): MediaPipe writes them every
        500 ms while the graph runs and the rest when it closes."""
        return self._trace.read() if self._trace is not None else []

    @property
    def trace_node_names(self) -> list[str]:
        """The names of the nodes the trace has seen so far (MediaPipe's node id order)."""
        return list(self._trace.names) if self._trace is not None else []

    def trace(self, origin_us: int) -> Trace | None:
        """The trace so far on µs since `origin_us` (Unix µs), None without tracing."""
        if self._trace is None:
            return None
        return native_trace(self._trace, list(self._trace.top_level.values()), origin_us)

    def _combined_error(self) -> str:
        try:
            return self._graph.get_combined_error_message() if self._graph.has_error() else ""
        except Exception:
            log.warning("MediaPipe's combined error message could not be read; reporting the exception instead",
                        exc_info=True)
            return ""


def _release_later(graph: mp.CalculatorGraph, files: TraceFiles) -> None:
    """Drop a traced graph once its trace writer has left, then remove its trace directory.

    MediaPipe's periodic trace writer sleeps out its interval even after the run ended, and destroying the
    graph joins it with the GIL held: dropping the last reference at once would freeze every Python thread
    for up to the interval (measured: 500 ms). A timer thread drops it after the writer woke up. The
    destroyed graph writes its trace once more, so the directory goes after it.
    """
    holder = [graph]

    def release() -> None:
        holder.clear()
        files.remove()

    timer = threading.Timer(DEFAULT_INTERVAL_USEC / 1e6 + 0.2, release)
    timer.name = "ovms-trace-release"
    timer.daemon = True
    timer.start()


def _absl_text(error: Exception) -> str:
    """An absl-like `CODE: message` text from the wheel's exception classes (ValueError = INVALID_ARGUMENT)."""
    code = "INVALID_ARGUMENT" if isinstance(error, ValueError) else "INTERNAL"
    return f"{code}: {error}"
