"""IMAGE (ImageFrame, OVMS's rules) and MP_IMAGE (mediapipe::Image) inputs, and image outputs."""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest

from ovms_notebook.codec import decode_input, decode_output, encode_input, encode_output, parse_stream
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

Tensor = pb.ModelInferRequest.InferInputTensor
DTYPES = {
    "UINT8": np.uint8,
    "INT8": np.int8,
    "UINT16": np.uint16,
    "INT16": np.int16,
    "FP16": np.float16,
    "FP32": np.float32,
}

# (datatype, channels) -> (ImageFormat, datatype OVMS labels the output with)
ALLOWED = {
    ("UINT8", 1): ("GRAY8", "UINT8"),
    ("UINT8", 3): ("SRGB", "UINT8"),
    ("UINT8", 4): ("SRGBA", "UINT8"),
    ("INT8", 1): ("GRAY8", "UINT8"),
    ("INT8", 3): ("SRGB", "UINT8"),
    ("INT8", 4): ("SRGBA", "UINT8"),
    ("UINT16", 1): ("GRAY16", "UINT16"),
    ("UINT16", 3): ("SRGB48", "UINT16"),
    ("UINT16", 4): ("SRGBA64", "UINT16"),
    ("INT16", 1): ("GRAY16", "UINT16"),
    ("INT16", 3): ("SRGB48", "UINT16"),
    ("INT16", 4): ("SRGBA64", "UINT16"),
    ("FP16", 1): ("GRAY16", "UINT16"),
    ("FP16", 3): ("SRGB48", "UINT16"),
    ("FP16", 4): ("SRGBA64", "UINT16"),
    ("FP32", 1): ("VEC32F1", "FP32"),
    ("FP32", 2): ("VEC32F2", "FP32"),
    ("FP32", 4): (13, "UINT8"),  # VEC32F4, labelled UINT8 by OVMS (sic)
}


def pixels(datatype: str, channels: int, height: int = 2, width: int = 3) -> np.ndarray:
    rng = np.random.default_rng(channels)
    dtype = np.dtype(DTYPES[datatype])
    if dtype.kind == "f":
        return rng.normal(size=(height, width, channels)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=(height, width, channels), endpoint=True, dtype=dtype)


def image_tensor(datatype: str, shape: list[int]) -> Tensor:
    return Tensor(name="img", datatype=datatype, shape=shape)


def failure(stream: str, tensor: Tensor, raw: bytes | None) -> OvmsStatus:
    with pytest.raises(OvmsStatus) as caught:
        decode_input(parse_stream(stream), tensor, raw)
    return caught.value


@pytest.mark.parametrize(("datatype", "channels"), list(ALLOWED))
def test_every_allowed_image_datatype_and_channel_count_round_trips_bit_for_bit(datatype, channels):
    image = pixels(datatype, channels)
    packet = decode_input(parse_stream("IMAGE:img"), image_tensor(datatype, [2, 3, channels]), image.tobytes())
    frame = mp.packet_getter.get_image_frame(packet)
    expected_format, label = ALLOWED[(datatype, channels)]
    expected = expected_format if isinstance(expected_format, int) else int(getattr(mp.ImageFormat, expected_format))
    assert int(frame.image_format) == expected
    out, data = encode_output("out", packet)
    assert (out.name, out.datatype, list(out.shape)) == ("out", label, [2, 3, channels])
    assert data == image.tobytes()  # INT8/INT16/FP16 keep their bits under the unsigned label


def test_int8_images_come_back_as_uint8_with_the_same_bits():
    image = np.array([[[-1], [5]]], dtype=np.int8)
    tensor, raw = encode_input("img", image)
    out, data = encode_output("out", decode_input(parse_stream("IMAGE:img"), tensor, raw))
    np.testing.assert_array_equal(decode_output(out, data), np.array([[[255], [5]]], dtype=np.uint8))


def test_four_channel_float_images_come_back_labelled_uint8_with_float_bytes_like_ovms():
    image = pixels("FP32", 4)
    tensor, raw = encode_input("img", image)
    out, data = encode_output("out", decode_input(parse_stream("IMAGE:img"), tensor, raw))
    assert (out.datatype, list(out.shape), len(data)) == ("UINT8", [2, 3, 4], 2 * 3 * 4 * 4)
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<f4").reshape(2, 3, 4), image)
    with pytest.raises(ValueError, match=r"declares UINT8 shape \[2, 3, 4\] \(24 bytes\) but holds 96 bytes"):
        decode_output(out, data)


def test_an_image_in_typed_contents_fails_with_the_bare_mediapipe_execution_error():
    tensor = image_tensor("UINT8", [1, 1, 1])
    tensor.contents.uint_contents.append(1)
    error = failure("IMAGE:img", tensor, None)
    assert error.code is StatusCode.MEDIAPIPE_EXECUTION_ERROR
    assert (str(error), error.details) == ("Mediapipe execution failed. MP status", "")


@pytest.mark.parametrize(
    ("shape", "details"),
    [
        ([2, 3], "Invalid Mediapipe Image input shape size. Expected: 3; Actual: 2"),
        ([1, 2, 3, 1], "Invalid Mediapipe Image input shape size. Expected: 3; Actual: 4"),
        ([0, 3, 1], "Invalid Mediapipe Image input height. Expected greater than 0; Actual: 0; Expected layout - HWC."),
        (
            [2, -3, 1],
            "Invalid Mediapipe Image input width. Expected greater than 0; Actual: -3; Expected layout - HWC.",
        ),
        (
            [2, 3, 0],
            "Invalid Mediapipe Image input number of channels. Expected greater than 0; Actual: 0; "
            "Expected layout - HWC.",
        ),
    ],
)
def test_an_image_shape_that_is_not_hwc_is_rejected_with_ovms_texts(shape, details):
    error = failure("IMAGE:img", image_tensor("UINT8", shape), b"")
    assert error.code is StatusCode.INVALID_SHAPE
    assert str(error) == f"Invalid input shape - {details}"


