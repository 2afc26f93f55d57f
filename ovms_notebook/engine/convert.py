"""Values at the edge between native MediaPipe packets and Python-side nodes.

A Python node sees plain Python: tensors as `TensorValue`, numbers, strings,
lists, numpy images, protobuf messages. What it emits becomes a packet again
when it feeds a native node or leaves the graph. Packets of a type with no
Python form are passed through as `mp.Packet`, so a Python node can forward
them untouched.
"""

from __future__ import annotations

import functools

import mediapipe as mp
import numpy as np
from google.protobuf import message as protobuf_message

from ovms_notebook.codec import TensorValue, cpp_type, pack_tensor, unpack_tensor
from ovms_notebook.codec.datatypes import datatype_of, serialize_bytes
from ovms_notebook.codec.protos import message_name
from ovms_notebook.engine.python.api import EMPTY
from ovms_notebook.framework import timestamps as ts

_GETTERS = {
    "int": mp.packet_getter.get_int,
    "int64_t": mp.packet_getter.get_int,
    "long": mp.packet_getter.get_int,
    "signed char": mp.packet_getter.get_int,
    "short": mp.packet_getter.get_int,
    "unsigned char": mp.packet_getter.get_uint,
    "unsigned short": mp.packet_getter.get_uint,
    "unsigned int": mp.packet_getter.get_uint,
    "uint64_t": mp.packet_getter.get_uint,
    "unsigned long": mp.packet_getter.get_uint,
    "float": mp.packet_getter.get_float,
    "double": mp.packet_getter.get_float,
    "bool": mp.packet_getter.get_bool,
    "::std::vector<float>": mp.packet_getter.get_float_list,
    "::std::vector<int>": mp.packet_getter.get_int_list,
    "::std::vector<bool>": mp.packet_getter.get_bool_list,
    "::std::vector<std::string>": mp.packet_getter.get_str_list,
}


def packet_to_value(packet: mp.Packet) -> object:
    """The Python value a Python-side node receives for `packet` (EMPTY for an empty packet)."""
    if packet.is_empty():
        return EMPTY
    type_name = cpp_type(packet)
    if type_name in ("string", "std::string", "::std::string"):
        blob = mp.packet_getter.get_bytes(packet)
        return unpack_tensor(blob) or blob
    getter = _GETTERS.get(type_name)
    if getter is not None:
        return getter(packet)
    if type_name.startswith("Eigen::Matrix"):
        return mp.packet_getter.get_matrix(packet)
    if type_name in _IMAGE_SIZES:
        return image_size(packet)
    if type_name == "::mediapipe::ImageFrame":
        return np.array(mp.packet_getter.get_image_frame(packet).numpy_view())
    named = message_name(type_name)  # only proto packets may reach the proto getters (others abort)
    if named is not None:
        _full_name, repeated = named
        return mp.packet_getter.get_proto_list(packet) if repeated else mp.packet_getter.get_proto(packet)
    return packet


_IMAGE_SIZES = {"std::pair<int, int>", "::std::pair<int, int>", "std::pair<int,int>", "::std::pair<int,int>"}
_PIXEL_BOX = """
input_stream: "DETECTION:box" input_stream: "IMAGE_SIZE:size" output_stream: "PIXEL_DETECTION:pixels"
node { calculator: "DetectionTransformationCalculator" input_stream: "DETECTION:box"
       input_stream: "IMAGE_SIZE:size" output_stream: "PIXEL_DETECTION:pixels" }
"""


