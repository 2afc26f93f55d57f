"""A graph's pbtxt, parsed and checked the way OVMS checks it at load time.

`GraphSpec` is the immutable result: the parsed `CalculatorGraphConfig`, the
graph-level input and output streams with their kinds, and the side packets
the graph declares. Everything that would make the native bindings abort
later (unknown stream names, unsupported kinds) is settled here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from google.protobuf import text_format

from ovms_notebook.codec import StreamKind, StreamSpec, parse_stream
from ovms_notebook.codec.proto_inputs import resolve_proto_inputs
from ovms_notebook.engine.python.api import Registry, default_registry, tag_key
from ovms_notebook.engine.python.scheduler import PythonGraph
from ovms_notebook.engine.split import Split, split_graph
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.ovms_fork import fork_servables, model_entry_checks
from ovms_notebook.framework.protos import GraphConfig, parse_graph_config
from ovms_notebook.framework.subgraphs import expand_subgraphs
from ovms_notebook.framework.tags import parse_tag_index_name

#: The side packet OVMS reserves for its map of Python node resources (OVMS's
#: src/mediapipe_internal/side_packet_builder.cpp); clients cannot set it.
RESERVED_SIDE_PACKET = "py"

# Kinds OVMS refuses at graph inputs/outputs, or that need OVMS's C++ calculators.
_UNSUPPORTED_IO = {
    StreamKind.TFLITE_TENSOR: "TfLiteTensor is not supported at graph inputs or outputs (OVMS rejects it too)",
    StreamKind.REQUEST: "REQUEST/RESPONSE pass-through streams need OVMS's C++ KServe calculators",
    StreamKind.RESPONSE: "REQUEST/RESPONSE pass-through streams need OVMS's C++ KServe calculators",
}


@dataclass(frozen=True)
class GraphSpec:
    """A validated graph: config, input/output streams by name, declared side packets."""

    text: str
    config: GraphConfig  # mediapipe.framework.calculator_pb2.CalculatorGraphConfig
    inputs: dict[str, StreamSpec]
    outputs: dict[str, StreamSpec]
    side_packets: tuple[str, ...]
    md5: str = field(default="")
    #: The graph folder's own subgraphs it was expanded with (type -> pbtxt text).
    subgraphs: Mapping[str, str] = field(default_factory=dict)
    split: Split | None = field(default=None)  # set when some nodes run on the Python side
    #: Side packets the Python half gets at every start, beside the request's: OVMS's `py` map of loaded
    #: Python node handlers and each OpenVINO session node's SESSION (set by `bind_resources`).
    python_side_packets: Mapping[str, object] = field(default_factory=dict)
    #: Model entries OVMS's fork would run this graph's subgraphs on, and those of them config.json served when
    #: it was parsed: a reload that serves another set of them parses the graph again (entries or wheel files).
    entry_candidates: frozenset[str] = field(default_factory=frozenset)
    model_entries: frozenset[str] = field(default_factory=frozenset)

    @property
    def input_names(self) -> list[str]:
        """Graph input stream names (tags stripped), in pbtxt order."""
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        """Graph output stream names (tags stripped), in pbtxt order."""
        return list(self.outputs)


def parse_graph(text: str, subgraphs: Mapping[str, str] | None = None, *, models: Collection[str] = ()) -> GraphSpec:
    """Parse pbtxt text and apply OVMS's load-time rules; raises GraphLoadError with the reason.

    `subgraphs` are the graph folder's own subgraphs (type -> pbtxt text, see `folder_subgraphs`), expanded
    like the package's own. `models` are the model entries the graph's config.json serves: when they include
    any that OVMS's MediaPipe fork would run the graph's subgraphs on, the graph uses them as OVMS does
    (ovms_notebook.framework.ovms_fork); otherwise its subgraphs read the wheel's model files.
    """
    try:
        config = parse_graph_config(text)
    except text_format.ParseError as error:
        raise GraphLoadError(f"graph pbtxt does not parse: {error}") from error
    needed = fork_servables(node.calculator for node in config.node)
    entries = bool(needed.keys() & set(models))
    # subgraphs the wheel lacks (ours, then the folder's), inlined (framework/subgraphs)
    config = expand_subgraphs(config, subgraphs, model_entries=entries)
    if entries:
        config = model_entry_checks(config, needed)
    inputs = _streams(config.input_stream, "input")
    outputs = _streams(config.output_stream, "output")
    calculators = {node.calculator for node in config.node}
    if not inputs:
        raise GraphLoadError("a graph served over KServe needs at least one input_stream; the graph has none"
                             + _FILE_IO_HINT * bool(calculators & _FILE_IO))
    if not outputs:
        raise GraphLoadError("a graph served over KServe needs at least one output_stream; the graph has none"
                             + _FILE_IO_HINT * bool(calculators & _FILE_IO))
    side_packets = tuple(parse_stream(s).name for s in config.input_side_packet)
    split = split_graph(config, python_registry())
    if split.python is None:
        _dry_run(config, calculators)
    else:
        if split.native is not None:
            _dry_run(split.native, calculators)
        _check_python(split.python)
        _check_constants(split.python, split.python_constants)
    # after the dry run: MediaPipe's validation then runs on a graph it accepts
    inputs = resolve_proto_inputs(inputs, config if split.python is None else split.native,
                                  python_messages(split.python) if split.python is not None else None)
    return GraphSpec(
        text=text,
        config=config,
        inputs=inputs,
        outputs=outputs,
        side_packets=side_packets,
        md5=hashlib.md5(text.encode()).hexdigest(),
        subgraphs=dict(subgraphs or {}),
        split=split if split.python is not None else None,
        entry_candidates=frozenset(needed),
        model_entries=frozenset(needed.keys() & set(models)),
    )


def python_registry() -> Registry:
    """Calculators that run on the Python side: the library's (the default registry loads them on first
    use, see `ovms_notebook.calculators.builtin`) and those registered in a notebook."""
    return default_registry


def _keyed(entries: Iterable[str]) -> list[tuple[str, str, str]]:
    """(key as a Python calculator addresses it, tag, name) of each `TAG:index:name` entry."""
    found = []
    for entry in entries:
        tag, index, name = parse_tag_index_name(entry)
        found.append((tag_key(tag, max(index, 0)), tag, name))
    return found


def python_messages(config: GraphConfig) -> dict[str, str]:
    """{stream name: protobuf message full name} of the streams the Python half's nodes declare a message for
    (their calculators' `input_messages`, by key, else by tag)."""
    found: dict[str, str] = {}
    for node in config.node:
        cls = default_registry.get(node.calculator)
        declared = getattr(cls, "input_messages", None)
        if not declared:
            continue
        for key, tag, name in _keyed(node.input_stream):
            message = declared.get(key) or declared.get(tag)
            if message:
                found.setdefault(name, message)
    return found


def _check_constants(config: GraphConfig, constants: Mapping[str, object]) -> None:
    """Let each Python node whose calculator has a `check_constants(node, {key: (name, value)})` classmethod
    refuse, when the graph loads, the side packets the graph makes as constants (rather than when a run opens
    it, after the first frame went through the native part); GraphLoadError with its reason."""
    for node in config.node:
        check = getattr(default_registry.get(node.calculator), "check_constants", None)
        if check is None:
            continue
        given = {key: (name, constants[name])
                 for key, _tag, name in _keyed(node.input_side_packet) if name in constants}
        if given:
            try:
                check(node, given)
            except ValueError as error:
                raise GraphLoadError(str(error)) from None


def _check_python(config: GraphConfig) -> None:
    bound = default_registry.prepare(config)  # e.g. session nodes take their SESSION as input, as the engine runs them
    try:
        PythonGraph(bound)
    except ValueError as error:
        raise GraphLoadError(f"the graph's Python-side nodes are not valid: {error}") from error


def _streams(declared: object, side: str) -> dict[str, StreamSpec]:
    streams: dict[str, StreamSpec] = {}
    for raw in declared:  # type: ignore[attr-defined]
        try:
            spec = parse_stream(raw)
        except ValueError as error:
            raise GraphLoadError(f"graph {side}_stream {raw!r} is malformed: {error}") from error
        if spec.name in streams:
            raise GraphLoadError(f"graph {side}_stream name {spec.name!r} is used twice; names must be unique")
        if spec.kind in _UNSUPPORTED_IO:
            raise GraphLoadError(f"graph {side}_stream {raw!r}: {_UNSUPPORTED_IO[spec.kind]}")
        streams[spec.name] = spec
    return streams


#: Nodes that read or write video files: MediaPipe's desktop (non-`_live`) example graphs.
_FILE_IO = frozenset({"OpenCvVideoDecoderCalculator", "OpenCvVideoEncoderCalculator"})
_FILE_IO_HINT = (" (it reads or writes a video file, as MediaPipe's desktop examples do; served over KServe, "
                 "frames come in requests and go back in answers: serve the graph's _live version)")


def _dry_run(config: GraphConfig, calculators: Collection[str] = ()) -> None:
    """Build the native graph once, as OVMS's load-time `Initialize` does: unknown calculators fail here (a GPU
    one is told to be one: the wheel, like OVMS on CPU, registers none)."""
    import mediapipe as mp

    try:
        mp.CalculatorGraph(graph_config=config)
    except Exception as error:
        gpu = sorted(name for name in calculators if "Gpu" in name or name.endswith("GPU"))
        hint = (f" ({', '.join(gpu)}: GPU calculators, which the mediapipe wheel does not register; serve the "
                "graph's CPU version, e.g. ..._cpu.pbtxt)") if gpu and "Unable to find Calculator" in str(error) else ""
        raise GraphLoadError(f"MediaPipe rejected the graph: {error}{hint}") from error
