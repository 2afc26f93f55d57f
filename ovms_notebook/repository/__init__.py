"""The graph folder a server serves: OVMS's config.json read into graph and model entries, reload and retirement."""

from ovms_notebook.proto.wire import GRAPH_VERSION
from ovms_notebook.repository.graphs import (
    GraphDefinition,
    GraphEntry,
    GraphState,
    Repository,
    find_config,
    load_definition,
    read_entries,
)

__all__ = [
    "GRAPH_VERSION",
    "GraphDefinition",
    "GraphEntry",
    "GraphState",
    "Repository",
    "find_config",
    "load_definition",
    "read_entries",
]
