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
import dataclasses
import html
import itertools
import threading
import traceback
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ipywidgets as widgets

from ovms_notebook.widgets.lifecycle import Composite, close_all, replace_previous, weakly
from ovms_notebook.widgets.pump import Pump
from ovms_notebook.widgets.server_events import EventFollower
from ovms_notebook.widgets.timeline_plot import (
    END_LANE,
    ERROR_LANE,
    SPECIAL_TIMESTAMPS,
    end_status,
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
    of arrival; `rejected` marks a request the server answered with an error
    (drawn hollow, its error at its timestamp).
    """

    kind: RecordKind
    lane: str
    timestamp: int | None
    manual: bool
    label: str
    seq: int
    rejected: bool = False


def records_from_events(
    events: Iterable[Any], requests: Mapping[int, Any] | None = None, first_number: int = 0
) -> list[TimelineRecord]:
    """Records from server `StreamEvent`s of one stream (see `EventLog.snapshot(stream_id=...)`).

    A request naming several input streams gives one record per input stream. The server logs a
    rejected request only as an error without a timestamp; `requests` (request number -> the
    client's request entry: `timestamp`, `manual`, `names`) puts it back: the server logs every
    request, accepted ("request") or rejected (an "error" naming no output stream), in the order it
    read them, which is the order they were sent, so the n-th of these events is request number
    `first_number + n`. That request is drawn rejected at the timestamp the client gave or
    predicted, and its error at that timestamp.
    """
    records: list[TimelineRecord] = []
    seq = itertools.count()
    number = first_number
    for event in events:
        if event.kind == "request":
            number += 1
            manual = "manual" if event.manual else "automatic"
            for name in event.streams or ("(no inputs)",):
                records.append(TimelineRecord("request", f"in: {name}", event.timestamp, event.manual,
                                              f"{name} at {event.timestamp} ({manual})", next(seq)))
        elif event.kind == "output":
            for name in event.streams:
                records.append(TimelineRecord("output", f"out: {name}", event.timestamp, False,
                                              f"{name} at {event.timestamp}", next(seq)))
        elif event.kind == "error":
            timestamp = event.timestamp
            if not event.streams:  # a rejected request
                sent = requests.get(number) if requests is not None else None
                number += 1
                if sent is not None and sent.timestamp is not None and timestamp is None:
                    timestamp = sent.timestamp
                    records += _rejected_request(sent, next(seq))
            records.append(TimelineRecord("error", ERROR_LANE, timestamp, False, event.detail, next(seq)))
        elif event.kind == "end":
            records.append(TimelineRecord("end", END_LANE, None, False, event.detail or "OK", next(seq)))
    return records


def _rejected_request(sent: Any, seq: int) -> list[TimelineRecord]:
    """The records of a request the server rejected, at the timestamp the client gave or predicted."""
    manual = bool(getattr(sent, "manual", False))
    timestamp = sent.timestamp
    names = tuple(getattr(sent, "names", ()) or ()) or ("(no inputs)",)
    return [TimelineRecord("request", f"in: {name}", timestamp, manual,
                           f"{name} at {timestamp} ({'manual' if manual else 'automatic'}, rejected)", seq,
                           rejected=True) for name in names]


def records_from_log(entries: Iterable[Any]) -> list[TimelineRecord]:
    """Records from a streaming client's log entries (duck-typed on `LogEntry`'s attribute names).

    An entry has `kind` (request/response/error/end), `seq`, `timestamp`,
    `manual`, `names`, `text`, `code` and, for errors, `request_seq`: an error
    answering a request is placed at that request's timestamp when it had one, and the request is
    marked rejected.
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
            request_seq = getattr(entry, "request_seq", None)
            if timestamp is None and isinstance(request_seq, int):
                timestamp = request_timestamps.get(request_seq)
                records = [dataclasses.replace(r, rejected=True, label=f"{r.label[:-1]}, rejected)")
                           if r.kind == "request" and r.seq == request_seq else r for r in records]
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


class Timeline(Composite):
    """A live timeline: `update(records)` redraws at most every `min_interval` seconds.

    Drawing happens on the timeline's pump thread, never on the caller's, and
    updates that come faster are coalesced: the latest records are kept and
    drawn when the interval has passed. `follow(event_log)` shows one stream of
    a server's event log and updates by itself; `close()` stops the thread.
    The PNG can be saved with the export button (path in the text box). `box` is what shows.
    """

    def __init__(self, records: Iterable[TimelineRecord] = (), *, title: str | None = None,
                 min_interval: float = 0.2, width: float = 9.0, dpi: float = 100, **kwargs: Any) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.title = title
        self.width = width
        self.dpi = dpi
        self.render_count = 0
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.trace_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.path = widgets.Text(value="timeline.png", description="Save as", layout=widgets.Layout(width="22em"))
        self.export_button = widgets.Button(description="Export PNG", icon="download",
                                            tooltip="Save the timeline as a PNG file at the path on the left")
        self.status = widgets.HTML()
        # A failed stream's status, whole: the picture's heading keeps two lines of it.
        self.ending = widgets.HTML(layout=widgets.Layout(display="none"))
        self.output = widgets.Output()
        # The ending and the trace go under the export row: the timeline image stays right above its own controls.
        self.box = widgets.VBox([self.image, widgets.HBox([self.path, self.export_button, self.status]), self.ending,
                                 self.trace_image, self.output], **kwargs)
        self._number = next(_numbers)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._records: list[TimelineRecord] = list(records)
        self._pump = Pump(self._draw, f"timeline-{self._number}", min_interval=min_interval,
                          on_error=self.output.append_stderr)
        self._following = EventFollower(self._pump.poke)
        self._stopped = threading.Event()
        self._own(_release, self._stopped, self._following, self._pump, self.box)
        self.export_button.on_click(weakly(self._on_export))
        self._render()
        self._pump.note_run()

    @property
    def min_interval(self) -> float:
        """Seconds between two drawings at least."""
        return self._pump.min_interval

    @min_interval.setter
    def min_interval(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {seconds}")
        self._pump.min_interval = seconds

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

        The drawing happens on the pump thread, `min_interval` s after the
        previous one at the earliest; records given meanwhile replace each
        other and only the latest are drawn.
        """
        with self._lock:
            if self._stopped.is_set():
                return
            self._records = list(records)
        self._pump.poke()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until the latest records are drawn; False if `timeout` s passed first."""
        return self._pump.flush(timeout)

    def _draw(self) -> None:
        """The pump's job: records from the followed event log when following, then the drawing."""
        events = self._following.events()
        if events is not None:
            with self._lock:
                self._records = records_from_events(events)
        self._render()

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
                if self._stopped.is_set():
                    return
                self.render_count += 1
            self.image.value = png
            self._show_ending(end_status(records))

    def _show_ending(self, status: str | None) -> None:
        """Under the picture, a failed stream's whole status; nothing for an open or OK stream."""
        failed = status is not None and status != "OK"
        value = (f'<div style="color:#b91c1c;white-space:pre-wrap;font-size:0.9em">stream ended: '
                 f"{html.escape(status or '')}</div>") if failed else ""
        if self.ending.value != value:
            self.ending.value = value
            self.ending.layout.display = None if failed else "none"

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
        """Show one stream of `event_log` (a server's `EventLog`) as it grows.

        The stream is the one with `stream_id` or `client_tag`, else the most
        recently opened one. Replaces any earlier follow, and closes another
        timeline following the same stream of the same log (a re-run cell).
        """
        replace_previous(("timeline", weakref.ref(event_log), client_tag, stream_id), self)
        self._following.follow(event_log, client_tag, stream_id)
        self._pump.poke()

    def stop_following(self) -> None:
        """Stop following the event log (the drawing stays)."""
        self._following.stop()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = self.box._repr_mimebundle_(**kwargs)
        if bundle is not None and self.image.value:
            bundle["image/png"] = base64.b64encode(self.image.value).decode()
        return bundle


def _release(stopped: threading.Event, following: EventFollower, pump: Pump, box: widgets.Box) -> None:
    """The timeline's finalizer: no more drawing, no more following, the thread joined, the widgets closed."""
    stopped.set()
    following.stop()
    pump.close()
    close_all([box])
