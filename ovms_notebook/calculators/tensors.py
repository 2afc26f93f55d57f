"""MediaPipe's tensor calculators around an inference that runs on the Python side (OVMS's fork, OpenVINO).

When a graph's config.json serves the model entries OVMS's MediaPipe fork
infers on, subgraphs such as `FaceDetection` are expanded from MediaPipe's own
pbtxt and their `InferenceCalculator` becomes the fork's
`OpenVINOInferenceCalculator` (ovms_notebook.framework.ovms_fork). The nodes
around it exchange `std::vector<mediapipe::Tensor>` (and a `std::array<float,
16>` matrix), which no Python node can read or make, so they run here too,
under names of their own (`Python...`, see `PYTHON_TWINS`) so the same stock
calculators stay native everywhere else. Semantics are MediaPipe v0.10.21's
CPU paths (mediapipe/calculators/tensor/image_to_tensor_calculator.cc and
image_to_tensor_utils.cc, tensors_to_detections_calculator.cc,
calculators/tflite/ssd_anchors_calculator.cc, calculators/util/
non_max_suppression_calculator.cc and detection_projection_calculator.cc):

* `PythonImageToTensorCalculator`: IMAGE [+ NORM_RECT] -> TENSORS (one float32
  [1, H, W, C] array), MATRIX (16 floats, row-major), LETTERBOX_PADDING (4);
  the rotated ROI, padded to the tensor's aspect with keep_aspect_ratio,
  warped with OpenCV's bilinear perspective warp and scaled to the float range;
* `PythonTensorsToDetectionsCalculator`: TENSORS (boxes, scores) -> DETECTIONS
  (a list of Detection protos); the SSD anchors come from the
  `SsdAnchorsCalculatorOptions` the subgraph expansion moved into its options;
* NMS and the projection back onto the image: ovms_notebook.calculators.detections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mediapipe as mp
import numpy as np
from mediapipe.calculators.tensor.image_to_tensor_calculator_pb2 import ImageToTensorCalculatorOptions
from mediapipe.calculators.tensor.tensors_to_detections_calculator_pb2 import TensorsToDetectionsCalculatorOptions
from mediapipe.calculators.tflite.ssd_anchors_calculator_pb2 import SsdAnchorsCalculatorOptions
from mediapipe.framework.formats import detection_pb2, location_data_pb2

from ovms_notebook.codec.blob import TensorValue
from ovms_notebook.engine.python.api import Calculator
from ovms_notebook.framework.options import has_node_options

__all__ = [
    "PythonImageToTensorCalculator",
    "PythonTensorsToDetectionsCalculator",
    "image_pixels",
    "pixels_of",
    "roi_to_tensor",
    "ssd_anchors",
    "tensor_array",
]

_F = np.float32


def pixels_of(value: object) -> np.ndarray:
    """[H, W, C] pixels, any dtype, of a numpy array (an ImageFrame that crossed), an mp.Image or ImageFrame, or
    a packet holding either (a multi-backend `mediapipe::Image` stays a packet on this side); ValueError when
    that is not an image."""
    if isinstance(value, mp.Packet):
        try:
            value = mp.packet_getter.get_image(value)
        except (TypeError, ValueError, RuntimeError):
            value = mp.packet_getter.get_image_frame(value)
    if isinstance(value, mp.Image | mp.ImageFrame):
        value = value.numpy_view()
    pixels = np.asarray(value)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        raise ValueError(f"expected an image [H, W] or [H, W, C], got shape {list(pixels.shape)}")
    return pixels


def image_pixels(value: object) -> np.ndarray:
    """uint8 [H, W, C] pixels of an image input (see `pixels_of`)."""
    pixels = pixels_of(value)
    if pixels.dtype != np.uint8 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected a uint8 image [H, W, 1|3|4], got {pixels.dtype} {pixels.shape}")
    return pixels


def _pad_roi(tensor_w: int, tensor_h: int, keep_aspect: bool,
             roi: list[float]) -> tuple[list[float], list[float]]:
    """PadRoi: the ROI [cx, cy, w, h, rotation] grown to the tensor's aspect, and the padding (l, t, r, b)."""
    if not keep_aspect:
        return roi, [0.0, 0.0, 0.0, 0.0]
    cx, cy, width, height, rotation = roi
    if width <= 0 or height <= 0:
        raise ValueError("ROI width and height must be > 0.")
    tensor_aspect, roi_aspect = float(_F(tensor_h) / _F(tensor_w)), float(_F(height) / _F(width))
    vertical = horizontal = 0.0
    # the padding in float arithmetic, as MediaPipe's PadRoi computes it (LetterboxRemoval reads it to the last bit)
    if tensor_aspect > roi_aspect:
        new_w, new_h = width, width * tensor_aspect
        vertical = float((_F(1.0) - _F(roi_aspect) / _F(tensor_aspect)) / _F(2.0))
    else:
        new_w, new_h = height / tensor_aspect, height
        horizontal = float((_F(1.0) - _F(tensor_aspect) / _F(roi_aspect)) / _F(2.0))
    return [cx, cy, new_w, new_h, rotation], [horizontal, vertical, horizontal, vertical]


