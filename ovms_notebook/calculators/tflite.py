"""MediaPipe's legacy TfLite* calculators and ImageCroppingCalculator, which the 0.10.21 wheel lacks, in Python.

MediaPipe's iris landmark subgraph (`IrisLandmarkCpu`, expanded from its own
pbtxt by ovms_notebook.framework.subgraphs) still uses the TfLiteTensor
calculators that the wheel no longer registers. They run on the Python side
with MediaPipe's names, tags, options protos (shipped as `_pb2` in the wheel)
and semantics at v0.10.21 (mediapipe/calculators/tflite/*.cc and
calculators/image/image_cropping_calculator.cc):

* `ImageCroppingCalculator` (CPU): IMAGE + NORM_RECT or RECT -> IMAGE, the
  (rotated) rect warped out of the frame, borders zero or replicated;
* `TfLiteConverterCalculator`: IMAGE -> TENSORS, one float32 [H, W, C] tensor
  scaled to [0, 1] (or [-1, 1] with zero_center, or the options' float range);
* `TfLiteInferenceCalculator`: TENSORS -> TENSORS, the options' `model_path`
  run by OpenVINO (which reads .tflite) rather than the TFLite interpreter:
  OVMS's MediaPipe fork, too, runs these models on OpenVINO;
* `SplitTfLiteTensorVectorCalculator`: the wheel has this one, but its packets
  (std::vector<TfLiteTensor>) can only come from the calculators above, so a
  Python version keeps the tensors on the Python side instead of crossing to
  a native node no packet of that type can reach;
* `TfLiteTensorsToLandmarksCalculator`: TENSORS [+ FLIP_*] -> (NORM_)LANDMARKS.

A "tensor" on this side is a numpy float32 array, and TENSORS a list of them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mediapipe as mp
import numpy as np
from mediapipe.calculators.core import split_vector_calculator_pb2
from mediapipe.calculators.image import image_cropping_calculator_pb2
from mediapipe.calculators.tflite import (
    tflite_converter_calculator_pb2,
    tflite_inference_calculator_pb2,
)
from mediapipe.calculators.tflite.tflite_tensors_to_landmarks_calculator_pb2 import (
    TfLiteTensorsToLandmarksCalculatorOptions as LandmarksOptions,
)
from mediapipe.framework.formats import landmark_pb2

from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "ImageCroppingCalculator",
    "SplitTfLiteTensorVectorCalculator",
    "TfLiteConverterCalculator",
    "TfLiteInferenceCalculator",
    "TfLiteTensorsToLandmarksCalculator",
    "crop_rotated",
    "image_frame",
    "resolve_model_path",
    "tensors_to_landmarks",
]

CroppingOptions = image_cropping_calculator_pb2.ImageCroppingCalculatorOptions
ConverterOptions = tflite_converter_calculator_pb2.TfLiteConverterCalculatorOptions
InferenceOptions = tflite_inference_calculator_pb2.TfLiteInferenceCalculatorOptions
SplitOptions = split_vector_calculator_pb2.SplitVectorCalculatorOptions
_FORMATS = {1: mp.ImageFormat.GRAY8, 3: mp.ImageFormat.SRGB, 4: mp.ImageFormat.SRGBA}


def as_pixels(image: object) -> np.ndarray:
    """An image input's pixels: a numpy array as it crossed from a native node, or the `mp.ImageFrame` a Python
    node upstream made for native consumers (read without a copy)."""
    if isinstance(image, mp.ImageFrame):
        return image.numpy_view()
    return np.asarray(image)


def image_frame(pixels: np.ndarray) -> mp.ImageFrame:
    """An ImageFrame of uint8 [H, W, C] pixels (C = 1, 3, 4), for a native node downstream."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return mp.ImageFrame(image_format=_FORMATS[pixels.shape[2]], data=np.ascontiguousarray(pixels))


def crop_rotated(image: np.ndarray, center: tuple[float, float], size: tuple[int, int], rotation: float,
                 border_mode: int, out_size: tuple[float, float] | None = None) -> np.ndarray:
    """ImageCroppingCalculator::RenderCpu: the `size` (w, h) box centred at `center` (pixels), turned by
    `rotation` (radians), warped upright into `out_size` (default `size`) with nearest-neighbour sampling
    (MediaPipe passes OpenCV flags 0, INTER_NEAREST)."""
    import cv2

    width, height = size
    out_w, out_h = out_size if out_size is not None else (float(width), float(height))
    box = cv2.boxPoints(((center[0], center[1]), (float(width), float(height)), rotation * 180.0 / math.pi))
    dst = np.array([[0, out_h], [0, 0], [out_w, 0], [out_w, out_h]], np.float32)
    projection = cv2.getPerspectiveTransform(box.astype(np.float32), dst)
    shift_src = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
    shift_dst = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)
    return cv2.warpPerspective(image, shift_dst @ projection @ shift_src, (int(out_w), int(out_h)),
                               flags=0, borderMode=border_mode)


