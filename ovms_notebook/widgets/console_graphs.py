"""What the stream console offers for a target: its graphs, and per graph the input editors and outputs.

An in-kernel `Server` says everything itself (stream specs with their tags). A
remote address is asked over KServe: ModelReady for the names a person gives,
ModelMetadata for a graph's inputs and outputs (typed by datatype and shape
only; OVMS reports graph streams as "INVALID", so they become FP32 values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from ovms_notebook.client import list_ready, model_metadata
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.errors import ClientError
from ovms_notebook.widgets.editors import InputEditor, kind_from_metadata

__all__ = ["describe_graph", "graph_options", "stream_text"]

_TIMEOUT = 3.0  # seconds for a remote ModelReady/ModelMetadata: a dead address must not hang a click


def stream_text(spec: Any) -> str:
    """A StreamSpec written back as in the pbtxt: "name", "TAG:name" or "TAG:index:name"."""
    parts = [spec.tag] if spec.tag else []
    if spec.index is not None:
        parts.append(str(spec.index))
    return ":".join([*parts, spec.name])


def graph_options(target: Any, names: Sequence[str],
                  credentials: grpc.ChannelCredentials | None = None) -> tuple[list[tuple[str, str]], str]:
    """(dropdown options as (label, graph name), a problem to report or ""); labels say when not ready.

    A server lists every graph it has (`names` is ignored); an address lists `names`.
    """
    if not isinstance(target, str):
        return [(d.name if d.available else f"{d.name} ({getattr(d.state, 'value', d.state)})", d.name)
                for d in target.graphs], ""
    problem = ""
    try:
        ready = list_ready(target, names, credentials=credentials, timeout=_TIMEOUT) if names else {}
    except ClientError as error:
        problem, ready = f"cannot ask {target} which graphs are ready: {error}", {}
    return [(name if ready.get(name) else f"{name} (not ready)", name) for name in names], problem


def describe_graph(target: Any, graph: str, credentials: grpc.ChannelCredentials | None = None,
                   ) -> tuple[dict[str, InputEditor], dict[str, StreamKind], str]:
    """(an editor per input stream, {output stream: kind}, a note when nothing could be learned)."""
    if not isinstance(target, str):
        definition = next((d for d in target.graphs if d.name == graph), None)
        spec = definition.spec if definition is not None else None
        if spec is None:
            reason = getattr(definition, "error", None) or "unknown graph"
            return {}, {}, f"{graph}: no stream specs ({reason})"
        editors = {name: InputEditor(name, s.kind, tag=stream_text(s)) for name, s in spec.inputs.items()}
        return editors, {name: s.kind for name, s in spec.outputs.items()}, ""
    try:
        metadata = model_metadata(target, graph, credentials=credentials, timeout=_TIMEOUT)
    except ClientError as error:
        return {}, {}, f"no metadata for {graph!r}: {error}"
    editors = {}
    for tensor in metadata["inputs"]:
        kind, datatype = kind_from_metadata(tensor)
        editors[tensor["name"]] = InputEditor(tensor["name"], kind, tag=str(tensor.get("datatype", "")),
                                              datatype=datatype)
    return editors, {t["name"]: StreamKind.UNKNOWN for t in metadata["outputs"]}, ""
