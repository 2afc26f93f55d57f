"""What a loaded graph definition holds beside its config: Python node handlers and OpenVINO sessions.

The repository calls `bind_resources` when it loads a graph and `release_resources` when it retires or
replaces one; both concern calculators of this library (`ovms_python`, `openvino`), so they live here,
above the engine that runs the bound graph.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ovms_notebook.calculators.openvino import bind_sessions
from ovms_notebook.calculators.python_cache import load_python_nodes, release_loaded
from ovms_notebook.engine.graphconfig import RESERVED_SIDE_PACKET, GraphSpec
from ovms_notebook.errors import GraphLoadError, PythonNodeError


def bind_resources(spec: GraphSpec, base_path: str | Path, graph_name: str, models: Any) -> GraphSpec:
    """What a graph definition holds once loaded, as OVMS's definition does: Python node handlers and sessions.

    Every `PythonExecutorCalculator` node's handler is imported and `initialize`d
    (one model per node, shared by every graph instance, as OVMS's `src/python/pythonnoderesources.cpp`) and handed
    to each run as the side packet `py`; every `OpenVINOModelServerSessionCalculator`
    node gets a session on `models` (the model repository) for its servable.
    GraphLoadError (OVMS's status name and text) when a node would not load in OVMS.
    """
    split = spec.split
    if split is None or split.python is None:
        return spec
    try:
        resources = load_python_nodes(split.python, base_path, graph_name)
    except PythonNodeError as error:
        raise GraphLoadError(f"{error.status}: {error}") from error
    bound, sessions = bind_sessions(split.python, models)
    side: dict[str, object] = dict(sessions)
    side[RESERVED_SIDE_PACKET] = resources  # OVMS always passes `py`, even to graphs without Python nodes
    return dataclasses.replace(spec, split=dataclasses.replace(split, python=bound), python_side_packets=side)


def release_resources(spec: GraphSpec | None, keep: GraphSpec | None = None) -> None:
    """A definition is retired or replaced: finalize its Python node handlers once no run uses them.

    Handlers `keep` (the replacing definition) shares are left alone.
    """
    if spec is None or not spec.python_side_packets:
        return
    kept = keep.python_side_packets.get(RESERVED_SIDE_PACKET, {}) if keep is not None else {}
    release_loaded(spec.python_side_packets.get(RESERVED_SIDE_PACKET, {}), kept)  # type: ignore[arg-type]
