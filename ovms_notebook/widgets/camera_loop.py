"""Camera frames through a graph and back: a bounded pipeline on one worker thread.

    loop = CameraLoop(server.address, "face_tracking", input_name="image", reply=camera_widget)
    loop.submit(frame)        # kernel main thread: returns at once; a newer frame replaces a waiting one
    loop.close()

`submit()` keeps one frame waiting (the newest: the one it replaces is answered "drop"). The worker
("ovms-widget-camera") decodes it, sends it on one `StreamClient` with a manual timestamp (the capture
time in microseconds since the stream's first frame, so the graph sees real time), and answers the
browser when the graph answers: shapes to draw (camera_shapes), or the graph's own image. At most
`max_graph_in_flight` frames are in the graph at a time. A frame the graph answers with nothing
(face_detection without a face) is answered empty when a later frame's answer comes or after
`stall` seconds. The stream lives across frames, so a tracker keeps its ids.

Recording: `start_recording()` opens a fresh stream that keeps its whole log, `stop_recording()`
half-closes it (every output delivered) and returns its `Recording`; live frames then go on a new
stream. A recording holds every frame sent, so it is bounded by `max_frames`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import numpy as np

from ovms_notebook.client import LogEntry, Recording, StreamClient
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.camera_shapes import answer_of
from ovms_notebook.widgets.camera_widget import CameraFrame
from ovms_notebook.widgets.render import THREAD_PREFIX

__all__ = ["CameraLoop", "LoopStats", "Replies"]

log = logging.getLogger(__name__)

_LIVE_LOG = 32  # log entries a live stream keeps (requests hold their frames)
_COMMAND_SECONDS = 60.0
_KEEP_LATENCIES = 2000


class Replies(Protocol):
    """Where answers go (a CameraWidget)."""

    def answer(
        self,
        frame_id: int,
        shapes: list[dict[str, Any]] | None = None,
        image: bytes | None = None,
        text: str = "",
        error: bool = False,
        timestamp: int | None = None,
        kernel_ms: float | None = None,
    ) -> None: ...

    def drop(self, frame_id: int) -> None: ...


@dataclass
class _Pending:
    frame_id: int
    timestamp: int
    seq: int
    received: float
    frame: np.ndarray
    client: StreamClient
    sent: float = field(default_factory=time.monotonic)
    outputs: dict[str, object] = field(default_factory=dict)


@dataclass
class LoopStats:
    """Counts since the loop started, and the kernel's own latency (frame received -> answer sent), ms."""

    received: int = 0
    dropped: int = 0
    sent: int = 0
    answered: int = 0
    empty: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP_LATENCIES))

    def percentile(self, q: float) -> float | None:
        """The `q`th percentile of the kernel latencies kept, None before any answer."""
        return float(np.percentile(list(self.latencies_ms), q)) if self.latencies_ms else None


