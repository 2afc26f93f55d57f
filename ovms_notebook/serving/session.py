"""A graph instance serving one stream (or one unary request) with OVMS's semantics.

`StreamSession` knows nothing of gRPC: the servicer hands it requests from a
reader thread and takes `Outbound` items from its queue in a writer thread, so
outputs flow whenever the graph emits them. In-band errors, responses and the
final status all travel through that one queue, in the order they happened.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

import mediapipe as mp

from ovms_notebook.codec import encode_output
from ovms_notebook.engine.engines import GraphEngine, make_graph
from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.framework.timestamps import TimestampMode, TimestampPolicy
from ovms_notebook.framework.trace import Trace
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.wire import ACCEPTED_VERSIONS, GRAPH_VERSION, TIMESTAMP_PARAMETER
from ovms_notebook.serving.events import EventLog, StreamEvent, next_stream_id
from ovms_notebook.serving.outbox import DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_PENDING_OUTPUTS, Outbox, check_bound
from ovms_notebook.serving.requests import check_increasing, decode_packets, side_packets
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

FIRST = "partial deserialization of first request"
SUBSEQUENT = "partial deserialization of subsequent requests"
VALIDATE = "validate subsequent requests"
TimestampCheck = Literal["strict", "mediapipe"]
TIMESTAMP_CHECKS: tuple[str, ...] = ("strict", "mediapipe")


@dataclass(frozen=True)
class SessionOptions:
    """Per-server choices where we differ from, or follow, a given OVMS (spec README)."""

    timestamps: TimestampMode = "counter"
    timestamp_check: TimestampCheck = "strict"
    #: Record every stream's execution trace (a client can also ask per stream, see `StreamSession`).
    trace: bool = False
    #: Outputs of one stream waiting for its client, at most (count, and about that many bytes): at the bound
    #: the stream's requests are not read until the client takes some (backpressure; nothing is dropped).
    max_pending_outputs: int = DEFAULT_MAX_PENDING_OUTPUTS
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES

    def __post_init__(self) -> None:
        TimestampPolicy(self.timestamps)  # validates the mode
        check_bound("max_pending_outputs", self.max_pending_outputs)
        check_bound("max_pending_bytes", self.max_pending_bytes)
        if self.timestamp_check not in TIMESTAMP_CHECKS:
            raise ValueError(
                f"timestamp_check must be one of {', '.join(TIMESTAMP_CHECKS)}, got {self.timestamp_check!r}"
            )


@dataclass(frozen=True)
class Outbound:
    """An item for the writer: a response, an in-band error, the end with its final status, or a nudge to
    check the graph (it failed while no request came)."""

    kind: Literal["packet", "error", "end", "check"]
    stream: str = ""
    packet: mp.Packet | None = None
    text: str = ""
    status: OvmsStatus | None = None


def output_response(
    graph: str, stream: str, packet: mp.Packet, response: pb.ModelInferResponse | None = None
) -> pb.ModelInferResponse:
    """One output packet as OVMS serializes it: one output, raw bytes, name, version "1", timestamp.

    Fills `response` in place when given (the writer passes the one inside its stream message: no copy).
    """
    tensor, raw = encode_output(stream, packet)
    if response is None:
        response = pb.ModelInferResponse()
    response.model_name, response.model_version = graph, GRAPH_VERSION
    response.outputs.append(tensor)
    response.raw_output_contents.append(raw)
    response.parameters[TIMESTAMP_PARAMETER].int64_param = packet.timestamp.value
    return response


class StreamSession:
    """One stream's graph instance: open with the first request, handle each request, finish once."""

    def __init__(
        self,
        graph_name: str,
        spec: GraphSpec,
        options: SessionOptions,
        events: EventLog | None = None,
        client_tag: str = "",
        trace: bool | None = None,
    ) -> None:
        """`trace` records the graph's execution trace (None: as `options.trace` says); see `trace`."""
        self.graph_name = graph_name
        self.tracing = options.trace if trace is None else trace
        self.opened_us = 0
        self._trace: Trace | None = None
        self.client_tag = client_tag
        self.spec = spec
        self.options = options
        self.id = next_stream_id()
        self.outbound: Outbox[Outbound] = Outbox(options.max_pending_outputs, options.max_pending_bytes)
        self._sizes: dict[str, int] = {}  # bytes of the last response per output stream: a queued one's estimate
        self.cancelled = False
        self.closing = False  # finish() began: read no more requests
        self._events = events
        self._policy = TimestampPolicy(options.timestamps)
        self._last: dict[str, int] = {}
        self._graph: GraphEngine | None = None
        self._finish_lock = threading.Lock()
        self._final: OvmsStatus | None = None
        self._end_logged = False
        self.finished = threading.Event()
        self.ended = threading.Event()  # set by the server once the stream's last message and status went out

    # -- life -------------------------------------------------------------------------------------------------

    def open(self, first: pb.ModelInferRequest) -> None:
        """Build and start the graph with side packets from the first request's parameters."""
        packets = side_packets(first.parameters)
        self.opened_us = time.time_ns() // 1000
        self._graph = make_graph(self.spec, self._on_packet, trace=self.tracing)
        self._graph.start(packets)
        self._event("open", detail=self.graph_name)

    def _on_packet(self, stream: str, packet: mp.Packet) -> None:
        # Runs on a MediaPipe thread behind the process-wide observer mutex: enqueue only, never block.
        self.outbound.put(Outbound("packet", stream=stream, packet=packet), self._sizes.get(stream, 0))

    def handle(self, request: pb.ModelInferRequest, first: bool) -> None:
        """Validate and push one request; failures become in-band errors, the stream lives on."""
        if not first:
            if request.model_name != self.graph_name:
                return self._reject(OvmsStatus(StatusCode.MEDIAPIPE_INCORRECT_SERVABLE_NAME), VALIDATE)
            if request.model_version not in ACCEPTED_VERSIONS:
                return self._reject(OvmsStatus(StatusCode.MEDIAPIPE_INCORRECT_SERVABLE_VERSION), VALIDATE)
        context = FIRST if first else SUBSEQUENT
        try:
            self.push(request)
        except OvmsStatus as status:
            self._reject(status, context)
        return None

    def push(self, request: pb.ModelInferRequest) -> int:
        """Push a request's packets at its timestamp; returns the timestamp. Raises OvmsStatus."""
        assert self._graph is not None, "open() first"
        timestamp, manual = self._policy.resolve(request.parameters)
        packets = decode_packets(self.spec, request)
        names = list(packets)
        try:
            check_increasing(self._last, names, timestamp)
        except OvmsStatus:
            if self.options.timestamp_check == "strict":
                raise
            # OVMS-exact: MediaPipe itself fails the graph. Let earlier packets finish first so
            # their outputs are delivered before the stream ends, as they would be on a quiet OVMS.
            self._graph.wait_until_idle()
        self._graph.push(packets, timestamp)
        self._policy.commit(timestamp)
        for name in names:
            self._last[name] = timestamp
        self._event("request", timestamp=timestamp, streams=tuple(names), manual=manual)
        return timestamp

    def _reject(self, status: OvmsStatus, context: str) -> None:
        text = status.in_band(context)
        self._event("error", detail=text)
        self.outbound.put(Outbound("error", text=text))

    @property
    def has_error(self) -> bool:
        """True once the graph is in error: the stream should end."""
        return self._graph is not None and self._graph.has_error()

    def next_timestamp(self) -> int:
        """The timestamp an automatic request would get next."""
        return self._policy.peek()

    def wait_for_room(self) -> bool:
        """Wait while the outputs waiting for the client are at their bound; False once the stream is over
        (finished or cancelled): read no more requests then."""
        while not self.closing:
            if self.outbound.wait_for_room(timeout=1.0):
                return not self.closing
            if self.outbound.closed:
                return False
        return False

    def cancel(self) -> None:
        """The client is gone: drop what waits for it, wake the reader and writer, and let the graph end
        without working off its backlog (`finish()` still closes it)."""
        if self.cancelled:
            return
        self.cancelled = True
        dropped = self.outbound.close()
        cancel = getattr(self._graph, "cancel", None)
        if cancel is not None:
            cancel()
        log.debug("stream %s cancelled with %d outputs undelivered", self.id, dropped)

    def nudge(self) -> None:
        """Wake the writer to look at the graph (it failed without a request to notice it)."""
        self.outbound.put(Outbound("check"))

    def finish(self) -> OvmsStatus | None:
        """Close every input, drain the graph, then queue the end. Only the first call does work."""
        self.closing = True
        with self._finish_lock:
            if self.finished.is_set():
                return self._final
            if self._graph is not None:
                self._final = self._graph.close()
                self._trace = self._read_trace()
            self.finished.set()
        self.outbound.put(Outbound("end", status=self._final))
        return self._final

    @property
    def trace(self) -> Trace | None:
        """The execution trace (time 0 = when the stream opened): complete once the stream finished, what was
        written so far while it runs (MediaPipe writes every 500 ms); None for a stream without tracing."""
        if self.finished.is_set():
            return self._trace
        return self._read_trace()

    def _read_trace(self) -> Trace | None:
        if not self.tracing or self._graph is None:
            return None
        try:
            return self._graph.trace(self.opened_us)
        except Exception:  # a trace that cannot be read must not fail the stream
            log.exception("stream %s: reading the execution trace failed", self.id)
            return None

    def mark_ended(self) -> None:
        """Record the end on the event log, after the writer sent every output (idempotent)."""
        with self._finish_lock:
            if self._end_logged:
                return
            self._end_logged = True
        self._event("end", detail=self._final.text if self._final else "OK")

    def _event(self, kind: str, **fields: object) -> None:
        if self._events is not None:
            event = StreamEvent(kind, self.id, self.graph_name, client_tag=self.client_tag, **fields)  # type: ignore[arg-type]
            self._events.append(event)

    def to_response(self, item: Outbound) -> pb.ModelStreamInferResponse:
        """The message for a queued packet or in-band error (called by the writer, off MediaPipe's threads)."""
        if item.kind == "error":
            return pb.ModelStreamInferResponse(error_message=item.text)
        assert item.packet is not None
        message = pb.ModelStreamInferResponse()
        try:
            output_response(self.graph_name, item.stream, item.packet, message.infer_response)
            self._sizes[item.stream] = len(message.infer_response.raw_output_contents[-1])
        except OvmsStatus as status:
            # OVMS would fail the graph here; we keep the stream and say which output could not travel.
            text = f"{status.text}; serialize output {item.stream}"
            self._event("error", timestamp=item.packet.timestamp.value, streams=(item.stream,), detail=text)
            return pb.ModelStreamInferResponse(error_message=text)
        self._event("output", timestamp=item.packet.timestamp.value, streams=(item.stream,))
        return message