def test_an_image_buffer_of_the_wrong_size_is_rejected_with_ovms_text():
    error = failure("IMAGE:img", image_tensor("UINT16", [2, 3, 1]), b"\0" * 5)
    assert error.code is StatusCode.INVALID_CONTENT_SIZE
    assert (
        str(error)
        == "Invalid content size of tensor proto - Invalid Mediapipe Image input buffer size. Actual: 5; Expected: 12"
    )


def test_an_image_shape_overflowing_size_t_is_rejected_with_ovms_text():
    error = failure("IMAGE:img", image_tensor("FP32", [2**40, 2**40, 4]), b"")
    assert (error.code, error.details) == (
        StatusCode.INVALID_CONTENT_SIZE,
        "Invalid Mediapipe Image input: shape dimensions overflow size_t",
    )


@pytest.mark.parametrize(
    ("datatype", "channels"),
    [("FP32", 3), ("UINT8", 2), ("INT16", 2), ("INT32", 1), ("FP64", 1), ("BOOL", 1), ("UINT64", 4)],
)
def test_a_datatype_and_channel_count_without_an_imageframe_format_is_rejected_with_ovms_text(datatype, channels):
    size = {"FP32": 4, "UINT8": 1, "INT16": 2, "INT32": 4, "FP64": 8, "BOOL": 1, "UINT64": 8}[datatype]
    error = failure("IMAGE:img", image_tensor(datatype, [1, 1, channels]), b"\0" * (size * channels))
    assert error.code is StatusCode.INVALID_INPUT_FORMAT
    assert str(error) == (
        "Inputs inside buffer does not match expected format. - "
        "Invalid KFS request datatype, conversion to Mediapipe ImageFrame format failed."
    )


def test_a_custom_image_datatype_has_element_size_zero_and_then_no_format():
    assert failure("IMAGE:img", image_tensor("my_type", [1, 1, 1]), b"x").details == (
        "Invalid Mediapipe Image input buffer size. Actual: 1; Expected: 0"
    )
    assert failure("IMAGE:img", image_tensor("my_type", [1, 1, 1]), b"").code is StatusCode.INVALID_INPUT_FORMAT


@pytest.mark.parametrize(("datatype", "channels"), [k for k, v in ALLOWED.items() if v[1] != "UINT16"])
def test_mp_image_takes_8_bit_and_float_pixels_and_gives_them_back(datatype, channels):
    image = pixels(datatype, channels, height=3, width=5)
    packet = decode_input(parse_stream("MP_IMAGE:img"), image_tensor(datatype, [3, 5, channels]), image.tobytes())
    assert "C++ type: ::mediapipe::Image>" in repr(packet)
    out, data = encode_output("out", packet)
    assert (out.datatype, list(out.shape), data) == (
        ALLOWED[(datatype, channels)][1],
        [3, 5, channels],
        image.tobytes(),
    )


@pytest.mark.parametrize("datatype", ["UINT16", "INT16", "FP16"])
def test_mp_image_refuses_16_bit_pixels_that_the_wheel_cannot_hold(datatype):
    error = failure("MP_IMAGE:img", image_tensor(datatype, [1, 1, 3]), b"\0" * 6)
    assert error.code is StatusCode.INVALID_INPUT_FORMAT
    assert error.details == (
        f"Expected 8-bit (UINT8, INT8) or FP32 pixels for input stream tagged MP_IMAGE; Actual: {datatype} with "
        "3 channels, which mediapipe 0.10.21 cannot hold in a mediapipe::Image (use an IMAGE stream for 16-bit "
        "frames); input name: img"
    )


def test_mp_image_applies_the_imageframe_rules_first():
    assert failure("MP_IMAGE:img", image_tensor("FP32", [1, 1, 3]), b"\0" * 12).code is StatusCode.INVALID_INPUT_FORMAT
    assert failure("MP_IMAGE:img", image_tensor("UINT8", [1, 1]), b"\0").code is StatusCode.INVALID_SHAPE
    assert failure("MP_IMAGE:img", image_tensor("UINT8", [1, 1, 1]), None).code is StatusCode.MEDIAPIPE_EXECUTION_ERROR


FLIP = """
input_stream: "in"
output_stream: "out"
node {
  calculator: "ImageTransformationCalculator"
  input_stream: "IMAGE:in"
  output_stream: "IMAGE:out"
  options { [mediapipe.ImageTransformationCalculatorOptions.ext] { flip_horizontally: true } }
}
"""


def test_a_frame_made_by_a_calculator_with_padded_rows_is_output_as_contiguous_hwc_bytes():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    tensor, raw = encode_input("in", image)
    graph = mp.CalculatorGraph(graph_config=FLIP)
    outputs: list[mp.Packet] = []
    graph.observe_output_stream("out", lambda _, packet: outputs.append(packet))
    graph.start_run()
    graph.add_packet_to_input_stream("in", decode_input(parse_stream("IMAGE:in"), tensor, raw).at(0))
    graph.close()
    assert not mp.packet_getter.get_image_frame(outputs[0]).is_contiguous()
    out, data = encode_output("out", outputs[0])
    np.testing.assert_array_equal(decode_output(out, data), image[:, ::-1, :])
