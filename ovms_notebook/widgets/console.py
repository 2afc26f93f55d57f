"""A stream console: pick a graph, edit its inputs, send requests with automatic or manual timestamps, watch.

`StreamConsole(server)` (an in-kernel `Server`) or `StreamConsole("host:port", "graph")` (any KServe
server with OVMS's streaming extension). Every control works from code, so tests need no browser:

    console = StreamConsole(server, "previous_value")
    console.editors["in"].input.value = 7
    console.send_button.click()           # or console.send({"in": 7}), console.send(timestamp=100)
    console.close_stream()                # half-close: outputs drain, the log ends "stream ended: OK"

The log lines are described in `console_log`. Responses, errors and the end arrive on the client's
reader thread, which only pokes pumps: the log redraws at most every `log_interval` seconds on the
console's own thread, `outputs` (LiveOutputs) and `timeline` at theirs. With an in-kernel server the
timeline shows the server's own events of the stream (its newest `TIMELINE_WINDOW`).
"""

from __future__ import annotations

import html
import itertools
import threading
import time
import traceback
import weakref
from collections.abc import Mapping
from typing import Any

import grpc
import ipywidgets as widgets
import traitlets

from ovms_notebook.client import LogEntry, StreamClient
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.console_graphs import describe_graph, graph_options
from ovms_notebook.widgets.console_log import LogNote, LogView, log_html, log_lines, server_request_timestamps
from ovms_notebook.widgets.editors import InputEditor
from ovms_notebook.widgets.live import LiveOutputs
from ovms_notebook.widgets.pump import Pump
from ovms_notebook.widgets.render import THREAD_PREFIX
from ovms_notebook.widgets.timeline import Timeline, records_from_events, records_from_log

__all__ = ["StreamConsole"]

_RED, _GREEN, _GREY = "#b91c1c", "#15803d", "#6b7280"
_numbers = itertools.count(1)
TIMELINE_WINDOW = 400  # newest server events of a stream the timeline draws
TIMELINE_INTERVAL = 0.25  # seconds between timeline redraws (1 s while requests come faster than 20/s)


