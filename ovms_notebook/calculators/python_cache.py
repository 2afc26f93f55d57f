"""Loaded Python node handlers, one per node of a graph definition, shared by its graph runs
(as OVMS's src/python/pythonnoderesources.cpp).

`load_python_nodes` checks a graph's Python nodes as OVMS does at load time and
loads them through a cache; `NODE_RESOURCES` is the process-wide cache, and
`release_loaded` lets a retired or replaced definition's handlers be finalized
once the last graph run using them closes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ovms_notebook.calculators.proto.ovms_calculators_pb2 import PythonExecutorCalculatorOptions
from ovms_notebook.calculators.python_handlers import (
    MISSING_NAME,
    MISSING_OPTIONS,
    NAME_ALREADY_EXISTS,
    PYTHON_NODE_CALCULATOR,
    PythonNodeError,
    PythonNodeResources,
    _has_options,
    resolve_handler_path,
)
from ovms_notebook.framework.options import node_options

__all__ = ["NODE_RESOURCES", "PythonNodeResourcesCache", "load_python_nodes", "release_loaded"]


class PythonNodeResourcesCache:
    """Loaded handlers by (node name, handler file, base path): one model per graph definition."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], PythonNodeResources] = {}
        self._lock = threading.RLock()

    def acquire(self, node: Any, base_path: str | Path, options: Any | None = None) -> PythonNodeResources:
        """The cached resources of `node`, loaded (and `initialize`d) on first use or when the node changed."""
        if options is None:
            options = node_options(node, PythonExecutorCalculatorOptions)
        base = Path(base_path).resolve()
        handler = resolve_handler_path(options.handler_path, base)
        key = (node.name, str(handler), str(base))
        fingerprint = node.SerializeToString(deterministic=True)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.fingerprint == fingerprint:
                return entry
            loaded = PythonNodeResources.load(node, base, options)
            self._entries[key] = loaded
        if entry is not None:
            entry.release()
        return loaded

    def get(self, key: tuple[str, str, str]) -> PythonNodeResources | None:
        return self._entries.get(key)

    def release(self, key: tuple[str, str, str]) -> bool:
        """Forget one entry (finalized once no running graph uses it); False when unknown."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return False
        entry.release()
        return True

    def release_base_path(self, base_path: str | Path) -> int:
        """Forget every entry of a graph folder (a retired or reloaded definition); returns how many."""
        base = str(Path(base_path).resolve())
        with self._lock:
            keys = [key for key in self._entries if key[2] == base]
        return sum(self.release(key) for key in keys)

    def release_all(self) -> int:
        """Forget every entry; returns how many."""
        with self._lock:
            keys = list(self._entries)
        return sum(self.release(key) for key in keys)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


NODE_RESOURCES = PythonNodeResourcesCache()
"""The process-wide cache nodes load their handlers through when the graph passes no resources map."""


def release_loaded(
    resources: Mapping[str, PythonNodeResources],
    keep: Mapping[str, PythonNodeResources] | None = None,
    cache: PythonNodeResourcesCache | None = None,
) -> None:
    """A graph definition is retired or replaced: release its handlers, except those `keep` still uses.

    Each is finalized now, or when the last graph run using it closes (as OVMS retires a definition).
    """
    cache = NODE_RESOURCES if cache is None else cache
    kept = {id(entry) for entry in (keep or {}).values()}
    for entry in resources.values():
        if id(entry) in kept:
            continue
        if cache.get(entry.key) is entry:
            cache.release(entry.key)
        else:
            entry.release()  # already replaced in the cache; finalize once its runs end


def load_python_nodes(
    config: Any,
    base_path: str | Path,
    graph_name: str = "",
    cache: PythonNodeResourcesCache | None = None,
) -> dict[str, PythonNodeResources]:
    """Check and load every Python node of a graph definition, as OVMS does at load time.

    Returns {node name: resources} to pass as the `py` side packet; PythonNodeError
    (status = OVMS status code name) for a node OVMS would refuse.
    """
    cache = NODE_RESOURCES if cache is None else cache
    resources: dict[str, PythonNodeResources] = {}
    for node in config.node:
        if node.calculator != PYTHON_NODE_CALCULATOR:
            continue
        if not _has_options(node):
            raise PythonNodeError(MISSING_OPTIONS, f"Python node missing options in graph: {graph_name}.")
        if not node.name:
            raise PythonNodeError(MISSING_NAME, f"Python node name is missing in graph: {graph_name}.")
        if node.name in resources:
            raise PythonNodeError(NAME_ALREADY_EXISTS, f"Python node name: {node.name} already used in graph: "
                                  f"{graph_name}.")
        resources[node.name] = cache.acquire(node, base_path)
    return resources
