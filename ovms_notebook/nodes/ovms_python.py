"""OVMS's Python calculators on the Python scheduler: `PythonExecutorCalculator` and the converter.

Importing this module registers both in the default registry under OVMS's names
(`register_ovms_calculators(registry)` registers them elsewhere), so OVMS graph files
with Python nodes run on a `PythonGraph` unchanged (spec §7.3-§7.5).

Values on the streams: an `OVMS_PY_TENSOR` graph input arrives as the codec's
`TensorValue`; these calculators accept a `TensorValue`, a `pyovms.Tensor`, a numpy
array or bytes on any tensor stream and always emit `TensorValue`s: `py_tensor=True`
ones on `OVMS_PY_TENSOR` outputs (the response output is named after `Tensor.name`),
`py_tensor=False` ones on `OVTENSOR` outputs. LOOPBACK carries `True`.

How a graph finds its handlers (the engine's side):

* At graph definition load, `load_python_nodes(config, base_path)` checks every
  Python node as OVMS does (options, name set and unique, handler inside the base
  path and present, module importable, `OvmsPythonModel.execute`, `initialize`) and
  returns `{node name: PythonNodeResources}`; it raises `PythonNodeError` (with the
  OVMS status name in `.status`) when the definition must not become available.
* Each graph instance gets that map as the side packet `py`, as OVMS passes it
  (`start_run({"py": resources, ...})`); nodes declare it with
  `input_side_packet: "PYTHON_NODE_RESOURCES:py"`. Our scheduler requires every side
  packet a node names, so the engine must always pass `py` (any value will do).
* Without a map in `py`, a node loads its handler itself through the shared cache
  `NODE_RESOURCES`, resolving a relative `handler_path` against the class attribute
  `PythonExecutorCalculator.base_path` (set it on a subclass, see `for_base_path`),
  else the current directory.
* On retire/reload, `NODE_RESOURCES.release_base_path(base_path)` (or `release_all()`):
  `finalize()` runs once the last running graph that uses the handler is closed.

Differences from OVMS, on purpose: a handler is imported under a unique module name
with `importlib` (never from a stale .pyc), so two graphs' `model.py` never collide (OVMS
imports by file stem; its handler directory is still appended to `sys.path` here too, for
sibling imports); a handler outside the base path (`..`, absolute, symlinks) is refused;
the options may be given in either form (`node_options` Any or `options` extension);
indexed tags (`OUTPUT:1`) address their own stream (OVMS folds every index onto index 0).
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ovms_notebook.codec.blob import TensorValue, unpack_tensor
from ovms_notebook.errors import OvmsNotebookError
from ovms_notebook.nodes.api import Calculator, Registry, default_registry, parse_tag_index, tag_key
from ovms_notebook.nodes.proto.ovms_calculators_pb2 import (
    PyTensorOvTensorConverterCalculatorOptions,
    PythonExecutorCalculatorOptions,
)
from ovms_notebook.nodes.pyovms_tensor import Tensor
from ovms_notebook.nodes.streams import INTERNAL, INVALID_ARGUMENT, UNKNOWN, Status
from ovms_notebook.nodes.validate import parse_tag_index_name

log = logging.getLogger(__name__)

__all__ = [
    "EXECUTION_FAILED",
    "NODE_RESOURCES",
    "CalculatorStatus",
    "PyTensorOvTensorConverterCalculator",
    "PythonExecutorCalculator",
    "PythonNodeError",
    "PythonNodeResources",
    "PythonNodeResourcesCache",
    "load_python_nodes",
    "register_ovms_calculators",
]

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

#: The datatypes an ov::Tensor can have (the converter's precision table) and their element sizes.
OV_ELEMENT_SIZES: dict[str, int] = {
    "BF16": 2,
    "FP64": 8,
    "FP32": 4,
    "FP16": 2,
    "INT64": 8,
    "INT32": 4,
    "INT16": 2,
    "INT8": 1,
    "UINT64": 8,
    "UINT32": 4,
    "UINT16": 2,
    "UINT8": 1,
    "BOOL": 1,
}


class PythonNodeError(OvmsNotebookError, ValueError):
    """A Python node OVMS would refuse at graph load; `status` is the OVMS status code name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class CalculatorStatus(OvmsNotebookError, RuntimeError):
    """A calculator failure with an absl code and MediaPipe's exact message (raised only outside a graph run)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _ExecutionError(Exception):
    """Why a Process() failed with OVMS's generic "Error occurred during graph execution" (logged only)."""


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


