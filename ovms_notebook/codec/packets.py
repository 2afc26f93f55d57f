"""KServe input tensor -> MediaPipe packet (by the stream's kind), and packet -> output tensor (by
the packet's own C++ type).

Everything is validated before any packet creator runs: native misuse in
mediapipe 0.10.21 aborts the process instead of raising. Failures are
`OvmsStatus` with OVMS's texts; anything unforeseen is wrapped the way OVMS
wraps an exception from a deserializer or serializer (UNKNOWN_ERROR).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import mediapipe as mp
import numpy as np
from mediapipe.python._framework_bindings import _packet_getter

from ovms_notebook.codec import images, protos
from ovms_notebook.codec.blob import TensorValue, pack_tensor, unpack_tensor
from ovms_notebook.codec.datatypes import serialize_bytes
from ovms_notebook.codec.proto_inputs import decode_proto
from ovms_notebook.codec.streams import StreamKind, StreamSpec
from ovms_notebook.codec.tensors import (
    InputTensor,
    read_mp_tensor,
    read_ov_tensor,
    read_py_tensor,
    read_tf_tensor,
)
from ovms_notebook.codec.values import decode_value
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

OutputTensor = pb.ModelInferResponse.InferOutputTensor

_TENSOR_READERS: dict[StreamKind, tuple[Callable[[str, InputTensor, bytes | None], TensorValue], str]] = {
    StreamKind.UNKNOWN: (read_ov_tensor, "OpenVINO tensor"),
    StreamKind.OVTENSOR: (read_ov_tensor, "OpenVINO tensor"),
    StreamKind.TENSOR: (read_mp_tensor, "Mediapipe tensor"),
    StreamKind.TFTENSOR: (read_tf_tensor, "Tensorflow tensor"),
    StreamKind.OVMS_PY_TENSOR: (read_py_tensor, "Ovms Python tensor"),
}
_NOT_IMPLEMENTED = {
    StreamKind.REQUEST: "REQUEST streams pass the whole ModelInferRequest to OVMS's C++ KServe calculators, "
    "which this server does not have",
    StreamKind.RESPONSE: "RESPONSE streams take a whole ModelInferResponse from OVMS's C++ KServe calculators, "
    "which this server does not have",
    StreamKind.TFLITE_TENSOR: "TfLiteTensor is not supported at graph inputs or outputs (OVMS rejects it too)",
}


def decode_input(spec: StreamSpec, tensor: InputTensor, raw: bytes | None) -> mp.Packet:
    """The packet (without timestamp) for one request input on the graph input stream `spec`.

    `raw` is the input's `raw_input_contents` entry when the request uses raw
    contents, else None (typed `contents`). OvmsStatus with OVMS's text on any
    invalid tensor; no invalid value ever reaches a packet creator.
    """
    kind = spec.kind
    if raw is not None and tensor.datatype != "BYTES":
        # A stream usually repeats one datatype and shape: once a tensor of that form passed every check,
        # the same form with the same byte count passes them again, so reuse its blob header.
        key = (kind, spec.name, tensor.datatype, tuple(tensor.shape))
        known = _KNOWN_HEADERS.get(key)
        if known is not None and known[0] == len(raw):
            return mp.packet_creator.create_string(known[1] + raw)
    if kind in _NOT_IMPLEMENTED:
        raise OvmsStatus(StatusCode.NOT_IMPLEMENTED, _NOT_IMPLEMENTED[kind])
    try:
        if kind in _TENSOR_READERS:
            value = _TENSOR_READERS[kind][0](spec.name, tensor, raw)
            blob = pack_tensor(value.name, value.datatype, value.shape, value.data, py_tensor=value.py_tensor)
            if raw is not None and tensor.datatype != "BYTES":
                _remember_header(key, len(raw), blob[: len(blob) - len(value.data)])
            return mp.packet_creator.create_string(blob)
        if kind in (StreamKind.IMAGE, StreamKind.MP_IMAGE):
            return images.decode_image(spec.name, tensor, raw, mp_image=kind is StreamKind.MP_IMAGE)
        if kind is StreamKind.PROTO:
            return decode_proto(spec, tensor, raw)
        return decode_value(spec, tensor, raw)
    except OvmsStatus:
        raise
    except Exception as error:  # OVMS's HANDLE_DESERIALIZATION_EXCEPTION
        raise OvmsStatus(
            StatusCode.UNKNOWN_ERROR,
            f"Exception:{error}; caught during {_label(kind)} deserialization from KServe request tensor",
        ) from error


#: (kind, stream, datatype, shape) -> (raw byte count, blob header) of raw tensors that passed validation.
_KNOWN_HEADERS: dict[tuple[StreamKind, str, str, tuple[int, ...]], tuple[int, bytes]] = {}
_KNOWN_HEADERS_MAX = 1024


def _remember_header(key: tuple[StreamKind, str, str, tuple[int, ...]], size: int, header: bytes) -> None:
    """Keep a validated tensor form's header; bounded (starts afresh when full: forms repeat per stream)."""
    if len(_KNOWN_HEADERS) >= _KNOWN_HEADERS_MAX:
        _KNOWN_HEADERS.clear()
    _KNOWN_HEADERS[key] = (size, header)


