"""A graph config checked the way MediaPipe's ValidatedGraphConfig checks it, for Python calculators.

`plan_graph` turns a `CalculatorGraphConfig` into a `GraphPlan`: every node's
class looked up in a registry, its streams parsed (`TAG:index:name`) and
matched against the class's declared contract, each stream produced exactly
once, every input produced, no cycle except through back edges, nodes in
MediaPipe's topological order. Failures raise `GraphConfigError` with
MediaPipe's wording.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ovms_notebook.engine.python.api import HANDLERS, Calculator, declares, parse_tag_index, tag_key
from ovms_notebook.errors import GraphConfigError
from ovms_notebook.framework import tags


@dataclass(frozen=True)
class StreamRef:
    """One `TAG:index:name` entry of a node: key ("TAG", ":0"), tag, index and stream name."""

    key: str
    tag: str
    index: int
    name: str


@dataclass(frozen=True)
class NodePlan:
    """A node ready to instantiate: class, parsed streams in MediaPipe's collection order, handler."""

    id: int
    name: str
    calculator: str
    cls: type[Calculator]
    config: Any
    inputs: tuple[StreamRef, ...]
    outputs: tuple[StreamRef, ...]
    side_packets: tuple[StreamRef, ...]
    back_edges: frozenset[str]
    handler: str
    sync_sets: tuple[tuple[str, ...], ...]
    output_side_packets: tuple[StreamRef, ...] = ()


@dataclass(frozen=True)
class GraphPlan:
    """Graph-level streams and the nodes in topological order (index = scheduling id)."""

    config: Any
    input_streams: tuple[str, ...]
    output_streams: tuple[str, ...]
    side_packets: tuple[str, ...]
    nodes: tuple[NodePlan, ...]

    @property
    def stream_names(self) -> set[str]:
        """Every stream some producer (graph input or node output) writes."""
        names = set(self.input_streams)
        for node in self.nodes:
            names.update(ref.name for ref in node.outputs)
        return names


def parse_tag_index_name(text: str) -> tuple[str, int, str]:
    """MediaPipe's `TAG:index:name` (framework/tags.py); untagged names get index -1 (assigned in order)."""
    try:
        return tags.parse_tag_index_name(text)
    except ValueError as error:
        raise GraphConfigError(str(error)) from None


def _tag_map(entries: Sequence[str]) -> tuple[StreamRef, ...]:
    """`TagMap::Initialize`: indexes per tag, each used once, none missing; sorted by (tag, index)."""
    names: dict[str, dict[int, str]] = {}
    for entry in entries:
        tag, index, name = parse_tag_index_name(entry)
        by_index = names.setdefault(tag, {})
        if index == -1:
            index = len(by_index)
        if index in by_index:
            raise GraphConfigError(
                f'tag "{tag}" index {index} already had a name "{by_index[index]}" but is being reassigned a name '
                f'"{name}"'
            )
        by_index[index] = name
    refs: list[StreamRef] = []
    for tag in sorted(names):
        by_index = names[tag]
        if sorted(by_index) != list(range(len(by_index))):
            listed = "".join(f'index {i} name "{by_index[i]}"\n' for i in sorted(by_index))
            raise GraphConfigError(f'Not all indexes were assigned names.  Tag "{tag}" has the following:\n{listed}')
        refs.extend(StreamRef(tag_key(tag, i), tag, i, by_index[i]) for i in sorted(by_index))
    return tuple(refs)


def canonical_node_name(config: Any, node_id: int) -> str:
    """`tool::CanonicalNodeName`: the node's name, else its calculator, with _1, _2... when not unique."""

    def plain(node: Any) -> str:
        return node.name or node.calculator

    name = plain(config.node[node_id])
    same = [i for i, node in enumerate(config.node) if plain(node) == name]
    return name if len(same) <= 1 else f"{name}_{same.index(node_id) + 1}"


def _check_contract(
    cls: type[Calculator], calculator: str, refs: Sequence[StreamRef], declared: Sequence[str], what: str
) -> None:
    for ref in refs:
        if not declares(declared, ref.tag, ref.index):
            raise GraphConfigError(
                f"{calculator}::GetContract failed to validate: \nFor {what} ValidatePacketTypeSet failed:\n"
                f'Tag "{ref.tag}" index {ref.index} was not expected.'
            )


def _handler(
    node: Any, cls: type[Calculator], graph_handler: Any, keys: set[str], name: str
) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """The node's handler (pbtxt node, then graph level, then the class) and its sync sets, checked."""
    # The graph-level handler is copied into nodes without one; a pbtxt handler name beats the class's.
    config = node.input_stream_handler if node.HasField("input_stream_handler") else graph_handler
    if config is not None and config.HasField("input_stream_handler"):
        handler = config.input_stream_handler
        groups: Sequence[Sequence[str]] = []
        if handler == "SyncSetInputStreamHandler":
            from mediapipe.framework.stream_handler import sync_set_input_stream_handler_pb2 as sync_pb2

            extension = sync_pb2.SyncSetInputStreamHandlerOptions.ext
            if config.HasField("options") and config.options.HasExtension(extension):
                groups = [list(s.tag_index) for s in config.options.Extensions[extension].sync_set]
    else:
        handler, groups = cls.input_stream_handler, cls.sync_sets
    if handler not in HANDLERS:
        raise GraphConfigError(
            f'Node "{name}": input stream handler "{handler}" is not available for Python calculators '
            f"(supported: {', '.join(HANDLERS)})."
        )
    sync_sets: list[tuple[str, ...]] = []
    used: set[str] = set()
    for group in groups:
        if not group:
            raise GraphConfigError(f'Node "{name}": a sync set of SyncSetInputStreamHandler is empty.')
        converted = []
        for item in group:
            try:
                key = tag_key(*parse_tag_index(item))
            except ValueError as error:
                raise GraphConfigError(f'Node "{name}": {error}') from None
            if key not in keys:
                raise GraphConfigError(f'Node "{name}": sync set stream "{item}" is not found.')
            if key in used:
                raise GraphConfigError(f'Node "{name}": sync set stream "{item}" is in more than one sync set.')
            used.add(key)
            converted.append(key)
        sync_sets.append(tuple(converted))
    return handler, tuple(sync_sets)


