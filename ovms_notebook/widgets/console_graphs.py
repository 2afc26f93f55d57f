"""What the stream console offers for a target: its graphs, and per graph the input editors and outputs.

An in-kernel `Server` says everything itself (stream specs with their tags). A
remote address is asked over KServe: ModelReady for the names a person gives,
ModelMetadata for a graph's inputs and outputs (typed by datatype and shape
only; OVMS reports graph streams as "INVALID", so they become FP32 values).
`GraphChoice` is the console's graph picker built on these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
import ipywidgets as widgets

from ovms_notebook.client import list_ready, model_metadata
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.editors import InputEditor, kind_from_metadata
from ovms_notebook.widgets.lifecycle import weakly

__all__ = ["GraphChoice", "describe_graph", "graph_options", "stream_text"]

_TIMEOUT = 3.0  # seconds for a remote ModelReady/ModelMetadata: a dead address must not hang a click


def stream_text(spec: Any) -> str:
    """A StreamSpec written back as in the pbtxt: "name", "TAG:name" or "TAG:index:name"."""
    parts = [spec.tag] if spec.tag else []
    if spec.index is not None:
        parts.append(str(spec.index))
    return ":".join([*parts, spec.name])


def graph_options(
    target: Any, names: Sequence[str], credentials: grpc.ChannelCredentials | None = None
) -> tuple[list[tuple[str, str]], str]:
    """(dropdown options as (label, graph name), a problem to report or ""); labels say when not ready.

    A server lists every graph it has (`names` is ignored); an address lists `names`.
    """
    if not isinstance(target, str):
        return [
            (d.name if d.available else f"{d.name} ({getattr(d.state, 'value', d.state)})", d.name)
            for d in target.graphs
        ], ""
    problem = ""
    try:
        ready = list_ready(target, names, credentials=credentials, timeout=_TIMEOUT) if names else {}
    except ClientError as error:
        problem, ready = f"cannot ask {target} which graphs are ready: {error}", {}
    return [(name if ready.get(name) else f"{name} (not ready)", name) for name in names], problem


def describe_graph(
    target: Any,
    graph: str,
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[dict[str, InputEditor], dict[str, StreamKind], str]:
    """(an editor per input stream, {output stream: kind}, a note when nothing could be learned)."""
    if not isinstance(target, str):
        definition = next((d for d in target.graphs if d.name == graph), None)
        spec = definition.spec if definition is not None else None
        if spec is None:
            reason = getattr(definition, "error", None) or "unknown graph"
            return {}, {}, f"{graph}: no stream specs ({reason})"
        hints = _input_hints(definition)
        editors = {name: InputEditor(name, s.kind, tag=stream_text(s), hint=hints.get(name, ""))
                   for name, s in spec.inputs.items()}
        return editors, {name: s.kind for name, s in spec.outputs.items()}, ""
    try:
        metadata = model_metadata(target, graph, credentials=credentials, timeout=_TIMEOUT)
    except ClientError as error:
        return {}, {}, f"no metadata for {graph!r}: {error}"
    editors = {}
    for tensor in metadata["inputs"]:
        kind, datatype = kind_from_metadata(tensor)
        editors[tensor["name"]] = InputEditor(
            tensor["name"], kind, tag=str(tensor.get("datatype", "")), datatype=datatype
        )
    return editors, {t["name"]: StreamKind.UNKNOWN for t in metadata["outputs"]}, ""


def _input_hints(definition: Any) -> dict[str, str]:
    """{input stream: what to change} for the inputs the graph's file shapes so that a request fails (an image
    input left untagged, ...): said beside the editor, before anything is sent."""
    import re

    from ovms_notebook.widgets.server_tables import fails_here

    hints = {}
    for finding in fails_here(definition):
        named = re.fullmatch(r"input_stream '(?:[A-Z0-9_]+:(?:\d+:)?)?(\w+)'", finding.subject)
        if named:
            hints[named.group(1)] = f"{finding.reason}" + (f"; write {finding.fix}" if finding.fix else "")
    return hints


class GraphChoice:
    """The console's graph picker (`dropdown`) and, for a remote target, `names`, where a person types more names.

    `on_select(callback)` calls `callback(graph)` when a person (or code) picks another graph; changing the options
    never does (ipywidgets resets the value when the options change: it is put back quietly). Problems asking a
    remote server go to `on_problem(text)`.
    """

    def __init__(
        self, target: Any, credentials: grpc.ChannelCredentials | None, on_problem: Callable[[str], None]
    ) -> None:
        self._target = target
        self._credentials = credentials
        self._on_problem = on_problem
        self._callback: Callable[[str | None], object] | None = None
        self._quiet = False
        self.dropdown = widgets.Dropdown(description="graph", layout=widgets.Layout(width="22em"))
        self.names = widgets.Text(
            placeholder="more graph names, comma-separated",
            continuous_update=False,
            layout=widgets.Layout(width="20em", display="" if isinstance(target, str) else "none"),
        )
        self.names.observe(weakly(self._on_names), names="value")
        self.dropdown.observe(weakly(self._on_pick), names="value")

    def values(self) -> list[str]:
        """The graph names offered."""
        return [value for _, value in self.dropdown.options]

    def add(self, names: Sequence[str]) -> None:
        """Offer `names` too (a remote target; a Server offers its own graphs), labelled with their readiness."""
        known = [*self.values(), *(n for n in names if n not in self.values())]
        options, problem = graph_options(self._target, known, self._credentials)
        if problem:
            self._on_problem(problem + "\n")
        current = self.dropdown.value
        self._quiet = True
        try:
            self.dropdown.options = options
            if current in [value for _, value in options]:
                self.dropdown.value = current
        finally:
            self._quiet = False

    def on_select(self, callback: Callable[[str | None], object]) -> None:
        self._callback = callback

    def _on_names(self, change: dict[str, Any]) -> None:
        names = [n.strip() for n in str(change["new"]).split(",") if n.strip()]
        current = self.dropdown.value
        self.add(names)
        if current is None and names:
            self.dropdown.value = names[0]

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._quiet and self._callback is not None:
            self._callback(change["new"])