def _label(kind: StreamKind) -> str:
    """What OVMS calls the value it failed to build for `kind`, in its deserialization error text."""
    if kind in _TENSOR_READERS:
        return _TENSOR_READERS[kind][1]
    return "Mediapipe ImageFrame" if kind is StreamKind.IMAGE else f"{kind.value} packet"


# ---------------------------------------------------------------- output side

_get = mp.packet_getter
_CPP_TYPE = re.compile(r"C\+\+ type: (.*)>\s*$", re.DOTALL)
# C++ type -> (getter, numpy dtype, KServe datatype) of packets holding one number.
_SCALARS: dict[str, tuple[Callable[[mp.Packet], object], np.dtype, str]] = {
    "bool": (_get.get_bool, np.dtype("<?"), "BOOL"),
    "int": (_get.get_int, np.dtype("<i4"), "INT32"),
    "signed char": (_get.get_int, np.dtype("<i1"), "INT8"),
    "short": (_get.get_int, np.dtype("<i2"), "INT16"),
    "int64_t": (_get.get_int, np.dtype("<i8"), "INT64"),
    "long": (_get.get_int, np.dtype("<i8"), "INT64"),
    "long long": (_get.get_int, np.dtype("<i8"), "INT64"),
    "unsigned char": (_get.get_uint, np.dtype("<u1"), "UINT8"),
    "unsigned short": (_get.get_uint, np.dtype("<u2"), "UINT16"),
    "unsigned int": (_get.get_uint, np.dtype("<u4"), "UINT32"),
    "uint64_t": (_get.get_uint, np.dtype("<u8"), "UINT64"),
    "unsigned long": (_get.get_uint, np.dtype("<u8"), "UINT64"),
    "unsigned long long": (_get.get_uint, np.dtype("<u8"), "UINT64"),
    "float": (_get.get_float, np.dtype("<f4"), "FP32"),
    "double": (_get.get_float, np.dtype("<f8"), "FP64"),
}
_VECTORS: dict[str, tuple[Callable[[mp.Packet], list], np.dtype, str]] = {
    "::std::vector<float>": (_get.get_float_list, np.dtype("<f4"), "FP32"),
    "::std::vector<int>": (_get.get_int_list, np.dtype("<i4"), "INT32"),
    "::std::vector<bool>": (_get.get_bool_list, np.dtype("<?"), "BOOL"),
}
_STRINGS = {"string", "std::string", "::std::string"}
_STRING_VECTORS = {"::std::vector<std::string>", "::std::vector<::std::string>", "std::vector<std::string>"}


