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

This module is the console's layout and graph selection; sending and the
stream's life are `console_streams.ConsoleStreams`, drawing is
`console_view.ConsoleView`, both mixed into `StreamConsole`.
"""

from __future__ import annotations

import html
import itertools
import threading
import weakref
from typing import Any

import grpc
import ipywidgets as widgets
import traitlets

from ovms_notebook.client import StreamClient
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.widgets.console_graphs import describe_graph, graph_options
from ovms_notebook.widgets.console_log import LogNote, LogView
from ovms_notebook.widgets.console_streams import ConsoleStreams
from ovms_notebook.widgets.console_view import (
    TIMELINE_INTERVAL,
    TIMELINE_WINDOW,  # noqa: F401  (re-exported: importable from here)
    ConsoleView,
)
from ovms_notebook.widgets.editors import InputEditor
from ovms_notebook.widgets.live import LiveOutputs
from ovms_notebook.widgets.pump import Pump
from ovms_notebook.widgets.timeline import Timeline

__all__ = ["StreamConsole"]

_GREY = "#6b7280"
_numbers = itertools.count(1)


class StreamConsole(ConsoleStreams, ConsoleView, widgets.VBox):
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

