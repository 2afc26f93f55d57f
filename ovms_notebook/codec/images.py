"""Images both ways: `IMAGE` inputs as `mediapipe::ImageFrame` (OVMS's rules), `MP_IMAGE` as
`mediapipe::Image` (ours), and either type of output packet as an `[H, W, C]` tensor.

Probed in mediapipe 0.10.21 (each case in a child process first):
* ImageFrame: GRAY8, SRGB, SRGBA, GRAY16, SRGB48, SRGBA64, VEC32F1, VEC32F2 and
  VEC32F4 can all be created; VEC32F4 is missing from `mp.ImageFormat` but
  `mp.ImageFormat(13)` works, and its frames read back as float32 (H, W, 4).
* mediapipe::Image: 8-bit and float formats work; a 16-bit Image loses its
  format (reads as 0, UNKNOWN) and `channels` / `numpy_view()` then **abort**
  the process, so MP_IMAGE refuses 16-bit data and 16-bit Images are never read.
* A data array whose channel count disagrees with the format is accepted and
  read out of bounds, so shapes are checked here before any creator runs.
"""

from __future__ import annotations

import mediapipe as mp
import numpy as np

from ovms_notebook.codec.datatypes import element_size
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus, StatusCode

_F = mp.ImageFormat
VEC32F4 = mp.ImageFormat(13)  # ImageFormat.VEC32F4 in image_format.proto; absent from the Python enum

# OVMS's KFSDatatypeToImageFormat: (datatype, channels) -> format; INT8/INT16/FP16 keep their bits.
_FORMATS: dict[tuple[str, int], mp.ImageFormat] = {
    ("FP32", 1): _F.VEC32F1,
    ("FP32", 2): _F.VEC32F2,
    ("FP32", 4): VEC32F4,
    **{(dt, 1): _F.GRAY8 for dt in ("UINT8", "INT8")},
    **{(dt, 3): _F.SRGB for dt in ("UINT8", "INT8")},
    **{(dt, 4): _F.SRGBA for dt in ("UINT8", "INT8")},
    **{(dt, 1): _F.GRAY16 for dt in ("UINT16", "INT16", "FP16")},
    **{(dt, 3): _F.SRGB48 for dt in ("UINT16", "INT16", "FP16")},
    **{(dt, 4): _F.SRGBA64 for dt in ("UINT16", "INT16", "FP16")},
}
_STORAGE = {"UINT8": np.uint8, "INT8": np.uint8, "UINT16": np.uint16, "INT16": np.uint16, "FP16": np.uint16}
_SIXTEEN_BIT = {int(_F.GRAY16), int(_F.SRGB48), int(_F.SRGBA64)}

# OVMS's convertImageFormatToKFSDataType; every other format is labelled UINT8 (sic, even VEC32F4).
_OUTPUT_DATATYPES = {
    int(_F.GRAY8): "UINT8",
    int(_F.SRGB): "UINT8",
    int(_F.SRGBA): "UINT8",
    int(_F.GRAY16): "UINT16",
    int(_F.SRGB48): "UINT16",
    int(_F.SRGBA64): "UINT16",
    int(_F.VEC32F1): "FP32",
    int(_F.VEC32F2): "FP32",
}
# ImageFrame formats with a channel count (ImageFrame::NumberOfChannelsForFormat aborts on any other).
_FRAME_FORMATS = {1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13}
# mediapipe::Image formats whose channels/pixels can be read without aborting (see module docstring).
_READABLE_IMAGE_FORMATS = {int(f) for f in (_F.GRAY8, _F.SRGB, _F.SRGBA, _F.SBGRA, _F.VEC32F1, _F.VEC32F2, VEC32F4)}
_SIZE_MAX = 2**64 - 1