def _matrix(roi: list[float], width: int, height: int) -> list[float]:
    """GetRotatedSubRectToRectTransformMatrix (no flip): tensor-relative -> image-relative points."""
    cx, cy, a, b, rotation = roi
    c, d = math.cos(rotation), math.sin(rotation)
    g, h = 1.0 / width, 1.0 / height
    return [float(_F(v)) for v in (
        a * c * g, -b * d * g, 0.0, (-0.5 * a * c + 0.5 * b * d + cx) * g,
        a * d * h, b * c * h, 0.0, (-0.5 * b * c - 0.5 * a * d + cy) * h,
        0.0, 0.0, a * g, 0.0,
        0.0, 0.0, 0.0, 1.0)]


def roi_to_tensor(pixels: np.ndarray, roi: list[float], size: tuple[int, int], border: int,
                  value_range: tuple[float, float]) -> np.ndarray:
    """The OpenCV converter: ROI [cx, cy, w, h, rotation] (pixels) warped into a float32 [1, H, W, C] tensor."""
    import cv2

    cx, cy, width, height, rotation = roi
    tensor_w, tensor_h = size
    box = cv2.boxPoints(((cx, cy), (width, height), rotation * 180.0 / math.pi))
    corners = np.array([[0, tensor_h], [0, 0], [tensor_w, 0], [tensor_w, tensor_h]], np.float32)
    projection = cv2.getPerspectiveTransform(box.astype(np.float32), corners)
    warped = cv2.warpPerspective(pixels, projection, (tensor_w, tensor_h), flags=cv2.INTER_LINEAR,
                                 borderMode=border, borderValue=(0, 0, 0, 0))
    if warped.ndim == 2:
        warped = warped[..., None]
    if warped.shape[2] == 4:
        warped = warped[..., :3]
    low, high = value_range
    scale = _F((high - low) / 255.0)
    return (warped.astype(np.float32) * scale + _F(low))[np.newaxis]


class PythonImageToTensorCalculator(Calculator):
    """IMAGE [+ NORM_RECT] -> TENSORS, MATRIX, LETTERBOX_PADDING (ImageToTensorCalculatorOptions, CPU, float)."""

    inputs = ("IMAGE", "NORM_RECT")
    outputs = ("TENSORS", "TENSOR", "MATRIX", "LETTERBOX_PADDING")
    input_messages = {"NORM_RECT": "mediapipe.NormalizedRect"}

    def open(self, side_packets: Mapping[str, object]) -> None:
        import cv2

        options = self.options(ImageToTensorCalculatorOptions)
        if not options.HasField("output_tensor_float_range"):
            raise ValueError("only output_tensor_float_range is supported on the Python side")
        self.range = (options.output_tensor_float_range.min, options.output_tensor_float_range.max)
        if not self.range[1] > self.range[0]:
            raise ValueError("Invalid TO range: min >= max.")
        self.size = ((options.output_tensor_width, options.output_tensor_height)
                     if options.HasField("output_tensor_width") and options.HasField("output_tensor_height") else None)
        self.keep_aspect = options.keep_aspect_ratio
        self.border = (cv2.BORDER_CONSTANT if options.border_mode == ImageToTensorCalculatorOptions.BORDER_ZERO
                       else cv2.BORDER_REPLICATE)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        image = inputs.get("IMAGE")
        if image is None:
            return None
        rect: Any = None
        if "NORM_RECT" in self.input_tags:
            rect = inputs.get("NORM_RECT")
            if rect is None or (rect.width == 0 and rect.height == 0):
                return None
        pixels = image_pixels(image)
        height, width = pixels.shape[:2]
        roi = ([rect.x_center * width, rect.y_center * height, rect.width * width, rect.height * height,
                rect.rotation] if rect is not None else [0.5 * width, 0.5 * height, float(width), float(height), 0.0])
        size = self.size or (width, height)
        roi, padding = _pad_roi(size[0], size[1], self.keep_aspect, roi)
        out: dict[str, object] = {}
        if "LETTERBOX_PADDING" in self.output_tags:
            out["LETTERBOX_PADDING"] = padding
        if "MATRIX" in self.output_tags:
            out["MATRIX"] = _matrix(roi, width, height)
        tensor = roi_to_tensor(pixels, roi, size, self.border, self.range)
        out["TENSORS" if "TENSORS" in self.output_tags else "TENSOR"] = [tensor] if "TENSORS" in self.output_tags \
            else tensor
        return out


