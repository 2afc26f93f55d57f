"""A stream console: pick a graph, edit its inputs, send requests with automatic or manual timestamps, watch.

`StreamConsole(server)` (an in-kernel `Server`) or `StreamConsole("host:port", "graph")` (any KServe
server with OVMS's streaming extension). Every control works from code, so tests need no browser:

    console = StreamConsole(server, "previous_value")
    console.editors["in"].input.value = 7
    console.send_button.click()           # or console.send({"in": 7}), console.send(timestamp=100)
    console.close_stream()                # half-close: outputs drain, the log ends "stream ended: OK"
    console.close()                       # ends the stream and the console's threads

The console is not itself an ipywidget: it owns its box (`console.box`, what a notebook shows and what
another widget embeds), so no ipywidgets method (`send`, `log`, `focus`, `close`...) means two things.
Making a second console for the same server and graph (re-running its cell) closes the first one.

The log lines are described in `console_log`. An in-band error names no request; the log's
"error → request #N" and the timeline's hollow mark are the request the client pins it to: errors come
back in request order, and a timestamp error goes to the earliest request not yet answered that the
client predicted OVMS must reject (its timestamp not past the last one on an input stream it feeds, or out
of range), any other error to the earliest one not seen answered (`ovms_notebook.client.attribution`).
Responses, errors and the end arrive on the client's
reader thread, which only pokes the console's pump: the log redraws at most every `log_interval`
seconds on the pump's thread, `outputs` (LiveOutputs) and `timeline` at theirs. With an in-kernel
server the timeline shows the server's own events of the stream (its newest `TIMELINE_WINDOW`).
The stream side is `console_streams.ConsoleStream`; what is drawn from its state is `console_view`.
"""

from __future__ import annotations

import html
import itertools
import traceback
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import ipywidgets as widgets

from ovms_notebook.client import LogEntry, StreamClient, list_ready
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.console_graphs import GraphChoice, describe_graph
from ovms_notebook.widgets.console_log import log_html, log_lines, server_request_timestamps
from ovms_notebook.widgets.console_streams import (
    ConsoleStream,
    SentRequest,
    StreamEnd,
    TimestampPolicy,
    timestamp_policy,
    wait_answers,
)
from ovms_notebook.widgets.console_view import (
    TIMELINE_INTERVAL,
    TIMELINE_WINDOW,  # noqa: F401  (re-exported: importable from here)
    ServerLike,
    TimelineFeed,
    next_label_text,
    server_problem,
    status_html,
)
from ovms_notebook.widgets.editors import InputEditor
from ovms_notebook.widgets.lifecycle import Closable, Composite, close_all, replace_previous, weakly
from ovms_notebook.widgets.live import LiveOutputs
from ovms_notebook.widgets.pump import Pump
from ovms_notebook.widgets.server_events import EventFollower
from ovms_notebook.widgets.timeline import Timeline

__all__ = ["SentRequest", "StreamConsole", "StreamEnd"]

_GREY = "#6b7280"
_REACH_TIMEOUT = 3.0  # seconds a remote address gets to answer ModelReady before New stream says it is gone
_numbers = itertools.count(1)


