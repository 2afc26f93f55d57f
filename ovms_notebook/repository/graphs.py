"""Graph folders in OVMS's config.json format: loading, reload and retirement.

A repository reads `mediapipe_config_list` entries and the graph entries of
`model_config_list` (an entry whose base path holds its graph pbtxt), applying
OVMS's path defaults (spec §6.1). A graph that fails to load is kept with its
reason (ModelReady false) and never stops the others. `reload()` follows
spec §6.2: new graphs load, changed ones reload, missing ones retire; open
streams hold their own `GraphDefinition` and are not affected.

Models (`model_config_list` entries without a graph, and every graph's subconfig
models) live in `Repository.models`, a `ModelRepository` loaded before the
graphs, as OVMS loads them, so a graph's OpenVINO session nodes find them.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ovms_notebook.engine.graphconfig import GraphSpec, bind_resources, parse_graph, release_resources
from ovms_notebook.errors import ConfigError, GraphLoadError
from ovms_notebook.models import ModelRepository
from ovms_notebook.models.config import outside_base, subconfig_problem
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

GRAPH_VERSION = "1"


class GraphState(enum.Enum):
    """Where a graph definition is in its life."""

    AVAILABLE = "AVAILABLE"
    FAILED = "LOADING_PRECONDITION_FAILED"
    RETIRED = "RETIRED"


@dataclass(frozen=True)
class GraphEntry:
    """One graph as config.json names it, with OVMS's defaults resolved to absolute paths."""

    name: str
    base_path: Path
    graph_path: Path
    subconfig_path: Path | None


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
        """The spec of an available graph, else OVMS's not-loaded status (spec §2.1)."""
        if self.state is GraphState.RETIRED:
            raise OvmsStatus(StatusCode.MEDIAPIPE_DEFINITION_NOT_LOADED_ANYMORE)
        if self.state is not GraphState.AVAILABLE or self.spec is None:
            raise OvmsStatus(StatusCode.MEDIAPIPE_DEFINITION_NOT_LOADED_YET)
        return self.spec


def find_config(path: str | Path) -> Path:
    """Resolve CONFIG: a config.json file, or a folder that holds one."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"expected an OVMS config.json or a folder holding one, got {str(path)!r} (not found)")
    return path.resolve()


def read_entries(config_path: Path) -> list[GraphEntry]:
    """The graph entries of a config.json, with OVMS's path defaults applied."""
    try:
        document = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config_path} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{config_path}: expected a JSON object at the top level, got {type(document).__name__}")
    root = config_path.parent
    entries: list[GraphEntry] = []
    for index, item in enumerate(_list(document, "mediapipe_config_list", config_path)):
        entries.append(_entry(item, root, f"mediapipe_config_list[{index}]", config_path))
    for index, item in enumerate(_list(document, "model_config_list", config_path)):
        if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
            raise ConfigError(f"{config_path}: model_config_list[{index}] must be an object with a 'config' object")
        entry = _entry(item["config"], root, f"model_config_list[{index}].config", config_path)
        if entry.graph_path.is_file():
            entries.append(entry)  # without a graph file the entry is a model (ovms_notebook.models)
    unique: dict[str, GraphEntry] = {}
    for entry in entries:
        if entry.name in unique:
            log.warning("%s: graph name %r appears twice; the first entry wins (as in OVMS)", config_path, entry.name)
            continue
        unique[entry.name] = entry
    return list(unique.values())


def _list(document: dict, key: str, config_path: Path) -> list:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{config_path}: '{key}' must be a list, got {type(value).__name__}")
    return value


def _entry(item: object, root: Path, where: str, config_path: Path) -> GraphEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{config_path}: {where} must be an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{config_path}: {where} needs a non-empty string 'name', got {name!r}")
    for key in ("base_path", "graph_path", "subconfig"):
        if key in item and not isinstance(item[key], str):
            raise ConfigError(f"{config_path}: {where}.{key} must be a string, got {type(item[key]).__name__}")
    base = item.get("base_path") or name
    base_path = (root / base).resolve()
    graph_path = (base_path / (item.get("graph_path") or "graph.pbtxt")).resolve()
    sub = item.get("subconfig")
    subconfig_path = base_path / sub if sub else None  # as named: a symlink out is refused at load
    return GraphEntry(name=name, base_path=base_path, graph_path=graph_path, subconfig_path=subconfig_path)


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
        served = models.names if models is not None else ()
        spec = bind_resources(parse_graph(text, served), entry.base_path, entry.name, models)
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
            elif old.state is GraphState.RETIRED or self._changed(old, entry):
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

    @staticmethod
    def _changed(old: GraphDefinition, entry: GraphEntry) -> bool:
        if old.entry != entry or old.spec is None or old.state is GraphState.FAILED:
            return True  # a failed graph is retried: its calculators may have been registered since
        try:
            text = entry.graph_path.read_text()
        except OSError:
            return True
        return text != old.spec.text

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