class CameraLoop:
    """Frames (`submit`) -> `graph` at `address` on input stream `input_name` -> `reply.answer()` per frame."""

    def __init__(
        self,
        address: str,
        graph: str,
        *,
        input_name: str,
        reply: Replies,
        outputs_expected: int = 1,
        max_graph_in_flight: int = 2,
        stall: float = 0.5,
        credentials: grpc.ChannelCredentials | None = None,
        on_answer: Callable[[int, dict[str, object], np.ndarray], None] | None = None,
    ) -> None:
        if max_graph_in_flight < 1:
            raise ValueError(f"max_graph_in_flight must be at least 1, got {max_graph_in_flight}")
        if stall <= 0:
            raise ValueError(f"stall must be > 0 seconds, got {stall}")
        self.address, self.graph, self.input_name = address, graph, input_name
        self.reply = reply
        self.outputs_expected = max(1, outputs_expected)
        self.max_graph_in_flight = max_graph_in_flight
        self.stall = stall
        self.credentials = credentials
        self.on_answer = on_answer
        self.stats = LoopStats()
        self.client: StreamClient | None = None
        self.recording: Recording | None = None
        self.latest: tuple[int, dict[str, object], np.ndarray] | None = None
        self.problem = ""
        self._order: list[str] = []
        self._cond = threading.Condition()
        self._slot: tuple[CameraFrame, float] | None = None
        self._answers: deque[tuple[StreamClient, LogEntry]] = deque(maxlen=256)
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque(maxlen=8)
        self._pending: list[_Pending] = []
        self._retired: list[StreamClient] = []
        self._record_limit: int | None = None
        self._recorded = 0
        self._origin: float | None = None
        self._last_timestamp = -1
        self._last_time: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{THREAD_PREFIX}camera-{graph}", daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------------------------------

    def submit(self, frame: CameraFrame) -> None:
        """Queue `frame` (the newest wins: a frame still waiting is dropped and answered "drop"). Never blocks."""
        with self._cond:
            if self._closed:
                replaced: CameraFrame | None = frame
            else:
                replaced = self._slot[0] if self._slot is not None else None
                self._slot = (frame, time.monotonic())
                self.stats.received += 1
                self._cond.notify_all()
        if replaced is not None:
            self.stats.dropped += 1
            self.reply.drop(replaced.id)

    def start_recording(self, max_frames: int = 150) -> None:
        """Record from the next frame on, on a fresh stream (its state starts over), for at most `max_frames`."""
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self._command(lambda: self._begin_recording(max_frames))

    def stop_recording(self) -> Recording:
        """End the recording now (the stream half-closes: every output is in it) and return it.

        After a recording that ended by itself (`max_frames`), returns that one. Raises ValueError when
        nothing was recorded.
        """
        return self._command(self._end_recording)

    @property
    def recording_active(self) -> bool:
        return self._record_limit is not None

    def close(self) -> None:
        """Stop the worker and cancel the streams. Idempotent; waiting frames are answered "drop"."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            slot, self._slot = self._slot, None
            commands = list(self._commands)
            self._commands.clear()
            self._cond.notify_all()
        for _, future in commands:
            future.set_exception(ClientError("the camera loop is closed"))
        if slot is not None:
            self.reply.drop(slot[0].id)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=15)
        for client in {self.client, *self._retired} - {None}:
            if client is not None and not client.ended:
                client.cancel()

    @property
    def threads(self) -> list[threading.Thread]:
        """The worker and the stream readers still alive (for checking that close() ended them)."""
        readers = [getattr(c, "_reader", None) for c in (self.client, *self._retired) if c is not None]
        return [t for t in (self._thread, *readers) if t is not None and t.is_alive()]

    def _command(self, work: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return work()
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise ClientError("the camera loop is closed")
            self._commands.append((work, future))
            self._cond.notify_all()
        return future.result(_COMMAND_SECONDS)

    def _on_entry(self, client: StreamClient, entry: LogEntry) -> None:
        """Client reader thread: queue the answer for the worker; only notifies."""
        with self._cond:
            self._answers.append((client, entry))
            self._cond.notify_all()

    # -- the worker -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._answers and not self._commands and not self._can_send():
                    due = self._next_stall()
                    self._cond.wait(None if due is None else max(0.0, due - time.monotonic()))
                    if due is not None and time.monotonic() >= due:
                        break
                if self._closed:
                    return
                answers = list(self._answers)
                self._answers.clear()
                commands = list(self._commands)
                self._commands.clear()
                slot = None
                if self._can_send():
                    slot, self._slot = self._slot, None
            try:
                for client, entry in answers:
                    self._handle_answer(client, entry)
                self._resolve_stalled()
                for work, future in commands:
                    try:
                        future.set_result(work())
                    except Exception as error:
                        future.set_exception(error)
                if slot is not None:
                    self._handle_frame(*slot)
            except Exception:
                log.exception("camera loop for %r", self.graph)

    def _can_send(self) -> bool:
        return self._slot is not None and len(self._pending) < self.max_graph_in_flight

    def _next_stall(self) -> float | None:
        return min((p.sent + self.stall for p in self._pending), default=None)

    def _stream(self) -> StreamClient:
        if self.client is None or self.client.ended:
            if self.client is not None:
                self._retire(self.client)
            recording = self._record_limit is not None
            client = StreamClient(
                self.address, self.graph, credentials=self.credentials, max_log=None if recording else _LIVE_LOG
            )
            for register in (client.on_response, client.on_error, client.on_end):
                register(functools.partial(self._on_entry, client))
            self.client = client
            self._origin, self._last_timestamp, self._last_time = None, -1, None
        return self.client

    def _retire(self, client: StreamClient) -> None:
        self._retired = [c for c in self._retired if not c.ended] + [client]

    def _timestamp(self, time_ms: float) -> int:
        """Microseconds since the stream's first frame, strictly increasing (MediaPipe needs that)."""
        if self._origin is None:
            self._origin = time_ms
        stamp = max(round((time_ms - self._origin) * 1000), self._last_timestamp + 1)
        self._last_timestamp = stamp
        return stamp

    def _handle_frame(self, frame: CameraFrame, received: float) -> None:
        try:
            pixels = frame.decode()
        except ValueError as error:
            self.stats.errors += 1
            self.stats.answered += 1
            self.reply.answer(frame.id, text=str(error), error=True)
            return
        client = self._stream()
        if self._last_time is not None and frame.time_ms < self._last_time:
            self.stats.dropped += 1  # older than a frame the graph already has: latency over completeness
            self.reply.drop(frame.id)
            return
        self._last_time = frame.time_ms
        timestamp = self._timestamp(frame.time_ms)
        try:
            entry = client.send({self.input_name: pixels}, timestamp=timestamp)
        except (ClientError, ValueError, TypeError) as error:
            self.stats.errors += 1
            self.stats.answered += 1
            self.problem = str(error)
            self.reply.answer(frame.id, text=f"not sent: {error}", error=True)
            return
        self.stats.sent += 1
        self._pending.append(_Pending(frame.id, timestamp, entry.seq, received, pixels, client))
        if self._record_limit is not None:
            self._recorded += 1
            if self._recorded >= self._record_limit:
                self._finish_recording()

    def _handle_answer(self, client: StreamClient, entry: LogEntry) -> None:
        mine = [p for p in self._pending if p.client is client]
        if entry.kind == "response" and entry.timestamp is not None:
            for pending in mine:
                if pending.timestamp < entry.timestamp:
                    self._answer(pending, "no output")
                elif pending.timestamp == entry.timestamp:
                    pending.outputs.update(entry.values)
                    if len(pending.outputs) >= self.outputs_expected:
                        self._answer(pending)
        elif entry.kind == "error":
            self.problem = entry.text
            target = next((p for p in mine if p.seq == entry.request_seq), None)
            if target is not None:
                self.stats.errors += 1
                self._answer(target, entry.text, error=True)
        elif entry.kind == "end":
            failed = entry.code not in (None, "OK") and client is self.client  # not a stream we replaced
            if failed:
                self.problem = f"stream ended: {entry.text}"
            for pending in mine:
                self._answer(pending, f"stream ended: {entry.text}", error=failed)

    def _resolve_stalled(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._pending if now >= p.sent + self.stall]:
            self._answer(pending, "no output")

    def _answer(self, pending: _Pending, note: str = "", error: bool = False) -> None:
        if pending not in self._pending:
            return
        self._pending.remove(pending)
        answer = answer_of(pending.outputs, self._order) if pending.outputs else None
        text = f"@{pending.timestamp} " + (answer.text if answer else note)
        kernel_ms = (time.monotonic() - pending.received) * 1000
        if answer is None:
            self.stats.empty += not error
            self.reply.answer(
                pending.frame_id, text=text, error=error, timestamp=pending.timestamp, kernel_ms=kernel_ms
            )
        else:
            self.reply.answer(
                pending.frame_id, answer.shapes, answer.image, text, timestamp=pending.timestamp, kernel_ms=kernel_ms
            )
            self.latest = (pending.timestamp, dict(pending.outputs), pending.frame)
        self.stats.answered += 1
        self.stats.latencies_ms.append(kernel_ms)
        if self.on_answer is not None:
            try:
                self.on_answer(pending.timestamp, pending.outputs, pending.frame)
            except Exception:
                log.exception("camera on_answer hook")

    # -- recording (worker thread) --------------------------------------------------------------------------

    def _switch_stream(self) -> StreamClient | None:
        """Start the next frame on a fresh stream; returns the old one (still open)."""
        old, self.client = self.client, None
        return old

    def _begin_recording(self, max_frames: int) -> None:
        old = self._switch_stream()
        if old is not None:  # the live stream: nothing of it is kept, so it is cancelled rather than drained
            self._retire(old)
            old.cancel()
        self._record_limit, self._recorded = max_frames, 0
        self.recording = None

    def _finish_recording(self) -> Recording:
        client = self._switch_stream()
        self._record_limit = None
        if client is None:
            raise ValueError("nothing was recorded: no frame came since start_recording()")
        self._retire(client)
        client.close()  # half-close: the recording ends with every output and "OK"
        self.recording = Recording.from_client(client)
        return self.recording

    def _end_recording(self) -> Recording:
        if self._record_limit is not None:
            return self._finish_recording()
        if self.recording is None:
            raise ValueError("nothing was recorded: call start_recording() first")
        return self.recording
