"""A stream's packets on a MediaPipe-timestamp axis: what went in, what came out, what failed.

The drawing takes neutral `TimelineRecord`s, so it does not care where they
came from: `records_from_events` adapts the server's `StreamEvent`s and
`records_from_log` adapts a client's log entries (anything with `LogEntry`'s
attribute names). `timeline_figure`/`timeline_png` (from `timeline_plot`)
draw them, and `Timeline` is the widget that re-draws at a bounded rate while
a stream runs.
"""

from __future__ import annotations

import base64
import html
import itertools
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ipywidgets as widgets

from ovms_notebook.widgets.render import THREAD_PREFIX
from ovms_notebook.widgets.timeline_plot import (
    END_LANE,
    ERROR_LANE,
    SPECIAL_TIMESTAMPS,
    timeline_figure,
    timeline_png,
)

__all__ = [
    "END_LANE",
    "ERROR_LANE",
    "SPECIAL_TIMESTAMPS",
    "Timeline",
    "TimelineRecord",
    "latest_stream_events",
    "records_from_events",
    "records_from_log",
    "timeline_figure",
    "timeline_png",
]

RecordKind = Literal["request", "output", "error", "end"]


@dataclass(frozen=True)
class TimelineRecord:
    """One mark on the timeline.

    `lane` is the row ("in: <input stream>", "out: <output stream>", "errors",
    "end"); `timestamp` the MediaPipe timestamp (None when the packet never
    got one, e.g. a rejected request); `manual` whether the client chose it;
    `label` a short text (the error message, the end status); `seq` the order
    of arrival.
    """

    kind: RecordKind
    lane: str
    timestamp: int | None
    manual: bool
    label: str
    seq: int


def records_from_events(events: Iterable[Any]) -> list[TimelineRecord]:
    """Records from server `StreamEvent`s of one stream (see `EventLog.snapshot(stream_id=...)`).

    A request naming several input streams gives one record per input stream.
    """
    records: list[TimelineRecord] = []
    seq = itertools.count()
    for event in events:
        if event.kind == "request":
            manual = "manual" if event.manual else "automatic"
            for name in event.streams or ("(no inputs)",):
                records.append(TimelineRecord("request", f"in: {name}", event.timestamp, event.manual,
                                              f"{name} at {event.timestamp} ({manual})", next(seq)))
        elif event.kind == "output":
            for name in event.streams:
                records.append(TimelineRecord("output", f"out: {name}", event.timestamp, False,
                                              f"{name} at {event.timestamp}", next(seq)))
        elif event.kind == "error":
            records.append(TimelineRecord("error", ERROR_LANE, event.timestamp, False, event.detail, next(seq)))
        elif event.kind == "end":
            records.append(TimelineRecord("end", END_LANE, None, False, event.detail or "OK", next(seq)))
    return records


def records_from_log(entries: Iterable[Any]) -> list[TimelineRecord]:
    """Records from a streaming client's log entries (duck-typed on `LogEntry`'s attribute names).

    An entry has `kind` (request/response/error/end), `seq`, `timestamp`,
    `manual`, `names`, `text`, `code` and, for errors, `request_seq`: an error
    answering a request is placed at that request's timestamp when it had one.
    """
    records: list[TimelineRecord] = []
    request_timestamps: dict[int, int | None] = {}
    for entry in entries:
        kind = getattr(entry, "kind", "")
        seq = int(getattr(entry, "seq", len(records)))
        timestamp = getattr(entry, "timestamp", None)
        names = tuple(getattr(entry, "names", ()) or ())
        if kind == "request":
            manual = bool(getattr(entry, "manual", False))
            request_timestamps[seq] = timestamp
            for name in names or ("(no inputs)",):
                records.append(TimelineRecord("request", f"in: {name}", timestamp, manual,
                                              f"{name} at {timestamp} ({'manual' if manual else 'automatic'})", seq))
        elif kind == "response":
            for name in names:
                records.append(TimelineRecord("output", f"out: {name}", timestamp, False,
                                              f"{name} at {timestamp}", seq))
        elif kind == "error":
            if timestamp is None:
                timestamp = request_timestamps.get(getattr(entry, "request_seq", None))  # type: ignore[arg-type]
            text = getattr(entry, "text", "") or str(getattr(entry, "code", "") or "error")
            records.append(TimelineRecord("error", ERROR_LANE, timestamp, False, text, seq))
        elif kind == "end":
            records.append(TimelineRecord("end", END_LANE, None, False, _end_label(entry), seq))
    return records


