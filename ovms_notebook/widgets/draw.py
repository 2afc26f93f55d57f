"""Output values as pictures and text: overlays on frames, sparklines, value tables, proto text, one-line summaries.

Pure functions with no widget in sight, so they are cheap to test. Frames
are drawn with PIL (a 640x480 frame with boxes takes a few milliseconds and
OpenCV's PNG encoder releases the GIL); nothing here touches matplotlib, so nothing
here needs `RENDER_LOCK`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import cv2
import numpy as np
from google.protobuf import text_format
from google.protobuf.message import Message
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "OVERLAY_COLOURS",
    "draw_overlays",
    "is_image",
    "overlay_items",
    "png_bytes",
    "proto_text",
    "sparkline_png",
    "summarize",
    "value_table_html",
]

#: Colours of the overlays, one per overlay output stream in order (lime first: rare in photos).
OVERLAY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 128, 0), (255, 0, 0),
)
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_SPARK_COLOURS = ((37, 99, 235), (234, 88, 12), (22, 163, 74), (147, 51, 234))
_DRAWABLE = frozenset({
    "mediapipe.Detection", "mediapipe.DetectionList", "mediapipe.NormalizedLandmarkList",
    "mediapipe.NormalizedLandmarkListCollection", "mediapipe.NormalizedRect",
})
#: List messages drawn item by item: their repeated field of items.
_CONTAINERS = {"mediapipe.DetectionList": "detection", "mediapipe.NormalizedLandmarkListCollection": "landmark_list"}


# -- what a value is -------------------------------------------------------------------------------------------


def is_image(value: object) -> bool:
    """An HxWxC (C 1, 3 or 4) uint8 or float32 array of at least 8x8 pixels."""
    return (isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[2] in (1, 3, 4)
            and value.shape[0] >= 8 and value.shape[1] >= 8 and value.dtype in (np.uint8, np.float32))


def overlay_items(value: object) -> list[Message] | None:
    """The drawable messages in `value` (detections, normalized landmarks, normalized rects, or lists of them);
    None when `value` is not something to draw on a frame."""
    given: list[object] = list(value) if isinstance(value, list | tuple) else [value]
    items = [m for m in given if isinstance(m, Message) and m.DESCRIPTOR.full_name in _DRAWABLE]
    if not items or len(items) != len(given):
        return None
    flat: list[Message] = []
    for item in items:
        name = item.DESCRIPTOR.full_name
        if name in _CONTAINERS:  # a list message: draw its items
            flat.extend(getattr(item, _CONTAINERS[name]))
        else:
            flat.append(item)
    return flat


# -- frames ----------------------------------------------------------------------------------------------------


def _picture(frame: np.ndarray) -> Image.Image:
    array = frame if frame.dtype == np.uint8 else np.clip(frame * 255.0, 0, 255).astype(np.uint8)
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0]).convert("RGB")
    if array.shape[2] == 4:
        return Image.fromarray(array).convert("RGB")
    return Image.fromarray(array)


def draw_overlays(frame: np.ndarray, overlays: Iterable[tuple[int, Sequence[Message]]]) -> Image.Image:
    """`frame` as an RGB picture with each overlay drawn in `OVERLAY_COLOURS[index]`.

    `overlays` holds (colour index, drawable messages): detections become boxes with their score and
    keypoints, landmark lists points (and the pose or hand skeleton for 33 or 21 points), rects outlines.
    """
    picture = _picture(frame)
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    line = max(2, round(min(width, height) / 160))
    for index, items in overlays:
        colour = OVERLAY_COLOURS[index % len(OVERLAY_COLOURS)]
        for item in items:
            name = item.DESCRIPTOR.full_name
            if name == "mediapipe.Detection":
                _draw_detection(draw, item, width, height, colour, line)
            elif name == "mediapipe.NormalizedLandmarkList":
                _draw_landmarks(draw, item, width, height, colour)
            elif name == "mediapipe.NormalizedRect":
                _draw_rect(draw, item, width, height, colour, line)
    return picture


def _draw_detection(draw: ImageDraw.ImageDraw, detection: Any, width: int, height: int,
                    colour: tuple[int, int, int], line: int) -> None:
    location = detection.location_data
    if location.HasField("relative_bounding_box"):
        box = location.relative_bounding_box
        left, top = box.xmin * width, box.ymin * height
        right, bottom = left + box.width * width, top + box.height * height
    elif location.HasField("bounding_box"):
        box = location.bounding_box
        left, top, right, bottom = box.xmin, box.ymin, box.xmin + box.width, box.ymin + box.height
    else:
        left = top = right = bottom = None
    if left is not None:
        draw.rectangle((left, top, max(left, right), max(top, bottom)), outline=colour, width=line)
        if len(detection.score):
            label = detection.label[0] + " " if len(detection.label) else ""
            _draw_label(draw, f"{label}{detection.score[0]:.2f}", left, top, colour,
                        max(13, round(min(width, height) / 18)))
    radius = line + 1
    for point in location.relative_keypoints:
        x, y = point.x * width, point.y * height
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _draw_label(draw: ImageDraw.ImageDraw, text: str, left: float, top: float, colour: tuple[int, int, int],
                size: int) -> None:
    """`text` in black on a tab of `colour` sitting on the box's top edge (inside the box when the edge is at the
    top of the frame): readable on any background, even on a small frame shown shrunk."""
    font = _font(size)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    pad = max(1, size // 6)
    tab_height = (y1 - y0) + 2 * pad
    tab_top = top - tab_height if top - tab_height >= 0 else max(0.0, top)
    draw.rectangle((left, tab_top, left + (x1 - x0) + 2 * pad, tab_top + tab_height), fill=colour)
    draw.text((left + pad - x0, tab_top + pad - y0), text, fill=(0, 0, 0), font=font)


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


@cache
def _skeletons() -> dict[int, tuple[tuple[int, int], ...]]:
    """Pose (33 points) and hand (21 points) connections from the wheel's solutions, if importable."""
    try:
        from mediapipe.python.solutions import hands_connections, pose_connections
    except Exception:
        return {}
    return {33: tuple(sorted(pose_connections.POSE_CONNECTIONS)),
            21: tuple(sorted(hands_connections.HAND_CONNECTIONS))}


