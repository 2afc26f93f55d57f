"""A server at a glance: where it listens, its graphs and why a graph failed, and one graph drawn live.

`ServerPanel` is a panel (its `box`, a VBox) a person can leave open while streams run: with
`start_live()` a daemon thread redraws the chosen graph with the packet counts
the server has seen (it only sets traits). `server_mimebundle(server)` is what
`Server._repr_mimebundle_` returns: the panel's widget view, a static HTML
table and a short text/plain for places without a widget manager.
"""

from __future__ import annotations

import html
import itertools
import threading
import traceback
import weakref
from typing import Any

import ipywidgets as widgets

from ovms_notebook.errors import GraphLoadError
from ovms_notebook.widgets.graph_render import GraphRenderError, fitted_svg
from ovms_notebook.widgets.graphview import graph_dot
from ovms_notebook.widgets.lifecycle import Composite, close_all, closing_views
from ovms_notebook.widgets.render import THREAD_PREFIX
from ovms_notebook.widgets.server_tables import (
    _GREY,
    _state_of,
    graph_source,
    graphs_key,
    graphs_table_html,
    header_html,
)

_numbers = itertools.count(1)
_panels: weakref.WeakKeyDictionary[Any, ServerPanel] = weakref.WeakKeyDictionary()
_panels_lock = threading.Lock()


