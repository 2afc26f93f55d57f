"""Rendering for `StreamConsole`: the log, the stream's status, the next timestamp and the timeline.

`ConsoleView` is mixed into `StreamConsole` (widgets/console.py), which
builds the widgets these methods draw into. Everything here runs on the
console's own pump thread (or the caller's, for `flush`/`wait_for`), never on
the client's reader thread, which only pokes the pump: a busy stream costs
the kernel at most one redraw per `log_interval`, and the timeline, which is
dearer, is fed only the newest `TIMELINE_WINDOW` server events.
"""

from __future__ import annotations

import html
from typing import Any

from ovms_notebook.client import LogEntry, StreamClient
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.console_log import log_html, log_lines, server_request_timestamps
from ovms_notebook.widgets.timeline import records_from_events, records_from_log

__all__ = ["TIMELINE_INTERVAL", "TIMELINE_WINDOW", "ConsoleView"]

_GREEN, _GREY = "#15803d", "#6b7280"
TIMELINE_WINDOW = 400  # newest server events of a stream the timeline draws
TIMELINE_INTERVAL = 0.25  # seconds between timeline redraws (1 s while requests come faster than 20/s)


class ConsoleView:
    """StreamConsole's drawing: `_refresh` (the pump's job), the status and next-timestamp labels, `flush`."""

    def _update_next_label(self, _change: object = None) -> None:
        client = self.client
        if client is None:
            text = "next timestamp: — (no stream)"
        elif client.ended:
            text = "stream ended: press New stream"
        elif self.mode.value == "manual":
            text = f"next timestamp: {self.manual_timestamp.value} (manual)"
        else:
            predicted = client.next_timestamp()
            text = f"next timestamp: {predicted if predicted is not None else 'server clock'} (auto)"
        self.next_label.value = f"<code>{html.escape(text)}</code>"

    def _refresh(self) -> None:
        """Console thread: redraw the log, the stream status, the next timestamp and the timeline."""
        with self._refresh_lock:
            client = self.client
            if client is None or self._closed:
                return
            entries = client.log
            with self._lock:
                numbers = dict(self._request_numbers)
                notes = list(self._notes)
                closing = self._closing_stream
            events = self._stream_events(client)
            exact = server_request_timestamps(events) if events and events[0].kind == "open" else []
            self.log.value = log_html(log_lines(entries, numbers, exact, notes))
            ended = client.ended
            with self.hold_sync():
                self.stream_status.value = self._status_html(client, entries, closing)
                for button in (self.send_button, self.send_n_button, self.close_button):
                    button.disabled = ended or closing
                self._update_next_label()
            self._feed_timeline(client, entries, events)
            if entries and len(numbers) > 2 * self.max_log:  # a long stream: forget requests the log dropped
                with self._lock:
                    oldest = entries[0].seq
                    self._request_numbers = {k: v for k, v in self._request_numbers.items() if k >= oldest}

    def _stream_events(self, client: StreamClient) -> list[Any]:
        """The server's events of this stream (in-kernel server only), re-read when the event log changed.

        The server logs some events after the client has seen their effect (an output once written, the
        end), so while the event log keeps changing the console polls it again at its own pace.
        """
        if self.server is None:
            return []
        version = self.server.events.version
        if self._events_seen != (version, client.tag):
            if self._events_seen is not None:
                self._pump.poke()  # the log moved since last time: look once more after this run
            self._events_seen = (version, client.tag)
            self._events = self.server.events.snapshot(client_tag=client.tag)
        return self._events

    def _feed_timeline(self, client: StreamClient, entries: list[LogEntry], events: list[Any]) -> None:
        """Give the timeline the newest `TIMELINE_WINDOW` events (server) or the client log (remote), when new.

        A video stream makes thousands of events; drawing them all several times a second would cost
        the kernel more than the stream itself, so a busy stream's timeline also redraws only once a second.
        """
        key = (client.tag, len(events), events[-1] if events else None) if self.server is not None else (
            client.tag, entries[-1].seq if entries else -1)
        if key == self._timeline_key:
            return
        self._timeline_key = key
        requests = [e.time for e in entries if e.kind == "request"][-20:]
        busy = len(requests) == 20 and requests[-1] - requests[0] < 1.0
        self.timeline.min_interval = 1.0 if busy else TIMELINE_INTERVAL
        if self.server is not None:
            self.timeline.update(records_from_events(events[-TIMELINE_WINDOW:]))
        else:
            self.timeline.update(records_from_log(entries))

    def _status_html(self, client: StreamClient, entries: list[LogEntry], closing: bool) -> str:
        sent = sum(e.kind == "request" for e in entries)
        state = ("ended" if client.ended else "closing" if closing else "open" if sent else "ready")
        colour = _GREEN if state in ("open", "ready") else _GREY
        return (f'<span style="font-size:12px">stream to <code>{html.escape(client.graph)}</code> '
                f'at <code>{html.escape(self.address)}</code>: <span style="color:{colour}">{state}</span></span>')

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the log, the live outputs and the timeline show everything received so far."""
        done = True
        for _ in range(3):  # the server's event log may still move just after the client saw the effect
            version = self.server.events.version if self.server is not None else None
            self._pump.poke()
            done = self._pump.flush(timeout) and done
            if version == (self.server.events.version if self.server is not None else None):
                break
        done = self.outputs.flush(timeout) and done
        return self.timeline.flush(timeout) and done

    def wait_for(self, count: int, timeout: float = 10) -> list[LogEntry]:
        """Block until `count` responses and errors arrived on the current stream, then `flush()`."""
        if self.client is None:
            raise ClientError("no stream: pick a graph first")
        entries = self.client.wait_for(count, timeout)
        self.flush(timeout)
        return entries
