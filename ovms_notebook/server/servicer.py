"""The KServe servicer: validate, hand to the runtime, convert back. No graph logic lives here.

Every RPC follows OVMS's observable behaviour
(`src/kfs_frontend/kfs_grpc_inference_service.cpp`). For `ModelStreamInfer`
the handler's own thread is the writer: it sleeps until the session queues
something (a response, an in-band error, the end) or the call is cancelled,
and ends with the session's final status, while a reader thread pushes
requests as they arrive, and stops reading while the outputs waiting for the
client are at their bound (backpressure). Streams are counted against their
own limit, so open streams never take the threads health, metadata and unary
calls need; the stream past the limit gets OVMS's RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc

from ovms_notebook.framework.trace import Trace
from ovms_notebook.models import ModelRepository, model_infer, model_metadata, model_ready
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS, SERVICE_NAME
from ovms_notebook.proto.wire import GRAPH_VERSION, SERVER_NAME, STREAM_TAG_METADATA, TRACE_METADATA
from ovms_notebook.repository.graphs import GraphState, Repository
from ovms_notebook.serving.events import EventLog
from ovms_notebook.serving.session import SessionOptions, StreamSession
from ovms_notebook.serving.unary import run_unary
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

#: Finished streams whose traces are kept (the oldest goes first).
KEPT_TRACES = 16
PLATFORM = "OpenVINO"
#: What OVMS (gRPC's C++ synchronous server) answers a call it has no thread for.
STREAMS_EXHAUSTED = "Server Threadpool Exhausted"
DEFAULT_MAX_STREAMS = 1024
#: How often the graph watch looks for a stream whose graph failed while its client sends nothing.
_WATCH_SECONDS = 0.05
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _abort(context: grpc.ServicerContext, status: OvmsStatus) -> NoReturn:
    """End the RPC with `status` (grpc's `abort` raises; it never returns)."""
    context.abort(status.grpc_code, status.grpc_details)
    raise AssertionError("grpc's ServicerContext.abort returned")


class Servicer:
    """Implements the seven RPCs over a repository; tracks live stream sessions for the server."""

    def __init__(
        self,
        repository: Callable[[], Repository],
        options: SessionOptions,
        events: EventLog,
        version: str,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_infers: int = 32,
    ) -> None:
        self._repository = repository
        self.max_streams = max_streams
        self._infer_slots = threading.BoundedSemaphore(max_infers)
        self._open_calls = 0  # ModelStreamInfer calls in progress, idle ones (no request yet) included
        self._watch: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self.options = options
        self.events = events
        self.version = version
        self._sessions: dict[int, StreamSession] = {}
        self._readers: dict[int, threading.Thread] = {}
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._lock = threading.Lock()

    # -- bookkeeping for the server ---------------------------------------------------------------------------

    @property
    def sessions(self) -> list[StreamSession]:
        """Stream sessions currently open."""
        with self._lock:
            return list(self._sessions.values())

    def session_for(self, client_tag: str) -> StreamSession | None:
        """The open session whose client sent `client_tag` in its metadata, if any."""
        return next((s for s in self.sessions if s.client_tag == client_tag), None)

    def trace_for(self, client_tag: str | None = None) -> Trace | None:
        """The execution trace of the stream whose client sent `client_tag` (None: the stream that ended last).

        An open stream gives what its graph wrote so far, a finished one its whole trace (the last
        `KEPT_TRACES` are kept; a stream without a tag is kept as "stream-<id>"). None when there is none.
        """
        if client_tag is not None:
            session = self.session_for(client_tag)
            if session is not None:
                return session.trace
        with self._lock:
            if client_tag is None:
                return next(reversed(self._traces.values()), None)
            return self._traces.get(client_tag)

    @property
    def traces(self) -> dict[str, Trace]:
        """Traces of finished streams by client tag (or "stream-<id>"), oldest first."""
        with self._lock:
            return dict(self._traces)

    def _keep_trace(self, session: StreamSession) -> None:
        trace = session.trace
        if trace is None:
            return
        with self._lock:
            key = session.client_tag or f"stream-{session.id}"
            self._traces.pop(key, None)
            self._traces[key] = trace
            while len(self._traces) > KEPT_TRACES:
                self._traces.popitem(last=False)

    @property
    def open_calls(self) -> int:
        """ModelStreamInfer calls in progress, including ones that have not sent a request yet."""
        with self._lock:
            return self._open_calls

    def close_all(self, timeout: float) -> list[str]:
        """Finish every open session (all at once, each on its own thread) and wait until each stream delivered
        its outputs and its end, or `timeout` passed; returns what was given up, one line per stream."""
        deadline = time.monotonic() + timeout  # one deadline for all: stop() must not take timeout per stream
        sessions = self.sessions
        finishers = [threading.Thread(target=s.finish, name=f"ovms-stop-{s.id}", daemon=True) for s in sessions]
        for thread in finishers:
            thread.start()
        given_up = []
        for session in sessions:
            if not session.ended.wait(max(0.0, deadline - time.monotonic())):
                state = "graph still closing" if not session.finished.is_set() else "client not reading"
                tag = f", {session.client_tag}" if session.client_tag else ""
                given_up.append(
                    f"stream {session.id} ({session.graph_name}{tag}): {len(session.outbound)} outputs "
                    f"undelivered, {state}"
                )
        for thread in finishers:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            readers = list(self._readers.values())
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        self._stop_watch()
        return given_up

    def cancel_all(self) -> None:
        """Cancel every open session (its graph ends without working off its backlog) and stop the graph watch."""
        for session in self.sessions:
            session.cancel()
        self._stop_watch()

    # -- the graph watch: one thread for every stream ----------------------------------------------------------

    def _start_watch(self) -> None:
        with self._lock:
            if self._watch is not None and self._watch.is_alive():
                return
            self._watch_stop.clear()
            self._watch = threading.Thread(target=self._watch_graphs, name="ovms-graph-watch", daemon=True)
            self._watch.start()

    def _stop_watch(self) -> None:
        self._watch_stop.set()
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None and watch is not threading.current_thread():
            watch.join(5)

    def _watch_graphs(self) -> None:
        """Nudge the writer of a stream whose graph failed (MediaPipe reports errors on the next call only), so
        the stream ends now rather than at the client's next request; ends when no stream is open."""
        nudged: set[int] = set()
        while not self._watch_stop.wait(_WATCH_SECONDS):
            sessions = self.sessions
            if not sessions:
                with self._lock:
                    if not self._sessions:
                        self._watch = None
                        return
            for session in sessions:
                if session.id not in nudged and session.has_error:
                    nudged.add(session.id)
                    session.nudge()
            nudged &= {session.id for session in sessions}

    def handler(self) -> grpc.GenericRpcHandler:
        """A generic handler registering every method under the wire name `inference.GRPCInferenceService`."""
        handlers = {}
        for name, method in METHODS.items():
            factory = grpc.stream_stream_rpc_method_handler if method.streaming else grpc.unary_unary_rpc_method_handler
            handlers[name] = factory(
                getattr(self, name),
                request_deserializer=method.request.FromString,
                response_serializer=method.response.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    # -- server and model status ------------------------------------------------------------------------------

    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=self.version)

    # Models first, then graphs, as OVMS looks servables up (kfs_grpc_inference_service.cpp).

    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        repository = self._repository()
        if request.name in repository.models:
            return _answer(context, model_ready, repository.models, request)
        definition = repository.get(request.name)
        if definition is None:
            _abort(context, OvmsStatus(StatusCode.MODEL_NAME_MISSING))
        return pb.ModelReadyResponse(ready=definition.available)

    def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        repository = self._repository()
        if request.name in repository.models:
            return _answer(context, model_metadata, repository.models, request)
        definition = repository.get(request.name)
        if definition is None:
            _abort(context, OvmsStatus(StatusCode.MODEL_NAME_MISSING))
        try:
            spec = definition.require_available()
        except OvmsStatus as status:
            _abort(context, status)
        response = pb.ModelMetadataResponse(name=definition.name, versions=[GRAPH_VERSION], platform=PLATFORM)
        for name in sorted(spec.inputs):
            response.inputs.add(name=name, datatype="INVALID")
        for name in sorted(spec.outputs):
            response.outputs.add(name=name, datatype="INVALID")
        return response

    # -- inference --------------------------------------------------------------------------------------------

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        # At most `max_infers` calls hold a request, a graph and its outputs at once; the next is refused as a
        # server without a free thread refuses it (the rest of the pool stays for streams and health calls).
        if not self._infer_slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, STREAMS_EXHAUSTED)
        try:
            return self._infer(request, context)
        finally:
            self._infer_slots.release()

    def _infer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        repository = self._repository()
        try:
            if request.model_version:
                _parse_version(request.model_version)
            if request.model_name in repository.models:
                return model_infer(repository.models, request)
            definition, spec = repository.acquire(request.model_name)
            return run_unary(definition.name, spec, request, self.options, self.events)
        except OvmsStatus as status:
            _abort(context, status)
        raise AssertionError("unreachable")

    def ModelStreamInfer(
        self, requests: Iterator[pb.ModelInferRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ModelStreamInferResponse]:
        with self._lock:
            refused = self._open_calls >= self.max_streams
            if not refused:
                self._open_calls += 1
        if refused:
            log.warning("stream refused: %d streams open, the limit (max_streams)", self.max_streams)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, STREAMS_EXHAUSTED)
        try:
            yield from self._stream(requests, context)
        finally:
            with self._lock:
                self._open_calls -= 1

    def _stream(
        self, requests: Iterator[pb.ModelInferRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ModelStreamInferResponse]:
        try:
            first = next(requests)
        except StopIteration:
            _abort(context, OvmsStatus(StatusCode.MEDIAPIPE_UNINITIALIZED_STREAM_CLOSURE))
        except Exception:  # cancelled before the first request: nobody to answer
            return
        try:
            definition, spec = self._repository().acquire(first.model_name)
            metadata = dict(context.invocation_metadata())
            tag, trace = metadata.get(STREAM_TAG_METADATA, ""), _flag(metadata.get(TRACE_METADATA))
            session = StreamSession(definition.name, spec, self.options, self.events, client_tag=str(tag), trace=trace)
            session.open(first)
        except OvmsStatus as status:
            _abort(context, status)
        reader = threading.Thread(
            target=self._read, args=(session, first, requests, context), name=f"ovms-stream-{session.id}", daemon=True
        )
        with self._lock:
            self._sessions[session.id] = session
            self._readers[session.id] = reader
        context.add_callback(session.cancel)  # runs when the call ends; after a normal end it has nothing to do
        reader.start()
        self._start_watch()
        try:
            yield from self._write(session, context)
        finally:
            if not context.is_active():
                session.cancel()
            session.finish()
            session.mark_ended()
            self._keep_trace(session)
            with self._lock:
                self._sessions.pop(session.id, None)
            session.ended.set()

    def _read(
        self,
        session: StreamSession,
        first: pb.ModelInferRequest,
        requests: Iterator[pb.ModelInferRequest],
        context: grpc.ServicerContext,
    ) -> None:
        """Reader thread: push the first request, then every later one until half-close, cancel or graph error;
        while the outputs waiting for the client are at their bound, read nothing (gRPC flow control then
        holds the client back)."""
        try:
            session.handle(first, first=True)
            while not session.has_error and session.wait_for_room():
                request = next(requests, None)
                if request is None:
                    break
                session.handle(request, first=False)
        except Exception as error:  # cancellation surfaces as an exception from the request iterator
            if context.is_active():
                log.exception("stream %s: reading requests failed", session.id)
            else:
                log.debug("stream %s cancelled: %s", session.id, error)
        finally:
            session.finish()
            with self._lock:
                self._readers.pop(session.id, None)

    @staticmethod
    def _write(session: StreamSession, context: grpc.ServicerContext) -> Iterator[pb.ModelStreamInferResponse]:
        """Writer: sleep until an item is queued or the call is cancelled; yield items in order; end with the
        final status."""
        while True:
            item = session.outbound.get()
            if item is None:  # cancelled: the client is gone, or stop() gave up on it
                if context.is_active():
                    context.set_code(grpc.StatusCode.UNAVAILABLE)
                    context.set_details("the server stopped before this stream's outputs were delivered")
                return
            if item.kind == "check":
                if session.has_error:
                    # We do not wait for the client's next request to notice a dead graph.
                    session.finish()
                continue
            if item.kind == "end":
                session.mark_ended()
                if item.status is not None:
                    context.set_code(item.status.grpc_code)
                    context.set_details(item.status.grpc_details)
                return
            yield session.to_response(item)


def _answer(
    context: grpc.ServicerContext,
    rpc: Callable[[ModelRepository, _Request], _Response],
    models: ModelRepository,
    request: _Request,
) -> _Response:
    """A model RPC's response, or the gRPC status of the OvmsStatus it raised."""
    try:
        return rpc(models, request)
    except OvmsStatus as status:
        _abort(context, status)


def _flag(value: object) -> bool | None:
    """A yes/no metadata value: None when absent or not understood."""
    text = str(value).strip().lower() if value is not None else ""
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return None


def _parse_version(version: str) -> int:
    try:
        return int(version)
    except ValueError:
        raise OvmsStatus(StatusCode.MODEL_VERSION_INVALID_FORMAT) from None


__all__ = ["GraphState", "Servicer"]