def _draw_landmarks(draw: ImageDraw.ImageDraw, landmarks: Any, width: int, height: int,
                    colour: tuple[int, int, int]) -> None:
    points = [(p.x * width, p.y * height) for p in landmarks.landmark]
    for start, end in _skeletons().get(len(points), ()):
        draw.line((points[start], points[end]), fill=colour, width=2)
    radius = 1 if len(points) > 100 else 3
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def _draw_rect(draw: ImageDraw.ImageDraw, rect: Any, width: int, height: int,
               colour: tuple[int, int, int], line: int) -> None:
    cx, cy = rect.x_center * width, rect.y_center * height
    half_w, half_h = rect.width * width / 2, rect.height * height / 2
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    corners = [(cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
               for dx, dy in ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h))]
    draw.line([*corners, corners[0]], fill=colour, width=line)


def png_bytes(picture: Image.Image | np.ndarray) -> bytes:
    """PNG bytes of an RGB picture, fast: OpenCV's encoder at zlib level 1 with Huffman-only coding.

    A 640x480 photo takes ~13 ms (PIL's default level takes ~85 ms, its level 1 ~20 ms) and ~430 KB,
    and OpenCV releases the GIL while it encodes, so a live view does not stall the kernel.
    """
    array = np.asarray(picture)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array, _PNG_PARAMS)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.dtype} {array.shape} picture as PNG")
    return encoded.tobytes()


