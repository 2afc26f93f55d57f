"""OVMS's OpenVINO calculators on the Python side: a model session and inference on it
(OVMS's mediapipe fork, `mediapipe/calculators/ovms/`).

In OVMS, `OpenVINOModelServerSessionCalculator` opens a session on a servable
and hands it out as the output side packet `SESSION`; the
`OpenVINOInferenceCalculator` nodes that take that side packet run the model.
Our Calculator API has no output side packets, so the session is built by the
engine instead, from the session node's options, and given to both nodes as
an input side packet:

    config, sessions = bind_sessions(config, models)   # once per graph definition
    graph = PythonGraph(config)                          # session nodes now *take* SESSION:<name>
    graph.start_run({**side_packets, **sessions})        # every run

`bind_sessions` rewrites each session node's `output_side_packet: "SESSION:x"`
into `input_side_packet: "SESSION:x"` and returns `{"x": ServableSession}`.
A `ServableSession` is what OVMS's side packet holds (its InferenceAdapter): a
servable name and version in a `ModelRepository`, resolved when a node opens.
The session node only checks that the model loads (FailedPrecondition
`OpenVINOModelServerSessionCalculator failed to load the model` otherwise, as
in OVMS); the inference node resolves the same session itself, since nodes
with no stream between them may open in either order.

Inference: every input tag must carry a packet at the timestamp (else
`OpenVINOInferenceCalculator expects all input packets at the same time for
each call to Process().`); the model input is `tag_to_input_tensor_names[tag]`
or the tag itself, outputs likewise; vector tags (`OVTENSORS`, `TENSORS`, ...)
carry a list matched to `input_order_list`/`output_order_list` (default: the
model's order). Inputs are `TensorValue`s, numpy arrays or tensor blobs of the
model input's datatype and shape; outputs are `TensorValue`s named after the
model output, at the input timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ovms_notebook.calculators.proto.ovms_calculators_pb2 import (
    OpenVINOInferenceCalculatorOptions,
    OpenVINOModelServerSessionCalculatorOptions,
)
from ovms_notebook.codec.blob import TensorValue, unpack_tensor
from ovms_notebook.codec.datatypes import DATATYPES, datatype_of, shape_to_string
from ovms_notebook.engine.python.api import STOP, Calculator, Registry, parse_tag_index
from ovms_notebook.errors import SESSION_LOAD_FAILED, InferenceError, SessionLoadError
from ovms_notebook.framework.options import node_options
from ovms_notebook.status import OvmsStatus

log = logging.getLogger(__name__)

__all__ = [
    "INFERENCE_CALCULATOR",
    "NOT_ALL_INPUTS",
    "SESSION_CALCULATOR",
    "SESSION_LOAD_FAILED",
    "InferenceError",
    "OpenVINOInferenceCalculator",
    "OpenVINOModelServerSessionCalculator",
    "ServableSession",
    "SessionLoadError",
    "bind_sessions",
    "register_openvino_calculators",
]

SESSION_CALCULATOR = "OpenVINOModelServerSessionCalculator"
INFERENCE_CALCULATOR = "OpenVINOInferenceCalculator"
SESSION_TAG = "SESSION"
NOT_ALL_INPUTS = "OpenVINOInferenceCalculator expects all input packets at the same time for each call to Process()."
#: Tag prefixes whose packets hold a vector of tensors (OVMS: vector<ov::Tensor>, vector<mediapipe::Tensor>, ...).
VECTOR_PREFIXES = ("OVTENSORS", "TENSORS", "TFTENSORS", "TFLITE_TENSORS")
_UINT32_MAX = 2**32 - 1


def parse_servable_version(text: str) -> int:
    """OVMS's reading of `servable_version`: a uint32, anything missing or invalid is 0 (the default version)."""
    text = text.strip()
    if text.isdigit() and int(text) <= _UINT32_MAX:
        return int(text)
    return 0


