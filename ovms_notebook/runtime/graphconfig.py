"""A graph's pbtxt, parsed and checked the way OVMS checks it at load time.

`GraphSpec` is the immutable result: the parsed `CalculatorGraphConfig`, the
graph-level input and output streams with their kinds, and the side packets
the graph declares. Everything that would make the native bindings abort
later (unknown stream names, unsupported kinds) is settled here, once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from google.protobuf import text_format

from ovms_notebook.codec import StreamKind, StreamSpec, parse_stream
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.runtime.protos import import_wheel_protos

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
    config: object  # mediapipe.framework.calculator_pb2.CalculatorGraphConfig
    inputs: dict[str, StreamSpec]
    outputs: dict[str, StreamSpec]
    side_packets: tuple[str, ...]
    md5: str = field(default="")

    @property
    def input_names(self) -> list[str]:
        """Graph input stream names (tags stripped), in pbtxt order."""
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        """Graph output stream names (tags stripped), in pbtxt order."""
        return list(self.outputs)


def parse_graph(text: str) -> GraphSpec:
    """Parse pbtxt text and apply OVMS's load-time rules; raises GraphLoadError with the reason."""
    import_wheel_protos()
    from mediapipe.framework import calculator_pb2

    config = calculator_pb2.CalculatorGraphConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise GraphLoadError(f"graph pbtxt does not parse: {error}") from error
    inputs = _streams(config.input_stream, "input")
    outputs = _streams(config.output_stream, "output")
    if not inputs:
        raise GraphLoadError("a graph served over KServe needs at least one input_stream; the graph has none")
    if not outputs:
        raise GraphLoadError("a graph served over KServe needs at least one output_stream; the graph has none")
    side_packets = tuple(parse_stream(s).name for s in config.input_side_packet)
    _dry_run(config)
    return GraphSpec(
        text=text,
        config=config,
        inputs=inputs,
        outputs=outputs,
        side_packets=side_packets,
        md5=hashlib.md5(text.encode()).hexdigest(),
    )


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


def _dry_run(config: object) -> None:
    """Build the native graph once, as OVMS's load-time `Initialize` does: unknown calculators fail here."""
    import mediapipe as mp

    try:
        mp.CalculatorGraph(graph_config=config)
    except Exception as error:
        raise GraphLoadError(f"MediaPipe rejected the graph: {error}") from error
