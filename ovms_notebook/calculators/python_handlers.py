"""Loading OVMS Python node handlers: checks at graph load, one shared `OvmsPythonModel` per node.

OVMS loads a Python node's handler once per graph definition and shares the
`OvmsPythonModel` instance between every graph instance (`src/python/pythonnoderesources.cpp`); this module
does that for `PythonExecutorCalculator` (see `ovms_notebook.calculators.ovms_python`):
`PythonNodeResources` imports and initializes one node's handler and finalizes it
once released and unused; `ovms_notebook.calculators.python_cache` keeps them per graph
definition (`load_python_nodes`, `NODE_RESOURCES`).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import itertools
import logging
import re
import sys
import threading
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovms_notebook.calculators.proto.ovms_calculators_pb2 import (
    PythonExecutorCalculatorOptions,
)
from ovms_notebook.calculators.pyovms_tensor import Tensor
from ovms_notebook.engine.python.api import parse_tag_index, tag_key
from ovms_notebook.engine.python.validate import parse_tag_index_name
from ovms_notebook.errors import PythonNodeError
from ovms_notebook.framework.options import node_options

log = logging.getLogger(__name__)

PYTHON_NODE_CALCULATOR = "PythonExecutorCalculator"
CONVERTER_CALCULATOR = "PyTensorOvTensorConverterCalculator"
RESOURCES_TAG = "PYTHON_NODE_RESOURCES"
LOOPBACK = "LOOPBACK"
OVTENSOR = "OVTENSOR"
OVMS_PY_TENSOR = "OVMS_PY_TENSOR"

RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
EXECUTION_FAILED = "Error occurred during graph execution"
ALREADY_PROCESSING = "Node is already processing data. Create new stream for another request."
NO_LOOPBACK = "Execute yielded, but LOOPBACK is not defined in the node"
LOOPBACK_ON_BOTH = "If LOOPBACK is used, it must be defined on both input and output of the node"

# OVMS status code names of the load-time failures.
MISSING_OPTIONS = "PYTHON_NODE_MISSING_OPTIONS"
MISSING_NAME = "PYTHON_NODE_MISSING_NAME"
NAME_ALREADY_EXISTS = "PYTHON_NODE_NAME_ALREADY_EXISTS"
FILE_DOES_NOT_EXIST = "PYTHON_NODE_FILE_DOES_NOT_EXIST"
INITIALIZATION_FAILED = "PYTHON_NODE_FILE_STATE_INITIALIZATION_FAILED"


def stream_name(entry: str) -> str:
    """The stream name of a `TAG:index:name` entry (OVMS's getStreamName)."""
    return entry.rsplit(":", 1)[-1]


def _keys_and_names(entries: Iterable[str]) -> list[tuple[str, str]]:
    """(key, stream name) per `TAG:index:name` entry, untagged indexes assigned in order."""
    counts: dict[str, int] = {}
    result = []
    for entry in entries:
        tag, index, name = parse_tag_index_name(entry)
        if index == -1:
            index = counts.get(tag, 0)
        counts[tag] = max(counts.get(tag, 0), index + 1)
        result.append((tag_key(tag, index), name))
    return result


def _tag(key: str) -> str:
    return parse_tag_index(key)[0]


def _has_options(node: Any) -> bool:
    extension = PythonExecutorCalculatorOptions.ext
    return bool(node.node_options) or (node.HasField("options") and node.options.HasExtension(extension))


# Loading handlers.


def _ensure_pyovms() -> None:
    """Make `import pyovms` work for handlers even when the top-level package is not installed."""
    if "pyovms" in sys.modules:
        return
    try:
        importlib.import_module("pyovms")
    except ImportError:
        module = types.ModuleType("pyovms", "ovms_notebook's stand-in for OVMS's pyovms module")
        module.Tensor = Tensor  # type: ignore[attr-defined]
        module.__all__ = ["Tensor"]  # type: ignore[attr-defined]
        sys.modules["pyovms"] = module


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the handler from source every time: no .pyc is read or written (edits always count)."""

    def get_code(self, fullname: str) -> types.CodeType:
        return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)


_module_numbers = itertools.count(1)
_path_users: dict[str, int] = {}  # handler directories this module put on sys.path, by loaded handlers
_path_lock = threading.Lock()


def _add_path(directory: str) -> None:
    """Append a handler's directory to sys.path as OVMS does (for its sibling imports), counting users."""
    with _path_lock:
        if directory in _path_users:
            _path_users[directory] += 1
        elif directory not in sys.path:
            sys.path.append(directory)
            _path_users[directory] = 1


def _drop_path(directory: str) -> None:
    """Forget one user of a directory this module added; the last one removes it from sys.path."""
    with _path_lock:
        if directory not in _path_users:
            return
        _path_users[directory] -= 1
        if not _path_users[directory]:
            del _path_users[directory]
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def resolve_handler_path(handler_path: str, base_path: str | Path) -> Path:
    """The handler file, `handler_path` resolved against `base_path`; PythonNodeError when it escapes
    the base path (`..`, an absolute path elsewhere, a symlink out) or does not exist."""
    base = Path(base_path).resolve()
    given = Path(handler_path)
    joined = given if given.is_absolute() else base / given
    resolved = joined.resolve()
    if not resolved.is_relative_to(base):
        raise PythonNodeError(
            INITIALIZATION_FAILED,
            f"Python node handler_path: {handler_path} resolves to {resolved.as_posix()}, outside the graph's base "
            f"path {base.as_posix()}; handler files must be inside the graph's folder.",
        )
    if not resolved.exists():
        raise PythonNodeError(FILE_DOES_NOT_EXIST, f"Python node handler_path: {joined.as_posix()} does not exist.")
    if not resolved.is_file():
        raise PythonNodeError(
            INITIALIZATION_FAILED, f"Error during python node initialization. {joined.as_posix()} is not a file"
        )
    return resolved


def _import_handler(path: Path) -> types.ModuleType:
    _ensure_pyovms()
    name = f"_ovms_python_node_{next(_module_numbers)}_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    loader = _FreshSourceLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@dataclass(eq=False)
class PythonNodeResources:
    """One loaded handler: its module and `OvmsPythonModel` instance, shared by every graph instance.

    `key` is (node name, handler file, base path). `finalize()` calls the model's
    `finalize()` once (its exceptions logged and ignored) and forgets the module.
    """

    node_name: str
    handler_path: Path
    base_path: Path
    module: types.ModuleType
    model: Any
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    outputs: Mapping[str, str]
    fingerprint: bytes = b""
    users: int = field(default=0, repr=False)
    released: bool = field(default=False, repr=False)
    finalized: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.node_name, str(self.handler_path), str(self.base_path))

    @classmethod
    def load(cls, node: Any, base_path: str | Path, options: Any | None = None) -> PythonNodeResources:
        """Import the node's handler and initialize a fresh `OvmsPythonModel` (no cache)."""
        if options is None:
            options = node_options(node, PythonExecutorCalculatorOptions)
        base = Path(base_path).resolve()
        handler = resolve_handler_path(options.handler_path, base)
        shown = options.handler_path
        _add_path(str(handler.parent))
        try:
            module = _import_handler(handler)
        except Exception as error:
            _drop_path(str(handler.parent))
            raise PythonNodeError(
                INITIALIZATION_FAILED,
                f"Error during python node initialization for handler_path: {shown} - {type(error).__name__}: {error}",
            ) from error
        try:
            model_class = getattr(module, "OvmsPythonModel", None)
            if model_class is None:
                raise PythonNodeError(
                    INITIALIZATION_FAILED,
                    f"Error during python node initialization. No OvmsPythonModel class found in {shown}",
                )
            if not hasattr(model_class, "execute"):
                raise PythonNodeError(
                    INITIALIZATION_FAILED,
                    f"Error during python node initialization. OvmsPythonModel class defined in {shown} does not "
                    "implement execute method.",
                )
            inputs = [name for _, name in _keys_and_names(node.input_stream)]
            outputs = _keys_and_names(node.output_stream)
            try:
                model = model_class()
                if hasattr(model, "initialize"):
                    model.initialize({
                        "node_name": node.name,
                        "input_names": inputs,
                        "output_names": [name for _, name in outputs],
                        "base_path": str(handler.parent),
                    })
            except Exception as error:
                raise PythonNodeError(
                    INITIALIZATION_FAILED,
                    f"Error during python node initialization for handler_path: {shown} - "
                    f"{type(error).__name__}: {error}",
                ) from error
        except BaseException:
            sys.modules.pop(module.__name__, None)
            _drop_path(str(handler.parent))
            raise
        return cls(
            node_name=node.name,
            handler_path=handler,
            base_path=base,
            module=module,
            model=model,
            input_names=tuple(inputs),
            output_names=tuple(name for _, name in outputs),
            outputs={name: key for key, name in outputs if _tag(key) != LOOPBACK},
            fingerprint=node.SerializeToString(deterministic=True),
        )

    def attach(self) -> None:
        """A graph run starts using these resources."""
        with self._lock:
            self.users += 1

    def detach(self) -> None:
        """A graph run stopped using them; the last one out finalizes released resources."""
        with self._lock:
            self.users = max(0, self.users - 1)
            due = self.released and self.users == 0
        if due:
            self.finalize()

    def release(self) -> None:
        """No new graph will use these resources: finalize now, or when the last running graph closes."""
        with self._lock:
            self.released = True
            due = self.users == 0
        if due:
            self.finalize()

    def finalize(self) -> None:
        """Call the model's `finalize()` once; exceptions are logged and ignored (as OVMS does)."""
        with self._lock:
            if self.finalized:
                return
            self.finalized = True
        try:
            method = getattr(self.model, "finalize", None)
            if method is not None:
                method()
        except Exception:
            log.error(
                "Failed to process python node finalize method. Python node handler_path: %s",
                self.handler_path,
                exc_info=True,
            )
        finally:
            sys.modules.pop(self.module.__name__, None)
            _drop_path(str(self.handler_path.parent))


# Values on tensor streams.
