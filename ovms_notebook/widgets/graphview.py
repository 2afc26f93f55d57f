"""A MediaPipe graph drawn as Graphviz: nodes, streams, side packets, back edges, live packet counts.

`graph_dot` is a pure function from a parsed `CalculatorGraphConfig` to DOT
text, so it is cheap to test and to show when Graphviz is missing.
`render_graph` runs the `dot` binary (Debian's graphviz) with a timeout and
returns SVG or PNG bytes, or None when there is no `dot` on PATH. `GraphView`
displays itself in a notebook through `_repr_mimebundle_`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ovms_notebook.errors import GraphLoadError, GraphRenderError
from ovms_notebook.framework.tags import split_tag_index_name

log = logging.getLogger(__name__)

DEFAULT_HANDLERS = ("", "DefaultInputStreamHandler")

_FONT = "Helvetica"
_NODE_STYLE = 'shape=box, style="rounded,filled", fillcolor="#f3f4f6", color="#4b5563"'
_INPUT_STYLE = 'shape=invhouse, margin="0.12,0.03", style=filled, fillcolor="#dbeafe", color="#1d4ed8"'
_OUTPUT_STYLE = 'shape=invtrapezium, margin="0.08,0.02", style=filled, fillcolor="#dcfce7", color="#15803d"'
_SIDE_STYLE = 'shape=ellipse, style="dashed,filled", fillcolor="#fef9c3", color="#a16207"'
_MISSING_STYLE = 'shape=plaintext, fontcolor="#b91c1c"'


@dataclass(frozen=True)
class _Ref:
    """One `TAG:index:name` reference as written in a pbtxt (index None when not written)."""

    tag: str
    index: int | None
    name: str

    @property
    def port(self) -> str:
        """The tag (and index when written) without the name: "LOOP", "FLOATS:1", or ""."""
        if self.index is not None:
            return f"{self.tag}:{self.index}"
        return self.tag

    @property
    def text(self) -> str:
        return f"{self.port}:{self.name}" if self.port else self.name


def _ref(text: str) -> _Ref:
    """The parts of an entry (framework/tags.py); one MediaPipe would refuse is drawn under its whole text."""
    try:
        return _Ref(*split_tag_index_name(text))
    except ValueError:
        return _Ref("", None, text)


def _config_of(source: object) -> Any:
    """A CalculatorGraphConfig from a GraphSpec, a config message, or pbtxt text (parsed, not validated)."""
    if isinstance(source, str):
        from google.protobuf import text_format

        from ovms_notebook.framework.protos import parse_graph_config

        try:
            return parse_graph_config(source)
        except text_format.ParseError as error:
            raise GraphLoadError(f"graph pbtxt does not parse: {error}") from error
    config = getattr(source, "config", source)
    if not hasattr(config, "node"):
        raise TypeError(f"expected a GraphSpec, a CalculatorGraphConfig or pbtxt text, got {type(source).__name__}")
    return config


def _quote(text: str) -> str:
    """A DOT double-quoted string; quotes and backslashes escaped, newlines made spaces."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _label(*lines: str) -> str:
    """A multi-line DOT label (each line escaped, joined with DOT's centred line break)."""
    return '"' + "\\n".join(_quote(line)[1:-1] for line in lines if line) + '"'


def _back_edges(node: Any) -> set[tuple[str, int]]:
    """(tag, index) of the node's inputs marked `back_edge: true` in input_stream_info."""
    marked: set[tuple[str, int]] = set()
    for info in node.input_stream_info:
        if not info.back_edge:
            continue
        tag, _, index = info.tag_index.partition(":")
        if not index and tag.isdigit():  # "1" means the untagged input with index 1
            tag, index = "", tag
        marked.add((tag, int(index) if index.isdigit() else 0))
    return marked


def _numbered(refs: list[_Ref]) -> list[tuple[_Ref, int]]:
    """Each reference with its index inside its tag, as MediaPipe numbers repeated tags."""
    next_index: dict[str, int] = {}
    numbered = []
    for ref in refs:
        index = ref.index if ref.index is not None else next_index.get(ref.tag, 0)
        next_index[ref.tag] = index + 1
        numbered.append((ref, index))
    return numbered