def _options(node: Any, message_type: type) -> Any:
    """The node's options of `message_type` in either form (what Calculator.options reads)."""
    probe = Calculator()
    probe.node = node
    return probe.options(message_type)


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
            options = _options(node, PythonExecutorCalculatorOptions)
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


class PythonNodeResourcesCache:
    """Loaded handlers by (node name, handler file, base path): one model per graph definition."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], PythonNodeResources] = {}
        self._lock = threading.RLock()

    def acquire(self, node: Any, base_path: str | Path, options: Any | None = None) -> PythonNodeResources:
        """The cached resources of `node`, loaded (and `initialize`d) on first use or when the node changed."""
        if options is None:
            options = _options(node, PythonExecutorCalculatorOptions)
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


# Values on tensor streams.


def as_tensor(value: object, name: str) -> Tensor:
    """A pyovms.Tensor for a stream value (TensorValue, Tensor, tensor blob, numpy array or bytes-like)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bytes):
        unpacked = unpack_tensor(value)
        if unpacked is not None:
            value = unpacked
    if isinstance(value, TensorValue):
        return Tensor._from_value(value)
    if isinstance(value, np.ndarray | bytes | bytearray | memoryview):
        return Tensor(name, value)
    raise TypeError(f"stream {name!r} carries a {type(value).__name__}, not a tensor")


def _tensor_parts(value: object, name: str) -> tuple[str, tuple[int, ...], bytes]:
    """(datatype, shape, raw bytes) of a stream value, without building a Tensor for a TensorValue."""
    if isinstance(value, bytes):
        value = unpack_tensor(value) or value
    if isinstance(value, TensorValue):
        return value.datatype, value.shape, value.data
    tensor = as_tensor(value, name)
    return tensor.datatype, tensor.shape, bytes(tensor)


def _fail(calculator: Calculator, code: str, message: str) -> None:
    """Fail the current Process() with exactly `message` (no exception type, no traceback), as OVMS's
    absl::Status does; outside a graph run, raise CalculatorStatus."""
    record = getattr(calculator._ovms_context, "_record", None)
    if not callable(record):
        raise CalculatorStatus(code, message)
    record(Status(code, f'Calculator::Process() for node "{calculator.node_name}" failed: {message}'))


_EXHAUSTED = object()


