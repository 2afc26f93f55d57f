"""Encoded image files in a graph: MediaPipe's ImageFilePropertiesCalculator and
OpenCvEncodedImageToImageFrameCalculator, which the 0.10.21 wheel lacks, in Python.

MediaPipe's iris depth graph (iris_depth_cpu) takes a JPEG file's bytes, decodes them into the frame, and
reads the camera's focal length from the file's EXIF data to turn the iris size into a distance. Both
follow MediaPipe v0.10.21 (mediapipe/calculators/image/image_file_properties_calculator.cc and
opencv_encoded_image_to_image_frame_calculator.cc):

* `ImageFilePropertiesCalculator`: the file's bytes (an input stream, or an input side packet) ->
  `mediapipe.ImageFileProperties` (width and height as the EXIF data states them, focal length in mm and
  its 35 mm equivalent, and the focal length in pixels computed from them), as an output stream or an
  output side packet. A file without EXIF data, or without those fields, fails as MediaPipe does
  ("Error parsing EXIF, code: 1983", "Focal length in mm should be non-zero ...").
* `OpenCvEncodedImageToImageFrameCalculator`: the bytes decoded by OpenCV into an RGB (RGBA, gray)
  ImageFrame. Bytes OpenCV cannot decode fail the node with what came, instead of the empty frame the
  C++ version would hand on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from mediapipe.calculators.image import opencv_encoded_image_to_image_frame_calculator_pb2
from mediapipe.framework.formats.image_file_properties_pb2 import ImageFileProperties

from ovms_notebook.calculators.tflite import image_frame
from ovms_notebook.engine.python.api import Calculator

__all__ = ["ImageFilePropertiesCalculator", "OpenCvEncodedImageToImageFrameCalculator", "image_file_properties"]

DecoderOptions = opencv_encoded_image_to_image_frame_calculator_pb2.OpenCvEncodedImageToImageFrameCalculatorOptions

_SENSOR_DIAGONAL_35MM = math.sqrt(1872.0)
# easyexif's parse codes, which MediaPipe puts in its error text.
_NO_JPEG, _NO_EXIF, _CORRUPT = 1982, 1983, 1985
_EXIF_IFD = 0x8769
_FOCAL_LENGTH, _FOCAL_LENGTH_35MM, _WIDTH, _HEIGHT = 0x920A, 0xA405, 0xA002, 0xA003


def _bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return value.tobytes()
    raise TypeError(f"{what} takes an encoded image file's bytes (std::string), got {type(value).__name__}")


def focal_length_pixels(width: int, height: int, focal_length_35mm: float, focal_length_mm: float) -> float:
    """MediaPipe's ComputeFocalLengthInPixels: the sensor's diagonal from the 35 mm equivalent, the longer side
    taken as the width. ValueError with MediaPipe's text when a figure is zero."""
    if width == 0 or height == 0:
        raise ValueError("Image dimensions should be non-zero to compute focal length in pixels.")
    if focal_length_mm == 0:
        raise ValueError("Focal length in mm should be non-zero to compute focal length in pixels.")
    if focal_length_35mm == 0:
        raise ValueError("Focal length in 35 mm should be non-zero to compute focal length in pixels.")
    sensor_diagonal_mm = _SENSOR_DIAGONAL_35MM / focal_length_35mm * focal_length_mm
    width, height = max(width, height), min(width, height)
    inverse_aspect = height / width
    sensor_width = math.sqrt(sensor_diagonal_mm * sensor_diagonal_mm / (1.0 + inverse_aspect * inverse_aspect))
    return width * focal_length_mm / sensor_width


def image_file_properties(data: bytes) -> ImageFileProperties:
    """GetImageFileProperties: the EXIF figures of a JPEG file and its focal length in pixels."""
    from PIL import Image, UnidentifiedImageError

    if not data.startswith(b"\xff\xd8"):
        raise ValueError(f"Error parsing EXIF, code: {_NO_JPEG}")
    try:
        exif = Image.open(io.BytesIO(data)).getexif()
        fields = dict(exif.get_ifd(_EXIF_IFD))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValueError(f"Error parsing EXIF, code: {_CORRUPT}") from None
    if not exif:
        raise ValueError(f"Error parsing EXIF, code: {_NO_EXIF}")
    properties = ImageFileProperties(
        image_width=int(fields.get(_WIDTH, 0)),
        image_height=int(fields.get(_HEIGHT, 0)),
        focal_length_mm=float(fields.get(_FOCAL_LENGTH, 0.0)),
        focal_length_35mm=float(fields.get(_FOCAL_LENGTH_35MM, 0.0)),
    )
    properties.focal_length_pixels = focal_length_pixels(
        properties.image_width, properties.image_height, properties.focal_length_35mm, properties.focal_length_mm
    )
    return properties


class ImageFilePropertiesCalculator(Calculator):
    """Encoded file bytes (stream or side packet) -> ImageFileProperties (stream or side packet)."""

    inputs = (":0",)
    outputs = (":0",)
    side_packets = (":0",)
    output_side_packets = (":0",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        if (":0" in self.input_tags) == (":0" in side_packets):
            raise ValueError("ImageFilePropertiesCalculator takes the file's bytes from one input stream or one "
                             "input side packet")
        if ":0" in side_packets:
            properties = image_file_properties(_bytes(side_packets[":0"], "ImageFilePropertiesCalculator"))
            if not self.output_tags:
                self.set_side_packet(":0", properties)
            self.properties: ImageFileProperties | None = properties
        else:
            self.properties = None

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        if ":0" in self.input_tags:
            value = inputs.get(":0")
            if value is None:
                return None
            self.properties = image_file_properties(_bytes(value, "ImageFilePropertiesCalculator"))
        if self.properties is None:
            return None
        if self.output_tags:
            return {":0": self.properties}
        self.set_side_packet(":0", self.properties)  # a second frame sets it again: MediaPipe fails the run
        return None


class OpenCvEncodedImageToImageFrameCalculator(Calculator):
    """Encoded image bytes -> ImageFrame (SRGB for color, SRGBA with alpha, GRAY8), decoded by OpenCV."""

    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        import cv2

        exif_orientation = self.options(DecoderOptions).apply_orientation_from_exif_data
        self.flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if exif_orientation else cv2.IMREAD_UNCHANGED

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        import cv2

        value = inputs.get(":0")
        if value is None:
            return None
        data = _bytes(value, "OpenCvEncodedImageToImageFrameCalculator")
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), self.flags) if data else None
        if decoded is None:
            raise ValueError(f"OpenCV could not decode {len(data)} bytes as an image file (JPEG, PNG, ...); "
                             f"they start {data[:8]!r}")
        if decoded.dtype != np.uint8:
            raise ValueError(f"Unsupported image depth {decoded.dtype}: this graph takes 8-bit images")
        channels = 1 if decoded.ndim == 2 else decoded.shape[2]
        if channels == 3:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        elif channels == 4:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
        elif channels != 1:
            raise ValueError(f"Unsupported number of channels: {channels}")
        return {":0": image_frame(decoded)}
