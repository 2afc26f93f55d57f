"""KServe semantics of a model (not a graph): ModelReady, ModelMetadata and unary ModelInfer, as OVMS answers.

Each function takes the `ModelRepository` and the request message and returns
the response message, or raises `OvmsStatus` with OVMS's code and text, for
the servicer to turn into a gRPC status. They assume the name is a model
(`name in models`); an unknown name is MODEL_NAME_MISSING, which the
servicer should only report once graphs were looked up too.

Request validation follows OVMS's model path (`predict_request_validation_utils.cpp`):
number of inputs; raw/typed coherency; then per model input, sorted by name:
presence, dimensions > 0, precision, rank, batch size (dimension 0), shape,
content size (raw: bytes; typed: values). The response carries every output,
sorted by name, in `raw_output_contents`; requested `outputs` are ignored.
Departure: a BYTES input (OVMS's binary image path) is an INVALID_PRECISION
error here.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from ovms_notebook.codec.datatypes import TYPED_FIELDS, element_count, shape_to_string
from ovms_notebook.codec.tensors import check_request_coherency, typed_data
from ovms_notebook.models.repository import ModelRepository, ModelVersion, TensorSpec, parse_version
from ovms_notebook.models.tensors import TensorMetadata
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

__all__ = [
    "PLATFORM",
    "decode_inputs",
    "encode_outputs",
    "metadata_dict",
    "model_infer",
    "model_metadata",
    "model_ready",
    "validate_request",
]

PLATFORM = "OpenVINO"


def _lookup(models: ModelRepository, name: str, version_text: str, *, exact_zero: bool) -> ModelVersion:
    """The version a status RPC names: "" = default; OVMS's statuses otherwise (retired/failed ones included).

    ModelReady/ModelMetadata look a non-empty version up as given, so "0" is MODEL_VERSION_MISSING there.
    """
    model = models.get(name)
    if model is None:
        raise OvmsStatus(StatusCode.MODEL_NAME_MISSING)
    number = parse_version(version_text)
    if exact_zero and version_text and number == 0:
        raise OvmsStatus(StatusCode.MODEL_VERSION_MISSING)
    return model.version(number)


def model_ready(models: ModelRepository, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
    """ModelReady: `ready` is True when the version can serve (its file read by OpenVINO; nothing failed)."""
    version = _lookup(models, request.name, request.version, exact_zero=True)
    return pb.ModelReadyResponse(ready=version.ready())


class ModelMetadata(TypedDict):
    """KServe's `ModelMetadataResponse` as a dict."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


def metadata_dict(models: ModelRepository, name: str, version: str = "") -> ModelMetadata:
    """The ModelMetadata answer as a dict: name, versions (every available one), platform, inputs and
    outputs sorted by name with their KServe datatypes and shapes (-1 = dynamic)."""
    found = _lookup(models, name, version, exact_zero=True).require()
    inputs, outputs = found.inputs, found.outputs  # reads the file; a failure is NOT_LOADED_YET
    model = models.get(name)
    numbers = set(model.available_versions if model is not None else []) | {found.version}
    return {
        "name": found.name,
        "versions": [str(n) for n in sorted(numbers)],
        "platform": PLATFORM,
        "inputs": [spec.as_dict() for spec in sorted(inputs, key=lambda s: s.name)],
        "outputs": [spec.as_dict() for spec in sorted(outputs, key=lambda s: s.name)],
    }