class ServableSession:
    """The value of a SESSION side packet: a servable (model) name and version in a model repository."""

    def __init__(self, models: Any, servable_name: str, servable_version: int = 0) -> None:
        self.models = models
        self.servable_name = servable_name
        self.servable_version = servable_version

    def __repr__(self) -> str:
        version = self.servable_version or "default"
        return f"<ServableSession {self.servable_name!r} version {version}>"

    def load(self) -> Any:
        """The `ModelVersion` to run, compiled; SessionLoadError (OVMS's FailedPrecondition text) otherwise."""
        if self.models is None:
            raise self._failed("no model repository is configured")
        try:
            version = self.models.resolve(self.servable_name, self.servable_version)
            version.compile()
        except OvmsStatus as status:
            raise self._failed(status.text) from None
        return version

    def _failed(self, reason: str) -> SessionLoadError:
        detail = f'servable "{self.servable_name}" version {self.servable_version or "default"}: {reason}'
        log.warning("%s (%s)", SESSION_LOAD_FAILED, detail)
        return SessionLoadError(detail)


def bind_sessions(config: Any, models: Any) -> tuple[Any, dict[str, ServableSession]]:
    """A copy of `config` whose session nodes take their SESSION side packet as input, and those side packets.

    Each `OpenVINOModelServerSessionCalculator` node's options give the
    servable name and version; its `output_side_packet: "SESSION:x"` becomes
    `input_side_packet: "SESSION:x"`, and `{"x": ServableSession(...)}` is
    what `start_run` must be given. `config` itself is not changed.
    """
    bound = type(config)()
    bound.CopyFrom(config)
    sessions: dict[str, ServableSession] = {}
    for node in bound.node:
        if node.calculator != SESSION_CALCULATOR:
            continue
        options = node_options(node, OpenVINOModelServerSessionCalculatorOptions)
        session = ServableSession(models, options.servable_name, parse_servable_version(options.servable_version))
        kept = []
        for entry in node.output_side_packet:
            tag, _, name = entry.rpartition(":")
            if tag.split(":")[0] == SESSION_TAG:
                sessions[name] = session
                node.input_side_packet.append(entry)
            else:
                kept.append(entry)
        del node.output_side_packet[:]
        node.output_side_packet.extend(kept)
    return bound, sessions


def _session(side_packets: Mapping[str, object], node: str) -> ServableSession:
    session = side_packets.get(SESSION_TAG)
    if not isinstance(session, ServableSession):
        raise TypeError(
            f'node "{node}": side packet SESSION holds {type(session).__name__}, expected a ServableSession '
            "(the engine builds it with ovms_notebook.calculators.openvino.bind_sessions)"
        )
    return session


class OpenVINOModelServerSessionCalculator(Calculator):
    """Opens the session of its options' servable: fails the graph at start when the model cannot load."""

    side_packets = (SESSION_TAG,)
    timestamp_offset = None

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.session = _session(side_packets, self.node_name)
        self.session.load()

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> object:
        return STOP  # no streams: a source node with nothing to produce


