"""Extension kinds: KServe tensors as stock MediaPipe packet types (`INT:`, `FLOAT:`, `FLOATS:`, ...).

OVMS has no such tags; they let graphs of stock calculators be fed from any
KServe client. Each tag accepts a few datatypes, checks the shape, reads the
tensor with the OpenVINO-tensor rules (so size and count errors read as
OVMS's), checks every value fits the C++ type, and only then calls the
packet creator: the creators raise on overflow at best and the vector ones
take Python lists only (`create_float_vector` refuses numpy arrays and ints).
"""

from __future__ import annotations

from collections.abc import Callable

import mediapipe as mp
import numpy as np

from ovms_notebook.codec.datatypes import FLOATS, INTEGERS, element_count, int_range, shape_to_string
from ovms_notebook.codec.streams import StreamKind, StreamSpec
from ovms_notebook.codec.tensors import InputTensor, check_dims, read_array
from ovms_notebook.status import OvmsStatus, StatusCode

_create = mp.packet_creator
_FLOAT_MAX = float(np.finfo(np.float32).max)

#: Datatypes each extension tag accepts.
ACCEPTED: dict[StreamKind, tuple[str, ...]] = {
    StreamKind.BOOL: ("BOOL",),
    StreamKind.INT: INTEGERS,
    **{StreamKind(name): INTEGERS for name in INTEGERS},
    StreamKind.FLOAT: ("FP32", "FP64", "FP16"),
    StreamKind.DOUBLE: ("FP32", "FP64"),
    StreamKind.STRING: ("BYTES", "UINT8"),
    StreamKind.BOOLS: ("BOOL",),
    StreamKind.INTS: INTEGERS,
    StreamKind.FLOATS: FLOATS,
    StreamKind.STRINGS: ("BYTES",),
    StreamKind.MATRIX: ("FP32", "FP64"),
}

# Integer tags: (C++ type named in errors, value range, creator).
_INTEGER_TARGETS: dict[StreamKind, tuple[str, tuple[int, int], Callable[[int], mp.Packet]]] = {
    StreamKind.INT: ("int", int_range("INT32"), _create.create_int),
    StreamKind.INT8: ("int8_t", int_range("INT8"), _create.create_int8),
    StreamKind.INT16: ("int16_t", int_range("INT16"), _create.create_int16),
    StreamKind.INT32: ("int32_t", int_range("INT32"), _create.create_int32),
    StreamKind.INT64: ("int64_t", int_range("INT64"), _create.create_int64),
    StreamKind.UINT8: ("uint8_t", int_range("UINT8"), _create.create_uint8),
    StreamKind.UINT16: ("uint16_t", int_range("UINT16"), _create.create_uint16),
    StreamKind.UINT32: ("uint32_t", int_range("UINT32"), _create.create_uint32),
    StreamKind.UINT64: ("uint64_t", int_range("UINT64"), _create.create_uint64),
}
_SCALARS = frozenset({StreamKind.BOOL, StreamKind.FLOAT, StreamKind.DOUBLE, *_INTEGER_TARGETS})


def decode_value(spec: StreamSpec, tensor: InputTensor, raw: bytes | None) -> mp.Packet:
    """The stock packet an extension-tagged input stream takes, from a validated tensor."""
    kind, name, datatype = spec.kind, spec.name, tensor.datatype
    accepted = ACCEPTED[kind]
    if datatype not in accepted:
        raise OvmsStatus(
            StatusCode.INVALID_PRECISION,
            f"Expected one of {', '.join(accepted)} for input stream tagged {spec.tag}; Actual: {datatype}; "
            f"input name: {name}",
        )
    shape = check_dims(tensor, name)
    _check_shape(spec, datatype, shape)
    values = read_array(name, tensor, raw, shape)
    if kind in _INTEGER_TARGETS:
        ctype, bounds, create = _INTEGER_TARGETS[kind]
        return create(_fit_integer(spec, values, ctype, bounds)[0])
    if kind is StreamKind.INTS:
        return _create.create_int_vector(_fit_integer(spec, values, "int", int_range("INT32")))
    if kind is StreamKind.BOOL:
        return _create.create_bool(bool(values.reshape(-1)[0]))
    if kind is StreamKind.BOOLS:
        return _create.create_bool_vector([bool(v) for v in values.reshape(-1)])
    if kind is StreamKind.FLOAT:
        return _create.create_float(_fit_float(spec, values)[0])
    if kind is StreamKind.FLOATS:
        return _create.create_float_vector(_fit_float(spec, values))
    if kind is StreamKind.DOUBLE:
        return _create.create_double(float(values.reshape(-1)[0]))
    if kind is StreamKind.STRING:
        text = values.reshape(-1)[0] if datatype == "BYTES" else values.tobytes()
        return _create.create_string(bytes(text))
    if kind is StreamKind.STRINGS:
        return _create.create_string_vector(_utf8_items(spec, values))
    if kind is StreamKind.MATRIX:
        _fit_float(spec, values)
        matrix = values.reshape(shape[0], 1) if len(shape) == 1 else values
        return _create.create_matrix(np.ascontiguousarray(matrix, dtype=np.float32))
    raise AssertionError(f"no decoder for extension kind {kind}")  # every kind in ACCEPTED is handled above


