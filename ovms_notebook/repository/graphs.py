"""Graph folders in OVMS's config.json format: loading, reload and retirement.

A repository reads `mediapipe_config_list` entries and the graph entries of
`model_config_list` (an entry whose base path holds its graph pbtxt), applying
OVMS's path defaults (`ovms_notebook.ovms_config`). A graph that fails to load is kept with its
reason (ModelReady false) and never stops the others. `reload()` follows
OVMS's config reload (`src/modelmanager.cpp`): new graphs load, changed ones reload, missing ones retire; open
streams hold their own `GraphDefinition` and are not affected.

Models (`model_config_list` entries without a graph, and every graph's subconfig
models) live in `Repository.models`, a `ModelRepository` loaded before the
graphs, as OVMS loads them, so a graph's OpenVINO session nodes find them.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ovms_notebook.calculators.resources import bind_resources, release_resources
from ovms_notebook.engine.graphconfig import GraphSpec, parse_graph
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.subgraphs import folder_subgraphs
from ovms_notebook.models import ModelRepository
from ovms_notebook.models.config import outside_base, subconfig_problem
from ovms_notebook.ovms_config import GraphEntry, find_config, read_config
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)



class GraphState(enum.Enum):
    """Where a graph definition is in its life."""

    AVAILABLE = "AVAILABLE"
    FAILED = "LOADING_PRECONDITION_FAILED"
    RETIRED = "RETIRED"


@dataclass
class GraphDefinition:
    """A loaded (or failed, or retired) graph. Streams keep a reference for their whole life."""

    entry: GraphEntry
    spec: GraphSpec | None
    state: GraphState
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The KServe model name of the graph."""
        return self.entry.name

    @property
    def available(self) -> bool:
        """True when new streams and unary requests may use this graph."""
        return self.state is GraphState.AVAILABLE

    def require_available(self) -> GraphSpec:
        """The spec of an available graph, else OVMS's not-loaded status (mediapipe_internal/mediapipefactory.cpp)."""
        if self.state is GraphState.RETIRED:
            raise OvmsStatus(StatusCode.MEDIAPIPE_DEFINITION_NOT_LOADED_ANYMORE)
        if self.state is not GraphState.AVAILABLE or self.spec is None:
            raise OvmsStatus(StatusCode.MEDIAPIPE_DEFINITION_NOT_LOADED_YET)
        return self.spec


def read_entries(config_path: Path, *, validate: bool = True) -> list[GraphEntry]:
    """The graph entries of a config.json, with OVMS's path defaults applied (`ovms_config.read_config`)."""
    return read_config(config_path, validate=validate).graphs


def load_definition(entry: GraphEntry, models: ModelRepository | None = None) -> GraphDefinition:
    """Load one graph (its Python node handlers and OpenVINO sessions on `models` included); a failure is
    recorded on the definition, never raised."""
    if models is not None and entry.name in models:
        return _failed(entry, f"the name {entry.name!r} is already used by a model in model_config_list; graph and "
                       "model names must be unique (OVMS refuses the graph too)")
    main_config = getattr(models, "config_path", None)
    problem = outside_base("graph_path", entry.graph_path, entry.base_path) or subconfig_problem(
        entry.base_path, str(entry.subconfig_path or ""), main_config)
    if problem is not None:
        return _failed(entry, problem)
    try:
        text = entry.graph_path.read_text()
    except OSError as error:
        return _failed(entry, f"graph file {entry.graph_path} cannot be read: {error.strerror or error}")
    try:
        own = folder_subgraphs(entry.base_path, entry.graph_path)  # subgraph pbtxt files beside the graph
        served = models.names if models is not None else ()
        spec = bind_resources(parse_graph(text, own, models=served), entry.base_path, entry.name, models)
    except GraphLoadError as error:
        return _failed(entry, str(error))
    log.info("graph %r loaded from %s", entry.name, entry.graph_path)
    return GraphDefinition(entry=entry, spec=spec, state=GraphState.AVAILABLE)


def _failed(entry: GraphEntry, reason: str) -> GraphDefinition:
    log.error("graph %r failed to load: %s", entry.name, reason)
    return GraphDefinition(entry=entry, spec=None, state=GraphState.FAILED, error=reason)


class Repository:
    """The graphs of one config.json, by name. Thread-safe; lookups never block on loading."""

    def __init__(self, config: str | Path) -> None:
        self.config_path = find_config(config)
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._definitions: dict[str, GraphDefinition] = {}
        self.models = ModelRepository(self.config_path)
        self._load_graphs()

    def reload(self) -> dict[str, str]:
        """Re-read config.json: models first (as OVMS loads them), then load new graphs, reload changed ones,
        retire missing ones.

        Returns what happened to each graph and model name ("loaded", "reloaded", "retired", "unchanged",
        and for models "versions changed").
        """
        with self._reload_lock:
            changes = self.models.reload()
            changes.update(self._load_graphs())
            return changes

    def _load_graphs(self) -> dict[str, str]:
        entries = {entry.name: entry for entry in read_entries(self.config_path)}
        changes: dict[str, str] = {}
        with self._lock:
            current = dict(self._definitions)
        updated: dict[str, GraphDefinition] = {}
        for name, entry in entries.items():
            old = current.get(name)
            if old is None:
                updated[name], changes[name] = load_definition(entry, self.models), "loaded"
            elif old.state is GraphState.RETIRED or self._changed(old, entry) or self._entries_changed(old):
                updated[name], changes[name] = load_definition(entry, self.models), "reloaded"
                release_resources(old.spec, keep=updated[name].spec)
            else:
                updated[name], changes[name] = old, "unchanged"
        for name, old in current.items():
            if name not in entries:
                if old.state is not GraphState.RETIRED:
                    log.info("graph %r retired", name)
                    changes[name] = "retired"
                    release_resources(old.spec)
                updated[name] = GraphDefinition(entry=old.entry, spec=old.spec, state=GraphState.RETIRED)
        with self._lock:
            self._definitions = updated
        return changes

    def _entries_changed(self, old: GraphDefinition) -> bool:
        """The model entries its subgraphs can run on are served differently now: it switches between the entries
        and the wheel's files (or to other entries), so it is parsed again."""
        if old.spec is None:
            return False
        return old.spec.entry_candidates & set(self.models.names) != old.spec.model_entries

    @staticmethod
    def _changed(old: GraphDefinition, entry: GraphEntry) -> bool:
        if old.entry != entry or old.spec is None or old.state is GraphState.FAILED:
            return True  # a failed graph is retried: its calculators may have been registered since
        try:
            text = entry.graph_path.read_text()
            own = folder_subgraphs(entry.base_path, entry.graph_path)
        except (OSError, GraphLoadError):
            return True
        return text != old.spec.text or own != old.spec.subgraphs

    def get(self, name: str) -> GraphDefinition | None:
        """The definition named `name`, in whatever state, or None."""
        with self._lock:
            return self._definitions.get(name)

    def acquire(self, name: str) -> tuple[GraphDefinition, GraphSpec]:
        """The definition and spec a new stream or unary request uses; OVMS's statuses otherwise."""
        definition = self.get(name)
        if definition is None:
            raise OvmsStatus(StatusCode.MEDIAPIPE_DEFINITION_NAME_MISSING)
        return definition, definition.require_available()

    @property
    def definitions(self) -> list[GraphDefinition]:
        """Every definition, in config order (retired ones last)."""
        with self._lock:
            return list(self._definitions.values())