def cpp_type(packet: mp.Packet) -> str:
    """The C++ type a packet holds, as its repr names it (`::std::vector<float>`); ValueError if empty."""
    if packet.is_empty():
        raise ValueError("an empty packet has no value to serialize")
    match = _CPP_TYPE.search(repr(packet))
    if match is None:
        raise ValueError(f"cannot read the C++ type from {packet!r}")
    return match[1].strip()


def encode_output(name: str, packet: mp.Packet) -> tuple[OutputTensor, bytes]:
    """One output packet as OVMS serializes it: an output tensor named after the stream and its raw bytes.

    The packet's C++ type picks the conversion (numbers, vectors, strings,
    Matrix, ImageFrame, Image, protos, tensor blobs). ValueError for an empty
    packet; OvmsStatus(UNKNOWN_ERROR, "Failed to get packet<name> with
    exception: ...") (OVMS's text, sic) for a type that cannot be converted.
    """
    type_name = cpp_type(packet)
    try:
        return _encode(name, type_name, packet)
    except OvmsStatus:
        raise
    except Exception as error:  # OVMS's HANDLE_PACKET_RECEIVAL_EXCEPTIONS
        raise OvmsStatus(StatusCode.UNKNOWN_ERROR, f"Failed to get packet{name} with exception: {error}") from error


def _encode(name: str, type_name: str, packet: mp.Packet) -> tuple[OutputTensor, bytes]:
    if type_name in _SCALARS:
        getter, dtype, datatype = _SCALARS[type_name]
        return _tensor(name, datatype, [1]), np.array([getter(packet)], dtype=dtype).tobytes()
    if type_name in _VECTORS:
        getter, dtype, datatype = _VECTORS[type_name]
        values = np.array(getter(packet), dtype=dtype)
        return _tensor(name, datatype, [values.size]), values.tobytes()
    if type_name in _STRINGS:
        blob = _get.get_bytes(packet)
        value = unpack_tensor(blob)
        if value is None:
            return _tensor(name, "BYTES", [1]), serialize_bytes([blob])
        # OVMS names a pyovms tensor output after the tensor, every other output after the stream.
        return _tensor(value.name if value.py_tensor else name, value.datatype, list(value.shape)), value.data
    if type_name in _STRING_VECTORS:
        items = [s.encode("utf-8") for s in _get.get_str_list(packet)]
        return _tensor(name, "BYTES", [len(items)]), serialize_bytes(items)
    if type_name.startswith("Eigen::Matrix<float"):
        matrix = np.asarray(_get.get_matrix(packet), dtype="<f4")
        return _tensor(name, "FP32", list(matrix.shape)), np.ascontiguousarray(matrix).tobytes()
    if type_name in ("::mediapipe::ImageFrame", "mediapipe::ImageFrame"):
        return images.encode_image_frame(name, packet)
    if type_name in ("::mediapipe::Image", "mediapipe::Image"):
        return images.encode_image(name, packet)
    proto = protos.message_name(type_name)
    if proto is not None:
        return _encode_proto(name, packet, *proto)
    raise ValueError(f"no KServe conversion for packet type {type_name}")


def _encode_proto(name: str, packet: mp.Packet, full_name: str, repeated: bool) -> tuple[OutputTensor, bytes]:
    """Serialized messages as a BYTES tensor, with the proto name and repetition in its parameters.

    The wheel's serialized-bytes getters (what `get_proto`/`get_proto_list` call before parsing) are
    used directly: no parse/serialize round trip, and a message missing proto2 required fields still
    travels instead of failing in Python's parser. `message_name` has proved it is a proto first.
    """
    if repeated:
        items = list(_packet_getter._get_serialized_proto_list(packet))
    else:
        items = [_packet_getter._get_serialized_proto(packet)]
    tensor = _tensor(name, "BYTES", [len(items)])
    tensor.parameters[protos.PROTO_TYPE].string_param = full_name
    tensor.parameters[protos.PROTO_REPEATED].bool_param = repeated
    return tensor, serialize_bytes(items)


def _tensor(name: str, datatype: str, shape: list[int]) -> OutputTensor:
    return OutputTensor(name=name, datatype=datatype, shape=shape)
