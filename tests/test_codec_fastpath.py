"""The codec's per-stream shortcuts give exactly what the full conversion gives, errors included."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest

from ovms_notebook.codec import decode_input, encode_input, pack_tensor, parse_stream
from ovms_notebook.status import OvmsStatus


def _blob(packet: mp.Packet) -> bytes:
    return mp.packet_getter.get_bytes(packet)


@pytest.mark.parametrize("stream", ["in", "OVTENSOR:in", "TENSOR:in", "TFTENSOR:in", "OVMS_PY_TENSOR:in"])
def test_repeated_raw_tensor_gives_the_same_blob(stream: str) -> None:
    spec = parse_stream(stream)
    tensor, raw = encode_input("x", np.arange(6, dtype=np.float32).reshape(2, 3))
    first = _blob(decode_input(spec, tensor, raw))
    again = _blob(decode_input(spec, tensor, raw[::-1]))  # same form, other bytes: the cached header
    assert first == pack_tensor(spec.name if stream != "OVMS_PY_TENSOR:in" else "in", "FP32", [2, 3], raw,
                                py_tensor=stream.startswith("OVMS_PY"))
    assert again == first[: len(first) - len(raw)] + raw[::-1]


def test_repeated_form_with_a_wrong_size_still_gets_ovms_error() -> None:
    spec = parse_stream("in")
    tensor, raw = encode_input("x", np.arange(4, dtype=np.float32))
    decode_input(spec, tensor, raw)
    with pytest.raises(OvmsStatus) as caught:
        decode_input(spec, tensor, raw[:-4])
    assert caught.value.text.endswith("Expected: 16 bytes; Actual: 12 bytes; input name: in")


def test_other_streams_and_datatypes_do_not_share_a_header() -> None:
    tensor, raw = encode_input("x", np.arange(4, dtype=np.int32))
    a = _blob(decode_input(parse_stream("a"), tensor, raw))
    b = _blob(decode_input(parse_stream("b"), tensor, raw))
    tensor.datatype = "FP32"
    c = _blob(decode_input(parse_stream("a"), tensor, raw))
    assert a != b and a != c and {a[-16:], b[-16:], c[-16:]} == {raw}


def test_unpack_reads_a_known_header_again_and_still_refuses_broken_blobs() -> None:
    from ovms_notebook.codec import unpack_tensor

    blob = pack_tensor("t", "INT8", [2, 2], bytes([1, 2, 3, 4]), py_tensor=True)
    for data in (bytes([1, 2, 3, 4]), bytes([9, 9, 9, 9])):  # second: the header parsed once
        value = unpack_tensor(blob[: len(blob) - 4] + data)
        assert value is not None and (value.name, value.datatype, value.shape, value.data, value.py_tensor) == (
            "t", "INT8", (2, 2), data, True)
    header = len(blob) - 4
    for broken in (blob[:header - 1], blob[:20], blob[:17], b"plain text"):
        assert unpack_tensor(broken) is None
    flags = len(b"\x00OVMSNB-TENSOR\x01")
    assert unpack_tensor(blob[:flags] + b"\x02" + blob[flags + 1:]) is None
