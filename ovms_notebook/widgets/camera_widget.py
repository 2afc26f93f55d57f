"""The camera as a widget: the browser's getUserMedia camera, frames to the kernel as binary comm buffers.

`CameraWidget` owns an anywidget model whose browser half (camera.js, shipped beside this module) opens the
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
import ipywidgets as widgets
import numpy as np
import traitlets

from ovms_notebook.widgets.lifecycle import Composite, close_all, weakly

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


class _Synced:
    """A trait of the camera's anywidget model, read and set through the composite."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.model, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj._check(self.name, value)
        setattr(obj.model, self.name, value)


def _camera_model(values: dict[str, Any]) -> anywidget.AnyWidget:
    """The anywidget model the browser half (camera.js) renders: a plain AnyWidget with the camera's traits.

    It is not subclassed (the package's widgets compose ipywidgets rather than extend them): the traits are
    added to one instance, which ipywidgets syncs like declared ones.
    """
    model = anywidget.AnyWidget(_esm=_ESM)
    with model.hold_sync():
        model.add_traits(
            key=traitlets.Unicode("").tag(sync=True),
            running=traitlets.Bool(True).tag(sync=True),
            device_id=traitlets.Unicode("").tag(sync=True),
            devices=traitlets.List(traitlets.Dict()).tag(sync=True),
            resolution=traitlets.Enum(RESOLUTIONS, "640x480").tag(sync=True),
            format=traitlets.Enum(FORMATS, "jpeg").tag(sync=True),
            quality=traitlets.Float(0.8, min=0.1, max=1.0).tag(sync=True),
            max_in_flight=traitlets.Int(2, min=1, max=8).tag(sync=True),
            camera_state=traitlets.Unicode("off").tag(sync=True),
            frame_size=traitlets.List(traitlets.Int()).tag(sync=True),
            browser_stats=traitlets.Dict().tag(sync=True),
        )
        model.key = model.model_id
        for name, value in values.items():
            setattr(model, name, value)
    return model


class CameraWidget(Composite):
    """The browser camera: `running` starts and stops it, `device_id` picks a camera (`devices` lists what
    the browser found), `resolution` asks for a size, `format` says how frames travel ("jpeg" or "raw"),
    `max_in_flight` bounds the frames waiting for a reply. `camera_state` ("off", "starting", "on",
    "error: ...") and `frame_size` come back from the browser, `browser_stats` its counts and latencies.
    `model` is the anywidget the browser renders; `box` shows it.
    """

    key = _Synced()
    running = _Synced()
    device_id = _Synced()
    devices = _Synced()
    resolution = _Synced()
    format = _Synced()
    quality = _Synced()
    max_in_flight = _Synced()
    camera_state = _Synced()
    frame_size = _Synced()
    browser_stats = _Synced()

    def __init__(self, on_frame: Callable[[CameraFrame], None] | None = None, **values: Any) -> None:
        for name, value in values.items():
            if not isinstance(getattr(type(self), name, None), _Synced):
                raise TypeError(f"CameraWidget has no setting {name!r}")
            self._check(name, value)
        self.on_frame = on_frame
        self.kernel_dropped = 0
        self.received = 0
        self.rejected: list[str] = []
        self.model = _camera_model(values)
        self.box = widgets.VBox([self.model])
        self.model.on_msg(weakly(self._on_message))
        self._own(close_all, [self.box])

    @staticmethod
    def _check(name: str, value: Any) -> None:
        """ValueError saying what was expected for the settings a person picks."""
        if name == "resolution" and value not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {value!r}")
        if name == "format" and value not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {value!r}")
        if name == "max_in_flight" and (not isinstance(value, int) or not 1 <= value <= 8):
            raise ValueError(f"max_in_flight must be an integer from 1 to 8, got {value!r}")
        if name == "quality" and (not isinstance(value, int | float) or not 0.1 <= value <= 1.0):
            raise ValueError(f"quality must be from 0.1 to 1.0, got {value!r}")

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
        self.model.send(content, [image] if image is not None else None)

    def drop(self, frame_id: int) -> None:
        """Reply that frame `frame_id` was dropped in the kernel (a newer one replaced it)."""
        self.kernel_dropped += 1
        self.model.send({"type": "drop", "id": frame_id, "kernel_dropped": self.kernel_dropped})

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
        self._on_message(self.model, content, [memoryview(data)])