class StreamConsole(widgets.VBox):
    """Send requests to one graph over a `ModelStreamInfer` stream and see everything that comes back.

    `target` is an in-kernel `Server` (graphs and typed input streams from it; the timeline follows its
    event log, which also gives the exact timestamps the server assigned) or an address: graphs are
    then the names given (`graph`, or typed into `graph_names`), checked with ModelReady, and inputs are
    typed from ModelMetadata only (default: FP32 values). `timestamps` is the server's automatic
    timestamp policy, "counter" or "wallclock" (default: the Server's own, else "counter").
    """

    log = traitlets.Instance(LogView, allow_none=True)  # the log view (ipywidgets' Logger trait, replaced)

    @traitlets.default("log")
    def _log_view(self) -> LogView:
        return LogView()

    def __init__(self, target: Any, graph: str | None = None, *, timestamps: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None, max_log: int = 300,
                 log_interval: float = 0.1) -> None:
        self.server = None if isinstance(target, str) else target
        self.address: str = target if isinstance(target, str) else target.address
        self.timestamps = timestamps or (getattr(getattr(self.server, "options", None), "timestamps", None)
                                         or "counter")
        self.credentials = credentials
        self.max_log = max_log
        self.client: StreamClient | None = None
        self._number = next(_numbers)
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._request_numbers: dict[int, int] = {}
        self._next_request = 0
        self._notes: list[LogNote] = []
        self._threads: list[threading.Thread] = []
        self._retiring: list[StreamClient] = []
        self._players: weakref.WeakSet[Any] = weakref.WeakSet()
        self._events_seen: tuple[int, str] | None = None
        self._events: list[Any] = []
        self._timeline_key: object = None
        self._closing_stream = False
        self._closed = False
        self._output_names: dict[str, StreamKind] = {}

        self.graph_picker = widgets.Dropdown(description="graph", layout=widgets.Layout(width="22em"))
        self.graph_names = widgets.Text(placeholder="more graph names, comma-separated", continuous_update=False,
                                        layout=widgets.Layout(width="20em",
                                                              display="none" if self.server else ""))
        self.stream_status = widgets.HTML()
        self.editors: dict[str, InputEditor] = {}
        self.editors_box = widgets.VBox()
        self.mode = widgets.ToggleButtons(options=["auto", "manual"], value="auto",
                                          tooltips=["the server stamps each request", "OVMS_MP_TIMESTAMP"],
                                          style={"button_width": "7em"})
        self.manual_timestamp = widgets.IntText(value=0, description="timestamp", layout=widgets.Layout(width="14em"))
        self.next_label = widgets.HTML()
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.send_count = widgets.IntText(value=10, layout=widgets.Layout(width="6em"))
        self.send_n_button = widgets.Button(description="Send N", tooltip="send the inputs N times")
        self.close_button = widgets.Button(description="Close stream", icon="stop",
                                           tooltip="half-close: no more requests, the outputs still due drain")
        self.new_button = widgets.Button(description="New stream", icon="refresh")
        self.log = LogView()
        # column-reverse: the browser keeps such a scroll box scrolled to its end, where the newest line is.
        self.log_box = widgets.Box([self.log], layout=widgets.Layout(
            max_height="18em", overflow="auto", display="flex", flex_flow="column-reverse",
            border="1px solid #e5e7eb", padding="2px 6px"))
        self.outputs = LiveOutputs()
        self.timeline = Timeline(title=graph, min_interval=TIMELINE_INTERVAL)
        self.output = widgets.Output()
        super().__init__(children=[
            widgets.HBox([self.graph_picker, self.graph_names, self.stream_status]),
            self.editors_box,
            widgets.HBox([self.mode, self.manual_timestamp, self.next_label]),
            widgets.HBox([self.send_button, self.send_n_button, self.send_count, self.close_button, self.new_button]),
            self.log_box, self.outputs, self.timeline, self.output,
        ])
        self._pump = Pump(self._refresh, f"console-{self._number}", min_interval=log_interval,
                          on_error=self.output.append_stderr)

        self.send_button.on_click(lambda _: self._guard(self.send))
        self.send_n_button.on_click(lambda _: self._guard(lambda: self.send_n(self.send_count.value)))
        self.close_button.on_click(self._on_close_click)
        self.new_button.on_click(lambda _: self._guard(self.new_stream))
        self.mode.observe(self._update_next_label, names="value")
        self.manual_timestamp.observe(self._update_next_label, names="value")
        self.graph_names.observe(self._on_graph_names, names="value")

        self._quiet = False
        self._set_graph_options([graph] if graph and not self.server else [])
        values = self._option_values()
        if graph is not None and graph in values:
            self.graph_picker.value = graph
        elif graph is not None:
            self.close()
            raise ValueError(f"{graph!r} is not a graph of this server; it has {', '.join(values) or 'none'}")
        elif values:
            available = [d.name for d in self.server.graphs if d.available] if self.server is not None else values
            self.graph_picker.value = (available or values)[0]
        self.graph_picker.observe(self._on_graph, names="value")
        self._select(self.graph_picker.value)

    # -- graphs and editors -----------------------------------------------------------------------------------

    def _option_values(self) -> list[str]:
        return [value for _, value in self.graph_picker.options]

    def _set_graph_options(self, names: list[str]) -> None:
        known = [*self._option_values(), *(n for n in names if n not in self._option_values())]
        options, problem = graph_options(self.server or self.address, known, self.credentials)
        if problem:
            self.output.append_stderr(problem + "\n")
        current = self.graph_picker.value
        self._quiet = True  # ipywidgets resets the value when options change: put it back without a new stream
        try:
            self.graph_picker.options = options
            if current in [value for _, value in options]:
                self.graph_picker.value = current
        finally:
            self._quiet = False

    def _on_graph_names(self, change: dict[str, Any]) -> None:
        names = [n.strip() for n in str(change["new"]).split(",") if n.strip()]
        current = self.graph_picker.value
        self._set_graph_options(names)
        if current is None and names:
            self.graph_picker.value = names[0]

    def _on_graph(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        self._guard(lambda: self._select(change["new"]))

    def _select(self, graph: str | None) -> None:
        """Build the editors and output panels for `graph` and open a fresh stream to it."""
        if graph:
            editors, outputs, note = describe_graph(self.server or self.address, graph, self.credentials)
        else:
            editors, outputs, note = {}, {}, "no graph selected"
        old = self.editors
        self.editors, self._output_names = editors, outputs
        children: list[widgets.Widget] = list(editors.values())
        if note:
            children.append(widgets.HTML(f'<span style="color:{_GREY}">{html.escape(note)}</span>'))
        self.editors_box.children = children
        for editor in old.values():
            editor.close()
        self.timeline.title = graph
        if graph:
            self.new_stream()

    # -- streams ----------------------------------------------------------------------------------------------

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

    # -- drawing ----------------------------------------------------------------------------------------------

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

    # -- life -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop players, cancel the stream, stop every pump and thread, close the widgets."""
        if "_pump" not in self.__dict__:
            super().close()
            return
        self._closed = True
        for player in list(self._players):
            player.close()
        with self._lock:
            clients = [self.client, *self._retiring]
            threads = list(self._threads)
        for client in clients:
            if client is not None and not client.ended:
                client.cancel()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=15)
        self._pump.close()
        self.timeline.close()
        self.outputs.close()
        for editor in self.editors.values():
            editor.close()
        for widget in (self.graph_picker, self.graph_names, self.stream_status, self.editors_box, self.mode,
                       self.manual_timestamp, self.next_label, self.send_button, self.send_count,
                       self.send_n_button, self.close_button, self.new_button, self.log, self.log_box,
                       self.output, *self.children):
            widget.close()
        super().close()

    def __repr__(self) -> str:
        return f"<StreamConsole {self.graph_picker.value!r} at {self.address}: {self.client!r}>"

