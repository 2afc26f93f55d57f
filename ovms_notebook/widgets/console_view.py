"""What `StreamConsole` draws, as functions of plain state: the stream status, the next timestamp, the timeline feed.

Everything here runs on the console's pump thread (or the caller's, for
`flush`/`wait_for`), never on a client's reader thread, which only pokes the
pump: a busy stream costs the kernel at most one redraw per `log_interval`,
and the timeline, which is dearer, is fed only the newest `TIMELINE_WINDOW`
server events.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ovms_notebook.client import LogEntry, StreamClient
from ovms_notebook.widgets.timeline import Timeline, records_from_events, records_from_log

__all__ = [
    "TIMELINE_INTERVAL",
    "TIMELINE_WINDOW",
    "ServerLike",
    "TimelineFeed",
    "next_label_text",
    "server_problem",
    "status_html",
]

_GREEN, _GREY, _RED = "#15803d", "#6b7280", "#b91c1c"
TIMELINE_WINDOW = 400  # newest server events of a stream the timeline draws
TIMELINE_INTERVAL = 0.25  # seconds between timeline redraws (1 s while requests come faster than 20/s)


class ServerLike(Protocol):
    """What the console reads of an in-kernel `Server`."""

    @property
    def address(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def events(self) -> Any: ...

    @property
    def graphs(self) -> list[Any]: ...

    @property
    def options(self) -> Any: ...


def server_problem(server: ServerLike | None) -> str:
    """Why an in-kernel server cannot take a stream ("" while it runs)."""
    if server is None or server.state == "running":
        return ""
    return f"the server at {server.address} is {server.state}: start a new one with ovms_notebook.serve(...)"


def next_label_text(client: StreamClient | None, mode: str, manual_timestamp: int, blocked: str = "") -> str:
    """The "next timestamp: ..." line under the editors; `blocked` says why nothing can be sent, if so."""
    if blocked:
        return f"nothing can be sent: {blocked}"
    if client is None:
        return "next timestamp: — (no stream)"
    if client.ended:
        return "stream ended: press New stream"
    if mode == "manual":
        return f"next timestamp: {manual_timestamp} (manual)"
    predicted = client.next_timestamp()
    return f"next timestamp: {predicted if predicted is not None else 'server clock'} (auto)"


def status_html(
    client: StreamClient, entries: Sequence[LogEntry], closing: bool, address: str, problem: str = ""
) -> str:
    """The stream's state beside the graph picker: ready, open, closing, ended, or what is wrong with the server."""
    if problem:
        return f'<span style="font-size:12px;color:{_RED}">{html.escape(problem)}</span>'
    sent = any(e.kind == "request" for e in entries)
    state = "ended" if client.ended else "closing" if closing else "open" if sent else "ready"
    colour = _GREEN if state in ("open", "ready") else _GREY
    return (
        f'<span style="font-size:12px">stream to <code>{html.escape(client.graph)}</code> '
        f'at <code>{html.escape(address)}</code>: <span style="color:{colour}">{state}</span></span>'
    )


class TimelineFeed:
    """Gives a `Timeline` the newest `TIMELINE_WINDOW` events (in-kernel server) or the client log, when new.

    A video stream makes thousands of events; drawing them all several times a second would cost the kernel
    more than the stream itself, so a busy stream's timeline also redraws only once a second.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._key: object = None

    def reset(self) -> None:
        self._key = None
        self.timeline.update([])

    def feed(
        self,
        client: StreamClient,
        entries: Sequence[LogEntry],
        events: Sequence[Any] | None,
        numbers: Mapping[int, int] | None = None,
    ) -> None:
        """`events` None: a remote stream, drawn from the client's log. `numbers` (request entry seq -> number in
        the stream) lets a request the server rejected be drawn at its own timestamp (`records_from_events`)."""
        key: object = (
            (client.tag, len(events), events[-1] if events else None)
            if events is not None
            else (client.tag, entries[-1].seq if entries else -1)
        )
        if key == self._key:
            return
        self._key = key
        requests = [e.time for e in entries if e.kind == "request"][-20:]
        busy = len(requests) == 20 and requests[-1] - requests[0] < 1.0
        self.timeline.min_interval = 1.0 if busy else TIMELINE_INTERVAL
        if events is not None:
            window = events[-TIMELINE_WINDOW:]
            if events and events[0].kind == "open" and numbers is not None:  # every request of the stream is here
                before = events[: len(events) - len(window)]
                first = sum(e.kind == "request" or (e.kind == "error" and not e.streams) for e in before)
                sent = {numbers[e.seq]: e for e in entries if e.kind == "request" and e.seq in numbers}
                self.timeline.update(records_from_events(window, sent, first))
            else:
                self.timeline.update(records_from_events(window))
        else:
            self.timeline.update(records_from_log(entries))