class ServerPanel(Composite):
    """Header, graphs table and a drawing of the chosen graph with live packet counts (shown as its `box`).

    The drawing is SVG from Graphviz's `dot`; without `dot` the DOT source is
    shown in a text area instead. `refresh()` (or the Refresh button) re-reads
    the server; `start_live()` redraws from a daemon thread when the counts
    change, `stop_live()` or `close()` stop it.
    """

    def __init__(self, server: Any, *, live_interval: float = 1.0, **kwargs: Any) -> None:
        if isinstance(server, str):
            raise TypeError(
                f"ServerPanel shows an in-kernel Server, got the address {server!r}: "
                "use RemotePanel(address, graphs=[...]) for a server known only by its address"
            )
        if live_interval <= 0:
            raise ValueError(f"live_interval must be > 0 seconds, got {live_interval}")
        self.server = server
        self.live_interval = live_interval
        self.dot = ""
        self.draw_count = 0
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.graph_picker = widgets.Dropdown(description="Graph", layout=widgets.Layout(width="22em"))
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="Re-read the server's graphs and counts"
        )
        # Shown at the SVG's own fitted size (not stretched to the box): a wider graph scrolls in its box.
        self.drawing = widgets.Image(format="svg+xml", layout=widgets.Layout(align_self="flex-start", max_width="none"))
        self.drawing_box = widgets.Box([self.drawing], layout=widgets.Layout(max_width="100%", overflow="auto hidden"))
        self.dot_text = widgets.Textarea(layout=widgets.Layout(width="100%", height="16em", display="none"))
        self.portability_button = widgets.Button(
            description="Portability", icon="check", tooltip="Could a stock OpenVINO Model Server serve these graphs?"
        )
        self.portability = widgets.HTML()
        self.expand = widgets.Checkbox(
            description="Open subgraphs",
            indent=False,
            layout=widgets.Layout(width="12em"),
            tooltip="Draw the subgraphs this package or the graph folder inlines node by node",
        )
        self.subgraph_hint = widgets.HTML()
        self.output = widgets.Output()
        self.box = widgets.VBox(
            children=[
                self.header,
                self.table,
                widgets.HBox([self.graph_picker, self.expand, self.refresh_button, self.portability_button]),
                self.subgraph_hint,
                self.portability,
                self.drawing_box,
                self.dot_text,
                self.output,
            ],
            **kwargs,
        )
        self._number = next(_numbers)
        self._draw_lock = threading.Lock()
        self._live: threading.Thread | None = None
        self._stop_live = threading.Event()
        self._closed = False
        self._drawn: tuple[str | None, dict[str, int]] | None = None
        self._kinds_seen: tuple[object, dict[str, str]] | None = None
        self._syncing = False
        self._graphs_shown: tuple[str, tuple[tuple[str, str, str, str], ...]] | None = None
        self.refresh()
        self.graph_picker.observe(self._on_pick, names="value")
        self.expand.observe(self._on_pick, names="value")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.portability_button.on_click(lambda _button: self.check_portability())

    # -- content ----------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the server: header, table, graph list, drawing."""
        try:
            self._graphs_shown = graphs_key(self.server)
            graphs = list(self.server.graphs)  # one reading for the header's count, the table and the picker
            names = [definition.name for definition in graphs]
            self.header.value = header_html(self.server, graphs)
            self.table.value = graphs_table_html(self.server, graphs)
            chosen = self.graph_picker.value
            self._syncing = True
            try:
                with self.graph_picker.hold_sync():  # options and value reach the browser in one message
                    self.graph_picker.options = names
                    self.graph_picker.value = chosen if chosen in names else (names[0] if names else None)
            finally:
                self._syncing = False
            self.draw(force=True)
        except Exception:
            self.output.append_stderr(traceback.format_exc())

    def check_portability(self) -> None:
        """Show `ovms_notebook.check` of the served config.json with the server's timestamp options."""
        from ovms_notebook.portability import check

        try:
            options = self.server.options
            report = check(
                self.server.repository.config_path,
                timestamps=options.timestamps,
                timestamp_check=options.timestamp_check,
            )
            self.portability.value = report._repr_html_()
        except Exception:
            self.output.append_stderr(traceback.format_exc())

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.draw(force=True)

    def draw(self, force: bool = False) -> bool:
        """Draw the chosen graph with the current packet counts; False when nothing changed (unless forced)."""
        with self._draw_lock:
            name = self.graph_picker.value
            definition = next((d for d in self.server.graphs if d.name == name), None)
            counts = self.server.events.packet_counts(name) if name else {}
            if not force and self._drawn == (name, counts):
                return False
            self._drawn = (name, counts)
            drawable = graph_source(definition) if definition is not None else None
            if drawable is None or definition is None:
                reason = definition.error if definition is not None and definition.error else "no graph chosen"
                dot = ""
                self._show_text(f"{name}: {_state_of(definition)}\n{reason}" if definition else reason)
            else:
                source, own = drawable
                self._hint_subgraphs(source, own)
                title = name if definition.available else f"{name} ({_state_of(definition)})"
                try:
                    dot = graph_dot(
                        source,
                        counts=counts,
                        title=title,
                        kinds=self._kinds(source, own),
                        expand=self.expand.value,
                        subgraphs=own,
                    )
                except GraphLoadError as error:  # a subgraph cannot be opened: say why instead of drawing
                    self._show_text(f"{name}: {error}")
                    self.dot, self.draw_count = "", self.draw_count + 1
                    return True
                try:
                    fitted = fitted_svg(dot)
                except GraphRenderError as error:
                    self.output.append_stderr(f"{error}; showing the DOT source instead\n")
                    fitted = None
                if fitted is None:
                    self._show_text(dot)
                else:
                    svg, size = fitted
                    with self.drawing.hold_sync(), self.drawing.layout.hold_sync(), self.dot_text.layout.hold_sync():
                        self.drawing.value = svg
                        self.drawing.layout.width = f"{size.width_px}px"
                        self.drawing.layout.height = f"{size.height_px}px"
                        self.drawing.layout.display = self.drawing_box.layout.display = None
                        self.dot_text.layout.display = "none"
            self.dot = dot
            self.draw_count += 1
            return True

    def _hint_subgraphs(self, source: Any, own: dict[str, str]) -> None:
        """"Open subgraphs" only where there is one to open (inlined by this package or the graph's folder); the
        mediapipe wheel's own subgraphs are compiled in, so say how to draw their insides instead."""
        from ovms_notebook.widgets.graph_parts import SUBGRAPH, WHEEL_SUBGRAPH, calculator_kinds, source_config

        config, own = source_config(source, own)
        kinds = calculator_kinds((node.calculator for node in config.node), own)
        openable = any(kind == SUBGRAPH for kind in kinds.values())
        wheel = [name for name, kind in kinds.items() if kind == WHEEL_SUBGRAPH]
        hint = ""
        if wheel:
            names = ", ".join(f"<code>{html.escape(name)}</code>" for name in wheel)
            hint = (f'<span style="font-size:12px;color:{_GREY}">{names}: the mediapipe wheel\'s own '
                    f"subgraph{'s' if len(wheel) > 1 else ''}, compiled in (drawn as one box); "
                    f'<code>GraphView("{html.escape(wheel[0])}")</code> draws its insides</span>')
        with self.expand.hold_sync(), self.subgraph_hint.hold_sync():
            self.expand.disabled = not openable
            self.expand.tooltip = ("Draw the subgraphs this package or the graph folder inlines node by node"
                                   if openable else "This graph has no subgraph inlined here to open")
            if self.subgraph_hint.value != hint:
                self.subgraph_hint.value = hint

    def _kinds(self, source: Any, own: dict[str, str]) -> dict[str, str]:
        """How each calculator of the graph runs here (Python, subgraph, unknown...), to mark its box; kept per
        graph version, since the live thread redraws on every packet count change."""
        from ovms_notebook.widgets.graph_parts import calculator_kinds, drawn_nodes, source_config

        config, own = source_config(source, own)
        key = (config.SerializeToString(deterministic=True), tuple(sorted(own.items())), own.model_entries)
        if self._kinds_seen is None or self._kinds_seen[0] != key:
            try:
                items = drawn_nodes(config, True, own)
            except GraphLoadError:  # a subgraph node wired wrongly: its own box is still drawn
                items = drawn_nodes(config, False, own)
            kinds = calculator_kinds((item.node.calculator for item in items), own)
            self._kinds_seen = (key, kinds)
        return dict(self._kinds_seen[1])

    def _show_text(self, text: str) -> None:
        with self.dot_text.hold_sync(), self.drawing.layout.hold_sync(), self.drawing_box.layout.hold_sync():
            self.dot_text.value = text
            self.dot_text.layout.display = None
            self.drawing.layout.display = self.drawing_box.layout.display = "none"

    # -- live updates -----------------------------------------------------------------------------------------

    def start_live(self, interval: float | None = None) -> None:
        """Redraw from a daemon thread, at most every `interval` s, whenever the server's events change."""
        if interval is not None:
            if interval <= 0:
                raise ValueError(f"interval must be > 0 seconds, got {interval}")
            self.live_interval = interval
        if self._closed or (self._live is not None and self._live.is_alive()):
            return
        self._stop_live = threading.Event()
        self._live = threading.Thread(
            target=self._live_loop,
            args=(self._stop_live,),
            name=f"{THREAD_PREFIX}panel-{self._number}-live",
            daemon=True,
        )
        self._live.start()

    @property
    def live(self) -> bool:
        """True while the live thread runs."""
        return self._live is not None and self._live.is_alive()

    def _live_loop(self, stop: threading.Event) -> None:
        seen: tuple[int, int, str] | None = None
        while not stop.wait(self.live_interval):
            try:
                state = self.server.state
                now = (self.server.events.version, len(self.server.sessions), state)
                if graphs_key(self.server) != self._graphs_shown:  # a reload or a stop: the table changes too
                    seen = now
                    self.refresh()
                elif now != seen:
                    seen = now
                    self.header.value = header_html(self.server)
                    self.draw()
                if state == "stopped":
                    return
            except Exception:
                self.output.append_stderr("live updates stopped:\n" + traceback.format_exc())
                return

    def stop_live(self) -> None:
        """Stop the live thread (the drawing stays)."""
        self._stop_live.set()
        live, self._live = self._live, None
        if live is not None and live is not threading.current_thread():
            live.join(timeout=5)

    def close(self) -> None:
        """Stop live updates, then close the panel's widgets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop_live()
        with closing_views():
            close_all([self.box])

    def __repr__(self) -> str:
        return f"<ServerPanel for {self.server.address}, {len(self.server.graphs)} graphs>"


def panel_for(server: Any) -> ServerPanel:
    """The panel of `server`: one per server, made on first use (a closed one is replaced)."""
    with _panels_lock:
        panel = _panels.get(server)
        if panel is None or panel._closed:
            panel = ServerPanel(server)
            _panels[server] = panel
        return panel


def server_mimebundle(server: Any, *, live: bool = True, **kwargs: Any) -> dict[str, Any]:
    """What a Server shows in a notebook: the panel's widget view, a static HTML table and a text/plain line.

    With `live`, the panel redraws packet counts while the server runs (its
    thread ends by itself when the server stops).
    """
    panel = panel_for(server)
    if live and server.state == "running":
        panel.start_live()
    bundle = dict(panel._repr_mimebundle_(**kwargs) or {})
    bundle["text/plain"] = repr(server)
    graphs = list(server.graphs)
    bundle["text/html"] = header_html(server, graphs) + graphs_table_html(server, graphs)
    return bundle