def decode_image(
    name: str, tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None, *, mp_image: bool
) -> mp.Packet:
    """An `IMAGE` (ImageFrame) or `MP_IMAGE` (mediapipe::Image) packet from an HWC tensor, with OVMS's checks."""
    if raw is None:  # OVMS: "Data should be located in raw_input_contents if graph input tag is IMAGE"
        raise OvmsStatus(StatusCode.MEDIAPIPE_EXECUTION_ERROR)
    shape = [int(d) for d in tensor.shape]
    if len(shape) != 3:
        raise OvmsStatus(
            StatusCode.INVALID_SHAPE, f"Invalid Mediapipe Image input shape size. Expected: 3; Actual: {len(shape)}"
        )
    for label, value in zip(("height", "width", "number of channels"), shape, strict=True):
        if value <= 0:
            raise OvmsStatus(
                StatusCode.INVALID_SHAPE,
                f"Invalid Mediapipe Image input {label}. Expected greater than 0; Actual: {value}; "
                "Expected layout - HWC.",
            )
    height, width, channels = shape
    expected = height * width * channels * element_size(tensor.datatype)
    if expected > _SIZE_MAX:
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE, "Invalid Mediapipe Image input: shape dimensions overflow size_t"
        )
    if len(raw) != expected:
        raise OvmsStatus(
            StatusCode.INVALID_CONTENT_SIZE,
            f"Invalid Mediapipe Image input buffer size. Actual: {len(raw)}; Expected: {expected}",
        )
    image_format = _FORMATS.get((tensor.datatype, channels))
    if image_format is None:
        raise OvmsStatus(
            StatusCode.INVALID_INPUT_FORMAT,
            "Invalid KFS request datatype, conversion to Mediapipe ImageFrame format failed.",
        )
    if mp_image and int(image_format) in _SIXTEEN_BIT:
        raise OvmsStatus(
            StatusCode.INVALID_INPUT_FORMAT,
            f"Expected 8-bit (UINT8, INT8) or FP32 pixels for input stream tagged MP_IMAGE; Actual: "
            f"{tensor.datatype} with {channels} channels, which mediapipe 0.10.21 cannot hold in a "
            f"mediapipe::Image (use an IMAGE stream for 16-bit frames); input name: {name}",
        )
    storage = _STORAGE.get(tensor.datatype, np.float32)
    pixels = np.frombuffer(raw, dtype=np.dtype(storage).newbyteorder("<")).reshape(height, width, channels)
    pixels = np.ascontiguousarray(pixels, dtype=storage)
    if mp_image:
        return mp.packet_creator.create_image(pixels, image_format=image_format, copy=True)
    return mp.packet_creator.create_image_frame(pixels, image_format=image_format, copy=True)


def encode_image_frame(name: str, packet: mp.Packet) -> tuple[pb.ModelInferResponse.InferOutputTensor, bytes]:
    """An ImageFrame packet as OVMS serializes it: `[H, W, C]`, datatype by format, contiguous rows."""
    frame = mp.packet_getter.get_image_frame(packet)
    if frame.is_empty() or int(frame.image_format) not in _FRAME_FORMATS:
        raise ValueError(f"the ImageFrame holds no readable pixels (format {int(frame.image_format)})")
    return _pixels_tensor(name, int(frame.image_format), frame.height, frame.width, frame.channels, frame.numpy_view())


def encode_image(name: str, packet: mp.Packet) -> tuple[pb.ModelInferResponse.InferOutputTensor, bytes]:
    """A mediapipe::Image packet like an ImageFrame; formats the wheel cannot read raise ValueError."""
    image = mp.packet_getter.get_image(packet)
    if image.uses_gpu():
        raise ValueError("the mediapipe::Image lives on the GPU; only CPU images can be serialized")
    image_format = int(image.image_format)
    if image_format not in _READABLE_IMAGE_FORMATS:
        raise ValueError(
            f"mediapipe::Image format {image_format} cannot be read by mediapipe 0.10.21 "
            "(16-bit Images lose their format and abort when read)"
        )
    return _pixels_tensor(name, image_format, image.height, image.width, image.channels, image.numpy_view())


def _pixels_tensor(
    name: str, image_format: int, height: int, width: int, channels: int, pixels: np.ndarray
) -> tuple[pb.ModelInferResponse.InferOutputTensor, bytes]:
    datatype = _OUTPUT_DATATYPES.get(image_format, "UINT8")
    data = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    expected = height * width * channels * pixels.dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"image pixels hold {len(data)} bytes, expected {expected} for {height}x{width}x{channels}")
    tensor = pb.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=[height, width, channels])
    return tensor, data
