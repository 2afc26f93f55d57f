"""A MediaPipe graph drawn as Graphviz: nodes, streams, side packets, back edges, live packet counts.

`graph_dot` is a pure function from a parsed `CalculatorGraphConfig` to DOT
text, so it is cheap to test and to show when Graphviz is missing
(`graph_render` draws it). `GraphView` displays itself in a notebook through
`_repr_mimebundle_`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ovms_notebook.errors import GraphRenderError
from ovms_notebook.framework.tags import split_tag_index_name
from ovms_notebook.widgets.drawing_size import EDGE_FONT_PT, NODE_FONT_PT, DrawingSize, png_dpi
from ovms_notebook.widgets.graph_parts import (
    NATIVE,
    PYTHON,
    SUBGRAPH,
    UNKNOWN,
    WHEEL_SUBGRAPH,
    calculator_kinds,
    drawn_nodes,
    is_module_name,
    openable,
    source_config,
)
from ovms_notebook.widgets.graph_render import _fitted, _svg_element, render_graph

log = logging.getLogger(__name__)

DEFAULT_HANDLERS = ("", "DefaultInputStreamHandler")

_FONT = "Helvetica"
_NODE_STYLE = 'shape=box, style="rounded,filled", fillcolor="#f3f4f6", color="#4b5563"'
_INPUT_STYLE = 'shape=invhouse, margin="0.12,0.03", style=filled, fillcolor="#dbeafe", color="#1d4ed8"'
_OUTPUT_STYLE = 'shape=invtrapezium, margin="0.08,0.02", style=filled, fillcolor="#dcfce7", color="#15803d"'
_SIDE_STYLE = 'shape=ellipse, style="dashed,filled", fillcolor="#fef9c3", color="#a16207"'
_MISSING_STYLE = 'shape=plaintext, fontcolor="#b91c1c"'
# Node kinds (graph_parts): a subgraph drawn as one box, a Python-run node, the wheel's own subgraph, unknown.
_KIND_STYLES = {
    SUBGRAPH: 'shape=box, peripheries=2, style="rounded,filled", fillcolor="#e0f2fe", color="#0369a1"',
    WHEEL_SUBGRAPH: 'shape=box, peripheries=2, style="rounded,filled", fillcolor="#f3f4f6", color="#4b5563"',
    PYTHON: 'shape=box, style="rounded,filled", fillcolor="#ede9fe", color="#6d28d9"',
    UNKNOWN: 'shape=box, style="rounded,filled,bold", fillcolor="#fee2e2", color="#b91c1c", fontcolor="#b91c1c"',
}
_KIND_CAPTIONS = {
    SUBGRAPH: "[subgraph: expand to open]",
    WHEEL_SUBGRAPH: "[the wheel's subgraph]",
    PYTHON: "[runs in Python]",
    UNKNOWN: "[unknown calculator]",
}
_FRAME_STYLE = 'style="rounded,dashed", color="#0369a1", fontcolor="#0369a1"'


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


def _servable(node: Any) -> str:
    """"model entry: <name>" for an OVMS session node (what its inference runs on), else ""."""
    if node.calculator != "OpenVINOModelServerSessionCalculator":
        return ""
    import re

    from ovms_notebook.portability.fixes import node_text

    found = re.search(r'servable_name:\s*"([^"]*)"', node_text(node))
    return f"model entry: {found.group(1)}" if found else ""


def _shown(name: str) -> str:
    """A stream or node name inside an opened subgraph without its per-instance prefix (`a__b__render` -> `render`)."""
    return name.rsplit("__", 1)[-1]


def _frames(framed: Mapping[tuple[tuple[str, str], ...], list[str]]) -> list[str]:
    """Node declarations, those of opened subgraphs nested in DOT clusters captioned with the subgraph's name."""
    lines = [f"  {line}" for line in framed.get((), [])]
    paths = sorted({path[:depth] for path in framed for depth in range(1, len(path) + 1)})

    def emit(path: tuple[tuple[str, str], ...], indent: str) -> None:
        lines.append(f"{indent}subgraph {_quote('cluster_' + path[-1][0])} {{")
        lines.append(f"{indent}  graph [{_FRAME_STYLE}, label={_quote(path[-1][1])}];")
        lines.extend(f"{indent}  {line}" for line in framed.get(path, []))
        for child in paths:
            if len(child) == len(path) + 1 and child[: len(path)] == path:
                emit(child, indent + "  ")
        lines.append(f"{indent}}}")

    for path in paths:
        if len(path) == 1:
            emit(path, "  ")
    return lines


