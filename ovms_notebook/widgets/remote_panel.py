"""A server known only by its address: what it says about itself and the graphs named, and why there is no drawing.

`RemotePanel("host:port", graphs=[...])` (or `config="path/to/config.json"`, a copy of the
server's config to take the names from) is the remote counterpart of `ServerPanel`: a header from
ServerMetadata (name, version, how the channel is secured), a table with ModelReady and
ModelMetadata per name, and a graph picker whose note says plainly that KServe carries no graph
topology, so nothing can be drawn from the address alone. A server that cannot be reached (down,
wrong port, TLS refused) is shown as such, with the gRPC code, and `refresh()` tries again.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import ipywidgets as widgets

from ovms_notebook.client import RemoteGraph, describe_remote, graph_names_from_config, server_metadata
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.lifecycle import Composite, close_all, weakly

__all__ = ["RemotePanel", "remote_table_html"]

_GREEN, _RED, _GREY = "#15803d", "#b91c1c", "#6b7280"
_TIMEOUT = 5.0  # seconds per call: a dead address must not hang a cell
NO_DRAWING = ("no drawing: {address} is reached over KServe, which carries no graph topology; "
              "open the graph's pbtxt with GraphView to see it drawn")


def _tensors_text(tensors: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{t['name']} {t['datatype']}{list(t['shape'])}" for t in tensors)


def remote_table_html(graphs: Sequence[RemoteGraph]) -> str:
    """An HTML table: graph, state (and a metadata failure), inputs and outputs as ModelMetadata gives them."""
    cell = 'style="padding:2px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #e5e7eb"'
    rows = ["<table style=\"border-collapse:collapse;font-size:12px\"><thead><tr>"
            + "".join(f"<th {cell}>{name}</th>" for name in ("graph", "status", "inputs", "outputs"))
            + "</tr></thead><tbody>"]
    for graph in graphs:
        colour = _GREEN if graph.ready else _GREY if graph.state == "not ready" else _RED
        status = f'<span style="color:{colour}">&#9679; {html.escape(graph.state)}</span>'
        if graph.error:
            status += f'<br><span style="color:{_RED}">{html.escape(graph.error)}</span>'
        rows.append(f"<tr><td {cell}><code>{html.escape(graph.name)}</code></td><td {cell}>{status}</td>"
                    + "".join(f"<td {cell}><code>{html.escape(_tensors_text(t))}</code></td>"
                              for t in (graph.inputs, graph.outputs))
                    + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


class RemotePanel(Composite):
    """Header, graphs table and graph picker for a KServe server at `address`.

    The names are `graphs`, else those of `config` (a config.json or its folder); KServe cannot list
    them. `credentials` secure the channel (`ovms_notebook.tls.client_credentials`). `graphs_info`
    holds the last answers, `problem` the reason the last refresh could not reach the server ("").
    `box` is what shows; the panel has no threads, `close()` closes its widgets.
    """

    def __init__(self, address: str, graphs: Sequence[str] | None = None, *, config: str | Path | None = None,
                 credentials: grpc.ChannelCredentials | None = None, **kwargs: Any) -> None:
        if not isinstance(address, str) or not address:
            raise TypeError(f"RemotePanel takes an address 'host:port', got {address!r}; "
                            "for an in-kernel Server use ServerPanel or display the server")
        self.address = address
        self.credentials = credentials
        self.names = list(graphs) if graphs is not None else graph_names_from_config(config) if config else []
        self.graphs_info: list[RemoteGraph] = []
        self.problem = ""
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.graph_picker = widgets.Dropdown(description="Graph", layout=widgets.Layout(width="22em"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             tooltip="Ask the server again (ServerMetadata, ModelReady, ModelMetadata)")
        self.note = widgets.HTML()
        self.output = widgets.Output()
        self.box = widgets.VBox([self.header, self.table, widgets.HBox([self.graph_picker, self.refresh_button]),
                                 self.note, self.output], **kwargs)
        self._own(close_all, [self.box])
        self.graph_picker.observe(weakly(self._on_pick), names="value")
        self.refresh_button.on_click(weakly(self._on_refresh))
        self.refresh()

    @property
    def security(self) -> str:
        """How the channel is secured: "plain", "TLS" or "mutual TLS" (a client certificate is shown)."""
        if self.credentials is None:
            return "plain"
        return "mutual TLS" if getattr(self.credentials, "cert", None) is not None else "TLS"

    def refresh(self) -> None:
        """Ask the server again; an unreachable server is shown in the header, never raised."""
        try:
            self._refresh()
        except Exception:
            self.output.append_stderr(traceback.format_exc())

    def _on_pick(self, _change: object) -> None:
        self._show_note()

    def _on_refresh(self, _button: widgets.Button) -> None:
        self.refresh()

    def _refresh(self) -> None:
        where = f"<code>{html.escape(self.address)}</code> · {html.escape(self.security)}"
        try:
            metadata = server_metadata(self.address, credentials=self.credentials, timeout=_TIMEOUT)
            self.graphs_info = describe_remote(self.address, self.names, credentials=self.credentials,
                                               timeout=_TIMEOUT)
            self.problem = ""
        except ClientError as error:
            self.problem = str(error)
            self.graphs_info = []
            self.header.value = (f'<div style="font-size:13px"><b>remote server</b> at {where} · '
                                 f'<span style="color:{_RED}"><b>cannot be reached</b>: {html.escape(str(error))}'
                                 "</span></div>")
            self.table.value = ""
            self.graph_picker.options = []
            self._show_note()
            return
        ready = sum(graph.ready for graph in self.graphs_info)
        listed = (f"{ready} of {len(self.names)} graph{'' if len(self.names) == 1 else 's'} named ready"
                  if self.names else "no graph names given (KServe cannot list them: pass graphs=[...] or config=)")
        self.header.value = (f'<div style="font-size:13px"><b>remote server</b> at {where} · '
                             f"{html.escape(metadata['name'])} {html.escape(metadata['version'])} · {listed}</div>")
        self.table.value = remote_table_html(self.graphs_info) if self.graphs_info else ""
        chosen = self.graph_picker.value
        with self.graph_picker.hold_sync():
            self.graph_picker.options = self.names
            self.graph_picker.value = chosen if chosen in self.names else (self.names[0] if self.names else None)
        self._show_note()

    def _show_note(self) -> None:
        name = self.graph_picker.value
        if self.problem:
            text = f"nothing to show: {self.problem}"
        elif name is None:
            text = "no graph chosen"
        else:
            text = f"{name}: " + NO_DRAWING.format(address=self.address)
        self.note.value = f'<span style="color:{_GREY}">{html.escape(text)}</span>'

    @property
    def note_text(self) -> str:
        """The note under the picker as plain text."""
        return html.unescape(self.note.value.split(">", 1)[1].rsplit("<", 1)[0])

    def __repr__(self) -> str:
        return f"<RemotePanel for {self.address} ({self.security}), {len(self.names)} graphs named>"
