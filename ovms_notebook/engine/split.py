"""Cutting a graph at the edges of its Python-side nodes.

Nodes whose calculator is registered on the Python side (OVMS's calculators the
wheel lacks, and calculators written in a notebook) run on our scheduler; the
rest run in one native `CalculatorGraph`. Every stream that crosses between the
two becomes an extra graph input on the consuming side and an extra graph
output on the producing side (engine/hybrid.py joins the halves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ovms_notebook.codec import parse_stream
from ovms_notebook.errors import GRAPH_CONFIG_PREFIX, GraphLoadError
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.tags import parse_tag_index, parse_tag_index_name


@dataclass(frozen=True)
class Split:
    """The two halves of a graph and the streams that cross between them.

    `native`/`python` are CalculatorGraphConfigs (None when a half has no node);
    `to_python` are streams a native node (or a graph input) produces and a Python
    node consumes, `to_native` the other way round; `native_inputs` and
    `python_inputs` the original graph inputs each half consumes;
    `native_outputs`/`python_outputs` the original graph outputs each produces; `cut_dependencies` the order
    in which the cut closes (see `cut_dependencies`), derived once per graph definition; `python_constants` the
    side packets Python nodes read that native `ConstantSidePacketCalculator` nodes make, as Python values
    (side packets do not cross the cut at run time: a constant is known when the graph is parsed).
    """

    native: object | None
    python: object | None
    to_python: tuple[str, ...]
    to_native: tuple[str, ...]
    native_inputs: tuple[str, ...]
    python_inputs: tuple[str, ...]
    native_outputs: tuple[str, ...]
    python_outputs: tuple[str, ...]
    cut_dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)
    python_constants: Mapping[str, object] = field(default_factory=dict)


def _names(specs: Iterable[str]) -> list[str]:
    return [parse_stream(spec).name for spec in specs]


def python_side(config: GraphConfig, registry: Mapping[str, object]) -> list[int]:
    """Indexes of the nodes that run on the Python side."""
    return [i for i, node in enumerate(config.node) if node.calculator in registry]


def split_graph(config: GraphConfig, registry: Mapping[str, object]) -> Split:
    """Cut `config` (a CalculatorGraphConfig) into its native and Python halves."""
    from mediapipe.framework import calculator_pb2

    python_nodes = set(python_side(config, registry))
    graph_inputs = _names(config.input_stream)
    graph_outputs = _names(config.output_stream)
    producer: dict[str, str] = {name: "input" for name in graph_inputs}
    consumers: dict[str, set[str]] = {}
    for index, node in enumerate(config.node):
        side = "python" if index in python_nodes else "native"
        for name in _names(node.output_stream):
            producer[name] = side
        for name in _names(node.input_stream):
            consumers.setdefault(name, set()).add(side)

    def crossing(from_side: str, to_side: str) -> tuple[str, ...]:
        return tuple(
            name for name, side in producer.items()
            if side == from_side and to_side in consumers.get(name, ())
        )

    to_python, to_native = crossing("native", "python"), crossing("python", "native")
    native_inputs = tuple(n for n in graph_inputs if "native" in consumers.get(n, ()))
    python_inputs = tuple(n for n in graph_inputs if "python" in consumers.get(n, ()))
    native_outputs = tuple(n for n in graph_outputs if producer.get(n) == "native")
    python_outputs = tuple(n for n in graph_outputs if producer.get(n) == "python")

    def half(side: str, inputs: Iterable[str], outputs: Iterable[str]) -> object | None:
        nodes = [node for i, node in enumerate(config.node) if (i in python_nodes) == (side == "python")]
        if not nodes:
            return None
        part = calculator_pb2.CalculatorGraphConfig()
        part.CopyFrom(config)
        del part.node[:]
        part.node.extend(nodes)
        del part.input_stream[:]
        part.input_stream.extend(dict.fromkeys(inputs))
        del part.output_stream[:]
        part.output_stream.extend(dict.fromkeys(outputs))
        if side == "python":
            part.ClearField("executor")
            part.ClearField("profiler_config")
        return part

    native = half("native", [*native_inputs, *to_native], [*native_outputs, *to_python])
    python = half("python", [*python_inputs, *to_python], [*python_outputs, *to_native])
    split = Split(native, python, to_python, to_native, native_inputs, python_inputs, native_outputs, python_outputs)
    read = {parse_stream(entry).name for i, node in enumerate(config.node) if i in python_nodes
            for entry in node.input_side_packet}
    constants = {name: value for i, node in enumerate(config.node) if i not in python_nodes
                 for name, value in constant_side_packets(node).items() if name in read}
    return replace(split, cut_dependencies=cut_dependencies(split), python_constants=constants)


def constant_side_packets(node: object) -> dict[str, object]:
    """{side packet name: Python value} of a `ConstantSidePacketCalculator` node (`PACKET:i` <- its options'
    i-th packet: a number, bool, str or proto message); {} for any other node."""
    if node.calculator != "ConstantSidePacketCalculator":  # type: ignore[attr-defined]
        return {}
    from mediapipe.calculators.core.constant_side_packet_calculator_pb2 import ConstantSidePacketCalculatorOptions

    from ovms_notebook.framework.options import node_options

    packets = node_options(node, ConstantSidePacketCalculatorOptions).packet
    found: dict[str, object] = {}
    untagged = 0
    for entry in node.output_side_packet:  # type: ignore[attr-defined]
        tag, index, name = parse_tag_index_name(entry)
        if index == -1:
            index, untagged = untagged, untagged + 1
        if tag == "PACKET" and 0 <= index < len(packets):
            kind = packets[index].WhichOneof("value")
            if kind is not None:
                found[name] = getattr(packets[index], kind)
    return found


def _back_edges(node: object) -> set[str]:
    """Names of `node`'s input streams marked `back_edge` in its input_stream_info.

    GraphLoadError with MediaPipe's text when a `tag_index` is not MediaPipe's `TAG:index`.
    """
    marked = set()
    for info in node.input_stream_info:  # type: ignore[attr-defined]
        if info.back_edge:
            try:
                marked.add(parse_tag_index(info.tag_index))
            except ValueError as error:
                raise GraphLoadError(f"MediaPipe rejected the graph: {GRAPH_CONFIG_PREFIX}{error}") from None
    names: set[str] = set()
    untagged = 0
    for spec in node.input_stream:  # type: ignore[attr-defined]
        tag, index, name = parse_tag_index_name(spec)
        if index == -1:  # a bare name: its index is its position among the untagged streams
            index, untagged = untagged, untagged + 1
        if (tag, index) in marked:
            names.add(name)
    return names


def cut_dependencies(split: Split) -> dict[str, frozenset[str]]:
    """For each stream the native half sends to Python nodes: the streams coming back from Python nodes that its
    native producers depend on (through native nodes, back edges left out).

    When a graph closes, a native->Python stream can only end once those have ended - the order in which one
    MediaPipe graph would close its nodes - so the hybrid engine closes cut streams in this order.
    """
    if split.native is None:
        return {}
    producers: dict[str, object] = {}
    for node in split.native.node:  # type: ignore[attr-defined]
        for name in _names(node.output_stream):
            producers[name] = node
    back = set(split.to_native)

    def upstream(stream: str) -> frozenset[str]:
        found: set[str] = set()
        todo, visited = [stream], set()
        while todo:
            name = todo.pop()
            if name in visited:
                continue
            visited.add(name)
            if name in back:
                found.add(name)
                continue
            node = producers.get(name)
            if node is not None:
                skip = _back_edges(node)
                todo += [n for n in _names(node.input_stream) if n not in skip]  # type: ignore[attr-defined]
        return frozenset(found)

    return {stream: upstream(stream) for stream in split.to_python}
