"""Graph-level stream specs (`TAG:index:name`) and the packet kind their tag selects.

OVMS picks a stream's packet type by a *prefix* match of its tag
(`getStreamNamePair`, OVMS's `src/mediapipe_internal/mediapipe_utils.cpp`): `TENSOR1`, `IMAGE_FRAME` and
`OVMS_PY_TENSOR_IMAGE` all match their prefix, anything else is treated like
an OpenVINO tensor. Our extension kinds name stock MediaPipe packet types and
are chosen by an *exact* tag match, checked first; none of them starts with an
OVMS prefix, so OVMS's own tags keep their meaning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ovms_notebook.framework.tags import split_tag_index_name


class StreamKind(enum.Enum):
    """What a graph-level stream carries, as chosen by its tag."""

    # OVMS's kinds (prefix match).
    REQUEST = "REQUEST"
    RESPONSE = "RESPONSE"
    TFTENSOR = "TFTENSOR"
    TFLITE_TENSOR = "TFLITE_TENSOR"
    OVTENSOR = "OVTENSOR"
    OVMS_PY_TENSOR = "OVMS_PY_TENSOR"
    TENSOR = "TENSOR"
    IMAGE = "IMAGE"
    UNKNOWN = "UNKNOWN"  # no tag or an unrecognised one: OVTENSOR semantics
    # Our extension kinds (exact match): stock MediaPipe packet types.
    BOOL = "BOOL"
    INT = "INT"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLS = "BOOLS"
    INTS = "INTS"
    FLOATS = "FLOATS"
    STRINGS = "STRINGS"
    MATRIX = "MATRIX"
    MP_IMAGE = "MP_IMAGE"
    PROTO = "PROTO"  # a serialized MediaPipe proto; the message type is read from the graph


#: OVMS's tag prefixes, in OVMS's order (no prefix is a prefix of another, so order is moot).
OVMS_PREFIXES: tuple[tuple[str, StreamKind], ...] = (
    ("REQUEST", StreamKind.REQUEST),
    ("RESPONSE", StreamKind.RESPONSE),
    ("TFTENSOR", StreamKind.TFTENSOR),
    ("TFLITE_TENSOR", StreamKind.TFLITE_TENSOR),
    ("OVTENSOR", StreamKind.OVTENSOR),
    ("OVMS_PY_TENSOR", StreamKind.OVMS_PY_TENSOR),
    ("TENSOR", StreamKind.TENSOR),
    ("IMAGE", StreamKind.IMAGE),
)

#: Extension kinds, selected only by their exact tag.
EXTENSION_KINDS: frozenset[StreamKind] = frozenset(
    kind for kind in StreamKind if kind.value not in {p for p, _ in OVMS_PREFIXES} and kind is not StreamKind.UNKNOWN
)
#: Kinds carried as a tensor blob in a std::string packet (see `codec.blob`).
TENSOR_KINDS: frozenset[StreamKind] = frozenset(
    {StreamKind.UNKNOWN, StreamKind.OVTENSOR, StreamKind.TENSOR, StreamKind.TFTENSOR, StreamKind.OVMS_PY_TENSOR}
)
#: Kinds whose inputs this codec cannot build (OVMS's C++-only packet types).
UNSUPPORTED_KINDS: frozenset[StreamKind] = frozenset(
    {StreamKind.REQUEST, StreamKind.RESPONSE, StreamKind.TFLITE_TENSOR}
)


@dataclass(frozen=True)
class StreamSpec:
    """One graph-level stream: its tag ("" when none), index (None when not written), name and kind.

    `message` is the full proto name a `PROTO` input carries (e.g. `mediapipe.NormalizedLandmarkList`),
    read from the graph when it loads; "" for every other stream.
    """

    tag: str
    index: int | None
    name: str
    kind: StreamKind
    message: str = ""


def kind_of_tag(tag: str) -> StreamKind:
    """The packet kind a tag selects: exact extension tags first, then OVMS's prefixes, else UNKNOWN."""
    if tag and tag != StreamKind.UNKNOWN.value:
        try:
            kind = StreamKind(tag)
        except ValueError:
            kind = None
        if kind in EXTENSION_KINDS:
            return kind
    for prefix, kind in OVMS_PREFIXES:
        if tag.startswith(prefix):
            return kind
    return StreamKind.UNKNOWN


def parse_stream(spec: str) -> StreamSpec:
    """Split `"x"`, `"TAG:x"` or `"TAG:0:x"` as OVMS's `getStreamNamePair` does, and pick the kind.

    ValueError when the text is not a stream MediaPipe would accept.
    """
    try:
        tag, index, name = split_tag_index_name(spec)
    except ValueError:
        raise ValueError(
            f'stream {spec!r} is not "name", "TAG:name" or "TAG:index:name" '
            f"(TAG like [A-Z_][A-Z0-9_]*, index a non-negative integer, name like [a-z_][a-z0-9_]*)"
        ) from None
    return StreamSpec(tag=tag, index=index, name=name, kind=kind_of_tag(tag))