def _edge_label(name: str, producer: _Ref | None, consumer: _Ref | None) -> str:
    out_port = producer.port if producer else ""
    in_port = consumer.port if consumer else ""
    if out_port and in_port and out_port != in_port:
        return f"{out_port} → {in_port}:{name}"
    port = in_port or out_port
    return f"{port}:{name}" if port else name


def _count_text(count: int) -> str:
    return f"{count} packet" if count == 1 else f"{count} packets"


def graph_dot(source: object, counts: Mapping[str, int] | None = None, title: str | None = None) -> str:
    """Graphviz DOT for a graph: a box per node, graph inputs/outputs and side packets as their own shapes.

    `source` is a GraphSpec, a parsed CalculatorGraphConfig or pbtxt text.
    Edges are labelled with the stream (`TAG:name`, index when written); a back
    edge is dashed and does not constrain the layout; side packets travel on
    dotted edges. `counts` (stream name -> packets seen, as from
    `EventLog.packet_counts`) is appended to the labels of the streams it names.
    """
    config = _config_of(source)
    counts = dict(counts or {})
    graph_handler = config.input_stream_handler.input_stream_handler
    lines = [
        "digraph mediapipe {",
        f'  graph [rankdir=TB, fontname="{_FONT}", fontsize=12, nodesep=0.35, ranksep=0.45'
        + (f", labelloc=t, label={_quote(title)}" if title else "")
        + "];",
        f'  node [fontname="{_FONT}", fontsize=11];',
        f'  edge [fontname="{_FONT}", fontsize=9, color="#374151"];',
    ]
    producers: dict[str, tuple[str, _Ref | None]] = {}
    side_producers: dict[str, tuple[str, _Ref | None]] = {}
    declared: set[str] = set()

    for text in config.input_stream:
        ref = _ref(text)
        node_id = f"input:{ref.name}"
        producers.setdefault(ref.name, (node_id, None))
        lines.append(f"  {_quote(node_id)} [{_INPUT_STYLE}, label={_label('graph input', ref.text)}];")
    for text in config.input_side_packet:
        ref = _ref(text)
        node_id = f"side:{ref.name}"
        side_producers.setdefault(ref.name, (node_id, None))
        declared.add(node_id)
        lines.append(f"  {_quote(node_id)} [{_SIDE_STYLE}, label={_label('side packet', ref.text)}];")

    for number, node in enumerate(config.node):
        node_id = f"node:{number}"
        handler = node.input_stream_handler.input_stream_handler or graph_handler
        label = _label(
            node.calculator,
            f"name: {node.name}" if node.name else "",
            f"handler: {handler}" if handler not in DEFAULT_HANDLERS else "",
        )
        lines.append(f"  {_quote(node_id)} [{_NODE_STYLE}, label={label}];")
        for text in node.output_stream:
            ref = _ref(text)
            producers.setdefault(ref.name, (node_id, ref))
        for text in node.output_side_packet:
            ref = _ref(text)
            side_producers.setdefault(ref.name, (node_id, ref))

    edges: list[str] = []

    def source_of(table: dict[str, tuple[str, _Ref | None]], name: str, side: bool) -> tuple[str, _Ref | None]:
        if name in table:
            return table[name]
        node_id = f"{'side' if side else 'missing'}:{name}"
        if node_id not in declared:  # referenced but produced by nobody: show it, in red for streams
            declared.add(node_id)
            style = _SIDE_STYLE if side else _MISSING_STYLE
            caption = "side packet" if side else "no producer"
            lines.append(f"  {_quote(node_id)} [{style}, label={_label(name, caption)}];")
        return node_id, None

    def edge(tail: str, head: str, label: str, style: str = "") -> None:
        attributes = f"label={_label(*(f' {line} ' for line in label.splitlines()))}" + (f", {style}" if style else "")
        edges.append(f"  {_quote(tail)} -> {_quote(head)} [{attributes}];")

    def stream_label(name: str, producer: _Ref | None, consumer: _Ref | None) -> str:
        label = _edge_label(name, producer, consumer)
        return f"{label}\n({_count_text(counts[name])})" if name in counts else label

    for number, node in enumerate(config.node):
        node_id = f"node:{number}"
        back = _back_edges(node)
        for ref, index in _numbered([_ref(text) for text in node.input_stream]):
            tail, produced_as = source_of(producers, ref.name, side=False)
            style = 'style=dashed, constraint=false, color="#9333ea", fontcolor="#7e22ce"' if (
                ref.tag, index) in back else ""
            edge(tail, node_id, stream_label(ref.name, produced_as, ref), style)
        for text in node.input_side_packet:
            ref = _ref(text)
            tail, produced_as = source_of(side_producers, ref.name, side=True)
            edge(tail, node_id, _edge_label(ref.name, produced_as, ref), 'style=dotted, color="#a16207"')

    for text in config.output_stream:
        ref = _ref(text)
        node_id = f"output:{ref.name}"
        lines.append(f"  {_quote(node_id)} [{_OUTPUT_STYLE}, label={_label('graph output', ref.text)}];")
        tail, produced_as = source_of(producers, ref.name, side=False)
        edge(tail, node_id, stream_label(ref.name, produced_as, None))
    for text in config.output_side_packet:
        ref = _ref(text)
        node_id = f"side-output:{ref.name}"
        lines.append(f"  {_quote(node_id)} [{_SIDE_STYLE}, label={_label('output side packet', ref.text)}];")
        tail, produced_as = source_of(side_producers, ref.name, side=True)
        edge(tail, node_id, _edge_label(ref.name, produced_as, None), 'style=dotted, color="#a16207"')

    if config.input_stream:
        lines.append("  { rank=min; " + " ".join(_quote(f"input:{_ref(t).name}") for t in config.input_stream)
                     + " }")
    if config.output_stream:
        lines.append("  { rank=max; " + " ".join(_quote(f"output:{_ref(t).name}") for t in config.output_stream)
                     + " }")
    return "\n".join([*lines, *edges, "}"]) + "\n"