class ImageCroppingCalculator(Calculator):
    """IMAGE + NORM_RECT or RECT -> IMAGE (ImageCroppingCalculatorOptions; CPU path, no WIDTH/HEIGHT inputs)."""

    inputs = ("IMAGE", "NORM_RECT", "RECT")
    outputs = ("IMAGE",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        import cv2

        self.settings = self.options(CroppingOptions)
        modes = {CroppingOptions.BORDER_ZERO: cv2.BORDER_CONSTANT,
                 CroppingOptions.BORDER_REPLICATE: cv2.BORDER_REPLICATE}
        if self.settings.border_mode not in modes:
            raise ValueError(f"Unsupported border mode for CPU: {self.settings.border_mode}")
        self.border = modes[self.settings.border_mode]
        self.max_size = (self.settings.output_max_width if self.settings.HasField("output_max_width") else math.inf,
                         self.settings.output_max_height if self.settings.HasField("output_max_height") else math.inf)

    def _spec(self, width: int, height: int,
              inputs: Mapping[str, object | None]) -> tuple[int, int, float, float, float]:
        """GetCropSpecs: (crop width, crop height, centre x, centre y, rotation) in pixels."""
        crop_w, crop_h, cx, cy, rotation = width, height, width / 2.0, height / 2.0, 0.0
        norm_w = norm_h = 0.0
        options = self.settings
        if "RECT" in self.input_tags:
            rect = inputs["RECT"]
            if rect.width > 0 and rect.height > 0:  # type: ignore[union-attr]
                cx, cy, crop_w, crop_h, rotation = (rect.x_center, rect.y_center, rect.width,  # type: ignore[union-attr]
                                                    rect.height, rect.rotation)  # type: ignore[union-attr]
        elif "NORM_RECT" in self.input_tags:
            rect = inputs["NORM_RECT"]
            if rect.width > 0 and rect.height > 0:  # type: ignore[union-attr]
                norm_w, norm_h = rect.width, rect.height  # type: ignore[union-attr]
                cx, cy, rotation = rect.x_center * width, rect.y_center * height, rect.rotation  # type: ignore[union-attr]
        elif options.HasField("width") and options.HasField("height"):
            crop_w, crop_h = options.width, options.height
        elif options.HasField("norm_width") and options.HasField("norm_height"):
            norm_w, norm_h = options.norm_width, options.norm_height
        if norm_w > 0 and norm_h > 0:
            crop_w, crop_h = _round(norm_w * width), _round(norm_h * height)
        if not {"RECT", "NORM_RECT"} & set(self.input_tags):
            if options.HasField("norm_center_x") and options.HasField("norm_center_y"):
                cx, cy = options.norm_center_x * width, options.norm_center_y * height
            if options.HasField("rotation"):
                rotation = options.rotation
        if rotation == 0.0:  # centre on a pixel (even size) or between two (odd size)
            cx = float(_round(cx)) if crop_w % 2 == 0 else _round(cx + 0.5) - 0.5
            cy = float(_round(cy)) if crop_h % 2 == 0 else _round(cy + 0.5) - 0.5
        return int(crop_w), int(crop_h), cx, cy, rotation

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        image = inputs.get("IMAGE")
        if image is None or any(inputs.get(tag) is None for tag in ("RECT", "NORM_RECT") if tag in self.input_tags):
            return None
        pixels = as_pixels(image)
        crop_w, crop_h, cx, cy, rotation = self._spec(pixels.shape[1], pixels.shape[0], inputs)
        scale = min(1.0, self.max_size[0] / crop_w, self.max_size[1] / crop_h)
        cropped = crop_rotated(pixels, (cx, cy), (crop_w, crop_h), rotation, self.border,
                               (crop_w * scale, crop_h * scale))
        return {"IMAGE": image_frame(cropped)}


def _round(value: float) -> int:
    """C's std::round: halves away from zero."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


class TfLiteConverterCalculator(Calculator):
    """IMAGE (ImageFrame) -> TENSORS: [float32 H x W x C], pixel * scale + bias (TfLiteConverterCalculatorOptions)."""

    inputs = ("IMAGE",)
    outputs = ("TENSORS",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(ConverterOptions)
        if options.use_quantized_tensors:
            raise ValueError("use_quantized_tensors is not supported here")
        low, high = 0.0, 1.0
        if options.zero_center:
            low, high = -1.0, 1.0
        if options.HasField("output_tensor_float_range"):
            low, high = options.output_tensor_float_range.min, options.output_tensor_float_range.max
            if not high > low:
                raise ValueError("output_tensor_float_range: max must be greater than min")
        if options.use_custom_normalization:
            low, high = -options.custom_sub, -options.custom_sub + 255.0 / options.custom_div
        self.scale, self.bias = np.float32((high - low) / 255.0), np.float32(low)
        self.flip = options.flip_vertically
        self.channels = options.max_num_channels

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        image = inputs.get("IMAGE")
        if image is None:
            return None
        pixels = as_pixels(image)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        pixels = pixels[::-1] if self.flip else pixels
        tensor = pixels[..., :self.channels].astype(np.float32) * self.scale + self.bias
        return {"TENSORS": [tensor]}


def resolve_model_path(model_path: str) -> Path:
    """A graph's `model_path` as MediaPipe resolves it in the wheel: absolute, or under site-packages."""
    path = Path(model_path)
    if path.is_absolute():
        return path
    return Path(mp.__file__).resolve().parent.parent / path


@functools.cache
def _compiled(path: Path) -> Any:
    """One OpenVINO compiled model per model file, shared by every stream (f32, as TFLite computes)."""
    from ovms_notebook.models.version import openvino_core

    if not path.is_file():
        raise FileNotFoundError(f"model_path {path} does not exist")
    return openvino_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


class TfLiteInferenceCalculator(Calculator):
    """TENSORS -> TENSORS: the options' `model_path` model, run by OpenVINO (TfLiteInferenceCalculatorOptions)."""

    inputs = ("TENSORS",)
    outputs = ("TENSORS",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(InferenceOptions)
        if not options.model_path:
            raise ValueError("TfLiteInferenceCalculator needs model_path here (no MODEL side packet)")
        self.model = _compiled(resolve_model_path(options.model_path))
        self.request = self.model.create_infer_request()  # one per stream: `self` is per stream
        self.shapes = [tuple(port.get_partial_shape().to_shape()) if port.get_partial_shape().is_static else None
                       for port in self.model.inputs]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors = inputs.get("TENSORS")
        if tensors is None:
            return None
        feed = {}
        for index, (tensor, shape) in enumerate(zip(tensors, self.shapes, strict=True)):  # type: ignore[call-overload]
            array = np.asarray(tensor, np.float32)
            feed[index] = array.reshape(shape) if shape is not None and math.prod(shape) == array.size else array
        results = self.request.infer(feed)
        return {"TENSORS": [np.array(results[port]) for port in self.model.outputs]}


class SplitTfLiteTensorVectorCalculator(Calculator):
    """A TENSORS list -> one untagged output per range (SplitVectorCalculatorOptions), on the Python side."""

    inputs = (":0",)
    outputs = (":*",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(SplitOptions)
        self.ranges = [(r.begin, r.end) for r in options.ranges]
        if not self.ranges or any(begin < 0 or end <= begin for begin, end in self.ranges):
            raise ValueError("Indices should be non-negative and ranges non-empty")
        self.element_only, self.combine = options.element_only, options.combine_outputs
        if self.element_only and any(end - begin != 1 for begin, end in self.ranges):
            raise ValueError("Since element_only is true, all ranges should be of size 1.")

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors = inputs.get(":0")
        if tensors is None:
            return None
        items = list(tensors)  # type: ignore[call-overload]
        if max(end for _, end in self.ranges) > len(items):
            raise ValueError(f"a range ends past the input's {len(items)} tensors")
        if self.combine:
            return {":0": [item for begin, end in self.ranges for item in items[begin:end]]}
        parts: list[object] = [items[begin] if self.element_only else items[begin:end] for begin, end in self.ranges]
        return {f":{i}": part for i, part in enumerate(parts)}


def tensors_to_landmarks(values: np.ndarray, options: LandmarksOptions, flip_horizontally: bool,
                         flip_vertically: bool,
                         ) -> tuple[landmark_pb2.LandmarkList, landmark_pb2.NormalizedLandmarkList]:
    """TfLiteTensorsToLandmarksCalculator's (LANDMARKS, NORM_LANDMARKS) of one flat float tensor.

    Values are worked out in double and stored as float, as the C++ does; the lists are built from their
    wire bytes in one parse (a face's 468 landmarks one field at a time took 1.6 ms)."""
    flat = np.asarray(values, np.float32).reshape(-1)
    count = options.num_landmarks
    dims = flat.size // count if count > 0 else 0
    if dims <= 0:
        raise ValueError(f"a tensor of {flat.size} values cannot hold {count} landmarks")
    width, height = options.input_image_width, options.input_image_height
    raw = flat[:count * dims].reshape(count, dims).astype(np.float64)
    sigmoid = LandmarksOptions.SIGMOID
    x = (width - raw[:, 0] if flip_horizontally else raw[:, 0]).astype(np.float32)
    y = (height - raw[:, 1] if flip_vertically else raw[:, 1]).astype(np.float32) if dims > 1 else None
    z = raw[:, 2].astype(np.float32) if dims > 2 else None
    extra = [_activated(raw[:, column], activation == sigmoid)
             for column, activation in ((3, options.visibility_activation), (4, options.presence_activation))
             if dims > column]
    absolute = [column for column in (x, y, z) if column is not None]
    with np.errstate(divide="ignore", invalid="ignore"):  # no size given: LANDMARKS only (open checks NORM_)
        zeros = np.zeros(count)
        normalized = [
            (x.astype(np.float64) / width).astype(np.float32),
            ((y.astype(np.float64) if y is not None else zeros) / height).astype(np.float32),
            ((z.astype(np.float64) if z is not None else zeros) / width / options.normalize_z).astype(np.float32),
        ]
    return (landmark_pb2.LandmarkList.FromString(_landmark_list_bytes([*absolute, *extra])),
            landmark_pb2.NormalizedLandmarkList.FromString(_landmark_list_bytes([*normalized, *extra])))


def _activated(values: np.ndarray, sigmoid: bool) -> np.ndarray:
    return np.array([_activate(float(v), sigmoid) for v in values], np.float32)


def _activate(value: float, sigmoid: bool) -> float:
    return 1.0 / (1.0 + math.exp(-value)) if sigmoid else value


#: Wire tags of a (Normalized)Landmark's float fields x, y, z, visibility, presence (fields 1-5, fixed32).
_LANDMARK_TAGS = (0x0D, 0x15, 0x1D, 0x25, 0x2D)


def _landmark_list_bytes(columns: list[np.ndarray]) -> bytes:
    """The wire bytes of a (Normalized)LandmarkList whose landmarks have the given float32 columns, in field
    order from x: each landmark a length-delimited field 1 of 5 bytes per column."""
    count, width = len(columns[0]), len(columns)
    record = np.empty((count, 2 + 5 * width), np.uint8)
    record[:, 0], record[:, 1] = 0x0A, 5 * width
    for index, column in enumerate(columns):
        record[:, 2 + 5 * index] = _LANDMARK_TAGS[index]
        record[:, 3 + 5 * index:7 + 5 * index] = np.ascontiguousarray(column, "<f4").view(np.uint8).reshape(count, 4)
    return record.tobytes()


class TfLiteTensorsToLandmarksCalculator(Calculator):
    """TENSORS [+ FLIP_HORIZONTALLY, FLIP_VERTICALLY] -> NORM_LANDMARKS and/or LANDMARKS (first tensor only).

    A flip input, once given, holds for later timestamps too (MediaPipe keeps it in the calculator).
    """

    inputs = ("TENSORS", "FLIP_HORIZONTALLY", "FLIP_VERTICALLY")
    outputs = ("NORM_LANDMARKS", "LANDMARKS")
    #: The options message read (the Tensor version's twin reads TensorsToLandmarksCalculatorOptions, same fields).
    options_type: type[Any] = LandmarksOptions

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.settings = self.options(self.options_type)
        if not self.settings.HasField("num_landmarks"):
            raise ValueError("num_landmarks is required")
        if "NORM_LANDMARKS" in self.output_tags and not (self.settings.input_image_width
                                                         and self.settings.input_image_height):
            raise ValueError("Must provide input width/height for getting normalized landmarks.")
        self.flips = [self.settings.flip_horizontally, self.settings.flip_vertically]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        for i, tag in enumerate(("FLIP_HORIZONTALLY", "FLIP_VERTICALLY")):
            flag = inputs.get(tag)
            if flag is not None:
                self.flips[i] = bool(flag)
        tensors: Sequence[object] | None = inputs.get("TENSORS")  # type: ignore[assignment]
        if tensors is None:
            return None
        absolute, normalized = tensors_to_landmarks(tensors[0], self.settings, *self.flips)  # type: ignore[arg-type]
        out: dict[str, object] = {}
        if "NORM_LANDMARKS" in self.output_tags:
            out["NORM_LANDMARKS"] = normalized
        if "LANDMARKS" in self.output_tags:
            out["LANDMARKS"] = absolute
        return out
