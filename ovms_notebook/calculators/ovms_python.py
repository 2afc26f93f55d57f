"""OVMS's Python calculators on the Python scheduler: `PythonExecutorCalculator` and the converter.

Importing this module registers both in the default registry under OVMS's names
(`register_ovms_calculators(registry)` registers them elsewhere), so OVMS graph files
with Python nodes run on a `PythonGraph` unchanged (OVMS's `src/python/`).

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

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ovms_notebook.calculators.proto.ovms_calculators_pb2 import (
    PyTensorOvTensorConverterCalculatorOptions,
    PythonExecutorCalculatorOptions,
)
from ovms_notebook.calculators.pyovms_tensor import Tensor
from ovms_notebook.calculators.python_cache import NODE_RESOURCES, PythonNodeResourcesCache, load_python_nodes
from ovms_notebook.calculators.python_handlers import (
    ALREADY_PROCESSING,
    CONVERTER_CALCULATOR,
    EXECUTION_FAILED,
    LOOPBACK,
    LOOPBACK_ON_BOTH,
    MISSING_NAME,
    NO_LOOPBACK,
    OVMS_PY_TENSOR,
    OVTENSOR,
    PYTHON_NODE_CALCULATOR,
    RESOURCE_EXHAUSTED,
    RESOURCES_TAG,
    PythonNodeError,
    PythonNodeResources,
    _keys_and_names,
    _tag,
    stream_name,
)
from ovms_notebook.codec.blob import TensorValue, unpack_tensor
from ovms_notebook.codec.datatypes import OV_ELEMENT_SIZES
from ovms_notebook.engine.python.api import Calculator, Registry
from ovms_notebook.engine.python.streams import INTERNAL, INVALID_ARGUMENT, UNKNOWN, Status
from ovms_notebook.errors import CalculatorStatus

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


class _ExecutionError(Exception):
    """Why a Process() failed with OVMS's generic "Error occurred during graph execution" (logged only)."""


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
    """OVMS's PythonExecutorCalculator (src/python/python_executor_calculator.cc): runs a handler's `execute`.

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
    """OVMS's PyTensorOvTensorConverterCalculator (src/python/pytensor_ovtensor_converter_calculator.cc):
    OVTENSOR <-> OVMS_PY_TENSOR.

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
