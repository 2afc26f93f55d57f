"""The rest of MediaPipe's pose landmark subgraph around an inference on the Python side.

`PoseLandmarkByRoiCpu`, expanded with the fork's rewrite (ovms_notebook.framework.ovms_fork),
infers five tensors (landmarks, pose flag, segmentation, heatmap, world
landmarks) on the `pose_landmark_full` model entry. Its nested subgraphs
`TensorsToPoseLandmarksAndSegmentation` and
`PoseLandmarksAndSegmentationInverseProjection` refine the landmarks on the
heatmap, turn the segmentation tensor into a mask and warp that mask back onto
the image with the inverse of the crop's matrix. Those nodes read tensors or the
`std::array<float, 16>` matrix, which cannot cross to native nodes, so they run
here as Python twins with MediaPipe v0.10.21's CPU semantics (calculators/util/
refine_landmarks_from_heatmap_calculator.cc and inverse_matrix_calculator.cc,
calculators/tensor/tensors_to_segmentation_calculator.cc with its OpenCV
converter, calculators/image/warp_affine_calculator.cc with
affine_transformation_runner_opencv.cc):

* `PythonRefineLandmarksFromHeatmapCalculator`: NORM_LANDMARKS + TENSORS (an
  HWC heatmap, a channel per landmark) -> NORM_LANDMARKS, each landmark moved to
  the sigmoid-weighted mean of the kernel around it when the kernel's peak is
  confident enough;
* `PythonTensorsToSegmentationCalculator`: TENSORS or TENSOR [+ OUTPUT_SIZE]
  -> MASK, a `mediapipe::Image` of format VEC32F1 (NONE, SIGMOID or SOFTMAX
  activation, bilinear resize to the output size);
* `PythonInverseMatrixCalculator`: MATRIX (16 floats, row-major) -> its inverse;
* `PythonWarpAffineCalculator`: IMAGE + MATRIX + OUTPUT_SIZE -> IMAGE, OpenCV's
  affine warp with the matrix read as output-relative -> input-relative points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mediapipe as mp
import numpy as np
from mediapipe.calculators.image.warp_affine_calculator_pb2 import WarpAffineCalculatorOptions
from mediapipe.calculators.tensor.tensors_to_segmentation_calculator_pb2 import TensorsToSegmentationCalculatorOptions
from mediapipe.calculators.util.refine_landmarks_from_heatmap_calculator_pb2 import (
    RefineLandmarksFromHeatmapCalculatorOptions,
)
from mediapipe.framework.formats import landmark_pb2

from ovms_notebook.calculators.tensors import pixels_of, tensor_array
from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "PythonInverseMatrixCalculator",
    "PythonRefineLandmarksFromHeatmapCalculator",
    "PythonTensorsToSegmentationCalculator",
    "PythonWarpAffineCalculator",
    "refine_from_heatmap",
]

_F = np.float32


def _sigmoid(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # inf for very negative values: their sigmoid is 0
        return (_F(1.0) / (_F(1.0) + np.exp(-values.astype(_F)))).astype(_F)


def _hwc(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    """(height, width, channels) of an HWC or BHWC (batch 1) tensor shape, as MediaPipe's GetHwcFromDims."""
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 4:
        if shape[0] != 1:
            raise ValueError(f"{what}: expected batch 1 for a BHWC tensor, got shape {list(shape)}")
        return shape[1], shape[2], shape[3]
    raise ValueError(f"{what}: expected an HWC or BHWC tensor, got shape {list(shape)}")