@functools.cache
def _pixel_box() -> tuple[object, mp.Packet]:
    """The one-node graph's config and the relative box (0, 0, 1, 1) it scales, parsed and built once."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.framework.formats import detection_pb2

    box = detection_pb2.Detection()
    box.location_data.format = box.location_data.RELATIVE_BOUNDING_BOX
    box.location_data.relative_bounding_box.width = box.location_data.relative_bounding_box.height = 1.0
    config = text_format.Parse(_PIXEL_BOX, calculator_pb2.CalculatorGraphConfig())
    return config, mp.packet_creator.create_proto(box)


def image_size(packet: mp.Packet) -> tuple[int, int]:
    """(width, height) of a `std::pair<int, int>` packet (ImagePropertiesCalculator's SIZE, IMAGE_SIZE inputs).

    The wheel has no getter for a pair; its own DetectionTransformationCalculator
    scales the relative box (0, 0, 1, 1) to pixels by that pair, which reads it
    back exactly. A one-node graph per call, about 0.3 ms.
    """
    config, box = _pixel_box()
    graph = mp.CalculatorGraph(graph_config=config)
    found: list[object] = []
    graph.observe_output_stream("pixels", lambda _name, out: found.append(mp.packet_getter.get_proto(out)))
    graph.start_run()
    graph.add_packet_to_input_stream("box", box.at(0))
    graph.add_packet_to_input_stream("size", packet.at(0))
    graph.close()
    pixels = found[0].location_data.bounding_box  # type: ignore[attr-defined]
    return int(pixels.width), int(pixels.height)


def value_to_packet(value: object, timestamp: int | None = None) -> mp.Packet:
    """A packet for what a Python node emitted, stamped with `timestamp` when given."""
    packet = _packet(value)
    return packet if timestamp is None else packet.at(native_timestamp(timestamp))


def _packet(value: object) -> mp.Packet:
    creator = mp.packet_creator
    if isinstance(value, mp.Packet):
        return value
    if isinstance(value, TensorValue):
        return creator.create_string(
            pack_tensor(value.name, value.datatype, value.shape, value.data, py_tensor=value.py_tensor)
        )
    if hasattr(value, "to_value") and callable(value.to_value):  # pyovms.Tensor
        return _packet(value.to_value())
    if isinstance(value, np.ndarray):
        datatype = datatype_of(value.dtype)
        data = serialize_bytes(value.reshape(-1).tolist()) if datatype == "BYTES" else value.tobytes()
        return creator.create_string(pack_tensor("", datatype, value.shape, data))
    if isinstance(value, bool):
        return creator.create_bool(value)
    if isinstance(value, int):
        return creator.create_int(value) if -(2**31) <= value < 2**31 else creator.create_int64(value)
    if isinstance(value, float):
        return creator.create_float(value)
    if isinstance(value, str):
        return creator.create_string(value.encode("utf-8"))
    if isinstance(value, bytes):
        return creator.create_string(value)
    if isinstance(value, protobuf_message.Message):
        return creator.create_proto(value)
    if isinstance(value, mp.ImageFrame):
        return creator.create_image_frame(value)
    if isinstance(value, list | tuple) and value:
        kinds = {type(item) for item in value}
        if kinds <= {bool}:
            return creator.create_bool_vector(list(value))
        if kinds <= {int}:
            return creator.create_int_vector(list(value))
        if kinds <= {int, float}:
            return creator.create_float_vector([float(item) for item in value])
        if kinds <= {str}:
            return creator.create_string_vector(list(value))
        if all(issubclass(kind, protobuf_message.Message) for kind in kinds):
            from ovms_notebook.engine.proto_vectors import proto_vector_packet

            return proto_vector_packet(list(value))
    raise TypeError(
        f"a Python node emitted {type(value).__name__}, which has no MediaPipe packet form here; emit a numpy "
        "array, TensorValue, number, str/bytes, list of numbers, strings or protobuf messages (detections, "
        "rects, landmark lists), protobuf message, or an mp.Packet"
    )


_SPECIAL = {ts.MIN: "MIN", ts.MAX: "MAX", ts.PRESTREAM: "PRESTREAM", ts.POSTSTREAM: "POSTSTREAM"}


def native_timestamp(value: int) -> int | mp.Timestamp:
    """`value` as the bindings accept it: special stamps as Timestamp objects (ints would abort)."""
    name = _SPECIAL.get(value)
    if name is not None:
        return getattr(mp.Timestamp, name)
    if not ts.is_range_value(value):
        raise ValueError(f"{ts.debug_string(value)} can't be the timestamp of a packet in a stream")
    return value