def _count_text(count: int) -> str:
    return f"{count} packet" if count == 1 else f"{count} packets"


def graph_dot(
    source: object,
    counts: Mapping[str, int] | None = None,
    title: str | None = None,
    *,
    kinds: Mapping[str, str] | None = None,
    expand: bool | Iterable[str] = False,
    subgraphs: Mapping[str, str] | None = None,
) -> str:
    """Graphviz DOT for a graph: a box per node, graph inputs/outputs and side packets as their own shapes.

    `source` is a GraphSpec (drawn as its pbtxt names it), a parsed
    CalculatorGraphConfig, pbtxt text or the name of a module the wheel ships.
    Edges are labelled with the stream (`TAG:name`, index when written); a back
    edge is dashed and does not constrain the layout; side packets travel on
    dotted edges. `counts` (stream name -> packets seen, as from
    `EventLog.packet_counts`) is appended to the labels of the streams it names.
    A subgraph the package or the graph's folder (`subgraphs`) inlines is one
    double-bordered box unless `expand` opens it (True: every one; or their
    types or node names): its nodes then sit in a frame named after it.
    `kinds` (calculator -> `graph_parts` kind) marks Python-run nodes, the
    wheel's own subgraphs and unknown calculators.
    """
    config, own = source_config(source, subgraphs)
    counts = dict(counts or {})
    kinds = dict(kinds or {})
    items = drawn_nodes(config, expand, own)
    closed = openable(own)
    opened = any(item.clusters for item in items)
    graph_handler = config.input_stream_handler.input_stream_handler
    lines = [
        "digraph mediapipe {",
        f'  graph [rankdir=TB, fontname="{_FONT}", fontsize=12, nodesep=0.35, ranksep=0.45'
        + (f", labelloc=t, label={_quote(title)}" if title else "")
        + "];",
        f'  node [fontname="{_FONT}", fontsize={NODE_FONT_PT:g}];',
        f'  edge [fontname="{_FONT}", fontsize={EDGE_FONT_PT:g}, color="#374151"];',
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

    framed: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for number, item in enumerate(items):
        node, node_id = item.node, f"node:{number}"
        handler = node.input_stream_handler.input_stream_handler or graph_handler
        kind = SUBGRAPH if node.calculator in closed else kinds.get(node.calculator, NATIVE)
        label = _label(
            node.calculator,
            f"name: {_shown(node.name) if opened else node.name}" if node.name else "",
            _servable(node),
            f"handler: {handler}" if handler not in DEFAULT_HANDLERS else "",
            _KIND_CAPTIONS.get(kind, ""),
        )
        framed.setdefault(item.clusters, []).append(
            f"{_quote(node_id)} [{_KIND_STYLES.get(kind, _NODE_STYLE)}, label={label}];"
        )
        for text in node.output_stream:
            ref = _ref(text)
            producers.setdefault(ref.name, (node_id, ref))
        for text in node.output_side_packet:
            ref = _ref(text)
            side_producers.setdefault(ref.name, (node_id, ref))

    lines += _frames(framed)
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

    parallel: dict[tuple[str, str, str], list[str]] = {}  # streams between one pair of boxes share one edge

    def edge(tail: str, head: str, label: str, style: str = "") -> None:
        parallel.setdefault((tail, head, style), []).append(label)

    def stream_label(name: str, producer: _Ref | None, consumer: _Ref | None) -> str:
        label = _edge_label(_shown(name) if opened else name, producer, consumer)
        return f"{label}\n({_count_text(counts[name])})" if name in counts else label

    for number, item in enumerate(items):
        node, node_id = item.node, f"node:{number}"
        back = _back_edges(node)
        for ref, index in _numbered([_ref(text) for text in node.input_stream]):
            tail, produced_as = source_of(producers, ref.name, side=False)
            style = (
                'style=dashed, constraint=false, color="#9333ea", fontcolor="#7e22ce"'
                if (ref.tag, index) in back
                else ""
            )
            edge(tail, node_id, stream_label(ref.name, produced_as, ref), style)
        for text in node.input_side_packet:
            ref = _ref(text)
            tail, produced_as = source_of(side_producers, ref.name, side=True)
            shown = _shown(ref.name) if opened else ref.name
            edge(tail, node_id, _edge_label(shown, produced_as, ref), 'style=dotted, color="#a16207"')

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
        lines.append("  { rank=min; " + " ".join(_quote(f"input:{_ref(t).name}") for t in config.input_stream) + " }")
    if config.output_stream:
        lines.append("  { rank=max; " + " ".join(_quote(f"output:{_ref(t).name}") for t in config.output_stream) + " }")
    for (tail, head, style), labels in parallel.items():
        text = "\n".join(labels)
        attributes = f"label={_label(*(f' {line} ' for line in text.splitlines()))}" + (f", {style}" if style else "")
        edges.append(f"  {_quote(tail)} -> {_quote(head)} [{attributes}];")
    return "\n".join([*lines, *edges, "}"]) + "\n"


class GraphView:
    """A graph drawing for notebook display: SVG from Graphviz when available, the DOT text always.

    `GraphView(server.graphs[0].spec)` as the last line of a cell draws the graph
    as its pbtxt names it (`expand=True` opens the subgraphs the package or the
    folder inlines), Python-run nodes and unknown calculators marked (`mark`);
    `GraphView("FaceDetectionShortRangeCpu")` draws a module the wheel ships.
    `counts` adds packet counts to the edges, `title` a caption. The drawing
    keeps its natural size (1 pt = 4/3 px) unless wider than the notebook, and
    never shrinks node labels below 10 px: a wider graph scrolls sideways.
    """

    def __init__(
        self,
        source: object,
        counts: Mapping[str, int] | None = None,
        title: str | None = None,
        *,
        expand: bool | Iterable[str] = False,
        subgraphs: Mapping[str, str] | None = None,
        mark: bool = True,
    ) -> None:
        config, own = source_config(source, subgraphs)
        if title is None and isinstance(source, str) and is_module_name(source):
            title = config.type or source  # a wheel module drawn by name
        items = drawn_nodes(config, expand, own)
        kinds = calculator_kinds((item.node.calculator for item in items), own) if mark else {}
        self.dot = graph_dot(config, counts=counts, title=title, kinds=kinds, expand=expand, subgraphs=own)
        self.title = title
        self.kinds = kinds
        self._nodes = len(items)
        self._fitted: tuple[str, bytes, DrawingSize] | None = None

    @classmethod
    def module(cls, name: str, **options: Any) -> GraphView:
        """A module the mediapipe wheel ships (`mediapipe/modules/**/*.binarypb`), by its subgraph type or file
        stem: `GraphView.module("FaceLandmarkFrontCpu")`. KeyError lists the modules there are."""
        from ovms_notebook.framework.subgraphs.wheel import wheel_module_config

        config: Any = wheel_module_config(name)
        return cls(config, title=options.pop("title", None) or config.type or name, **options)

    def svg(self) -> bytes | None:
        """The SVG drawing sized to read (cached), or None when Graphviz is missing."""
        if self._fitted is None:
            self._fitted = _fitted(self.dot)
        return None if self._fitted is None else self._fitted[1]

    @property
    def size(self) -> DrawingSize | None:
        """The size the SVG is shown at, or None when Graphviz is missing."""
        return None if self.svg() is None or self._fitted is None else self._fitted[2]

    def png(self, dpi: float | None = None) -> bytes | None:
        """A PNG drawing, or None when Graphviz is missing; by default at the SVG's shown size."""
        if self.svg() is None or self._fitted is None:
            return None
        dot, _, size = self._fitted
        return render_graph(dot, "png", dpi=png_dpi(size.scale) if dpi is None else dpi)

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
            if self.size is not None and self.size.scrolls:  # too wide to shrink readably: a box that scrolls
                bundle["text/html"] = f'<div style="max-width:100%;overflow-x:auto">{_svg_element(svg)}</div>'
        return bundle
