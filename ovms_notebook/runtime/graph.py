"""One running native MediaPipe graph, guarded against the bindings' sharp edges.

The wheel's bindings abort the process on several misuses (notes/): pushing to
an unknown stream, starting twice, observing after start, a callback that
raises. `NativeGraph` is the only code that touches `mp.CalculatorGraph`, and
it rules those out: streams are checked against the parsed spec, the
lifecycle is a one-way state machine, and observer callbacks only enqueue.
MediaPipe runs every observer behind one process-wide mutex, so a callback
that blocked would stall every graph in the kernel.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping

import mediapipe as mp

from ovms_notebook.runtime.convert import native_timestamp
from ovms_notebook.runtime.graphconfig import GraphSpec
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

PacketSink = Callable[[str, mp.Packet], None]


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
    build prints the same without the stray "; " after the newline (spec §2.2).
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

    def __init__(self, spec: GraphSpec, sink: PacketSink, *, bounds: frozenset[str] = frozenset()) -> None:
        """`sink(stream, packet)` gets every output packet; streams in `bounds` also report bound-only updates
        (as empty packets), which the hybrid engine forwards to Python-side nodes."""
        self.spec = spec
        self._sink = sink
        self._lock = threading.Lock()
        self._state = "created"
        self._error: OvmsStatus | None = None
        self._closed_inputs: set[str] = set()
        use_wheel_resources()
        try:
            self._graph = mp.CalculatorGraph(graph_config=spec.config)
        except Exception as error:
            raise OvmsStatus(StatusCode.MEDIAPIPE_GRAPH_INITIALIZATION_ERROR, str(error)) from error
        for name in spec.outputs:
            self._graph.observe_output_stream(name, self._observer(name), observe_timestamp_bounds=name in bounds)

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
                with contextlib.suppress(Exception):  # an error is recorded on the graph; close() reports it
                    self._graph.close_input_stream(name)

    def has_error(self) -> bool:
        """True once the graph recorded an error (it then accepts nothing more)."""
        return self._state == "running" and self._graph.has_error()

    def wait_until_idle(self) -> None:
        """Let every packet pushed so far be processed (errors are reported by close)."""
        with self._lock:
            if self._state == "running" and not self._graph.has_error():
                with contextlib.suppress(Exception):  # recorded on the graph; close() reports it
                    self._graph.wait_until_idle()

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
            return self._error

    def _combined_error(self) -> str:
        try:
            return self._graph.get_combined_error_message() if self._graph.has_error() else ""
        except Exception:
            return ""


def _absl_text(error: Exception) -> str:
    """An absl-like `CODE: message` text from the wheel's exception classes (ValueError = INVALID_ARGUMENT)."""
    code = "INVALID_ARGUMENT" if isinstance(error, ValueError) else "INTERNAL"
    return f"{code}: {error}"


def make_graph(spec: GraphSpec, sink: PacketSink) -> NativeGraph:
    """The right engine for a graph: one native graph, or native + Python halves joined at the cut."""
    if spec.split is None:
        return NativeGraph(spec, sink)
    from ovms_notebook.runtime.hybrid import HybridGraph

    return HybridGraph(spec, sink, spec.split)  # type: ignore[return-value]