def _check_shape(spec: StreamSpec, datatype: str, shape: list[int]) -> None:
    """The shape rules of the tag: one element for scalars, 1-D bytes for STRING, 1-D/2-D for MATRIX."""
    kind, shown = spec.kind, shape_to_string(shape)
    suffix = f"; Actual shape: {shown}; input name: {spec.name}"
    if kind in _SCALARS and element_count(shape) != 1:
        raise OvmsStatus(StatusCode.INVALID_SHAPE, f"Expected 1 value for input stream tagged {spec.tag}{suffix}")
    if kind is StreamKind.STRING:
        if datatype == "BYTES" and element_count(shape) != 1:
            raise OvmsStatus(
                StatusCode.INVALID_SHAPE,
                f"Expected 1 BYTES element for input stream tagged {spec.tag}{suffix}",
            )
        if datatype == "UINT8" and len(shape) != 1:
            raise OvmsStatus(
                StatusCode.INVALID_SHAPE,
                f"Expected a 1-D UINT8 tensor (the string's bytes) for input stream tagged {spec.tag}{suffix}",
            )
    if kind is StreamKind.MATRIX and len(shape) not in (1, 2):
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE,
            f"Expected 2 dimensions [rows, cols] (or 1 dimension [n], read as n x 1) for input stream tagged "
            f"{spec.tag}{suffix}",
        )


def _utf8_items(spec: StreamSpec, values: np.ndarray) -> list[bytes]:
    """STRINGS elements, each valid UTF-8: the wheel reads a std::vector<std::string> back only as text."""
    items = [bytes(v) for v in values.reshape(-1)]
    for index, item in enumerate(items):
        try:
            item.decode("utf-8")
        except UnicodeDecodeError as error:
            raise OvmsStatus(
                StatusCode.INVALID_INPUT_FORMAT,
                f"Expected UTF-8 text in every element for input stream tagged {spec.tag} (mediapipe 0.10.21 reads "
                f"a std::vector<std::string> back only as text); Actual: element {index} is not UTF-8 "
                f"({error.reason} at byte {error.start}); input name: {spec.name}",
            ) from None
    return items


def _fit_integer(spec: StreamSpec, values: np.ndarray, ctype: str, bounds: tuple[int, int]) -> list[int]:
    """The values as Python ints, each checked to fit the C++ type."""
    low, high = bounds
    items = [int(v) for v in values.reshape(-1)]
    for index, item in enumerate(items):
        if not low <= item <= high:
            raise OvmsStatus(
                StatusCode.INVALID_VALUE_COUNT,
                f"Value {item} at index {index} does not fit C++ {ctype} (expected {low}..{high}) "
                f"for input stream tagged {spec.tag}; input name: {spec.name}",
            )
    return items


def _fit_float(spec: StreamSpec, values: np.ndarray) -> list[float]:
    """The values as Python floats that fit a C++ float (inf and nan pass; finite overflow does not)."""
    wide = values.astype(np.float64).reshape(-1)
    overflow = np.flatnonzero(np.isfinite(wide) & (np.abs(wide) > _FLOAT_MAX))
    if overflow.size:
        index = int(overflow[0])
        raise OvmsStatus(
            StatusCode.INVALID_VALUE_COUNT,
            f"Value {float(wide[index])!r} at index {index} does not fit C++ float "
            f"(largest {_FLOAT_MAX!r}) for input stream tagged {spec.tag}; input name: {spec.name}",
        )
    return wide.tolist()