class PythonExecutorCalculator(Calculator):
    """OVMS's PythonExecutorCalculator (spec §7.3): runs `OvmsPythonModel.execute` of a handler file.

    Regular mode: `execute(inputs)` returns a list of pyovms.Tensor, each emitted on the
    output whose stream name is the tensor's name, at the input timestamp. Generative
    mode: `execute` returns a generator; with LOOPBACK on both sides, the first yielded list
    is emitted at T with LOOPBACK at T+1, each LOOPBACK run emits the next one (the
    generator is advanced one step ahead, as OVMS does), and the run after the last one
    resets it. Any other result, a non-Tensor, an unknown name or an exception fails the
    node with "Error occurred during graph execution" (details in the log).
    """

    inputs = ("*",)
    outputs = ("*",)
    side_packets = (RESOURCES_TAG,)
    timestamp_offset = None  # OVMS's calculator sets no offset: bounds follow the packets

    base_path: ClassVar[str | Path | None] = None
    """Where a relative handler_path is resolved when the graph passes no resources map (None: cwd)."""
    resources_cache: ClassVar[PythonNodeResourcesCache] = NODE_RESOURCES

    resources: PythonNodeResources | None = None

    @classmethod
    def for_base_path(cls, base_path: str | Path) -> type[PythonExecutorCalculator]:
        """A subclass resolving handlers against `base_path` (register it in a graph's registry)."""
        return type(cls.__name__, (cls,), {"base_path": Path(base_path), "__module__": cls.__module__})

    def open(self, side_packets: Mapping[str, object]) -> None:
        node = self.node
        if not node.name:
            raise PythonNodeError(MISSING_NAME, "Python node name is missing: PythonExecutorCalculator needs a name")
        if not self.input_tags or not self.output_tags:
            raise ValueError("PythonExecutorCalculator needs at least one input stream and one output stream")
        input_tags = {_tag(key) for key in self.input_tags}
        output_tags = {_tag(key) for key in self.output_tags}
        if (LOOPBACK in input_tags) != (LOOPBACK in output_tags):
            raise ValueError(LOOPBACK_ON_BOTH)
        provided = side_packets.get(RESOURCES_TAG)
        resources = provided.get(node.name) if isinstance(provided, Mapping) else None
        if not isinstance(resources, PythonNodeResources):
            options = self.options(PythonExecutorCalculatorOptions)
            base = self.base_path if self.base_path is not None else Path.cwd()
            resources = self.resources_cache.acquire(node, base, options)
        resources.attach()
        self.resources = resources
        self.has_loopback = LOOPBACK in input_tags
        self.names = dict(_keys_and_names(node.input_stream))
        self.data_keys = [key for key in self.input_tags if _tag(key) != LOOPBACK]
        self.generator: Iterator[Any] | None = None
        self.pending: Any = _EXHAUSTED
        self.output_timestamp = 0

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> None:
        if self.generator is not None and any(inputs.get(key) is not None for key in self.data_keys):
            log.info("PythonExecutorCalculator [Node: %s] %s", self.node_name, ALREADY_PROCESSING)
            _fail(self, RESOURCE_EXHAUSTED, ALREADY_PROCESSING)
            return
        try:
            if self.generator is not None:
                if self.pending is _EXHAUSTED:
                    log.debug("PythonExecutorCalculator [Node: %s] finished generating.", self.node_name)
                    self.generator = None
                else:
                    self._generate()
                return
            self.output_timestamp = timestamp
            result = self.resources.model.execute(self._inputs(inputs))  # type: ignore[union-attr]
            if isinstance(result, list):
                self._emit(self._outputs(result))
            elif isinstance(result, Iterator):
                if not self.has_loopback:
                    raise _ExecutionError(NO_LOOPBACK)
                self.generator = result
                self.pending = next(result, _EXHAUSTED)
                if self.pending is _EXHAUSTED:
                    raise _ExecutionError("Execute returned a generator that yielded nothing")
                self._generate()
            else:
                raise _ExecutionError(
                    f"Wrong object on execute output: expected list or generator, got {type(result).__name__}"
                )
        except Exception as error:
            self.generator = None
            self.pending = _EXHAUSTED
            detail = str(error) if isinstance(error, _ExecutionError) else f"{type(error).__name__}: {error}"
            log.warning(
                "Error occurred during node %s execution: %s",
                self.node_name,
                detail,
                exc_info=None if isinstance(error, _ExecutionError) else error,
            )
            _fail(self, INTERNAL, EXECUTION_FAILED)

    def close(self) -> None:
        if self.generator is not None and hasattr(self.generator, "close"):
            try:
                self.generator.close()
            except Exception:
                log.debug("closing the generator of node %s failed", self.node_name, exc_info=True)
        self.generator = None
        if self.resources is not None:
            resources, self.resources = self.resources, None
            resources.detach()

    # Internals.

    def _inputs(self, inputs: Mapping[str, object | None]) -> list[Tensor]:
        tensors = []
        for key in self.data_keys:
            value = inputs.get(key)
            if value is None:
                log.info(
                    "PythonExecutorCalculator [Node: %s] Received empty packet on input: %s. "
                    "Execution will continue without that input.",
                    self.node_name,
                    key,
                )
                continue
            tensors.append(as_tensor(value, self.names.get(key, key)))
        return tensors

    def _outputs(self, items: Iterable[Any]) -> list[tuple[str, TensorValue]]:
        assert self.resources is not None
        outputs = []
        for item in items:
            if not isinstance(item, Tensor):
                raise _ExecutionError(
                    f"Wrong object on execute output: expected pyovms.Tensor, got {type(item).__name__}"
                )
            key = self.resources.outputs.get(item.name)
            if key is None:
                raise _ExecutionError(
                    f"Unexpected output tensor name: {item.name!r}; the node's outputs are "
                    f"{', '.join(self.resources.outputs) or 'none'}"
                )
            outputs.append((key, item.to_value()))
        return outputs

    def _emit(self, outputs: list[tuple[str, TensorValue]]) -> None:
        for key, value in outputs:
            self.emit(key, value, self.output_timestamp)

    def _generate(self) -> None:
        """Emit the pending yield at the output timestamp and LOOPBACK one later, then advance the generator."""
        assert self.generator is not None
        items = self.pending
        if not isinstance(items, Iterable) or isinstance(items, str | bytes | Tensor):
            raise _ExecutionError(f"Wrong object yielded by execute: expected a list, got {type(items).__name__}")
        outputs = self._outputs(list(items))
        self.pending = next(self.generator, _EXHAUSTED)  # one step ahead, like OVMS's py::iterator
        self._emit(outputs)
        self.output_timestamp += 1
        self.emit(LOOPBACK, True, self.output_timestamp)


