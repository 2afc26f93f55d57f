"""What a graph drawing shows: the graph as its pbtxt names it, subgraphs as boxes or opened, each node's kind.

A graph that uses a subgraph the package (or the graph's folder) inlines runs
as dozens of renamed nodes (`holistictrackingtorenderdata__...`); a person
reading the pbtxt sees one node. `drawn_nodes` keeps that one node, or, when
asked, opens it into the subgraph's own nodes grouped under the subgraph's
name (nested ones too). `calculator_kinds` says how each calculator runs here:
natively in MediaPipe, as a Python calculator, a subgraph (ours, the folder's,
or the wheel's own), or unknown to all of them. A graph served with the model
entries OVMS's fork infers on runs the fork's subgraphs expanded here
(`HolisticLandmarkCpu`, `FaceLandmarkFrontCpu`, ...): its drawing opens them as
they run, their inference on OpenVINO and the tensor nodes in Python, not as
the wheel's TFLite modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Kinds `calculator_kinds` gives: how a node's calculator runs here.
NATIVE, PYTHON, SUBGRAPH, WHEEL_SUBGRAPH, UNKNOWN = "native", "python", "subgraph", "wheel-subgraph", "unknown"


class SubgraphSources(dict[str, str]):
    """The folder's subgraph texts a drawing may open (type -> pbtxt text), and `model_entries`: whether the
    graph runs the fork's subgraphs on model entries, so they open as expanded here rather than as the wheel's."""

    def __init__(self, texts: Mapping[str, str] | None = None, model_entries: bool = False) -> None:
        super().__init__(texts or {})
        self.model_entries = model_entries


def _entries(subgraphs: Mapping[str, str] | None) -> bool:
    return bool(getattr(subgraphs, "model_entries", False))


@dataclass(frozen=True)
class DrawnNode:
    """One box of a drawing: the node, and the opened subgraphs it sits in, outermost first, as
    (instance prefix, caption) pairs (empty at the top level)."""

    node: Any
    clusters: tuple[tuple[str, str], ...] = ()


def is_module_name(text: str) -> bool:
    """True for a bare name (`FaceDetectionShortRangeCpu`, `face_detection_short_range_cpu`), not pbtxt text."""
    return text.isidentifier()


def source_config(source: object, subgraphs: Mapping[str, str] | None = None) -> tuple[Any, SubgraphSources]:
    """(the config as its pbtxt names it, the folder subgraphs it may open) for a GraphSpec (its text, not the
    expanded config it runs; served on model entries, its fork subgraphs open as they run), pbtxt text, a
    `.pbtxt` file (its folder's subgraphs beside it), the name of a module the wheel ships, or a config
    message."""
    from google.protobuf import text_format

    from ovms_notebook.errors import GraphLoadError
    from ovms_notebook.framework.protos import parse_graph_config

    own = SubgraphSources(subgraphs, _entries(subgraphs) or bool(getattr(source, "model_entries", ())))
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".pbtxt") and "\n" not in source):
        path = Path(source)
        try:
            source = path.read_text()
        except OSError as error:
            raise GraphLoadError(f"cannot read the graph file {str(path)!r}: {error.strerror}") from None
        from ovms_notebook.framework.subgraphs import folder_subgraphs

        own = SubgraphSources({**folder_subgraphs(path.parent, path), **own}, own.model_entries)
    if isinstance(source, str):
        if is_module_name(source):
            from ovms_notebook.framework.subgraphs.wheel import wheel_module_config

            return wheel_module_config(source), own
        text = source
    elif hasattr(source, "text") and hasattr(source, "config"):  # a GraphSpec: drawn as written
        text = source.text
        own = SubgraphSources({**getattr(source, "subgraphs", {}), **own}, own.model_entries)
    else:
        config = getattr(source, "config", source)
        if not hasattr(config, "node"):
            raise TypeError(
                f"expected a GraphSpec, a CalculatorGraphConfig, pbtxt text, a .pbtxt file or a wheel module name, "
                f"got {type(source).__name__}"
            )
        return config, own
    try:
        return parse_graph_config(text), own
    except text_format.ParseError as error:
        raise GraphLoadError(f"graph pbtxt does not parse: {error}") from error


def openable(subgraphs: Mapping[str, str] | None = None) -> set[str]:
    """Subgraph types a drawing can open: the package's own and the folder's (with model entries, the fork's
    subgraphs the package expands too)."""
    from ovms_notebook.framework.subgraphs import FORK_SUBGRAPHS, SUBGRAPHS

    return set(SUBGRAPHS) | set(subgraphs or {}) | (set(FORK_SUBGRAPHS) if _entries(subgraphs) else set())


def drawn_nodes(
    config: Any, expand: bool | Iterable[str] = False, subgraphs: Mapping[str, str] | None = None
) -> list[DrawnNode]:
    """The boxes of `config`: every node, with the subgraphs `expand` names (True: all) opened, recursively.

    `expand` may name subgraph types or node names. True opens the subgraphs
    the package or the folder inlines; a module the wheel ships (compiled in,
    `HolisticLandmarkCpu`) opens only when named, from its `.binarypb`. A
    subgraph that cannot be opened stays one box.
    """
    from ovms_notebook.errors import GraphLoadError
    from ovms_notebook.framework.subgraphs import instance_nodes, twin_padding_readers
    from ovms_notebook.framework.subgraphs.wheel import wheel_module_text, wheel_modules

    names = None if isinstance(expand, bool) else set(expand)
    entries = _entries(subgraphs)
    sources = SubgraphSources(subgraphs, entries)
    for name in sorted(names or ()):
        if name in wheel_modules() and name not in openable(sources):
            sources[name] = wheel_module_text(name)
    kinds = openable(sources)
    taken: set[str] = set()

    def wanted(node: Any) -> bool:
        if node.calculator not in kinds or expand is False:
            return False
        if names is None:
            return node.calculator in openable(subgraphs)
        return node.calculator in names or bool(node.name and node.name in names)

    def walk(nodes: Iterable[Any], clusters: tuple[tuple[str, str], ...]) -> list[DrawnNode]:
        out: list[DrawnNode] = []
        for node in nodes:
            if not wanted(node):
                out.append(DrawnNode(node, clusters))
                continue
            try:
                prefix, inner = instance_nodes(node, taken, sources, model_entries=entries)
            except GraphLoadError:  # e.g. options on the subgraph node: drawn closed
                out.append(DrawnNode(node, clusters))
                continue
            caption = node.calculator + (f" ({node.name})" if node.name else "")
            out += walk(inner, (*clusters, (prefix, caption)))
        return out

    drawn = walk(config.node, ())
    if entries:  # letterbox removals whose padding a Python twin makes run as twins too, as the graph runs them
        twin_padding_readers([item.node for item in drawn if item.clusters])
    return drawn


def calculator_kinds(names: Iterable[str], subgraphs: Mapping[str, str] | None = None) -> dict[str, str]:
    """{calculator: kind} for each name: PYTHON (runs on the Python side here), SUBGRAPH (ours or the folder's),
    WHEEL_SUBGRAPH (a module the wheel ships), NATIVE (the wheel registers it), UNKNOWN (nobody has it).

    The wheel's registry is probed in a child process, cached (portability.registry).
    """
    from ovms_notebook.engine.graphconfig import python_registry
    from ovms_notebook.framework.subgraphs.wheel import wheel_modules
    from ovms_notebook.portability.registry import wheel_has

    names = list(dict.fromkeys(names))
    registry, ours, modules = python_registry(), openable(subgraphs), wheel_modules()
    kinds: dict[str, str] = {}
    for name in names:
        if name in ours:
            kinds[name] = SUBGRAPH
        elif name in registry:
            kinds[name] = PYTHON
        elif name in modules:
            kinds[name] = WHEEL_SUBGRAPH
    rest = [name for name in names if name not in kinds]
    found = wheel_has(rest) if rest else {}
    for name in rest:
        kinds[name] = NATIVE if found.get(name) else UNKNOWN
    return kinds