def dot_available() -> bool:
    """True when Graphviz's `dot` binary is on PATH."""
    return shutil.which("dot") is not None


def render_graph(dot_source: str, fmt: Literal["svg", "png"] = "svg", timeout: float = 10.0,
                 dpi: int | None = None) -> bytes | None:
    """Run `dot -T<fmt>` on the source: the drawing's bytes, or None when `dot` is not installed.

    Raises GraphRenderError when dot rejects the source or runs past `timeout` seconds.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    binary = shutil.which("dot")
    if binary is None:
        return None
    command = [binary, f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if dpi else [])
    try:
        done = subprocess.run(command, input=dot_source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise GraphRenderError(f"dot took longer than {timeout} s to draw the graph") from error
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GraphRenderError(f"dot could not draw the graph: {message}")
    return done.stdout


class GraphView:
    """A graph drawing for notebook display: SVG from Graphviz when available, the DOT text always.

    `GraphView(server.graphs[0].spec)` as the last line of a cell draws the graph;
    `counts` adds packet counts to the edges, `title` a caption.
    """

    def __init__(self, source: object, counts: Mapping[str, int] | None = None, title: str | None = None) -> None:
        config = _config_of(source)
        self.dot = graph_dot(config, counts=counts, title=title)
        self.title = title
        self._nodes = len(config.node)
        self._svg: bytes | None = None

    def svg(self) -> bytes | None:
        """The SVG drawing (cached), or None when Graphviz is missing."""
        if self._svg is None:
            self._svg = render_graph(self.dot, "svg")
        return self._svg

    def png(self, dpi: int | None = None) -> bytes | None:
        """A PNG drawing, or None when Graphviz is missing."""
        return render_graph(self.dot, "png", dpi=dpi)

    def __repr__(self) -> str:
        name = f" {self.title}" if self.title else ""
        return f"<GraphView{name}: {self._nodes} nodes>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        bundle = {"text/plain": self.dot}
        try:
            svg = self.svg()
        except GraphRenderError as error:
            log.warning("%s; showing the DOT source instead", error)
            svg = None
        if svg is not None:
            bundle["image/svg+xml"] = svg.decode()
        return bundle
