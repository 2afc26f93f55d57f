"""The latest value of every output stream, drawn by type, refreshed at a bounded rate while a stream runs.

`LiveOutputs.update(entries)` takes a streaming client's log (any thread, a
reader callback included) and returns at once; one pump thread draws the
newest state at most every `min_interval` seconds. Images are shown with the
detections, landmarks and rects that arrived at the same timestamp drawn over
them — over the request's own input frame when the graph outputs no image —
numbers and vectors as a table with a sparkline of their history, protos as
text. Each panel (`OutputPanel`, widgets/live_panel.py, re-exported here) has
a header that reads "name @timestamp".
"""

from __future__ import annotations

import html
import io
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.widgets.draw import (
    draw_overlays,
    is_image,
    overlay_items,
    png_bytes,
    proto_text,
    sparkline_png,
    summarize,
    value_table_html,
)
from ovms_notebook.widgets.lifecycle import Composite, close_all
from ovms_notebook.widgets.live_panel import OutputPanel
from ovms_notebook.widgets.pump import Pump

__all__ = ["LiveOutputs", "OutputPanel"]

_RED, _GREY = "#b91c1c", "#6b7280"
_IMAGE_KINDS = (StreamKind.IMAGE, StreamKind.MP_IMAGE)
_RUN_GAP = 1.0  # seconds between two redraws at most for them to be one run (a flow of answers)
_RUN_DRAWINGS = 5  # redraws in the current run before its rate means something
_KEEP_FRAMES = 64  # request frames remembered by timestamp (references to the log's arrays, no copies)
_numbers = itertools.count(1)