def sparkline_png(history: Sequence[np.ndarray], size: tuple[int, int] = (160, 36)) -> bytes:
    """A small line chart of a value's history: one line per element for up to 4 elements, else of the mean."""
    width, height = size
    picture = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    rows = [np.asarray(v, dtype=np.float64).reshape(-1) for v in history]
    rows = [r for r in rows if r.size]
    if not rows:
        return png_bytes(picture)
    columns = min(len(r) for r in rows)
    series = np.stack([r[:columns] for r in rows]) if columns <= 4 else np.stack([r.mean() for r in rows])[:, None]
    finite = series[np.isfinite(series)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = high - low or 1.0
    count = series.shape[0]
    step = (width - 4) / max(1, count - 1)
    for column in range(series.shape[1]):
        points = [(2 + i * step, height - 3 - (v - low) / span * (height - 6))
                  for i, v in enumerate(series[:, column]) if np.isfinite(v)]
        colour = _SPARK_COLOURS[column % len(_SPARK_COLOURS)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if points:
            x, y = points[-1]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    return png_bytes(picture)


# -- text ------------------------------------------------------------------------------------------------------


def _number_text(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return repr(value)[1:] if len(value) <= 40 else repr(value[:40])[1:] + "…"
    return str(value)


def summarize(value: object, limit: int = 8) -> str:
    """A short one-line text of a value: "[1.5, 2]", "5", "uint8[480x640x3]", "[1 x Detection]"."""
    if isinstance(value, Exception):
        return f"cannot decode: {value}"
    if isinstance(value, Message):
        return _message_summary(value)
    if isinstance(value, list | tuple) and value and all(isinstance(m, Message) for m in value):
        names = sorted({m.DESCRIPTOR.name for m in value})
        return f"[{len(value)} x {', '.join(names)}]"
    if isinstance(value, list | tuple) and not value:
        return "[]"
    if isinstance(value, np.ndarray):
        if is_image(value) or value.size > 64:
            return f"{value.dtype}[{'x'.join(map(str, value.shape))}]"
        flat = value.reshape(-1)
        items = ", ".join(_number_text(v) for v in flat[:limit])
        more = f", … ({value.size} values)" if value.size > limit else ""
        shape = "" if value.ndim <= 1 else f" shape {list(value.shape)}"
        return f"[{items}{more}]{shape}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
    return _number_text(value)


def _message_summary(message: Message) -> str:
    counts = [f"{len(getattr(message, f.name))} {f.name}" for f in message.DESCRIPTOR.fields
              if f.label == f.LABEL_REPEATED and len(getattr(message, f.name))]
    return f"{message.DESCRIPTOR.name}({', '.join(counts)})" if counts else message.DESCRIPTOR.name


def proto_text(value: object, max_items: int = 3, max_lines: int = 30) -> str:
    """Readable text of a message or list of messages, repeated fields cut to `max_items`, at most `max_lines`."""
    messages: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
    parts: list[str] = []
    if len(messages) != 1:
        parts.append(f"{len(messages)} x {messages[0].DESCRIPTOR.full_name if messages else 'message'}")
    for index, message in enumerate(messages[:max_items]):
        cut, notes = _cut(message, max_items)
        text = text_format.MessageToString(cut, float_format=".4g").rstrip()
        text += "".join(f"\n{note}" for note in notes)
        parts.append(f"[{index}] {text}" if len(messages) != 1 else text)
    if len(messages) > max_items:
        parts.append(f"… {len(messages) - max_items} more")
    lines = "\n".join(parts).splitlines()
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"… {len(lines) - max_lines} more lines"]
    return "\n".join(lines)


def _cut(message: Message, keep: int) -> tuple[Message, list[str]]:
    """A copy with every long repeated message field cut to `keep` items, and notes of what was cut."""
    long_fields = [f for f in message.DESCRIPTOR.fields if f.label == f.LABEL_REPEATED
                   and f.type == f.TYPE_MESSAGE and len(getattr(message, f.name)) > keep]
    if not long_fields:
        return message, []
    copy = type(message)()
    copy.CopyFrom(message)
    notes = []
    for field in long_fields:
        items = getattr(copy, field.name)
        notes.append(f"… {len(items) - keep} more {field.name}")
        del items[keep:]
    return copy, notes


def value_table_html(value: np.ndarray, history: Sequence[np.ndarray], max_rows: int = 8) -> str:
    """An HTML table of a number or vector: index and value rows, the dtype and shape, the history's range."""
    flat = value.reshape(-1)
    cell = 'style="padding:1px 8px;text-align:right;font-family:monospace"'
    rows = [f"<tr><td {cell}>{i}</td><td {cell}>{html.escape(_number_text(v))}</td></tr>"
            for i, v in enumerate(flat[:max_rows])]
    if flat.size > max_rows:
        rows.append(f'<tr><td {cell}>…</td><td {cell}>{flat.size - max_rows} more</td></tr>')
    caption = f"{value.dtype}[{'x'.join(map(str, value.shape))}]"
    numeric = [np.asarray(h, dtype=np.float64).reshape(-1) for h in history if np.asarray(h).dtype.kind in "biuf"]
    if numeric and all(h.size for h in numeric):
        low = min(float(h.min()) for h in numeric)
        high = max(float(h.max()) for h in numeric)
        caption += f" · last {len(numeric)}: {low:.4g} … {high:.4g}"
    return (f'<table style="border-collapse:collapse;font-size:12px">{"".join(rows)}</table>'
            f'<div style="color:#6b7280;font-size:11px;white-space:nowrap">{html.escape(caption)}</div>')