def plan_graph(config: Any, registry: Mapping[str, type[Calculator]]) -> GraphPlan:
    """Validate `config` against `registry`; GraphConfigError says what is wrong, in MediaPipe's words."""
    graph_inputs = tuple(parse_tag_index_name(s)[2] for s in config.input_stream)
    graph_outputs = tuple(parse_tag_index_name(s)[2] for s in config.output_stream)
    graph_sides = tuple(parse_tag_index_name(s)[2] for s in config.input_side_packet)
    graph_handler = config.input_stream_handler if config.HasField("input_stream_handler") else None

    drafts = []
    for i, node in enumerate(config.node):
        name = canonical_node_name(config, i)
        cls = registry.get(node.calculator)
        if cls is None:
            raise GraphConfigError(
                f'No registered object with name: {node.calculator}; Unable to find Calculator "{node.calculator}"'
            )
        inputs, outputs, sides, made = (
            _tag_map(node.input_stream),
            _tag_map(node.output_stream),
            _tag_map(node.input_side_packet),
            _tag_map(node.output_side_packet),
        )
        _check_contract(cls, node.calculator, inputs, cls.inputs, "input streams")
        _check_contract(cls, node.calculator, outputs, cls.outputs, "output streams")
        _check_contract(cls, node.calculator, sides, cls.side_packets, "input side packets")
        _check_contract(cls, node.calculator, made, cls.output_side_packets, "output side packets")
        keys = {ref.key for ref in inputs}
        back_edges = set()
        for info in node.input_stream_info:
            try:
                key = tag_key(*parse_tag_index(info.tag_index))
            except ValueError as error:
                raise GraphConfigError(f'Node "{name}": {error}') from None
            if key not in keys:
                raise GraphConfigError(
                    f'Node "{name}": input_stream_info tag_index "{info.tag_index}" names no input stream.'
                )
            if info.back_edge:
                back_edges.add(key)
        handler, sync_sets = _handler(node, cls, graph_handler, keys, name)
        drafts.append((name, cls, node, inputs, outputs, sides, frozenset(back_edges), handler, sync_sets, made))

    producer: dict[str, int] = {}
    for stream in graph_inputs:
        if stream in producer:
            raise GraphConfigError(f'Output Stream "{stream}" defined twice.')
        producer[stream] = -1
    for i, draft in enumerate(drafts):
        for ref in draft[4]:
            if ref.name in producer:
                raise GraphConfigError(f'Output Stream "{ref.name}" defined twice.')
            producer[ref.name] = i
    edges: dict[int, set[int]] = {i: set() for i in range(len(drafts))}
    for i, draft in enumerate(drafts):
        for ref in draft[3]:
            if ref.name not in producer:
                raise GraphConfigError(
                    f'Input Stream "{ref.name}" for node with sorted index {i} name {draft[0]} does not have a '
                    "corresponding output stream."
                )
            upstream = producer[ref.name]
            if upstream >= 0 and ref.key not in draft[6]:
                edges[upstream].add(i)

    side_producer: dict[str, str] = {}
    for draft in drafts:
        for ref in draft[9]:
            if ref.name in side_producer:
                raise GraphConfigError(f'Output Side Packet "{ref.name}" defined twice.')
            side_producer[ref.name] = draft[0]
    order = _topological_order(edges)
    if len(order) < len(drafts):
        cycle = ", ".join(drafts[i][0] for i in range(len(drafts)) if i not in set(order))
        raise GraphConfigError(f"Generator side packet cycle or calculator stream cycle detected in graph: [{cycle}]")
    nodes = tuple(
        NodePlan(position, name, node.calculator, cls, node, inputs, outputs, sides, back_edges, handler, sync_sets,
                 made)
        for position, (name, cls, node, inputs, outputs, sides, back_edges, handler, sync_sets, made) in enumerate(
            drafts[i] for i in order
        )
    )
    return GraphPlan(config, graph_inputs, graph_outputs, graph_sides, nodes)


def _topological_order(edges: Mapping[int, set[int]]) -> list[int]:
    """Kahn's algorithm taking the smallest ready original index first (MediaPipe's TopologicalSorter)."""
    indegree = dict.fromkeys(edges, 0)
    for targets in edges.values():
        for target in targets:
            indegree[target] += 1
    ready = [i for i, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        current = heapq.heappop(ready)
        order.append(current)
        for target in sorted(edges[current]):
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, target)
    return order