class OpenVINOInferenceCalculator(Calculator):
    """Runs the session's model on the packets of every input tag at one timestamp (openvinoinferencecalculator.cc)."""

    inputs = ("*",)
    outputs = ("*",)
    side_packets = (SESSION_TAG,)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.version = _session(side_packets, self.node_name).load()
        options = self.options(OpenVINOInferenceCalculatorOptions)
        model_inputs = {spec.name: spec for spec in self.version.inputs}
        model_outputs = [spec.name for spec in self.version.outputs]
        self._inputs = {
            key: self._names(key, options.tag_to_input_tensor_names, options.input_order_list, list(model_inputs),
                             "input")
            for key in self.input_tags
        }
        self._outputs = {
            key: self._names(key, options.tag_to_output_tensor_names, options.output_order_list, model_outputs,
                             "output")
            for key in self.output_tags
        }
        self._specs = model_inputs

    def _names(self, key: str, mapping: Mapping[str, str], order: Sequence[str], model: list[str],
               side: str) -> list[str] | str:
        """The model tensor name(s) a stream key stands for; InferenceError when the model has no such tensor."""
        tag, _ = parse_tag_index(key)
        if not tag:
            raise InferenceError(
                f'{INFERENCE_CALCULATOR} names model {side}s by stream tag, and {side} stream "{key}" has none; '
                f"write TAG:name (with tag_to_{side}_tensor_names for model names that are not upper case)"
            )
        vector = tag.startswith(VECTOR_PREFIXES)
        names = (list(order) or model) if vector else [mapping.get(key, mapping.get(tag, tag))]
        missing = [name for name in names if name not in model]
        if missing:
            raise InferenceError(
                f'{INFERENCE_CALCULATOR}: servable "{self.version.name}" version {self.version.version} has no '
                f'{side} {", ".join(map(repr, missing))} (for tag {tag}); its {side}s are {", ".join(model)}'
            )
        return names if vector else names[0]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object]:
        if any(inputs.get(key) is None for key in self._inputs):
            raise InferenceError(NOT_ALL_INPUTS)
        feed: dict[str, np.ndarray] = {}
        for key, names in self._inputs.items():
            value = inputs[key]
            if isinstance(names, list):
                if not isinstance(value, list | tuple) or len(value) != len(names):
                    raise InferenceError(
                        f'input "{key}" must be a list of {len(names)} tensors ({", ".join(names)}), '
                        f"got {type(value).__name__}{f' of {len(value)}' if isinstance(value, list | tuple) else ''}"
                    )
                feed.update((name, self._array(name, item)) for name, item in zip(names, value, strict=True))
            else:
                feed[names] = self._array(names, value)
        try:
            results = self.version.infer(feed)
        except OvmsStatus as status:
            raise InferenceError(f"inference failed: {status.text}") from None
        emitted: dict[str, object] = {}
        for key, names in self._outputs.items():
            if isinstance(names, list):
                emitted[key] = [_tensor_value(name, results[name]) for name in names]
            else:
                emitted[key] = _tensor_value(names, results[names])
        return emitted

    def _array(self, name: str, value: object) -> np.ndarray:
        """One input as the numpy array OpenVINO gets; InferenceError when its datatype or shape does not fit."""
        spec = self._specs[name]
        if isinstance(value, bytes):
            value = unpack_tensor(value) or value
        if isinstance(value, TensorValue):
            datatype, shape = value.datatype, value.shape
            array = value.array() if datatype == spec.datatype and spec.dtype is not None else None
        elif isinstance(value, np.ndarray):
            try:
                datatype = datatype_of(value.dtype)
            except ValueError:
                datatype = str(value.dtype)
            shape, array = value.shape, value
        else:
            raise InferenceError(
                f'model input "{name}" takes a TensorValue or numpy array, got {type(value).__name__}'
            )
        if datatype != spec.datatype or array is None or datatype not in DATATYPES:
            raise InferenceError(
                f'model input "{name}" of servable "{self.version.name}" expects {spec.datatype} '
                f"{spec.shape_text()}, got {datatype} {shape_to_string(shape)}"
            )
        if not spec.accepts(shape):
            raise InferenceError(
                f'model input "{name}" of servable "{self.version.name}" expects shape {spec.shape_text()}, '
                f"got {shape_to_string(shape)}"
            )
        return np.ascontiguousarray(array, dtype=spec.dtype)


def _tensor_value(name: str, array: np.ndarray) -> TensorValue:
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return TensorValue(name, datatype_of(array.dtype), tuple(int(d) for d in array.shape), data)


def register_openvino_calculators(registry: Registry) -> None:
    """Register both calculators under OVMS's names in `registry`, and the preparer that binds their SESSION."""
    registry.register(SESSION_CALCULATOR)(OpenVINOModelServerSessionCalculator)
    registry.register(INFERENCE_CALCULATOR)(OpenVINOInferenceCalculator)
    registry.add_preparer(lambda config: bind_sessions(config, None)[0])
