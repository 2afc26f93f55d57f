"""A live camera through a graph: the browser's webcam -> a graph stream -> the answer drawn beside it.

    camera = LiveCamera(server, "face_tracking")     # one call; re-running the cell replaces it
    camera                                           # camera | graph's answer, counts, timeline
    camera.start_recording(max_frames=90)            # ... move in front of the camera ...
    recording = camera.stop_recording()              # a client.Recording: replay it anywhere
    camera.close()                                   # releases the camera, the stream and its threads

The camera is `CameraWidget` (camera_widget.py, an anywidget); frames go through `CameraLoop`
(camera_loop.py) on one `StreamClient` whose state lives across frames, so a tracker keeps its
ids. The answer is drawn in the browser on the frame it belongs to (boxes, landmarks, a tracker's
ids) or replaced by the graph's own image output. With an in-kernel server the timeline under it
shows the stream's newest server events (redrawn at most every `timeline_interval` seconds: drawing
costs the kernel more than a frame).

Everything is drivable from code: `feed(frames)` sends frames through the same path as the
browser's (for a notebook run without a camera, and for tests), `stats` and `latest` say what
happened, `annotated()` draws the newest answer on its frame in the kernel.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import ipywidgets as widgets
import numpy as np
from PIL import Image

from ovms_notebook.client import Recording, model_metadata
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.widgets.camera_loop import CameraLoop
from ovms_notebook.widgets.camera_shapes import is_track_rows
from ovms_notebook.widgets.camera_widget import CameraWidget
from ovms_notebook.widgets.draw import draw_overlays, overlay_items
from ovms_notebook.widgets.lifecycle import Composite, close_all, replace_previous, weakly
from ovms_notebook.widgets.pump import Pump
from ovms_notebook.widgets.timeline import Timeline, records_from_events, records_from_log

__all__ = ["LiveCamera"]

log = logging.getLogger(__name__)

_IMAGE_KINDS = (StreamKind.IMAGE, StreamKind.MP_IMAGE)
_TIMELINE_EVENTS = 200  # newest server events drawn


class LiveCamera(Composite):
    """The browser camera feeding `graph` on `target` (an in-kernel `Server` or an address) live.

    `input_name` is the graph's image input (default: its first IMAGE/MP_IMAGE input stream);
    `resolution` "320x240", "640x480" or "1280x720"; `format` "jpeg" or "raw" (how frames travel to
    the kernel); `max_in_flight` frames at most wait in the browser for an answer and
    `max_graph_in_flight` in the graph. `running=False` leaves the camera off until `start()`.
    """

    def __init__(
        self,
        target: Any,
        graph: str,
        *,
        input_name: str | None = None,
        resolution: str = "640x480",
        format: str = "jpeg",
        max_in_flight: int = 2,
        max_graph_in_flight: int = 2,
        running: bool = True,
        timeline: bool = True,
        timeline_interval: float = 2.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.server = None if isinstance(target, str) else target
        self.address: str = target if isinstance(target, str) else target.address
        self.graph = graph
        self.input_name, outputs = _graph_streams(target, graph, input_name, credentials)
        self._callbacks: list[Callable[[int, dict[str, object], np.ndarray], None]] = []
        self.camera = CameraWidget(running=running, resolution=resolution, format=format, max_in_flight=max_in_flight)
        self.loop = CameraLoop(
            self.address,
            graph,
            input_name=self.input_name,
            reply=self.camera,
            outputs_expected=outputs,
            max_graph_in_flight=max_graph_in_flight,
            credentials=credentials,
            on_answer=weakly(self._on_answer),
        )
        self.camera.on_frame = self.loop.submit
        self.info = widgets.HTML(self._info_html())
        self.timeline = Timeline(title=f"{graph} (camera)", min_interval=timeline_interval) if timeline else None
        self._pump = Pump(
            self._refresh,
            f"camera-view-{graph}",
            min_interval=max(0.5, timeline_interval),
            on_error=lambda text: log.warning("LiveCamera view refresh failed:\n%s", text),
        )
        self._feed_id = 1 << 40  # ids of frames fed from code never meet the browser's
        children: list[widgets.Widget] = [self.camera.box, self.info]
        if self.timeline is not None:
            children.append(self.timeline.box)
        self.box = widgets.VBox(children)
        self._own(_release, self.loop, self._pump, self.timeline, self.camera, self.box)
        replace_previous(("camera", self.address, graph), self)

    # -- control ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Turn the browser camera on (asks for permission the first time)."""
        self.camera.running = True

    def stop(self) -> None:
        """Turn the browser camera off (the stream stays: starting again goes on with the same state)."""
        self.camera.running = False

    def start_recording(self, max_frames: int = 150) -> None:
        """Record what the camera sends from the next frame on, on a fresh stream, for at most `max_frames`."""
        self.loop.start_recording(max_frames)

    def stop_recording(self) -> Recording:
        """The recording (every request the camera sent, every answer, the end): replay it with client.replay."""
        return self.loop.stop_recording()

    def feed(self, frames: Iterable[np.ndarray], fps: float = 30.0, *, wait: bool = True, format: str = "jpeg") -> int:
        """Send RGB uint8 frames as if the camera had: same encoding, same flow control, same stream.

        Frames are stamped `1/fps` s apart. With `wait` each frame waits for the previous one's answer
        (so none is dropped); without it the newest replaces a waiting one, as with a camera. Returns
        how many were handed over.
        """
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        count = 0
        start_ms = time.monotonic() * 1000
        for frame in frames:
            answered = self.loop.stats.answered + self.loop.stats.dropped
            self.camera.send_frame(np.asarray(frame), self._feed_id, start_ms + count * 1000 / fps, format)
            self._feed_id += 1
            count += 1
            if wait:
                self.wait_answered(answered + 1)
        return count

    def wait_answered(self, count: int, timeout: float = 30.0) -> None:
        """Block until `count` frames were answered or dropped in the kernel; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while self.loop.stats.answered + self.loop.stats.dropped < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.loop.stats.answered} of {count} camera frames answered within {timeout} s")
            time.sleep(0.005)

    # -- reading ------------------------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """The kernel's counts and latency (ms, frame received -> answer sent) and the browser's last report."""
        kernel = self.loop.stats
        return {
            "received": kernel.received,
            "dropped_kernel": kernel.dropped,
            "sent": kernel.sent,
            "answered": kernel.answered,
            "empty": kernel.empty,
            "errors": kernel.errors,
            "kernel_p50_ms": kernel.percentile(50),
            "kernel_p99_ms": kernel.percentile(99),
            "browser": dict(self.camera.browser_stats),
        }

    @property
    def camera_state(self) -> str:
        """What the browser said last: "off", "starting", "on" or "error: ..." ("off" until a browser shows
        the widget: a headless run has no camera)."""
        return self.camera.camera_state

    @property
    def latest(self) -> tuple[int, dict[str, object]] | None:
        """(timestamp, outputs) of the newest frame the graph answered."""
        latest = self.loop.latest
        return None if latest is None else (latest[0], latest[1])

    def annotated(self) -> Image.Image | None:
        """The newest answered frame with its answer drawn (the graph's image output if it has one)."""
        latest = self.loop.latest
        if latest is None:
            return None
        _, outputs, frame = latest
        overlays = []
        for index, value in enumerate(outputs.values()):
            if isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[2] in (1, 3, 4):
                frame = value
                continue
            items = overlay_items(value)
            if items is not None:
                overlays.append((index, items))
            elif is_track_rows(value):
                overlays.append((index, _track_detections(np.asarray(value))))
        return draw_overlays(frame, overlays)

    # -- drawing -----------------------------------------------------------------------------------------------

    def on_answer(self, callback: Callable[[int, dict[str, object], np.ndarray], None]) -> None:
        """Call `callback(timestamp, outputs, frame)` for every answered frame (outputs empty when the graph
        answered nothing). It runs on the camera's worker thread: be quick, never print or display."""
        self._callbacks = [*self._callbacks, callback]

    def _on_answer(self, timestamp: int, outputs: dict[str, object], frame: np.ndarray) -> None:
        self._pump.poke()
        for callback in self._callbacks:
            try:
                callback(timestamp, outputs, frame)
            except Exception:
                log.exception("LiveCamera on_answer callback %r", callback)

    def _refresh(self) -> None:
        self.info.value = self._info_html()
        client = self.loop.client
        if self.timeline is None or client is None:
            return
        if self.server is not None:
            events = self.server.events.snapshot(client_tag=client.tag)[-_TIMELINE_EVENTS:]
            self.timeline.update(records_from_events(events))
        else:
            self.timeline.update(records_from_log(client.log))

    def _info_html(self) -> str:
        stats = self.loop.stats
        p50 = stats.percentile(50)
        latency = "—" if p50 is None else f"{p50:.0f} ms"
        recording = " · <b>recording</b>" if self.loop.recording_active else ""
        problem = f' · <span style="color:#b91c1c">{html.escape(self.loop.problem)}</span>' if self.loop.problem else ""
        return (
            f'<span style="font-size:12px">graph <code>{html.escape(self.graph)}</code> '
            f"(input <code>{html.escape(self.input_name)}</code>) at <code>{html.escape(self.address)}</code>"
            f" · kernel: {stats.received} frames, {stats.answered} answered, {stats.dropped} dropped, "
            f"latency p50 {latency}{recording}{problem}</span>"
        )

    # -- life ---------------------------------------------------------------------------------------------------

    @property
    def threads(self) -> list[threading.Thread]:
        """Threads this camera started that are still alive."""
        pump = self._pump._thread
        return [*self.loop.threads, *([pump] if pump is not None and pump.is_alive() else [])]

    def __repr__(self) -> str:
        stats = self.loop.stats
        return (
            f"<LiveCamera {self.graph!r} at {self.address}: {stats.received} frames, {stats.answered} answered, "
            f"{stats.dropped} dropped{', closed' if self.closed else ''}>"
        )


def _graph_streams(
    target: Any, graph: str, input_name: str | None, credentials: grpc.ChannelCredentials | None
) -> tuple[str, int]:
    """(the image input stream to feed, how many outputs a frame's answer has)."""
    if not isinstance(target, str):
        definition = next((d for d in target.graphs if d.name == graph), None)
        if definition is None:
            names = ", ".join(d.name for d in target.graphs) or "none"
            raise ValueError(f"{graph!r} is not a graph of this server; it has {names}")
        spec = definition.spec
        if spec is None:
            raise ValueError(f"{graph!r} cannot be served: {getattr(definition, 'error', 'no stream specs')}")
        inputs = {name: s.kind for name, s in spec.inputs.items()}
        outputs = len(spec.outputs)
    else:
        metadata = model_metadata(target, graph, credentials=credentials, timeout=5.0)
        inputs = {t["name"]: StreamKind.UNKNOWN for t in metadata["inputs"]}
        outputs = len(metadata["outputs"])
    if input_name is not None:
        if input_name not in inputs:
            raise ValueError(f"{graph!r} has no input stream {input_name!r}; it has {', '.join(inputs) or 'none'}")
        return input_name, outputs
    images = [name for name, kind in inputs.items() if kind in _IMAGE_KINDS]
    if images:
        return images[0], outputs
    if len(inputs) == 1:
        return next(iter(inputs)), outputs
    raise ValueError(
        f"{graph!r} has no IMAGE input stream to feed camera frames into (inputs: "
        f"{', '.join(inputs) or 'none'}); pass input_name"
    )


def _track_detections(rows: np.ndarray) -> list[Any]:
    """A tracker's [N, 6] rows as Detection messages (boxes labelled with their id), for draw_overlays."""
    from mediapipe.framework.formats import detection_pb2

    detections = []
    for track_id, xmin, ymin, width, height, score in rows.astype(float).tolist():
        detection = detection_pb2.Detection(label=[f"id {int(track_id)}"], score=[score])
        box = detection.location_data.relative_bounding_box
        box.xmin, box.ymin, box.width, box.height = xmin, ymin, width, height
        detection.location_data.format = detection.location_data.RELATIVE_BOUNDING_BOX
        detections.append(detection)
    return detections


def _release(loop: CameraLoop, pump: Pump, timeline: Timeline | None, camera: CameraWidget, box: widgets.Box) -> None:
    """The camera's finalizer: the loop's worker and streams end, the view's thread is joined, and the widgets
    close (the browser stops the camera when its view goes)."""
    loop.close()
    pump.close()
    if timeline is not None:
        timeline.close()
    camera.close()
    close_all([box])
