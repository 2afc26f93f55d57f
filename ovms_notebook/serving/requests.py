"""From a KServe request to the packets of one graph step, checked before MediaPipe sees them.

OVMS's order (`src/kfs_frontend/kfs_graph_executor_impl.cpp`): timestamp, raw/contents coherency, then each input in
request order. Unlike OVMS, nothing is pushed until the whole request has
been converted, so a rejected request leaves the graph untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mediapipe as mp

from ovms_notebook.codec import check_request_coherency, decode_input
from ovms_notebook.engine.graphconfig import RESERVED_SIDE_PACKET, GraphSpec
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.wire import TIMESTAMP_PARAMETER
from ovms_notebook.status import OvmsStatus, StatusCode


@dataclass(frozen=True)
class Step:
    """One request converted: its packets by graph input name, at one timestamp."""

    timestamp: int
    manual: bool
    packets: dict[str, mp.Packet]


def decode_packets(spec: GraphSpec, request: pb.ModelInferRequest) -> dict[str, mp.Packet]:
    """Every input of the request as a packet for its graph input stream (OVMS's errors otherwise)."""
    check_request_coherency(request)
    use_raw = len(request.raw_input_contents) > 0
    packets: dict[str, mp.Packet] = {}
    for index, tensor in enumerate(request.inputs):
        stream = spec.inputs.get(tensor.name)
        if stream is None:
            raise OvmsStatus(StatusCode.INVALID_UNEXPECTED_INPUT, f"{tensor.name} is unexpected")
        if tensor.name in packets:
            raise OvmsStatus(
                StatusCode.INVALID_UNEXPECTED_INPUT,
                f"{tensor.name} is given more than once; each input stream takes one packet per timestamp",
            )
        raw = request.raw_input_contents[index] if use_raw else None
        packets[tensor.name] = decode_input(stream, tensor, raw)
    return packets


def check_increasing(last: Mapping[str, int], names: list[str], timestamp: int) -> None:
    """Reject a timestamp not greater than the last one on any of the input streams it feeds."""
    for name in names:
        previous = last.get(name)
        if previous is not None and timestamp <= previous:
            raise OvmsStatus(
                StatusCode.MEDIAPIPE_INVALID_TIMESTAMP,
                f'input stream "{name}" needs a timestamp greater than {previous}, the last one it received; '
                f"got {timestamp}",
            )


def side_packets(parameters: Mapping[str, pb.InferParameter]) -> dict[str, mp.Packet]:
    """Input side packets from a first request's parameters (OVMS's mediapipegraphexecutor.hpp)."""
    packets: dict[str, mp.Packet] = {}
    for name, parameter in parameters.items():
        if name == TIMESTAMP_PARAMETER:
            continue
        if name == RESERVED_SIDE_PACKET:
            raise OvmsStatus(
                StatusCode.MEDIAPIPE_GRAPH_INITIALIZATION_ERROR,
                "Incoming input side packet: py is special reserved name and cannot be used",
            )
        choice = parameter.WhichOneof("parameter_choice")
        if choice == "string_param":
            packets[name] = mp.packet_creator.create_string(parameter.string_param)
        elif choice == "int64_param":
            packets[name] = mp.packet_creator.create_int64(parameter.int64_param)
        elif choice == "bool_param":
            packets[name] = mp.packet_creator.create_bool(parameter.bool_param)
        else:
            raise OvmsStatus(
                StatusCode.NOT_IMPLEMENTED,
                "Handling parameters of other types than: bool, string, int64 is not supported",
            )
    return packets
