"""Stream specs and kinds (spec §5.1) and the request-level raw/typed rules (spec §1)."""

from __future__ import annotations

import pytest

from ovms_notebook.codec import (
    EXTENSION_KINDS,
    TENSOR_KINDS,
    UNSUPPORTED_KINDS,
    StreamKind,
    StreamSpec,
    check_request_coherency,
    parse_stream,
)
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

K = StreamKind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in", StreamSpec("", None, "in", K.UNKNOWN)),
        ("TENSOR:in", StreamSpec("TENSOR", None, "in", K.TENSOR)),
        ("TENSOR:0:in", StreamSpec("TENSOR", 0, "in", K.TENSOR)),
        ("VIDEO:12:frame_b", StreamSpec("VIDEO", 12, "frame_b", K.UNKNOWN)),
        ("_X:_y", StreamSpec("_X", None, "_y", K.UNKNOWN)),
    ],
)
def test_a_stream_splits_into_tag_index_and_name_like_getStreamNamePair(text, expected):
    assert parse_stream(text) == expected


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        # OVMS's MediapipeStreamTypes.Recognition cases: prefix matching with suffixes allowed.
        ("REQUEST", K.REQUEST),
        ("RESPONSE_COSTAM", K.RESPONSE),
        ("TFTENSOR", K.TFTENSOR),
        ("TFLITE_TENSOR", K.TFLITE_TENSOR),
        ("OVTENSOR", K.OVTENSOR),
        ("OVMS_PY_TENSOR", K.OVMS_PY_TENSOR),
        ("OVMS_PY_TENSOR_IMAGE", K.OVMS_PY_TENSOR),
        ("TENSOR", K.TENSOR),
        ("TENSOR1", K.TENSOR),
        ("TENSOR_1", K.TENSOR),
        ("TENSORS", K.TENSOR),
        ("IMAGE", K.IMAGE),
        ("IMAGE_FRAME", K.IMAGE),
        ("TENSO", K.UNKNOWN),
        ("SOMETHING", K.UNKNOWN),
        ("UNKNOWN", K.UNKNOWN),
    ],
)
def test_ovms_tags_select_their_kind_by_prefix(tag, kind):
    assert parse_stream(f"{tag}:x").kind is kind


@pytest.mark.parametrize("kind", sorted(EXTENSION_KINDS, key=lambda k: k.value))
def test_extension_tags_select_their_kind_only_by_exact_match(kind):
    assert parse_stream(f"{kind.value}:x").kind is kind
    assert parse_stream(f"{kind.value}:3:x").kind is kind
    assert parse_stream(f"{kind.value}_1:x").kind is K.UNKNOWN
    assert parse_stream(f"{kind.value}S1:x").kind is K.UNKNOWN


def test_no_extension_tag_starts_with_an_ovms_prefix_so_ovms_tags_keep_their_meaning():
    prefixes = ("REQUEST", "RESPONSE", "TFTENSOR", "TFLITE_TENSOR", "OVTENSOR", "OVMS_PY_TENSOR", "TENSOR", "IMAGE")
    for kind in EXTENSION_KINDS:
        assert not kind.value.startswith(prefixes), kind


def test_the_kind_groups_partition_the_kinds():
    assert {K.UNKNOWN, K.OVTENSOR, K.TENSOR, K.TFTENSOR, K.OVMS_PY_TENSOR} == TENSOR_KINDS
    assert {K.REQUEST, K.RESPONSE, K.TFLITE_TENSOR} == UNSUPPORTED_KINDS
    assert K.IMAGE not in EXTENSION_KINDS and K.MP_IMAGE in EXTENSION_KINDS
    assert not (TENSOR_KINDS & EXTENSION_KINDS) and not (UNSUPPORTED_KINDS & EXTENSION_KINDS)


@pytest.mark.parametrize(
    "text",
    ["", "Abc", "a.b", "a-b", "1a", "TAG:", ":in", "TAG::in", "TAG:01:in", "TAG:-1:in", "A:B:C:D", "Tag:in", "T:x y"],
)
def test_a_stream_mediapipe_would_reject_raises_value_error_naming_the_grammar(text):
    with pytest.raises(ValueError, match=r'is not "name", "TAG:name" or "TAG:index:name"'):
        parse_stream(text)


def _request(n_inputs: int, raw: int, contents_on: int | None = None) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest()
    for i in range(n_inputs):
        tensor = message.inputs.add(name=f"in{i}", datatype="FP32", shape=[1])
        if i == contents_on:
            tensor.contents.fp32_contents.append(1.0)
    message.raw_input_contents.extend([b"\0\0\0\0"] * raw)
    return message


def test_a_request_with_only_raw_or_only_typed_contents_is_coherent():
    check_request_coherency(_request(2, raw=2))
    check_request_coherency(_request(2, raw=0, contents_on=1))


def test_raw_contents_must_be_one_per_input_with_ovms_text():
    with pytest.raises(OvmsStatus) as caught:
        check_request_coherency(_request(2, raw=1))
    assert caught.value.code is StatusCode.INVALID_MESSAGE_STRUCTURE
    assert str(caught.value) == (
        "Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
        "ModelInferRequest::raw_input_contents is not allowed - Size of raw_input_contents: 1 is different than "
        "number of inputs: 2"
    )


def test_raw_and_typed_contents_together_are_rejected_with_ovms_text():
    with pytest.raises(OvmsStatus) as caught:
        check_request_coherency(_request(2, raw=2, contents_on=1))
    assert caught.value.code is StatusCode.INVALID_MESSAGE_STRUCTURE
    assert caught.value.details == (
        "Passing buffers both in InferInputTensor contents and in raw_input_contents is not allowed. "
        "Detected buffer in InferInputTensor contents for input: in1"
    )
