"""The camera as a widget: the browser's getUserMedia camera, frames to the kernel as binary comm buffers.

`CameraWidget` is an anywidget whose browser half (camera.js, shipped beside this module) opens the
camera with a device picker and a resolution choice, and sends each frame as one custom comm message
with the frame as a binary buffer (JPEG by default, or raw RGBA). It knows nothing of graphs: every
frame goes to `on_frame(frame)`, which must return at once, and `answer()` / `drop()` send the
kernel's reply that frees the frame's slot in the browser.

The kernel receives comm messages on its main thread, the thread that runs cells; the handler here
only checks the message and hands it on (no decoding), so the camera never holds up a cell.

Flow control lives in the browser: at most `max_in_flight` frames wait for a reply; a camera frame
that comes while every slot is taken replaces the one waiting, and is counted as dropped. What the
browser counted arrives in `browser_stats` (twice a second).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import cv2
import numpy as np
import traitlets

__all__ = ["FORMATS", "RESOLUTIONS", "CameraFrame", "CameraWidget"]

log = logging.getLogger(__name__)

_ESM = (Path(__file__).with_name("camera.js")).read_text()
#: The resolutions the browser offers (it asks the camera for them as "ideal" sizes).
RESOLUTIONS = ("320x240", "640x480", "1280x720")
#: How frames travel: JPEG from the canvas encoder, or the canvas's raw RGBA bytes.
FORMATS = ("jpeg", "raw")
_MAX_SIDE = 4096


@dataclass
class CameraFrame:
    """One frame as the browser sent it: its id, capture time (ms, the page's clock), size, format, bytes."""

    id: int
    time_ms: float
    width: int
    height: int
    format: str
    data: bytes | memoryview

    def decode(self) -> np.ndarray:
        """The frame as an RGB uint8 [height, width, 3] array; ValueError saying what came when it is not one."""
        buffer = np.frombuffer(self.data, dtype=np.uint8)
        if self.format == "raw":
            expected = self.width * self.height * 4
            if buffer.size != expected:
                raise ValueError(
                    f"a raw {self.width}x{self.height} RGBA frame must have {expected} bytes, got {buffer.size}"
                )
            return np.ascontiguousarray(buffer.reshape(self.height, self.width, 4)[:, :, :3])
        picture = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        if picture is None:
            raise ValueError(
                f"frame {self.id} is not a JPEG picture ({buffer.size} bytes starting {bytes(buffer[:4]).hex()})"
            )
        if picture.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame {self.id} says {self.width}x{self.height}, its JPEG is {picture.shape[1]}x{picture.shape[0]}"
            )
        return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def frame_from_message(content: object, buffers: list[Any]) -> CameraFrame:
    """Check one "frame" message and its buffer; ValueError saying what was expected and what came."""
    if not isinstance(content, dict):
        raise ValueError(f"a camera message must be an object, got {type(content).__name__}")
    frame_id, time_ms = content.get("id"), content.get("t")
    width, height, kind = content.get("width"), content.get("height"), content.get("format")
    if not isinstance(frame_id, int) or isinstance(frame_id, bool) or frame_id < 0:
        raise ValueError(f"a camera frame needs a non-negative integer id, got {frame_id!r}")
    if not isinstance(time_ms, int | float) or isinstance(time_ms, bool) or not math.isfinite(time_ms):
        raise ValueError(f"camera frame {frame_id} needs a finite capture time t (ms), got {time_ms!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_SIDE:
            raise ValueError(f"camera frame {frame_id}: {name} must be an integer from 1 to {_MAX_SIDE}, got {value!r}")
    if kind not in FORMATS:
        raise ValueError(f"camera frame {frame_id}: format must be one of {FORMATS}, got {kind!r}")
    if len(buffers) != 1:
        raise ValueError(f"camera frame {frame_id} must come with one binary buffer, got {len(buffers)}")
    return CameraFrame(frame_id, float(time_ms), width, height, kind, buffers[0])  # type: ignore[arg-type]


class CameraWidget(anywidget.AnyWidget):
    """The browser camera: `running` starts and stops it, `device_id` picks a camera (`devices` lists what
    the browser found), `resolution` asks for a size, `format` says how frames travel ("jpeg" or "raw"),
    `max_in_flight` bounds the frames waiting for a reply. `camera_state` ("off", "starting", "on",
    "error: ...") and `frame_size` come back from the browser, `browser_stats` its counts and latencies.
    """

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    key = traitlets.Unicode("").tag(sync=True)
    running = traitlets.Bool(True).tag(sync=True)
    device_id = traitlets.Unicode("").tag(sync=True)
    devices = traitlets.List(traitlets.Dict()).tag(sync=True)
    resolution = traitlets.Unicode("640x480").tag(sync=True)
    format = traitlets.Unicode("jpeg").tag(sync=True)
    quality = traitlets.Float(0.8).tag(sync=True)
    max_in_flight = traitlets.Int(2).tag(sync=True)
    camera_state = traitlets.Unicode("off").tag(sync=True)
    frame_size = traitlets.List(traitlets.Int()).tag(sync=True)
    browser_stats = traitlets.Dict().tag(sync=True)

    def __init__(self, on_frame: Callable[[CameraFrame], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.key:
            self.key = self.model_id
        self.on_frame = on_frame
        self.kernel_dropped = 0
        self.received = 0
        self.rejected: list[str] = []
        self.on_msg(self._on_message)

    @traitlets.validate("resolution")
    def _check_resolution(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value not in RESOLUTIONS:
            raise traitlets.TraitError(f"resolution must be one of {RESOLUTIONS}, got {value!r}")
        return str(value)

    @traitlets.validate("format")
    def _check_format(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] not in FORMATS:
            raise traitlets.TraitError(f"format must be one of {FORMATS}, got {proposal['value']!r}")
        return str(proposal["value"])

    @traitlets.validate("max_in_flight")
    def _check_in_flight(self, proposal: dict[str, Any]) -> int:
        if not 1 <= proposal["value"] <= 8:
            raise traitlets.TraitError(f"max_in_flight must be from 1 to 8, got {proposal['value']!r}")
        return int(proposal["value"])

    @traitlets.validate("quality")
    def _check_quality(self, proposal: dict[str, Any]) -> float:
        if not 0.1 <= proposal["value"] <= 1.0:
            raise traitlets.TraitError(f"quality must be from 0.1 to 1.0, got {proposal['value']!r}")
        return float(proposal["value"])

    def _on_message(self, _widget: object, content: object, buffers: list[Any]) -> None:
        """Kernel main thread: check the frame and hand it on; never decode or wait here."""
        if not isinstance(content, dict) or content.get("type") != "frame":
            return
        try:
            frame = frame_from_message(content, buffers)
        except ValueError as error:
            self.rejected = [*self.rejected[-9:], str(error)]
            log.warning("camera: %s", error)
            frame_id = content.get("id")
            if isinstance(frame_id, int):
                self.answer(frame_id, text=str(error), error=True)
            return
        self.received += 1
        if self.on_frame is None:
            self.answer(frame.id, text="no graph: frames are not sent anywhere")
            return
        self.on_frame(frame)

    def answer(
        self,
        frame_id: int,
        shapes: list[dict[str, Any]] | None = None,
        image: bytes | None = None,
        text: str = "",
        error: bool = False,
        timestamp: int | None = None,
        kernel_ms: float | None = None,
    ) -> None:
        """Reply to frame `frame_id`: shapes to draw on it, or the graph's image (JPEG) to show instead;
        `kernel_ms` is how long the frame spent in the kernel (shown beside the browser's own latency)."""
        content = {
            "type": "result",
            "id": frame_id,
            "shapes": shapes or [],
            "image": image is not None,
            "text": text,
            "error": error,
            "timestamp": timestamp,
            "kernel_dropped": self.kernel_dropped,
            "kernel_ms": kernel_ms,
        }
        self.send(content, [image] if image is not None else None)

    def drop(self, frame_id: int) -> None:
        """Reply that frame `frame_id` was dropped in the kernel (a newer one replaced it)."""
        self.kernel_dropped += 1
        self.send({"type": "drop", "id": frame_id, "kernel_dropped": self.kernel_dropped})

    def send_frame(self, frame: np.ndarray, frame_id: int, time_ms: float, format: str = "jpeg") -> None:
        """Hand a frame to the kernel half as if the browser had sent it (for code and tests; RGB uint8).

        It goes through the same checks and the same `on_frame` as a camera frame; the reply goes to the
        browser like any other.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame must be an RGB uint8 [height, width, 3] array, got {frame.dtype} {frame.shape}")
        if format == "raw":
            rgba = np.concatenate([frame, np.full((*frame.shape[:2], 1), 255, np.uint8)], axis=2)
            data: bytes = rgba.tobytes()
        else:
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise ValueError(f"OpenCV could not encode a {frame.shape} frame as JPEG")
            data = encoded.tobytes()
        content = {
            "type": "frame",
            "id": frame_id,
            "t": time_ms,
            "width": frame.shape[1],
            "height": frame.shape[0],
            "format": format,
        }
        self._on_message(self, content, [memoryview(data)])