def _end_label(entry: Any) -> str:
    code = getattr(entry, "code", None)
    code = str(getattr(code, "name", code) or "")  # a grpc.StatusCode or its name
    text = str(getattr(entry, "text", "") or "")
    if code and text and code not in text:
        return f"{code}: {text}"
    return text or code or "OK"


def latest_stream_events(events: Sequence[Any]) -> list[Any]:
    """The events of the most recently opened stream among `events` (streams have increasing ids)."""
    if not events:
        return []
    newest = max(event.stream_id for event in events)
    return [event for event in events if event.stream_id == newest]


# -- widget ---------------------------------------------------------------------------------------------------

_numbers = itertools.count(1)


class Timeline(widgets.VBox):
    """A live timeline: `update(records)` redraws at most every `min_interval` seconds.

    Drawing happens on a short-lived timer thread, never on the caller's, and
    updates that come faster are coalesced: the latest records are kept and
    drawn when the interval has passed. `follow(event_log)` polls the server's
    event log and updates by itself; `close()` stops every timer and thread.
    The PNG can be saved with the export button (path in the text box).
    """

    def __init__(self, records: Iterable[TimelineRecord] = (), *, title: str | None = None,
                 min_interval: float = 0.2, width: float = 9.0, dpi: float = 100, **kwargs: Any) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.title = title
        self.min_interval = min_interval
        self.width = width
        self.dpi = dpi
        self.render_count = 0
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.trace_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.path = widgets.Text(value="timeline.png", description="Save as", layout=widgets.Layout(width="22em"))
        self.export_button = widgets.Button(description="Export PNG", icon="download",
                                            tooltip="Save the timeline as a PNG file at the path on the left")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        super().__init__(
            # The trace goes under the export row: the timeline image stays right above its own controls.
            children=[self.image, widgets.HBox([self.path, self.export_button, self.status]), self.trace_image,
                      self.output],
            **kwargs,
        )
        self._number = next(_numbers)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._records: list[TimelineRecord] = list(records)
        self._last_render = time.monotonic()  # the first drawing happens just below
        self._timer: threading.Timer | None = None  # the pending one
        self._timers: list[threading.Timer] = []  # every one that may still be alive
        self._idle = threading.Event()
        self._idle.set()
        self._follower: threading.Thread | None = None
        self._stop_follow = threading.Event()
        self._closed = False
        self.export_button.on_click(self._on_export)
        self._render()

    @property
    def records(self) -> list[TimelineRecord]:
        """The records shown (or about to be shown)."""
        with self._lock:
            return list(self._records)

    @property
    def png(self) -> bytes:
        """The PNG on display."""
        return bytes(self.image.value)

    def update(self, records: Iterable[TimelineRecord]) -> None:
        """Show new records; never blocks on drawing, so any thread may call it.

        The drawing happens on a timer thread, `min_interval` s after the
        previous one at the earliest; records given meanwhile replace each
        other and only the latest are drawn.
        """
        with self._lock:
            if self._closed:
                return
            self._records = list(records)
            if self._timer is not None:
                return  # the pending timer draws the latest records
            self._idle.clear()
            wait = max(0.0, self._last_render + self.min_interval - time.monotonic())
            self._timer = threading.Timer(wait, self._on_timer)
            self._timer.name = f"{THREAD_PREFIX}timeline-{self._number}-timer"
            self._timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [self._timer]
            self._timer.start()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until the latest records are drawn; False if `timeout` s passed first."""
        return self._idle.wait(timeout)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
            self._last_render = time.monotonic()
        self._render()
        with self._lock:
            if self._timer is None:
                self._idle.set()

    def _render(self) -> None:
        with self._render_lock:
            with self._lock:
                records = list(self._records)
            try:
                png = timeline_png(records, title=self.title, width=self.width, dpi=self.dpi)
            except Exception:
                self.output.append_stderr(traceback.format_exc())
                return
            with self._lock:
                if self._closed:
                    return
                self.render_count += 1
            self.image.value = png

    def show_trace(self, trace: Any | None) -> None:
        """Show a stream's execution trace (`server.trace_for(client)`) under the request/response lanes;
        None hides it. Draws on the caller's thread (any thread may call it)."""
        if trace is None:
            self.trace_image.layout.display = "none"
            return
        from ovms_notebook.widgets.trace_plot import trace_png

        try:
            png = trace_png(trace, width=self.width, dpi=self.dpi)
        except Exception:
            self.output.append_stderr(traceback.format_exc())
            return
        self.trace_image.value = png
        self.trace_image.layout.display = None

    def _on_export(self, _button: widgets.Button) -> None:
        path = Path(self.path.value).expanduser()
        try:
            png = self.png or timeline_png(self.records, title=self.title, width=self.width, dpi=self.dpi)
            path.write_bytes(png)
        except Exception as error:
            self.status.value = '<span style="color:#b91c1c">export failed</span>'
            self.output.append_stderr(f"could not save the timeline to {path}: {error}\n")
            return
        self.status.value = f"saved {len(png)} bytes to <code>{html.escape(str(path))}</code>"

    # -- following a server's event log ----------------------------------------------------------------------

    def follow(self, event_log: Any, client_tag: str | None = None, stream_id: int | None = None) -> None:
        """Poll `event_log` (a server's `EventLog`) every `min_interval` s and show one stream's events.

        The stream is the one with `stream_id` or `client_tag`, else the most
        recently opened one. Replaces any earlier follow.
        """
        self.stop_following()
        stop = threading.Event()
        self._stop_follow = stop
        self._follower = threading.Thread(
            target=self._follow_loop, args=(event_log, client_tag, stream_id, stop),
            name=f"{THREAD_PREFIX}timeline-{self._number}-follow", daemon=True,
        )
        self._follower.start()

    def _follow_loop(self, event_log: Any, client_tag: str | None, stream_id: int | None,
                     stop: threading.Event) -> None:
        seen = None
        while not stop.is_set():
            version = event_log.version
            if version != seen:
                seen = version
                try:
                    events = event_log.snapshot(stream_id=stream_id, client_tag=client_tag)
                    if stream_id is None and client_tag is None:
                        events = latest_stream_events(events)
                    self.update(records_from_events(events))
                except Exception:
                    self.output.append_stderr("timeline stopped following the event log:\n" + traceback.format_exc())
                    return
            stop.wait(max(self.min_interval, 0.02))

    def stop_following(self) -> None:
        """Stop polling the event log (the drawing stays)."""
        self._stop_follow.set()
        follower, self._follower = self._follower, None
        if follower is not None and follower is not threading.current_thread():
            follower.join(timeout=5)

    def close(self) -> None:
        """Stop timers and following, then close the widget and its parts."""
        if "_lock" not in self.__dict__:  # __init__ failed early; Widget.__del__ still calls close()
            super().close()
            return
        with self._lock:
            self._closed = True
            self._timer = None
            timers, self._timers = self._timers, []
            self._idle.set()
        for timer in timers:  # a pending one is cancelled, one drawing right now is waited for
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(timeout=5)
        self.stop_following()
        for child in (self.image, self.trace_image, self.path, self.export_button, self.status, self.output):
            child.close()
        for box in self.children:
            box.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None and self.image.value:
            bundle["image/png"] = base64.b64encode(self.image.value).decode()
        return bundle