def model_metadata(models: ModelRepository, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
    """ModelMetadata for a model: real input/output names, datatypes and shapes."""
    answer = metadata_dict(models, request.name, request.version)
    response = pb.ModelMetadataResponse(name=answer["name"], versions=answer["versions"], platform=PLATFORM)
    for item in answer["inputs"]:
        response.inputs.add(**item)
    for item in answer["outputs"]:
        response.outputs.add(**item)
    return response


def model_infer(models: ModelRepository, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    """Unary ModelInfer on a model: resolve the version, validate, run, answer with `id` echoed."""
    version = models.resolve(request.model_name, parse_version(request.model_version))
    inputs = decode_inputs(version, request)
    outputs = version.infer(inputs)
    response = encode_outputs(version, outputs)
    response.id = request.id
    return response


# ---------------------------------------------------------------- validation and conversion


def validate_request(version: ModelVersion, request: pb.ModelInferRequest) -> dict[str, int]:
    """OVMS's checks, in its order; returns each model input's index in `request.inputs`."""
    specs = sorted(version.inputs, key=lambda s: s.name)
    if not request.inputs or len(request.inputs) != len(specs):
        raise OvmsStatus(StatusCode.INVALID_NO_OF_INPUTS, f"Expected: {len(specs)}; Actual: {len(request.inputs)}")
    check_request_coherency(request)
    positions: dict[str, int] = {}
    for spec in specs:
        index = next((i for i, tensor in enumerate(request.inputs) if tensor.name == spec.name), None)
        if index is None:
            raise OvmsStatus(StatusCode.INVALID_MISSING_INPUT, f"Required input: {spec.name}")
        _check_tensor(spec, request.inputs[index], request.raw_input_contents[index] if request.raw_input_contents
                      else None)
        positions[spec.name] = index
    return positions


def _check_tensor(spec: TensorSpec, tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> None:
    name, shape = spec.name, [int(d) for d in tensor.shape]
    if any(d <= 0 for d in shape):
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE,
            f"Negative or zero dimension size is not acceptable: {shape_to_string(shape)}; input name: {name}",
        )
    if tensor.datatype != spec.datatype:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION,
            f"Expected: {spec.precision}; Actual: {tensor.datatype}; input name: {name}",
        )
    if not spec.dynamic_rank:
        expected = f"Expected: {spec.shape_text()}; Actual: {shape_to_string(shape)}; input name: {name}"
        if not shape or len(shape) != len(spec.bounds):
            raise OvmsStatus(StatusCode.INVALID_NO_OF_SHAPE_DIMENSIONS, expected)
        if not spec.dimension_matches(0, shape[0]):  # OVMS's default layout "N...": dimension 0 is the batch
            raise OvmsStatus(
                StatusCode.INVALID_BATCH_SIZE,
                f"Expected: {spec.dimension_text(0)}; Actual: {shape[0]}; input name: {name}",
            )
        if not spec.accepts(shape):
            raise OvmsStatus(StatusCode.INVALID_SHAPE, expected)
    count = element_count(shape)
    dtype = spec.dtype
    if raw is not None:
        expected_bytes = count * (dtype.itemsize if dtype is not None else 0)
        if len(raw) != expected_bytes:
            raise OvmsStatus(
                StatusCode.INVALID_CONTENT_SIZE,
                f"Expected: {expected_bytes} bytes; Actual: {len(raw)} bytes; input name: {name}",
            )
    else:
        field = TYPED_FIELDS.get(spec.datatype) if spec.datatype != "FP16" else None
        values = len(getattr(tensor.contents, field)) if field else 0
        if values != count:
            raise OvmsStatus(
                StatusCode.INVALID_VALUE_COUNT,
                f"Expected: {count} values; Actual: {values} values; input name: {name}",
            )


def decode_inputs(version: ModelVersion, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """The request's inputs as numpy arrays by model input name, after `validate_request`."""
    positions = validate_request(version, request)
    arrays: dict[str, np.ndarray] = {}
    for spec in version.inputs:
        index = positions[spec.name]
        tensor = request.inputs[index]
        data = request.raw_input_contents[index] if request.raw_input_contents else typed_data(tensor, spec.name)
        arrays[spec.name] = np.frombuffer(data, dtype=spec.dtype).reshape([int(d) for d in tensor.shape])
    return arrays


def encode_outputs(version: ModelVersion, outputs: dict[str, np.ndarray]) -> pb.ModelInferResponse:
    """The response OVMS builds: model name and version, every output sorted by name, raw little-endian bytes."""
    response = pb.ModelInferResponse(model_name=version.name, model_version=str(version.version))
    for spec in sorted(version.outputs, key=lambda s: s.name):
        array = outputs[spec.name]
        response.outputs.add(name=spec.name, datatype=spec.datatype, shape=list(array.shape))
        wire = spec.dtype
        response.raw_output_contents.append(
            np.ascontiguousarray(array, dtype=wire).tobytes() if wire is not None else array.tobytes()
        )
    return response