class PyTensorOvTensorConverterCalculator(Calculator):
    """OVMS's PyTensorOvTensorConverterCalculator (spec §7.5): OVTENSOR <-> OVMS_PY_TENSOR.

    Exactly one input and one output, one of each tag. OV->Py names the Tensor after
    options `tag_to_output_tensor_names["OVMS_PY_TENSOR"]` (required); Py->OV checks the
    datatype, the dimensions and the byte size. Outputs at the input timestamp.
    """

    inputs = (OVTENSOR, OVMS_PY_TENSOR)
    outputs = (OVTENSOR, OVMS_PY_TENSOR)
    timestamp_offset = None

    def open(self, side_packets: Mapping[str, object]) -> None:
        if len(self.input_tags) != 1 or len(self.output_tags) != 1 or {*self.input_tags, *self.output_tags} != {
            OVTENSOR,
            OVMS_PY_TENSOR,
        }:
            raise ValueError(
                "PyTensorOvTensorConverterCalculator needs exactly one input and one output stream: "
                "OVTENSOR in and OVMS_PY_TENSOR out, or OVMS_PY_TENSOR in and OVTENSOR out"
            )
        self.input_key, self.output_key = self.input_tags[0], self.output_tags[0]
        names = self.options(PyTensorOvTensorConverterCalculatorOptions).tag_to_output_tensor_names
        if self.input_key == OVTENSOR:
            if OVMS_PY_TENSOR not in names:
                raise ValueError(
                    'PyTensorOvTensorConverterCalculator converting OVTENSOR to OVMS_PY_TENSOR needs options '
                    'tag_to_output_tensor_names { key: "OVMS_PY_TENSOR" value: "<tensor name>" }'
                )
            self.output_name = names[OVMS_PY_TENSOR]
        else:
            self.output_name = stream_name(self.node.output_stream[0])

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> None:
        value = inputs.get(self.input_key)
        if value is None:
            log.info(
                "PyTensorOvTensorConverterCalculator [Node: %s] Unexpected empty packet received on input: %s",
                self.node_name,
                self.input_key,
            )
            _fail(self, INTERNAL, f"Unexpected empty packet received on input: {self.input_key}")
            return
        try:
            datatype, shape, data = _tensor_parts(value, self.output_name)
        except (TypeError, ValueError):
            log.warning("Error occurred during node %s execution", self.node_name, exc_info=True)
            _fail(self, UNKNOWN, "Unexpected error occurred")
            return
        if self.input_key == OVTENSOR:
            if datatype not in OV_ELEMENT_SIZES:
                _fail(self, INVALID_ARGUMENT, f"Undefined precision in input tensor: {datatype}")
                return
            self.emit(self.output_key, TensorValue(self.output_name, datatype, shape, data, py_tensor=True))
            return
        if datatype not in OV_ELEMENT_SIZES:
            _fail(self, INVALID_ARGUMENT, f"Undefined precision in input python tensor: {datatype}")
            return
        negative = next((d for d in shape if d < 0), None)
        if negative is not None:
            _fail(self, INVALID_ARGUMENT, f"dimension negative during conversion: {negative}")
            return
        expected = OV_ELEMENT_SIZES[datatype] * int(np.prod(shape, dtype=np.int64))
        if len(data) != expected:
            _fail(self, INVALID_ARGUMENT, f"python buffer size: {len(data)}; OV tensor size: {expected}; mismatch")
            return
        self.emit(self.output_key, TensorValue(self.output_name, datatype, shape, data))


def register_ovms_calculators(registry: Registry) -> None:
    """Register both calculators in `registry` under OVMS's names."""
    registry.register(PYTHON_NODE_CALCULATOR)(PythonExecutorCalculator)
    registry.register(CONVERTER_CALCULATOR)(PyTensorOvTensorConverterCalculator)


register_ovms_calculators(default_registry)