class LiveOutputs(Composite):
    """Per output stream the latest value, drawn by type; `update(log entries)` from any thread.

    `outputs` names the graph's output streams (optionally with their `StreamKind`) so their panels
    exist, in order, before the first packet; streams not named get a panel when they first appear.
    `fps` is the measured display rate while answers flow: redraws that changed a panel, per second, over the
    current run (the last 30 redraws at most, none of them more than 1 s after the one before); 0.0 until the
    run has 5 redraws and once 1 s passed without one. The status shows it ("redrawn 14.8/s") only then:
    answers sent by hand, a second apart or more, have no rate worth showing.
    `frame_count` the number of redraws that drew a frame, `render_count` of all redraws,
    `drawn_timestamp` the newest timestamp shown (see `wait_drawn`).
    `image_format` is "png" (exact pixels) or "jpeg" (smaller and faster over a slow link).
    `box` is what shows; `close()` ends the drawing thread.
    """

    def __init__(self, outputs: Mapping[str, StreamKind] | Iterable[str] = (), *, min_interval: float = 1 / 30,
                 history: int = 50, image_format: str = "png", **kwargs: Any) -> None:
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        self.history = history
        self.image_format = image_format
        self.fps = 0.0
        self.render_count = 0
        self.frame_count = 0
        self.status = widgets.HTML(f'<span style="color:{_GREY}">no responses yet</span>')
        self.grid = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap", align_items="flex-start"))
        self.output = widgets.Output()
        self.box = widgets.VBox([self.status, self.grid, self.output], **kwargs)
        self.panels: dict[str, OutputPanel] = {}
        self._number = next(_numbers)
        self._lock = threading.Lock()
        self._drawn = threading.Condition(self._lock)
        self.drawn_timestamp: int | None = None
        self._frame_times: deque[float] = deque(maxlen=30)
        self._pump = Pump(self._render, f"live-{self._number}", min_interval=min_interval,
                          on_error=self.output.append_stderr)
        self._stopped = threading.Event()
        self._generation = 0
        self._entries: Sequence[Any] = ()
        self._own(_release, self._stopped, self._drawn, self._pump, self.box)
        self.reset(outputs)

    # -- feeding -----------------------------------------------------------------------------------------------

    def update(self, entries: Sequence[Any]) -> None:
        """Show a stream's log entries (the whole log or its tail, oldest first); returns at once.

        Entries already seen (by `seq`) are skipped, so passing the whole log every time is cheap.
        """
        with self._lock:
            if self._closed:
                return
            self._entries = entries
        self._pump.poke()

    def reset(self, outputs: Mapping[str, StreamKind] | Iterable[str] = ()) -> None:
        """Forget every value (a new stream) and lay out empty panels for `outputs`."""
        kinds = dict(outputs) if isinstance(outputs, Mapping) else {name: StreamKind.UNKNOWN for name in outputs}
        with self._lock:
            self._generation += 1
            self._entries = ()
            self._seen = -1
            self._kinds = kinds
            self._latest: dict[str, tuple[int | None, object]] = {}
            self._histories: dict[str, deque[np.ndarray]] = {}
            self._frames: OrderedDict[int | None, tuple[str, np.ndarray]] = OrderedDict()
            self._overlays: OrderedDict[int | None, dict[str, list[Any]]] = OrderedDict()
            self._overlay_order: dict[str, int] = {}
            self._dirty: set[str] = set()
            self._input_panel: str | None = None
            self._counts = {"response": 0, "error": 0}
            self._end = ""
            old, self.panels = self.panels, {}
            self._frame_times.clear()
            self.fps = 0.0
            self.drawn_timestamp = None
            self._drawn.notify_all()
            for name in kinds:
                self.panels[name] = OutputPanel(name)
        self.grid.children = tuple(panel.box for panel in self.panels.values())
        self.status.value = f'<span style="color:{_GREY}">no responses yet</span>'
        for panel in old.values():
            panel.close()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until everything given to `update` is drawn; False if `timeout` s passed first."""
        return self._pump.flush(timeout)

    def wait_drawn(self, timestamp: int, timeout: float | None = None) -> bool:
        """Wait until a panel has shown something at `timestamp` or later; False if `timeout` s passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._drawn:
            while not self._closed and (self.drawn_timestamp is None or self.drawn_timestamp < timestamp):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._drawn.wait(remaining)
            return True

    @property
    def latest(self) -> dict[str, tuple[int | None, object]]:
        """{output stream: (timestamp, value)} of what was last drawn or is about to be."""
        with self._lock:
            return dict(self._latest)

    # -- drawing (pump thread) ---------------------------------------------------------------------------------

    def _absorb(self, entry: Any) -> None:
        """Fold one log entry into the state (under the lock)."""
        kind, timestamp = entry.kind, entry.timestamp
        if kind == "request":
            for name, value in entry.values.items():
                if isinstance(value, np.ndarray) and is_image(value):
                    self._frames[timestamp] = (name, value)
                    self._frames.move_to_end(timestamp)
                    while len(self._frames) > _KEEP_FRAMES:
                        self._frames.popitem(last=False)
            return
        if kind in ("error", "end"):
            self._counts["error"] += kind == "error"
            self._end = entry.text if kind == "end" else self._end
            self._dirty.add("")
            return
        self._counts["response"] += 1
        self._dirty.add("")
        for name, value in entry.values.items():
            self._latest[name] = (timestamp, value)
            self._dirty.add(name)
            items = overlay_items(value)
            if items is not None:
                self._overlay_order.setdefault(name, len(self._overlay_order))
                self._overlays.setdefault(timestamp, {})[name] = items
                self._overlays.move_to_end(timestamp)
                while len(self._overlays) > _KEEP_FRAMES:
                    self._overlays.popitem(last=False)
                self._dirty.update(n for n, (t, _) in self._latest.items() if t == timestamp and self._is_image(n))
                if not self._has_image_output():
                    self._dirty.add("\0input")
            elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and not self._is_image(name):
                self._histories.setdefault(name, deque(maxlen=self.history)).append(value)

    def _is_image(self, name: str) -> bool:
        if self._kinds.get(name) in _IMAGE_KINDS:
            return True
        latest = self._latest.get(name)
        return latest is not None and is_image(latest[1])

    def _has_image_output(self) -> bool:
        return any(self._is_image(name) for name in set(self._kinds) | set(self._latest))

    def _render(self) -> None:
        with self._lock:
            if self._closed:
                return
            generation = self._generation
            entries = self._entries
            start = len(entries)
            while start > 0 and entries[start - 1].seq > self._seen:
                start -= 1
            for entry in entries[start:]:
                self._absorb(entry)
            if len(entries) > start:
                self._seen = entries[-1].seq
            dirty, self._dirty = self._dirty, set()
            jobs = [job for job in (self._job(name) for name in sorted(dirty) if name) if job is not None]
            status = self._status_html()
        views = [(name, role, self._build(job)) for name, role, job in jobs]
        with self._lock:
            if self._closed or generation != self._generation:
                return
            created = [self._panel(name, role) for name, role, _ in views if name not in self.panels]
        if created:
            self.grid.children = self._ordered_panels()
        drew_frame = False
        for name, _role, view in views:
            self.panels[name].show(**view)
            drew_frame |= view.get("image") is not None
        now = time.monotonic()
        with self._lock:
            self.render_count += 1
            self.frame_count += drew_frame
            stamps = [view["timestamp"] for _, _, view in views if view["timestamp"] is not None]
            if stamps and (self.drawn_timestamp is None or max(stamps) > self.drawn_timestamp):
                self.drawn_timestamp = max(stamps)
                self._drawn.notify_all()
            times = self._frame_times
            if views:
                if times and now - times[-1] > _RUN_GAP:  # a pause ends the run: its rate says nothing now
                    times.clear()
                times.append(now)
            flowing = len(times) >= _RUN_DRAWINGS and now - times[-1] <= _RUN_GAP and times[-1] > times[0]
            self.fps = (len(times) - 1) / (times[-1] - times[0]) if flowing else 0.0
            rate = f" · redrawn {self.fps:.1f}/s" if flowing else ""
        self.status.value = status.replace(" · {fps}", rate)

    def _job(self, name: str) -> tuple[str, str, dict[str, Any]] | None:
        """What to draw for one dirty panel, taken under the lock (values are not copied: they are read-only)."""
        if name == "\0input":
            if not self._overlays:
                return None
            timestamp = next(reversed(self._overlays))
            frame = self._frame_at(timestamp)
            if frame is None:
                return None
            input_name, pixels = frame
            self._input_panel = input_name if input_name not in self._kinds else f"{input_name} (input)"
            overlays = self._overlays_at(timestamp)
            note = "input frame" + (" + " + ", ".join(n for n, _, _ in overlays) if overlays else "")
            return self._input_panel, "input", {"kind": "frame", "timestamp": timestamp, "frame": pixels,
                                                "overlays": overlays, "note": note}
        if name not in self._latest:
            return None
        timestamp, value = self._latest[name]
        if self._is_image(name):
            overlays = self._overlays_at(timestamp)
            note = " + ".join(n for n, _, _ in overlays)
            return name, "output", {"kind": "frame", "timestamp": timestamp, "frame": value, "overlays": overlays,
                                    "note": note}
        history = list(self._histories.get(name, ()))
        return name, "output", {"kind": "value", "timestamp": timestamp, "value": value, "history": history}

    def _frame_at(self, timestamp: int | None) -> tuple[str, np.ndarray] | None:
        if timestamp in self._frames:
            return self._frames[timestamp]
        earlier = [t for t in self._frames if t is not None and timestamp is not None and t <= timestamp]
        if earlier:
            return self._frames[max(earlier)]
        return next(reversed(self._frames.values())) if self._frames else None

    def _overlays_at(self, timestamp: int | None) -> list[tuple[str, int, list[Any]]]:
        found = self._overlays.get(timestamp, {})
        return [(name, self._overlay_order[name], items) for name, items in found.items()]

    def _build(self, job: dict[str, Any]) -> dict[str, Any]:
        """The panel contents for a job (off the lock: drawing and encoding take the time)."""
        timestamp = job["timestamp"]
        if job["kind"] == "frame":
            picture = draw_overlays(job["frame"], [(index, items) for _, index, items in job["overlays"]])
            if self.image_format == "jpeg":
                buffer = io.BytesIO()
                picture.save(buffer, format="JPEG", quality=85)
                data = buffer.getvalue()
            else:
                data = png_bytes(picture)
            shape = "x".join(map(str, job["frame"].shape))
            return {"timestamp": timestamp, "note": f"{shape} {job['note']}".strip(), "image": data}
        value, history = job["value"], job["history"]
        if isinstance(value, Exception):
            body = f'<span style="color:{_RED}">{html.escape(summarize(value))}</span>'
            return {"timestamp": timestamp, "note": "", "body": body}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 4096:
            sparkline = sparkline_png(history) if history else None
            return {"timestamp": timestamp, "note": "", "body": value_table_html(value, history),
                    "sparkline": sparkline}
        if overlay_items(value) is not None or _is_messages(value):
            text = proto_text(value)
            note = summarize(value)
        else:
            text = _plain_text(value)
            note = ""
        body = f'<pre style="font-size:11px;line-height:1.25;margin:0;max-height:22em;overflow:auto">' \
               f"{html.escape(text)}</pre>"
        return {"timestamp": timestamp, "note": note, "body": body}

    def _panel(self, name: str, role: str) -> OutputPanel:
        panel = self.panels[name] = OutputPanel(name, role)
        return panel

    def _ordered_panels(self) -> tuple[widgets.Box, ...]:
        inputs = [p.box for p in self.panels.values() if p.role == "input"]
        return (*inputs, *(p.box for p in self.panels.values() if p.role != "input"))

    def _status_html(self) -> str:
        counts = self._counts
        parts = [f"{counts['response']} response{'' if counts['response'] == 1 else 's'}"]
        if counts["error"]:
            parts.append(f'<span style="color:{_RED}">{counts["error"]} error{"" if counts["error"] == 1 else "s"}'
                         "</span>")
        parts.append("{fps}")
        if self._end:
            colour = _GREY if self._end == "OK" else _RED
            parts.append(f'<span style="color:{colour}">stream ended: {html.escape(self._end, quote=False)}</span>')
        return f'<span style="font-size:12px">{" · ".join(parts)}</span>'

    @property
    def _closed(self) -> bool:
        return self._stopped.is_set()

    def __repr__(self) -> str:
        return f"<LiveOutputs {len(self.panels)} panels, {self.render_count} renders, {self.fps:.1f} redraws/s>"


def _is_messages(value: object) -> bool:
    from google.protobuf.message import Message

    items = value if isinstance(value, list | tuple) else [value]
    return bool(items) and all(isinstance(item, Message) for item in items)


def _plain_text(value: object) -> str:
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        items = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)[:50]]
        return "\n".join(items)
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{'x'.join(map(str, value.shape))}]\n{np.array2string(value, threshold=200)}"
    return str(value)


def _release(stopped: threading.Event, drawn: threading.Condition, pump: Pump, box: widgets.Box) -> None:
    """LiveOutputs' finalizer: wake `wait_drawn`, stop the pump thread, close the panels and the box."""
    with drawn:
        stopped.set()
        drawn.notify_all()
    pump.close()
    close_all([box])