def refine_from_heatmap(landmarks: landmark_pb2.NormalizedLandmarkList, heatmap: np.ndarray, kernel_size: int,
                        min_confidence: float, refine_presence: bool = False,
                        refine_visibility: bool = False) -> landmark_pb2.NormalizedLandmarkList:
    """`landmarks` refined on `heatmap` (HWC or BHWC, a channel per landmark): RefineLandmarksFromHeatMap."""
    height, width, channels = _hwc(heatmap.shape, "RefineLandmarksFromHeatmapCalculator")
    if len(landmarks.landmark) != channels:
        raise ValueError(f"RefineLandmarksFromHeatmapCalculator: expected a heatmap layer per landmark "
                         f"({len(landmarks.landmark)}), got {channels}")
    heatmap = heatmap.reshape(height, width, channels)
    refined = landmark_pb2.NormalizedLandmarkList()
    refined.CopyFrom(landmarks)
    points = list(refined.landmark)
    if not points:
        return refined
    # every landmark's kernel at once: cells off the heatmap count as zero confidence (C++ clips the kernel)
    xy = np.array([[p.x, p.y] for p in points], _F) * np.array([width, height], _F)
    cols, rows = xy[:, 0].astype(np.int64), xy[:, 1].astype(np.int64)  # C++ float -> int truncates toward 0
    offset = (kernel_size - 1) // 2
    steps = np.arange(-offset, offset + 1)
    window_rows, window_cols = rows[:, None] + steps, cols[:, None] + steps  # (landmarks, window)
    inside = (((window_rows >= 0) & (window_rows < height))[:, :, None]
              & ((window_cols >= 0) & (window_cols < width))[:, None, :])
    cells = heatmap[np.clip(window_rows, 0, height - 1)[:, :, None], np.clip(window_cols, 0, width - 1)[:, None, :],
                    np.arange(len(points))[:, None, None]]
    confidence = np.where(inside, _sigmoid(cells), _F(0.0))  # (landmarks, window, window)
    totals = confidence.sum(axis=(1, 2), dtype=_F)  # C++ sums in float too (in another order: ulps apart)
    weighted_cols = (confidence * window_cols[:, None, :].astype(_F)).sum(axis=(1, 2), dtype=_F)
    weighted_rows = (confidence * window_rows[:, :, None].astype(_F)).sum(axis=(1, 2), dtype=_F)
    peaks = confidence.max(axis=(1, 2), initial=_F(0.0))
    on_map = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)  # outside: kept as it is
    for index, point in enumerate(points):
        total, peak = totals[index], float(peaks[index])
        if not on_map[index]:
            continue
        if peak >= min_confidence and total > 0:
            point.x = float(weighted_cols[index] / _F(width) / total)
            point.y = float(weighted_rows[index] / _F(height) / total)
        if refine_presence and total > 0 and point.HasField("presence"):
            point.presence = min(point.presence, peak)
        if refine_visibility and total > 0 and point.HasField("visibility"):
            point.visibility = min(point.visibility, peak)
    return refined


class PythonRefineLandmarksFromHeatmapCalculator(Calculator):
    """NORM_LANDMARKS + TENSORS (heatmap first) -> NORM_LANDMARKS (RefineLandmarksFromHeatmapCalculatorOptions)."""

    inputs = ("NORM_LANDMARKS", "TENSORS")
    outputs = ("NORM_LANDMARKS",)
    input_messages = {"NORM_LANDMARKS": "mediapipe.NormalizedLandmarkList"}

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.settings = self.options(RefineLandmarksFromHeatmapCalculatorOptions)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        landmarks: Any = inputs.get("NORM_LANDMARKS")
        if landmarks is None:
            return None  # no pose: nothing to refine
        tensors: Any = inputs.get("TENSORS")
        if tensors is None:
            return {"NORM_LANDMARKS": landmarks}  # no heatmap: the landmarks as they came
        if not len(tensors):
            raise ValueError("RefineLandmarksFromHeatmapCalculator: empty tensor list, the first must be a heatmap")
        s = self.settings
        return {"NORM_LANDMARKS": refine_from_heatmap(landmarks, tensor_array(tensors[0]), s.kernel_size,
                                                      s.min_confidence_to_refine, s.refine_presence,
                                                      s.refine_visibility)}


def _image_packet(pixels: np.ndarray) -> mp.Packet:
    """A `mediapipe::Image` packet of `pixels` (float32 -> VEC32F1, uint8 by channel count)."""
    if pixels.dtype == np.float32:
        if pixels.shape[2] != 1:
            raise ValueError(f"a float mask has one channel, got {pixels.shape[2]}")
        return mp.packet_creator.create_image(np.ascontiguousarray(pixels[..., 0]),
                                              image_format=mp.ImageFormat.VEC32F1)
    formats = {1: mp.ImageFormat.GRAY8, 3: mp.ImageFormat.SRGB, 4: mp.ImageFormat.SRGBA}
    if pixels.dtype != np.uint8 or pixels.shape[2] not in formats:
        raise ValueError(f"expected float32 [H, W, 1] or uint8 [H, W, 1|3|4] pixels, got {pixels.dtype} "
                         f"{list(pixels.shape)}")
    data = pixels[..., 0] if pixels.shape[2] == 1 else pixels
    return mp.packet_creator.create_image(np.ascontiguousarray(data), image_format=formats[pixels.shape[2]])


