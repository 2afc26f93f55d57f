"""`PROTO:` graph inputs: a BYTES tensor holding one serialized MediaPipe message (landmarks, detections, rects...).

The tag names no type: MediaPipe's `TAG:index:name` grammar leaves no room for
one, and the graph already knows it. When a graph loads, `resolve_proto_inputs`
asks MediaPipe's own graph validation (`ValidatedGraphConfig`) which type the
nodes reading each `PROTO:` stream require (`::mediapipe::NormalizedLandmarkList`)
and keeps the message's full name on the stream's spec. A request's tensor is
then parsed with that message class before any packet is made: the wheel's
packet creator would accept any bytes, and a malformed landmark list would only
fail deep inside a calculator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import mediapipe as mp
from google.protobuf import message as pb_message
from mediapipe.python._framework_bindings import _packet_creator

from ovms_notebook.codec.datatypes import element_count, shape_to_string
from ovms_notebook.codec.protos import message_class, message_name
from ovms_notebook.codec.streams import StreamKind, StreamSpec
from ovms_notebook.codec.tensors import InputTensor, check_dims, read_array
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.tags import split_tag_index_name
from ovms_notebook.status import OvmsStatus, StatusCode


def stream_types(config: object) -> dict[str, str]:
    """C++ type MediaPipe requires on each graph-level input and output stream, by stream name.

    Streams whose type the graph leaves open (they reach only type-agnostic
    nodes such as PassThroughCalculator) are missing. `config` must be a graph
    MediaPipe accepts (every calculator registered): validation goes through
    native code.
    """
    from mediapipe.python._framework_bindings import validated_graph_config

    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(graph_config=config)
    types: dict[str, str] = {}
    for text in [*config.input_stream, *config.output_stream]:  # type: ignore[attr-defined]
        name = split_tag_index_name(text)[2]
        try:
            types[name] = validated.registered_stream_type_name(name)
        except RuntimeError:  # "Unable to find the type for stream ...": left open by the graph
            continue
    return types


def side_packet_types(config: object) -> dict[str, str]:
    """C++ type MediaPipe requires on each graph input side packet, by name (open ones missing)."""
    from mediapipe.python._framework_bindings import validated_graph_config

    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(graph_config=config)
    types: dict[str, str] = {}
    for text in config.input_side_packet:  # type: ignore[attr-defined]
        name = split_tag_index_name(text)[2]
        try:
            types[name] = validated.registered_side_packet_type_name(name)
        except RuntimeError:
            continue
    return types


def resolve_proto_inputs(inputs: Mapping[str, StreamSpec], native_config: object | None,
                         python_messages: Mapping[str, str] | None = None) -> dict[str, StreamSpec]:
    """`inputs` with each `PROTO:` stream's message name filled in from the graph's required types.

    `native_config` is the part of the graph MediaPipe runs (None when every
    node runs on the Python side); `python_messages` the message full names
    Python-side nodes declare for the streams they read (stream name -> name),
    used where no native node fixes the type. GraphLoadError names the stream and what
    the graph requires when no single message type can be read: the stream
    reaches only type-agnostic or Python-side nodes, or its type is not a
    message (an ImageFrame wants `IMAGE:`), or a vector of messages (which the
    wheel cannot create).
    """
    resolved = dict(inputs)
    wanted = [spec for spec in inputs.values() if spec.kind is StreamKind.PROTO]
    if not wanted:
        return resolved
    types = stream_types(native_config) if native_config is not None else {}
    for spec in wanted:
        shown = f"PROTO:{spec.index}:{spec.name}" if spec.index is not None else f"PROTO:{spec.name}"
        cpp = types.get(spec.name)
        if cpp is None and python_messages and spec.name in python_messages:
            resolved[spec.name] = dataclasses.replace(spec, message=python_messages[spec.name])
            continue
        if cpp is None:
            raise GraphLoadError(
                f"input_stream {shown!r}: the graph does not fix the message type of {spec.name!r} (it reaches only "
                "type-agnostic or Python-side nodes); PROTO: inputs need a native node that requires one message "
                "type, e.g. LandmarksToDetectionCalculator's NORM_LANDMARKS, or a Python calculator naming it in "
                "its input_messages"
            )
        found = message_name(cpp)
        if found is None:
            hint = (
                f'; an image input is tagged IMAGE: write input_stream: "IMAGE:{spec.name}"' if "Image" in cpp else ""
            )
            raise GraphLoadError(
                f"input_stream {shown!r}: the graph requires {cpp} there, which is not a protobuf message "
                f"the mediapipe wheel knows; PROTO: carries one serialized message{hint}"
            )
        full_name, repeated = found
        if repeated:
            raise GraphLoadError(
                f"input_stream {shown!r}: the graph requires {cpp}, a vector of messages; mediapipe 0.10.21 cannot "
                f"create such a packet from Python. Feed one {full_name} (a node like "
                "ConcatenateDetectionVectorCalculator can make the vector inside the graph)"
            )
        resolved[spec.name] = dataclasses.replace(spec, message=full_name)
    return resolved


def decode_proto(spec: StreamSpec, tensor: InputTensor, raw: bytes | None) -> mp.Packet:
    """The packet of a `PROTO:` input: one BYTES element parsed as the stream's message, then handed over.

    OvmsStatus (OVMS's status names, our texts) when the datatype is not BYTES,
    the tensor holds other than one element, or the bytes do not parse as the
    message (or miss its required fields).
    """
    name, datatype, message = spec.name, tensor.datatype, spec.message
    if not message:
        raise OvmsStatus(
            StatusCode.NOT_IMPLEMENTED,
            f"input stream {name} is tagged PROTO but its message type was not read from the graph",
        )
    if datatype != "BYTES":
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION,
            f"Expected BYTES (one serialized {message}) for input stream tagged {spec.tag}; Actual: {datatype}; "
            f"input name: {name}",
        )
    shape = check_dims(tensor, name)
    if element_count(shape) != 1:
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE,
            f"Expected 1 BYTES element (one serialized {message}) for input stream tagged {spec.tag}; "
            f"Actual shape: {shape_to_string(shape)}; input name: {name}",
        )
    data = bytes(read_array(name, tensor, raw, shape).reshape(-1)[0])
    cls = message_class(message)
    if cls is None:  # resolve_proto_inputs found it in the pool; only a changed pool gets here
        raise OvmsStatus(StatusCode.NOT_IMPLEMENTED, f"message type {message} is not known to the mediapipe wheel")
    parsed = cls()
    try:
        parsed.ParseFromString(data)
    except pb_message.DecodeError as error:
        raise OvmsStatus(
            StatusCode.INVALID_INPUT_FORMAT,
            f"Expected a serialized {message} for input stream tagged {spec.tag}; Actual: {len(data)} bytes that "
            f"do not parse ({error}); input name: {name}",
        ) from None
    missing = parsed.FindInitializationErrors()
    if missing:
        raise OvmsStatus(
            StatusCode.INVALID_INPUT_FORMAT,
            f"Expected a complete {message} for input stream tagged {spec.tag}; Actual: required fields missing: "
            f"{', '.join(missing)}; input name: {name}",
        )
    return _packet_creator._create_proto(message, data)
