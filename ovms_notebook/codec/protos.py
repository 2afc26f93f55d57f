"""Protobuf packets (detections, landmarks, rects, ...) to and from BYTES tensors.

A proto output travels as a BYTES tensor whose elements are serialized
messages: shape `[1]` for one message, `[n]` for a `std::vector` of them. The
output tensor's parameters say what they are: `proto_type` (the full proto
name, e.g. `mediapipe.Detection`) and `proto_repeated` (True for vectors), so a
client can parse them back without knowing the graph.

Only packets whose C++ type names a message in the protobuf default pool are
treated as protos: the wheel's getters **abort the process** on a packet that
is not a proto, and a C++ class and a proto message cannot share a qualified
name, so a pool hit is proof. The wheel's format modules are imported here so
their messages are in the pool.
"""

from __future__ import annotations

import importlib
import logging
import re
from functools import cache

from google.protobuf import descriptor_pool, message, message_factory

logger = logging.getLogger(__name__)

#: Output tensor parameter holding the full proto name of the serialized messages.
PROTO_TYPE = "proto_type"
#: Output tensor parameter that is True when the packet was a std::vector of messages.
PROTO_REPEATED = "proto_repeated"

_FORMAT_MODULES = (
    "mediapipe.framework.formats.affine_transform_data_pb2",
    "mediapipe.framework.formats.body_rig_pb2",
    "mediapipe.framework.formats.classification_pb2",
    "mediapipe.framework.formats.detection_pb2",
    "mediapipe.framework.formats.image_file_properties_pb2",
    "mediapipe.framework.formats.landmark_pb2",
    "mediapipe.framework.formats.location_data_pb2",
    "mediapipe.framework.formats.matrix_data_pb2",
    "mediapipe.framework.formats.rect_pb2",
    "mediapipe.framework.formats.time_series_header_pb2",
    "mediapipe.framework.formats.annotation.locus_pb2",
    "mediapipe.framework.formats.annotation.rasterization_pb2",
    "mediapipe.framework.formats.motion.optical_flow_field_data_pb2",
    "mediapipe.framework.formats.object_detection.anchor_pb2",
    "mediapipe.util.color_pb2",
    "mediapipe.util.label_map_pb2",
    "mediapipe.util.render_data_pb2",
    "mediapipe.modules.face_geometry.protos.face_geometry_pb2",
    "mediapipe.modules.face_geometry.protos.mesh_3d_pb2",
    "mediapipe.tasks.cc.components.containers.proto.classifications_pb2",
    "mediapipe.tasks.cc.components.containers.proto.embeddings_pb2",
    "mediapipe.tasks.cc.components.containers.proto.landmarks_detection_result_pb2",
    "mediapipe.tasks.cc.vision.face_geometry.proto.face_geometry_pb2",
)
_VECTOR = re.compile(r"(?:::)?std::vector<\s*(.+?)\s*(?:,\s*(?:::)?std::allocator<.*>\s*)?>")


@cache
def import_format_modules() -> None:
    """Import the wheel's proto format modules once, so their messages are in the default pool."""
    for module in _FORMAT_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # a module a future wheel drops: its messages simply stay unknown
            logger.debug("proto module %s is not in this mediapipe wheel", module)


def message_name(cpp_type: str) -> tuple[str, bool] | None:
    """(full proto name, is a vector) for a C++ type naming a known message, e.g.
    `::std::vector<::mediapipe::Detection>` -> ("mediapipe.Detection", True); None for non-protos."""
    import_format_modules()
    repeated = False
    match = _VECTOR.fullmatch(cpp_type.strip())
    if match:
        cpp_type, repeated = match[1], True
    name = _full_name(cpp_type)
    return (name, repeated) if name is not None else None


def message_class(full_name: str) -> type[message.Message] | None:
    """The Python class of a message in the default pool, or None when the pool lacks it."""
    import_format_modules()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return None
    return message_factory.GetMessageClass(descriptor)


def _full_name(cpp_type: str) -> str | None:
    """`::a::b::Foo` -> `a.b.Foo` when the pool has it; C++ nests messages as `Outer_Inner`, so those
    underscores are tried as nesting dots too."""
    parts = [p for p in cpp_type.strip().split("::") if p]
    if not parts or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in parts):
        return None
    package, leaf = ".".join(parts[:-1]), parts[-1]
    pieces = leaf.split("_")
    candidates = [leaf] + ["_".join(pieces[:i]) + "." + ".".join(pieces[i:]) for i in range(len(pieces) - 1, 0, -1)]
    pool = descriptor_pool.Default()
    for candidate in candidates:
        full = f"{package}.{candidate}" if package else candidate
        try:
            pool.FindMessageTypeByName(full)
        except KeyError:
            continue
        return full
    return None
