"""Request building and response reading shared by the stream client and the unary calls."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import Any

import grpc

from ovms_notebook.codec import decode_output, encode_input
from ovms_notebook.errors import ClientError
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS
from ovms_notebook.proto.wire import TIMESTAMP_PARAMETER

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1 << 30  # OVMS's gRPC limit


def build_request(
    graph: str,
    inputs: Mapping[str, object],
    timestamp: int | None,
    parameters: Mapping[str, bool | int | str] | None,
    datatypes: Mapping[str, str] | None,
    request_id: str = "",
) -> tuple[pb.ModelInferRequest, object]:
    """The request and its manual timestamp value (None when automatic)."""
    params = dict(parameters or {})
    if TIMESTAMP_PARAMETER in params:
        given = params.pop(TIMESTAMP_PARAMETER)
        if timestamp is not None and given != timestamp:
            raise ValueError(f"two timestamps: timestamp={timestamp} and parameters[{TIMESTAMP_PARAMETER}]={given}")
        timestamp = given  # type: ignore[assignment]
    if timestamp is not None:
        params[TIMESTAMP_PARAMETER] = timestamp
    request = pb.ModelInferRequest(model_name=graph, id=request_id)
    for name, value in inputs.items():
        tensor, raw = encode_input(name, value, (datatypes or {}).get(name))
        request.inputs.append(tensor)
        request.raw_input_contents.append(raw)
    for key, value in params.items():
        parameter = request.parameters[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, numbers.Integral):
            parameter.int64_param = int(value)
        elif isinstance(value, str):
            parameter.string_param = value
        else:
            raise TypeError(f"parameter {key!r} must be bool, int or str (what OVMS takes); got {type(value).__name__}")
    manual = params.get(TIMESTAMP_PARAMETER)
    if isinstance(manual, numbers.Integral) and not isinstance(manual, bool):
        manual = int(manual)
    return request, manual


def decode_outputs(response: pb.ModelInferResponse, *, strict: bool) -> dict[str, object]:
    """{output name: decoded value}; with strict=False a value that cannot be decoded is its ValueError."""
    values: dict[str, object] = {}
    for index, tensor in enumerate(response.outputs):
        raw = response.raw_output_contents[index] if index < len(response.raw_output_contents) else b""
        try:
            values[tensor.name] = decode_output(tensor, raw)
        except ValueError as error:
            if strict:
                raise ClientError(f"cannot decode output {tensor.name!r}: {error}") from error
            log.warning("cannot decode output %r: %s", tensor.name, error)
            values[tensor.name] = error
    return values


def response_timestamp(response: pb.ModelInferResponse) -> int | None:
    if TIMESTAMP_PARAMETER not in response.parameters:
        return None
    parameter = response.parameters[TIMESTAMP_PARAMETER]
    return parameter.int64_param if parameter.WhichOneof("parameter_choice") == "int64_param" else None


def open_channel(address: str, credentials: grpc.ChannelCredentials | None, max_message_bytes: int) -> grpc.Channel:
    """A channel to `address`: secure with `credentials`, plain without."""
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if credentials is not None:
        # ovms_notebook.tls credentials may carry a server-name override for the certificate check
        options.extend(getattr(credentials, "channel_options", ()))
        return grpc.secure_channel(address, credentials, options=options)
    return grpc.insecure_channel(address, options=options)

def call_unary(channel: grpc.Channel, name: str, message: object, timeout: float | None) -> Any:
    """Call one unary RPC; a failure becomes ClientError(details, code name)."""
    method = METHODS[name]
    call = channel.unary_unary(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    try:
        return call(message, timeout=timeout)
    except grpc.RpcError as error:
        raise ClientError(error.details() or "", error.code().name) from None