def ssd_anchors(options: SsdAnchorsCalculatorOptions) -> np.ndarray:
    """SsdAnchorsCalculator's anchors (not multiscale) as an [N, 4] float32 array: x_center, y_center, w, h."""
    if options.multiscale_anchor_generation:
        raise ValueError("multiscale_anchor_generation is not supported here")
    if not len(options.feature_map_height) and not len(options.strides):
        raise ValueError("Both feature map shape and strides are missing. Must provide either one.")
    strides = list(options.strides)

    def scale_of(index: int, count: int) -> float:
        if count == 1:
            return (options.min_scale + options.max_scale) * 0.5
        return options.min_scale + (options.max_scale - options.min_scale) * index / (count - 1.0)

    anchors: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < options.num_layers:
        ratios: list[float] = []
        scales: list[float] = []
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = scale_of(last, len(strides))
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(options.aspect_ratios)
                scales += [scale] * len(options.aspect_ratios)
                if options.interpolated_scale_aspect_ratio > 0.0:
                    following = 1.0 if last == len(strides) - 1 else scale_of(last + 1, len(strides))
                    scales.append(math.sqrt(scale * following))
                    ratios.append(options.interpolated_scale_aspect_ratio)
            last += 1
        sizes = [(s * math.sqrt(r), s / math.sqrt(r)) for s, r in zip(scales, ratios, strict=True)]
        if len(options.feature_map_height):
            rows, cols = options.feature_map_height[layer], options.feature_map_width[layer]
        else:
            rows = math.ceil(options.input_size_height / strides[layer])
            cols = math.ceil(options.input_size_width / strides[layer])
        for y in range(rows):
            for x in range(cols):
                cx, cy = (x + options.anchor_offset_x) / cols, (y + options.anchor_offset_y) / rows
                for w, h in sizes:
                    anchors.append((cx, cy, 1.0, 1.0) if options.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.array(anchors, np.float32).reshape(-1, 4)


def tensor_array(value: object) -> np.ndarray:
    """A tensor on this side as a float32 array: a `TensorValue` (OpenVINOInferenceCalculator's TENSORS) or array."""
    if isinstance(value, TensorValue):
        return np.asarray(value.array(), np.float32)
    return np.asarray(value, np.float32)


def _detection(box: np.ndarray, scores: list[float], labels: list[int], keypoints: np.ndarray,
               flip: bool) -> detection_pb2.Detection:
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    detection = detection_pb2.Detection(score=scores, label_id=labels)
    location = detection.location_data
    location.format = location_data_pb2.LocationData.RELATIVE_BOUNDING_BOX
    bounds = location.relative_bounding_box
    bounds.xmin, bounds.ymin = xmin, 1.0 - ymax if flip else ymin
    bounds.width, bounds.height = float(_F(xmax) - _F(xmin)), float(_F(ymax) - _F(ymin))
    for x, y in keypoints:
        location.relative_keypoints.add(x=float(x), y=1.0 - float(y) if flip else float(y))
    return detection


class PythonTensorsToDetectionsCalculator(Calculator):
    """TENSORS [boxes, scores] -> DETECTIONS (TensorsToDetectionsCalculatorOptions + SsdAnchorsCalculatorOptions)."""

    inputs = ("TENSORS",)
    outputs = ("DETECTIONS",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.settings = self.options(TensorsToDetectionsCalculatorOptions)
        if not options.HasField("num_classes") or not options.HasField("num_coords"):
            raise ValueError("TensorsToDetectionsCalculatorOptions needs num_classes and num_coords")
        if options.num_values_per_keypoint != 2 or options.num_keypoints * 2 + 4 != options.num_coords:
            raise ValueError("num_coords must be 4 + 2 * num_keypoints (num_values_per_keypoint 2)")
        if options.max_results == 0:
            raise ValueError("The maximum number of the top-scored detection results must be non-zero.")
        if options.HasField("tensor_mapping") or options.HasField("box_boundaries_indices"):
            raise ValueError("tensor_mapping and box_boundaries_indices are not supported here")
        if not has_node_options(self.node, SsdAnchorsCalculatorOptions):
            raise ValueError("No anchor data available: the node needs SsdAnchorsCalculatorOptions here")
        self.anchors = ssd_anchors(self.options(SsdAnchorsCalculatorOptions))
        formats = TensorsToDetectionsCalculatorOptions
        box_format = options.box_format
        if box_format == formats.UNSPECIFIED:
            box_format = formats.XYWH if options.reverse_output_order else formats.YXHW
        self.box_format = box_format
        if options.allow_classes:
            self.allowed = lambda index: index in set(options.allow_classes)
        else:
            self.allowed = lambda index: index not in set(options.ignore_classes)

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DecodeBoxes: [N, 4] ymin, xmin, ymax, xmax and [N, K, 2] keypoints (x, y), tensor-relative."""
        options, anchors, formats = self.settings, self.anchors, TensorsToDetectionsCalculatorOptions
        box = raw[:, options.box_coord_offset:options.box_coord_offset + 4]
        if self.box_format == formats.XYWH:
            x, y, w, h = box.T
        elif self.box_format == formats.XYXY:
            x, y = (-box[:, 0] + box[:, 2]) / 2, (-box[:, 1] + box[:, 3]) / 2
            w, h = box[:, 2] + box[:, 0], box[:, 3] + box[:, 1]
        else:
            y, x, h, w = box.T
        ax, ay, aw, ah = anchors.T
        x = x / _F(options.x_scale) * aw + ax
        y = y / _F(options.y_scale) * ah + ay
        if options.apply_exponential_on_box_size:
            h, w = np.exp(h / _F(options.h_scale)) * ah, np.exp(w / _F(options.w_scale)) * aw
        else:
            h, w = h / _F(options.h_scale) * ah, w / _F(options.w_scale) * aw
        boxes = np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=1)
        start = options.keypoint_coord_offset
        points = raw[:, start:start + 2 * options.num_keypoints].reshape(len(raw), -1, 2)
        if self.box_format in (formats.UNSPECIFIED, formats.YXHW):
            points = points[..., ::-1]
        points = np.stack([points[..., 0] / _F(options.x_scale) * aw[:, None] + ax[:, None],
                           points[..., 1] / _F(options.y_scale) * ah[:, None] + ay[:, None]], axis=-1)
        return boxes, points

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors: Any = inputs.get("TENSORS")
        if tensors is None:
            return None
        options = self.settings
        if len(tensors) != 2:
            raise ValueError(f"expected 2 tensors (boxes, scores), got {len(tensors)}")
        raw_boxes, raw_scores = tensor_array(tensors[0]), tensor_array(tensors[1])
        count = len(self.anchors)
        if options.num_boxes != count or raw_boxes.size != count * options.num_coords \
                or raw_scores.size != count * options.num_classes:
            raise ValueError(
                f"box tensor {raw_boxes.shape} and score tensor {raw_scores.shape} do not fit num_boxes "
                f"{options.num_boxes} x num_coords {options.num_coords} / num_classes {options.num_classes} "
                f"({count} anchors)")
        boxes, points = self.decode(raw_boxes.reshape(count, options.num_coords))
        scores = raw_scores.reshape(count, options.num_classes)
        if options.sigmoid_score:
            if options.HasField("score_clipping_thresh"):
                scores = np.clip(scores, -options.score_clipping_thresh, options.score_clipping_thresh)
            with np.errstate(over="ignore"):
                scores = (_F(1.0) / (_F(1.0) + np.exp(-scores))).astype(np.float32)
        allowed = [index for index in range(options.num_classes) if self.allowed(index)]
        detections: list[detection_pb2.Detection] = []
        if not allowed:
            return {"DETECTIONS": detections}
        # the first allowed class with the highest score (C++: a strict `<` over the classes in order)
        best = np.asarray(allowed)[np.argmax(scores[:, allowed], axis=1)]
        best_scores = scores[np.arange(count), best]
        keep = np.ones(count, bool)
        if options.HasField("min_score_thresh"):
            keep &= best_scores >= np.float32(options.min_score_thresh)
        width, height = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
        keep &= (width >= 0) & (height >= 0)  # NaN compares false: dropped too
        for i in np.flatnonzero(keep):
            detections.append(_detection(boxes[i], [float(best_scores[i])], [int(best[i])], points[i],
                                         options.flip_vertically))
            if options.max_results > 0 and len(detections) == options.max_results:
                break
        return {"DETECTIONS": detections}
