"""Sending and the stream's life for `StreamConsole`: open, send, half-close, and the button actions around them.

`ConsoleStreams` is mixed into `StreamConsole` (widgets/console.py), which
builds the widgets and the state these methods use (`client`, `_lock`, the
request numbering, `_pump`). It is the only part of the console that talks to
a `StreamClient`: it opens a fresh one per graph selection or "New stream"
(retiring the previous one in the background), numbers the requests for the
log, and keeps every blocking wait (a half-close draining outputs) off the
kernel's thread when a button asks for it. Drawing is `ConsoleView`'s.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ovms_notebook.client import LogEntry, StreamClient
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.console_log import LogNote
from ovms_notebook.widgets.render import THREAD_PREFIX

__all__ = ["ConsoleStreams"]


class ConsoleStreams:
    """StreamConsole's stream side: `new_stream`, `send`, `send_n`, `close_stream` and what the buttons run."""

    def new_stream(self) -> None:
        """Open a fresh stream to the selected graph (timestamps restart, graph state is new).

        A previous stream still open is half-closed in the background; its late outputs are not shown.
        """
        graph = self.graph_picker.value
        if graph is None:
            raise ValueError("pick a graph first")
        client = StreamClient(self.address, graph, credentials=self.credentials, timestamps=self.timestamps,  # type: ignore[arg-type]
                              max_log=self.max_log)
        for register in (client.on_response, client.on_error, client.on_end):
            register(lambda entry, client=client: self._on_entry(client, entry))
        with self._lock:
            old, self.client = self.client, client
            self._request_numbers, self._next_request, self._notes = {}, 0, []
            self._events_seen, self._events, self._timeline_key = None, [], None
            self._closing_stream = False
        if old is not None and not old.ended:
            with self._lock:
                self._retiring = [c for c in self._retiring if not c.ended] + [old]
            self._background(f"console-{self._number}-retire", lambda: old.close(timeout=10))
        self.outputs.reset(self._output_names)
        self.timeline.update([])
        with self.hold_sync():
            self.manual_timestamp.value = 0
            self._update_next_label()
        self._pump.poke()

    def send(self, inputs: Mapping[str, object] | None = None, timestamp: int | None = None) -> LogEntry:
        """Send one request and return its log entry at once.

        `inputs` None: the editors' values (those whose "send" box is ticked). `timestamp` None: the mode
        decides (auto: the server stamps it; manual: `manual_timestamp`, which then moves one past it).
        Raises ValueError for an input that cannot be built, ClientError once the stream ended.
        """
        client = self.client
        if client is None:
            raise ClientError("no stream: pick a graph first")
        if client.ended:
            status = client.status.text if client.status is not None else "OK"
            raise ClientError(f"the stream has ended ({status}): press New stream to send again")
        if inputs is None:
            inputs = self.editor_values()
        if timestamp is None and self.mode.value == "manual":
            timestamp = int(self.manual_timestamp.value)
        with self._lock:
            entry = client.send(inputs, timestamp=timestamp)
            if client is self.client:
                self._request_numbers[entry.seq] = self._next_request
                self._next_request += 1
        if timestamp is not None:
            self.manual_timestamp.value = timestamp + 1  # the smallest timestamp the next request may have
        self._update_next_label()
        self._pump.poke()
        return entry

    def send_n(self, n: int) -> list[LogEntry]:
        """Send the same inputs `n` times (manual mode: consecutive timestamps)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        inputs = self.editor_values()
        return [self.send(inputs) for _ in range(n)]

    def editor_values(self) -> dict[str, object]:
        """{input stream: value} of every editor whose "send" box is ticked."""
        return {name: editor.value for name, editor in self.editors.items() if editor.include.value}

    def close_stream(self, timeout: float = 30) -> LogEntry:
        """Half-close the stream, wait until every output has arrived, return the end entry (shown in the log)."""
        client = self.client
        if client is None:
            raise ClientError("no stream: pick a graph first")
        with self._lock:
            self._closing_stream = True
        self._pump.poke()
        end = client.close(timeout=timeout)
        self.flush()
        return end

    def _on_close_click(self, _button: widgets.Button) -> None:
        """The button must not block the kernel while outputs drain: close on a widget thread."""
        self._background(f"console-{self._number}-close", lambda: self._guard(self.close_stream))

    def _background(self, name: str, work: Any) -> None:
        thread = threading.Thread(target=work, name=f"{THREAD_PREFIX}{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _guard(self, action: Any) -> Any:
        """Run a button's action; a failure becomes a red "not sent" line and its text in `output`."""
        try:
            return action()
        except Exception as error:
            with self._lock:
                self._notes.append(LogNote(time.monotonic(), str(error)))
            if not isinstance(error, ValueError | ClientError):
                self.output.append_stderr(traceback.format_exc())
            self._pump.poke()
            return None

    def _on_entry(self, client: StreamClient, entry: LogEntry) -> None:
        """Reader thread: a response, error or end arrived. Only pokes; never draws here."""
        if client is not self.client or self._closed:
            return
        self.outputs.update(client.log)
        self._pump.poke()