class PythonTensorsToSegmentationCalculator(Calculator):
    """TENSORS (first) or TENSOR [+ OUTPUT_SIZE (width, height)] -> MASK, an Image of format VEC32F1."""

    inputs = ("TENSORS", "TENSOR", "OUTPUT_SIZE")
    outputs = ("MASK",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.settings = self.options(TensorsToSegmentationCalculatorOptions)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        import cv2

        if "TENSORS" in self.input_tags:
            tensors: Any = inputs.get("TENSORS")
            if tensors is None:
                return None
            if not len(tensors):
                raise ValueError("TensorsToSegmentationCalculator: empty tensor list")
            tensor = tensor_array(tensors[0])
        else:
            if inputs.get("TENSOR") is None:
                return None
            tensor = tensor_array(inputs["TENSOR"])
        height, width, channels = _hwc(tensor.shape, "TensorsToSegmentationCalculator")
        values = tensor.reshape(height, width, channels).astype(_F)
        options = TensorsToSegmentationCalculatorOptions
        activation = self.settings.activation
        expected = 2 if activation == options.SOFTMAX else 1
        if channels != expected:
            raise ValueError(f"TensorsToSegmentationCalculator: {options.Activation.Name(activation)} needs a "
                             f"tensor of {expected} channel(s), got {channels}")
        if activation == options.SIGMOID:
            with np.errstate(over="ignore"):  # exp overflows to inf for very negative logits: the mask is 0 there
                exp = np.exp(-values[..., 0]).astype(np.float64)  # float exp, double division, as the C++ converter
            small = (1.0 / (exp + 1.0)).astype(_F)
        elif activation == options.SOFTMAX:
            high, low = values.max(axis=-1), values.min(axis=-1)
            denominator = _F(1.0) + np.exp(low - high)
            small = (np.exp(values[..., self.settings.output_layer_index] - high) / denominator).astype(_F)
        else:
            small = values[..., 0].copy()
        size: Any = inputs.get("OUTPUT_SIZE") if "OUTPUT_SIZE" in self.input_tags else None
        out_w, out_h = (width, height) if size is None else (int(size[0]), int(size[1]))
        if (out_w, out_h) != (width, height):
            small = np.asarray(cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_LINEAR), _F)
        return {"MASK": _image_packet(small[..., None])}


class PythonInverseMatrixCalculator(Calculator):
    """MATRIX (4x4 as 16 floats, row-major) -> MATRIX, its inverse; an error for a singular matrix."""

    inputs = ("MATRIX",)
    outputs = ("MATRIX",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        given: Any = inputs.get("MATRIX")
        if given is None:
            return None
        matrix = np.asarray(given, _F)
        if matrix.size != 16:
            raise ValueError(f"InverseMatrixCalculator: expected 16 floats (a 4x4 matrix), got {matrix.size}")
        matrix = matrix.reshape(4, 4)
        if abs(float(np.linalg.det(matrix.astype(np.float64)))) <= np.finfo(np.float64).eps:
            raise ValueError(f"Inverse matrix cannot be calculated for: {matrix.tolist()}")
        return {"MATRIX": [float(v) for v in np.linalg.inv(matrix).astype(_F).reshape(-1)]}


class PythonWarpAffineCalculator(Calculator):
    """IMAGE + MATRIX (output-relative -> input-relative points) + OUTPUT_SIZE (width, height) -> IMAGE."""

    inputs = ("IMAGE", "MATRIX", "OUTPUT_SIZE")
    outputs = ("IMAGE",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        import cv2

        options = self.options(WarpAffineCalculatorOptions)
        self.border = cv2.BORDER_CONSTANT if options.border_mode == options.BORDER_ZERO else cv2.BORDER_REPLICATE
        self.interpolation = cv2.INTER_CUBIC if options.interpolation == options.INTER_CUBIC else cv2.INTER_LINEAR

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        import cv2

        image, matrix, size = (inputs.get(tag) for tag in ("IMAGE", "MATRIX", "OUTPUT_SIZE"))
        if image is None or matrix is None or size is None:
            return None  # as MediaPipe: nothing unless all three came
        pixels = pixels_of(image)
        out_w, out_h = (int(v) for v in size)  # type: ignore[attr-defined]
        in_h, in_w = pixels.shape[:2]
        transform = np.asarray(matrix, _F).reshape(4, 4)
        scale_src = np.diag(np.array([in_w, in_h, 1, 1], _F))
        normalize_dst = np.diag(np.array([1 / out_w, 1 / out_h, 1, 1], _F))
        absolute = (scale_src @ transform @ normalize_dst).astype(_F)
        affine = absolute[[0, 1]][:, [0, 1, 3]]
        warped = cv2.warpAffine(pixels, affine, (out_w, out_h), flags=self.interpolation | cv2.WARP_INVERSE_MAP,
                                borderMode=self.border, borderValue=(0.0, 0.0, 0.0, 0.0))
        if warped.ndim == 2:
            warped = warped[..., None]
        return {"IMAGE": _image_packet(warped.astype(pixels.dtype, copy=False))}
