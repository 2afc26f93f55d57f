"""A graph's outputs for one camera frame as what the browser draws: shapes, an image, a line of text.

The camera view draws the answer itself on the frame it kept (widgets/camera.js), so the kernel sends
only geometry: detections become boxes (with their keypoints), landmark lists points (with the pose
or hand skeleton), normalized rects outlines, and a tracker's FP32 [N, 6] rows (id, xmin, ymin,
width, height, score: the face_tracking graph's "tracks") boxes labelled with their id. An image
output is the graph's own picture and goes as JPEG bytes instead of the input frame. Everything else
is summarized as text. Coordinates stay relative (0..1), as the graphs give them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ovms_notebook.widgets.draw import _skeletons, is_image, overlay_items, summarize

__all__ = ["Answer", "answer_of", "is_track_rows", "jpeg_bytes", "shapes_of"]

#: Columns of a tracker's rows (the face_tracking graph's "tracks" output).
TRACK_COLUMNS = 6
_JPEG_QUALITY = 80


@dataclass
class Answer:
    """What the browser gets for one frame: shapes (JSON), the graph's image (JPEG) or None, a text line."""

    shapes: list[dict[str, Any]] = field(default_factory=list)
    image: bytes | None = None
    text: str = ""


def is_track_rows(value: object) -> bool:
    """A float [N, 6] array whose box columns lie within 0..1 (N may be 0): a tracker's output."""
    if not isinstance(value, np.ndarray) or value.ndim != 2 or value.shape[1] != TRACK_COLUMNS:
        return False
    if value.dtype.kind != "f":
        return False
    boxes = value[:, 1:5]
    return bool(np.all(np.isfinite(boxes)) and np.all(boxes >= -0.5) and np.all(boxes <= 1.5))


def shapes_of(value: object, colour: int) -> list[dict[str, Any]] | None:
    """The shapes of one output value, or None when it is nothing to draw on a frame."""
    if is_track_rows(value):
        rows = np.asarray(value, dtype=np.float64).tolist()
        return [
            {
                "kind": "box",
                "colour": colour,
                "x": r[1],
                "y": r[2],
                "w": r[3],
                "h": r[4],
                "label": f"id {int(r[0])} {r[5]:.2f}",
                "id": int(r[0]),
            }
            for r in rows
        ]
    items = overlay_items(value)
    if items is None:
        return None
    shapes: list[dict[str, Any]] = []
    for item in items:
        name = item.DESCRIPTOR.full_name
        if name == "mediapipe.Detection":
            shapes.append(_detection(item, colour))
        elif name == "mediapipe.NormalizedLandmarkList":
            points = [[p.x, p.y] for p in item.landmark]
            edges = [list(edge) for edge in _skeletons().get(len(points), ())]
            shapes.append({"kind": "points", "colour": colour, "points": points, "edges": edges})
        elif name == "mediapipe.NormalizedRect":
            rect: Any = item
            shapes.append(
                {
                    "kind": "rect",
                    "colour": colour,
                    "cx": rect.x_center,
                    "cy": rect.y_center,
                    "w": rect.width,
                    "h": rect.height,
                    "rotation": rect.rotation,
                }
            )
    return shapes


def _detection(detection: Any, colour: int) -> dict[str, Any]:
    location = detection.location_data
    box = location.relative_bounding_box
    score = detection.score[0] if len(detection.score) else None
    label = (detection.label[0] + " " if len(detection.label) else "") + (f"{score:.2f}" if score is not None else "")
    return {
        "kind": "box",
        "colour": colour,
        "x": box.xmin,
        "y": box.ymin,
        "w": box.width,
        "h": box.height,
        "label": label.strip(),
        "points": [[p.x, p.y] for p in location.relative_keypoints],
    }


def jpeg_bytes(frame: np.ndarray, quality: int = _JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB (or grey, or RGBA) uint8/float frame; OpenCV releases the GIL while it encodes."""
    array = frame if frame.dtype == np.uint8 else np.clip(frame * 255.0, 0, 255).astype(np.uint8)
    if array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGR)
    elif array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.dtype} {array.shape} frame as JPEG")
    return encoded.tobytes()


def answer_of(values: Mapping[str, object], order: list[str]) -> Answer:
    """The browser's answer for one response's outputs; `order` fixes each output's colour (names are added)."""
    answer = Answer()
    texts = []
    for name, value in values.items():
        if name not in order:
            order.append(name)
        if isinstance(value, np.ndarray) and is_image(value):
            if answer.image is None:
                answer.image = jpeg_bytes(value)
            texts.append(f"{name}: {summarize(value)}")
            continue
        shapes = shapes_of(value, order.index(name))
        if shapes is not None:
            answer.shapes.extend(shapes)
            texts.append(f"{name}: {len(shapes)} shape{'' if len(shapes) == 1 else 's'}")
        else:
            texts.append(f"{name}: {summarize(value)}")
    answer.text = " · ".join(texts)
    return answer
