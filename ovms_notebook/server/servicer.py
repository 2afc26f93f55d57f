"""The KServe servicer: validate, hand to the runtime, convert back. No graph logic lives here.

Every RPC follows OVMS's observable behaviour (`src/kfs_frontend/kfs_grpc_inference_service.cpp`). For
`ModelStreamInfer` the handler's own thread is the writer: it yields whatever
the session queues (responses, in-band errors) and ends with the session's
final status, while a reader thread pushes requests as they arrive.
"""

from __future__ import annotations

import logging
import queue
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
_POLL_SECONDS = 0.05
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
    ) -> None:
        self._repository = repository
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

    def close_all(self, timeout: float) -> None:
        """Finish every open session and join its reader (server stop)."""
        for session in self.sessions:
            session.finish()
        with self._lock:
            readers = list(self._readers.values())
        deadline = time.monotonic() + timeout  # one deadline for all: stop() must not take timeout per stream
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))

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
        reader.start()
        try:
            yield from self._write(session, context)
        finally:
            session.finish()
            session.mark_ended()
            self._keep_trace(session)
            with self._lock:
                self._sessions.pop(session.id, None)

    def _read(
        self,
        session: StreamSession,
        first: pb.ModelInferRequest,
        requests: Iterator[pb.ModelInferRequest],
        context: grpc.ServicerContext,
    ) -> None:
        """Reader thread: push the first request, then every later one until half-close, cancel or graph error."""
        try:
            session.handle(first, first=True)
            if not session.has_error:
                for request in requests:
                    session.handle(request, first=False)
                    if session.has_error:
                        break
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
        """Writer: yield queued items as they come; end with the final status."""
        while True:
            try:
                item = session.outbound.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not context.is_active():
                    return
                if session.has_error:
                    # We do not wait for the client's next request to notice a dead graph (spec README).
                    session.finish()
                continue
            if item.kind == "end":
                session.mark_ended()
                if item.status is not None:
                    context.set_code(item.status.grpc_code)
                    context.set_details(item.status.grpc_details)
                return
            yield session.to_response(item)


def _answer(context: grpc.ServicerContext, rpc: Callable[[ModelRepository, _Request], _Response],
            models: ModelRepository, request: _Request) -> _Response:
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