class StreamConsole(Composite):
    """Send requests to one graph over a `ModelStreamInfer` stream and see everything that comes back.

    `target` is an in-kernel `Server` (graphs and typed input streams from it; the timeline follows its
    event log, which also gives the exact timestamps the server assigned) or an address: graphs are
    then the names given (`graph`, or typed into `graph_names`), checked with ModelReady, and inputs are
    typed from ModelMetadata only (default: FP32 values). `timestamps` is the server's automatic
    timestamp policy, "counter" or "wallclock" (default: the Server's own, else "counter").
    """

    def __init__(
        self,
        target: ServerLike | str,
        graph: str | None = None,
        *,
        timestamps: TimestampPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_log: int = 300,
        log_interval: float = 0.1,
    ) -> None:
        self.server: ServerLike | None = None if isinstance(target, str) else target
        self.address: str = target if isinstance(target, str) else target.address
        options = getattr(self.server, "options", None)
        self.timestamps = timestamp_policy(timestamps or getattr(options, "timestamps", None) or "counter")
        self.credentials = credentials
        self.max_log = max_log
        self.players: weakref.WeakSet[Closable] = weakref.WeakSet()  # FramePlayers feeding this console
        number = next(_numbers)

        self.output = widgets.Output()
        self._graphs = GraphChoice(self.server or self.address, credentials, on_problem=self.output.append_stderr)
        self.graph_picker = self._graphs.dropdown
        self.graph_names = self._graphs.names
        self.stream_status = widgets.HTML()
        self.editors: dict[str, InputEditor] = {}
        self._described: tuple[str | None, str | None] = (None, None)  # graph and served version the editors fit
        self.editors_box = widgets.VBox()
        self.mode = widgets.ToggleButtons(
            options=["auto", "manual"],
            value="auto",
            tooltips=["the server stamps each request", "OVMS_MP_TIMESTAMP"],
            style={"button_width": "7em"},
        )
        self.manual_timestamp = widgets.IntText(value=0, description="timestamp", layout=widgets.Layout(width="14em"))
        self.next_label = widgets.HTML()
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.send_count = widgets.IntText(value=10, layout=widgets.Layout(width="6em"))
        self.send_n_button = widgets.Button(description="Send N", tooltip="send the inputs N times")
        self.close_button = widgets.Button(
            description="Close stream", icon="stop", tooltip="half-close: no more requests, the outputs still due drain"
        )
        self.new_button = widgets.Button(description="New stream", icon="refresh")
        self.log = widgets.HTML()  # the log lines (see console_log)
        # column-reverse: the browser keeps such a scroll box scrolled to its end, where the newest line is.
        self.log_box = widgets.Box(
            [self.log],
            layout=widgets.Layout(
                max_height="18em",
                overflow="auto",
                display="flex",
                flex_flow="column-reverse",
                border="1px solid #e5e7eb",
                padding="2px 6px",
            ),
        )
        self.outputs = LiveOutputs()
        self.timeline = Timeline(title=graph, min_interval=TIMELINE_INTERVAL)
        self.box = widgets.VBox(
            [
                widgets.HBox([self.graph_picker, self.graph_names, self.stream_status]),
                self.editors_box,
                widgets.HBox([self.mode, self.manual_timestamp, self.next_label]),
                widgets.HBox(
                    [self.send_button, self.send_n_button, self.send_count, self.close_button, self.new_button]
                ),
                self.log_box,
                self.outputs.box,
                self.timeline.box,
                self.output,
            ]
        )
        self._output_names: dict[str, Any] = {}
        self._mark: SentRequest | None = None  # the first request sent from code since the last wait_for
        self._returned = -1  # log seq of the last answer a wait_for returned
        self._unreachable = ""  # a remote address that did not answer, until it does
        self._feed = TimelineFeed(self.timeline)
        self._pump = Pump(
            self._refresh, f"console-{number}", min_interval=log_interval, on_error=self.output.append_stderr
        )
        self._events = EventFollower(self._pump.poke)
        self._stream = ConsoleStream(
            self.address,
            name=f"console-{number}",
            credentials=credentials,
            timestamps=self.timestamps,
            max_log=max_log,
            on_change=self._pump.poke,
            on_entry=weakly(self._on_entry),
        )
        self._own(
            _release,
            self._stream,
            self._pump,
            self._events,
            self.players,
            self.outputs,
            self.timeline,
            self.editors_box,
            self.box,
        )

        self.send_button.on_click(weakly(self._on_send))
        self.send_n_button.on_click(weakly(self._on_send_n))
        self.close_button.on_click(weakly(self._on_close_click))
        self.new_button.on_click(weakly(self._on_new))
        self.mode.observe(weakly(self._on_mode), names="value")
        self.manual_timestamp.observe(weakly(self._update_next_label), names="value")

        self._graphs.add([graph] if graph and not self.server else [])
        values = self._graphs.values()
        if graph is not None and graph in values:
            self.graph_picker.value = graph
        elif graph is not None:
            self.close()
            raise ValueError(f"{graph!r} is not a graph of this server; it has {', '.join(values) or 'none'}")
        elif values:
            available = [d.name for d in self.server.graphs if d.available] if self.server is not None else values
            self.graph_picker.value = (available or values)[0]
        replace_previous(("console", self.address, self.graph_picker.value), self)
        self._graphs.on_select(weakly(self._on_graph))
        self._select(self.graph_picker.value)

    # -- the stream ---------------------------------------------------------------------------------------------

    @property
    def client(self) -> StreamClient | None:
        """The current stream's `StreamClient` (its full log, status, `wait_for`)."""
        return self._stream.client

    def new_stream(self) -> None:
        """Open a fresh stream to the selected graph (timestamps restart, graph state is new).

        A previous stream still open is half-closed in the background; its late outputs are not shown.
        """
        graph = self.graph_picker.value
        if graph is None:
            raise ValueError("pick a graph first")
        problem = server_problem(self.server) or self._check_reachable(graph)
        if problem:
            self._pump.poke()
            raise ClientError(problem)
        self._events.stop()
        client = self._stream.open(graph)
        if self.server is not None:
            self._events.follow(self.server.events, client_tag=client.tag)
        self._mark, self._returned = None, -1
        self.outputs.reset(self._output_names)
        self._feed.reset()
        with self.box.hold_sync():
            self.manual_timestamp.value = 0
            self._update_next_label()

    def send(self, inputs: Mapping[str, object] | None = None, timestamp: int | None = None) -> SentRequest:
        """Send one request; returns at once what was sent (its number and timestamp).

        `inputs` None: the editors' values (those whose "send" box is ticked). `timestamp` None: the mode
        decides (auto: the server stamps it; manual: `manual_timestamp`, which then moves one past it).
        Raises ValueError for an input that cannot be built, ClientError once the stream ended.
        """
        sent = self._send(inputs, timestamp)[0]
        if self._mark is None:  # where the answers of this cell's requests start (see wait_for)
            self._mark = sent
        return sent

    def _check_reachable(self, graph: str) -> str:
        """A remote target: "" when the address answers (ModelReady), else why not (also shown until it does)."""
        if self.server is not None:
            return ""
        try:
            list_ready(self.address, [graph], credentials=self.credentials, timeout=_REACH_TIMEOUT)
        except ClientError as error:
            self._unreachable = f"no server answers at {self.address}: {error}"
        else:
            self._unreachable = ""
        return self._unreachable

    def _problem(self) -> str:
        """Why nothing can be sent: a stopped in-kernel server, or a remote address that did not answer."""
        return server_problem(self.server) or self._unreachable

    def _send(self, inputs: Mapping[str, object] | None, timestamp: int | None) -> tuple[SentRequest, LogEntry]:
        problem = server_problem(self.server)
        if problem:
            raise ClientError(problem)
        if inputs is None:
            inputs = self.editor_values()
        if timestamp is None and self.mode.value == "manual":
            timestamp = int(self.manual_timestamp.value)
        sent = self._stream.send(inputs, timestamp)
        if timestamp is not None:  # the manual field offers the smallest timestamp the next request may have
            allowed = self.client.next_timestamp() if self.client is not None else None
            self.manual_timestamp.value = allowed if allowed is not None else timestamp + 1
        self._update_next_label()
        return sent

    def send_n(self, n: int) -> list[SentRequest]:
        """Send the same inputs `n` times (manual mode: consecutive timestamps)."""
        sent = self._send_n(n)
        if self._mark is None:
            self._mark = sent[0]
        return sent

    def _send_n(self, n: int) -> list[SentRequest]:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        inputs = self.editor_values()
        return [self._send(inputs, None)[0] for _ in range(n)]

    def editor_values(self) -> dict[str, object]:
        """{input stream: value} of every editor whose "send" box is ticked."""
        return {name: editor.value for name, editor in self.editors.items() if editor.include.value}

    def close_stream(self, timeout: float = 30) -> StreamEnd:
        """Half-close the stream and wait until every output has arrived (the log then ends "stream ended")."""
        end = self._stream.half_close(timeout)
        self.flush()
        return end

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the log, the live outputs and the timeline show everything received so far."""
        done = True
        for _ in range(3):  # the server's event log may still move just after the client saw the effect
            seen = self._events.count
            self._pump.poke()
            done = self._pump.flush(timeout) and done
            if seen == self._events.count:
                break
        done = self.outputs.flush(timeout) and done
        return self.timeline.flush(timeout) and done

    def wait_for(self, count: int, timeout: float = 10) -> list[LogEntry]:
        """Block until `count` answers (responses and in-band errors) to this cell's requests arrived; return
        those `count`, in arrival order, once the console shows them (`flush()`).

        "This cell's requests" are the ones sent from code (`send`, `send_n`, a player) since the previous
        `wait_for` on this stream: the first of them marks where they start, and an answer counts when it
        arrived after that request was sent and is not an older request's (a response stamped before the
        marked request's timestamp, an error pinned to an earlier request). Clicks do not mark; when no
        request was sent from code since the previous `wait_for`, the answers counted are the ones that
        arrived after those it returned. So `send` three times, then `wait_for(3)` gives the three answers,
        whatever was clicked before. Raises TimeoutError after `timeout` seconds, ClientError if the stream
        ends first.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        client = self.client
        if client is None:
            raise ClientError("no stream: pick a graph first")
        answers = wait_answers(client, count, timeout, self._returned, self._mark)
        self._mark, self._returned = None, answers[-1].seq
        self.flush(timeout)
        return answers

    # -- buttons and pickers --------------------------------------------------------------------------------------

    def _guard(self, action: Callable[[], object]) -> None:
        """Run a button's action; a failure becomes a red "not sent" line (and a traceback if unexpected)."""
        try:
            action()
        except Exception as error:
            self._stream.note(str(error))
            if not isinstance(error, ValueError | ClientError):
                self.output.append_stderr(traceback.format_exc())

    def _on_send(self, _button: widgets.Button) -> None:
        self._guard(lambda: self._send(None, None))  # a click: not a request of a cell (see wait_for)

    def _on_send_n(self, _button: widgets.Button) -> None:
        self._guard(lambda: self._send_n(int(self.send_count.value)))

    def _on_new(self, _button: widgets.Button) -> None:
        graph = self.graph_picker.value
        if graph and (graph, self._served_version(graph)) != self._described:
            self._guard(lambda: self._select(graph))  # reloaded since the editors were built: build them anew
        else:
            self._guard(self.new_stream)

    def _served_version(self, graph: str) -> str | None:
        """The served version (pbtxt md5) of `graph` on an in-kernel server; None for a remote one."""
        definition = next((d for d in self.server.graphs if d.name == graph), None) if self.server else None
        return definition.spec.md5 if definition is not None and definition.spec is not None else None

    def _on_close_click(self, _button: widgets.Button) -> None:
        """The button must not block the kernel while outputs drain: close on a console thread."""
        self._stream.background("close", weakly(self._close_in_background))

    def _close_in_background(self) -> None:
        self._guard(self.close_stream)

    def _on_mode(self, change: dict[str, Any]) -> None:
        """Switching to manual: the field offers at least the smallest timestamp the server would accept (a
        rejected request moves nothing; automatic sends moved it), a later one typed before stays."""
        allowed = self.client.next_timestamp() if self.client is not None and not self.client.ended else None
        if change["new"] == "manual" and allowed is not None and allowed > int(self.manual_timestamp.value):
            self.manual_timestamp.value = allowed  # its observer redraws the label
        else:
            self._update_next_label()

    def _on_graph(self, graph: str | None) -> None:
        self._guard(lambda: self._select(graph))

    def _select(self, graph: str | None) -> None:
        """Build the editors and output panels for `graph` and open a fresh stream to it."""
        if graph:
            editors, outputs, note = describe_graph(self.server or self.address, graph, self.credentials)
        else:
            editors, outputs, note = {}, {}, "no graph selected"
        old = self.editors
        self.editors, self._output_names = editors, dict(outputs)
        self._described = (graph, self._served_version(graph) if graph else None)
        children: list[widgets.Widget] = [editor.box for editor in editors.values()]
        if note:
            children.append(widgets.HTML(f'<span style="color:{_GREY}">{html.escape(note)}</span>'))
        self.editors_box.children = children
        for editor in old.values():
            editor.close()
        self.timeline.title = graph
        if graph:
            self.new_stream()

    # -- drawing (the pump's thread) ------------------------------------------------------------------------------

    def _update_next_label(self, _change: object = None) -> None:
        blocked = (
            "the server is gone"
            if server_problem(self.server)
            else f"no server answers at {self.address}"
            if self._unreachable
            else ""
        )
        text = next_label_text(self.client, str(self.mode.value), int(self.manual_timestamp.value), blocked)
        self.next_label.value = f"<code>{html.escape(text)}</code>"

    def _on_entry(self, client: StreamClient, _entry: LogEntry) -> None:
        """Reader thread: a response, error or end of the current stream arrived. Only pokes; never draws here."""
        self.outputs.update(client.log)
        self._pump.poke()

    def _refresh(self) -> None:
        """Redraw the log, the stream status, the buttons, the next timestamp and the timeline."""
        state = self._stream.state()
        client = state.client
        if client is None:
            return
        status = client.status
        if self.server is None and status is not None and status.code == "UNAVAILABLE":
            self._unreachable = f"no server answers at {self.address}: {status.text}"
        problem = self._problem()
        entries = client.log
        events = (self._events.events() or []) if self.server is not None else None
        exact = server_request_timestamps(events) if events and events[0].kind == "open" else []
        self.log.value = log_html(log_lines(entries, state.numbers, exact, state.notes))
        stuck = client.ended or state.closing or bool(problem)
        with self.box.hold_sync():
            self.stream_status.value = status_html(client, entries, state.closing, self.address, problem)
            for button in (self.send_button, self.send_n_button, self.close_button):
                button.disabled = stuck
            gone = bool(server_problem(self.server))  # a remote server may come back: New stream asks again
            self.new_button.disabled = gone
            self.graph_picker.disabled = gone
            self._update_next_label()
        self._feed.feed(client, entries, events, state.numbers)
        if entries and len(state.numbers) > 2 * self.max_log:  # a long stream: forget requests the log dropped
            self._stream.forget_before(entries[0].seq)

    def __repr__(self) -> str:
        return f"<StreamConsole {self.graph_picker.value!r} at {self.address}: {self.client!r}>"


def _release(
    stream: ConsoleStream,
    pump: Pump,
    events: EventFollower,
    players: weakref.WeakSet[Closable],
    outputs: LiveOutputs,
    timeline: Timeline,
    editors_box: widgets.Box,
    box: widgets.Box,
) -> None:
    """The console's finalizer: players, streams and threads first, then every widget it made."""
    for player in list(players):
        player.close()
    events.stop()
    stream.shutdown()
    pump.close()
    for editor_box in editors_box.children:
        close_all([editor_box])
    outputs.close()
    timeline.close()
    close_all([box])
