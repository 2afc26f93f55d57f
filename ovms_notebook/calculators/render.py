"""MediaPipe's landmark-rendering calculators the 0.10.21 wheel lacks, as Python calculators.

OVMS's holistic tracking demo draws its landmarks with the subgraph
`HolisticTrackingToRenderData` (expanded by ovms_notebook.framework.subgraphs).
Most of its nodes are in the wheel (splits, merges, `ConcatenateRenderDataVectorCalculator`,
`AnnotationOverlayCalculator`, which does the drawing natively); these are not,
so they run on the Python side, with MediaPipe's names, tags, options protos and
semantics (mediapipe/calculators/util/*.cc and core/concatenate_proto_list_calculator.cc
at v0.10.21):

* `LandmarksToRenderDataCalculator`: (NORM_)LANDMARKS [+ RENDER_SCALE] -> RENDER_DATA,
  a point per visible landmark and a line (or depth-coloured gradient line)
  per visible connection, thickness scaled by RENDER_SCALE;
* `RectToRenderScaleCalculator`: NORM_RECT + IMAGE_SIZE -> RENDER_SCALE;
* `SetLandmarkVisibilityCalculator`: NORM_LANDMARKS (one) + VISIBILITY -> NORM_LANDMARKS;
* `ConcatenateNormalizedLandmarkListCalculator` / `ConcatenateLandmarkListCalculator`.

Each emits nothing where MediaPipe's emits nothing, so timestamp bounds (not
packets) settle the native nodes downstream, as in MediaPipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mediapipe.calculators.core import concatenate_vector_calculator_pb2
from mediapipe.calculators.util import rect_to_render_scale_calculator_pb2
from mediapipe.calculators.util.landmarks_to_render_data_calculator_pb2 import (
    LandmarksToRenderDataCalculatorOptions as LandmarksOptions,
)
from mediapipe.framework.formats import landmark_pb2
from mediapipe.util import color_pb2, render_data_pb2

from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "ConcatenateLandmarkListCalculator",
    "ConcatenateNormalizedLandmarkListCalculator",
    "LandmarksToRenderDataCalculator",
    "RectToRenderScaleCalculator",
    "SetLandmarkVisibilityCalculator",
    "landmarks_to_render_data",
    "render_scale",
]

RenderScaleOptions = rect_to_render_scale_calculator_pb2.RectToRenderScaleCalculatorOptions
_LANDMARK_LABEL = "KEYPOINT"


def _shown(points: Sequence[Any], options: LandmarksOptions) -> list[bool]:
    """MediaPipe's IsLandmarkVisibleAndPresent for each point: only a *set* visibility/presence below its
    threshold hides (the options read once: this runs for every landmark of every frame)."""
    by_visibility, visibility = options.utilize_visibility, options.visibility_threshold
    by_presence, presence = options.utilize_presence, options.presence_threshold
    if not (by_visibility or by_presence):
        return [True] * len(points)
    return [
        not (by_visibility and p.HasField("visibility") and p.visibility < visibility)
        and not (by_presence and p.HasField("presence") and p.presence < presence)
        for p in points
    ]


def _remap(x: float, low: float, high: float, scale: float) -> float:
    return (x - low) / (high - low + 1e-6) * scale


def _mix(color1: color_pb2.Color, color2: color_pb2.Color, weight: float) -> color_pb2.Color:
    return color_pb2.Color(r=int(color1.r * weight + color2.r * (1.0 - weight)),
                           g=int(color1.g * weight + color2.g * (1.0 - weight)),
                           b=int(color1.b * weight + color2.b * (1.0 - weight)))


def landmarks_to_render_data(landmarks: object, options: LandmarksOptions, scale: float | None = None,
                             *, normalized: bool = True) -> render_data_pb2.RenderData:
    """The RenderData MediaPipe's LandmarksToRenderDataCalculator makes of one landmark list.

    Connections first (lines in `connection_color`, or gradient lines by depth when
    `visualize_landmark_depth` and the z values differ), then one point per landmark
    (`landmark_color`, scene tag KEYPOINT), all `thickness` * `scale` thick, hidden
    landmarks (visibility/presence below the thresholds, when used) skipped.
    """
    if len(options.landmark_connections) % 2:
        raise ValueError("Number of entries in landmark connections must be a multiple of 2")
    points = list(landmarks.landmark)  # type: ignore[attr-defined]
    thickness = options.thickness * (scale if scale is not None else 1.0)
    depth = options.visualize_landmark_depth
    z_min = z_max = 0.0
    if depth and points:
        z_min, z_max = min(p.z for p in points), max(p.z for p in points)
    depth = depth and (z_max - z_min) > 1e-3
    min_color = options.min_depth_line_color if options.HasField("min_depth_line_color") else color_pb2.Color()
    max_color = (options.max_depth_line_color if options.HasField("max_depth_line_color")
                 else color_pb2.Color(r=255, g=255, b=255))
    data = render_data_pb2.RenderData()
    connections = list(options.landmark_connections)
    shown = _shown(points, options)
    for i in range(0, len(connections), 2):
        start, end = connections[i], connections[i + 1]
        if start >= len(points) or end >= len(points):
            continue
        if not (shown[start] and shown[end]):
            continue
        a, b = points[start], points[end]
        annotation = data.render_annotations.add()
        if depth:
            line = annotation.gradient_line
            line.color1.CopyFrom(_mix(min_color, max_color, _remap(a.z, z_min, z_max, 1.0)))
            line.color2.CopyFrom(_mix(min_color, max_color, _remap(b.z, z_min, z_max, 1.0)))
        else:
            line = annotation.line
            annotation.color.CopyFrom(options.connection_color)
        line.x_start, line.y_start, line.x_end, line.y_end = a.x, a.y, b.x, b.y
        line.normalized = normalized
        annotation.thickness = thickness
    if options.render_landmarks:
        for point, visible in zip(points, shown, strict=True):
            if not visible:
                continue
            annotation = data.render_annotations.add(scene_tag=_LANDMARK_LABEL, thickness=thickness)
            annotation.color.CopyFrom(options.landmark_color)
            if depth:
                value = 255 - int(_remap(point.z, z_min, z_max, 255))
                annotation.color.CopyFrom(color_pb2.Color(r=value, g=value, b=value))
                spread = options.max_depth_circle_thickness - options.min_depth_circle_thickness
                annotation.thickness = int(options.min_depth_circle_thickness
                                           + (1.0 - _remap(point.z, z_min, z_max, 1.0)) * spread)
            annotation.point.normalized = normalized
            annotation.point.x, annotation.point.y = point.x, point.y
    return data


def render_scale(rect: object | None, image_size: Sequence[int], multiplier: float) -> float:
    """RectToRenderScaleCalculator's value: the rect's longer side in pixels times `multiplier`
    (just `multiplier` when there is no rect at this timestamp)."""
    if rect is None:
        return multiplier
    width, height = image_size
    return max(rect.width * width, rect.height * height) * multiplier  # type: ignore[attr-defined]


class LandmarksToRenderDataCalculator(Calculator):
    """LANDMARKS or NORM_LANDMARKS [+ RENDER_SCALE] -> RENDER_DATA (LandmarksToRenderDataCalculatorOptions)."""

    inputs = ("LANDMARKS", "NORM_LANDMARKS", "RENDER_SCALE")
    outputs = ("RENDER_DATA",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        has = set(self.input_tags)
        if not has & {"LANDMARKS", "NORM_LANDMARKS"}:
            raise ValueError("None of the input streams are provided.")
        if {"LANDMARKS", "NORM_LANDMARKS"} <= has:
            raise ValueError("Can only one type of landmark can be taken. Either absolute or normalized landmarks.")
        self.key = "NORM_LANDMARKS" if "NORM_LANDMARKS" in has else "LANDMARKS"
        self.settings = self.options(LandmarksOptions)
        if len(self.settings.landmark_connections) % 2:
            raise ValueError("Number of entries in landmark connections must be a multiple of 2")

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        landmarks = inputs.get(self.key)
        if landmarks is None:  # MediaPipe: no landmarks, no packet at this timestamp
            return None
        scale = inputs.get("RENDER_SCALE")
        return {"RENDER_DATA": landmarks_to_render_data(
            landmarks, self.settings, float(scale) if scale is not None else None,  # type: ignore[arg-type]
            normalized=self.key == "NORM_LANDMARKS")}


class RectToRenderScaleCalculator(Calculator):
    """NORM_RECT + IMAGE_SIZE -> RENDER_SCALE (float), as MediaPipe's (RectToRenderScaleCalculatorOptions)."""

    inputs = ("NORM_RECT", "IMAGE_SIZE")
    outputs = ("RENDER_SCALE",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.settings = self.options(RenderScaleOptions)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        rect = inputs.get("NORM_RECT")
        size = inputs.get("IMAGE_SIZE")
        if rect is not None and size is None:
            raise ValueError(f"IMAGE_SIZE has no packet at {timestamp}, needed with NORM_RECT")
        return {"RENDER_SCALE": render_scale(rect, size, self.settings.multiplier)}  # type: ignore[arg-type]


class SetLandmarkVisibilityCalculator(Calculator):
    """NORM_LANDMARKS (exactly one landmark) + VISIBILITY (float) -> that landmark with the visibility set."""

    inputs = ("NORM_LANDMARKS", "VISIBILITY")
    outputs = ("NORM_LANDMARKS",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        landmarks, visibility = inputs.get("NORM_LANDMARKS"), inputs.get("VISIBILITY")
        if landmarks is None or visibility is None:
            return None
        if len(landmarks.landmark) != 1:  # type: ignore[attr-defined]
            raise ValueError(f"expected one landmark, got {len(landmarks.landmark)}")  # type: ignore[attr-defined]
        out = landmark_pb2.NormalizedLandmarkList()
        landmark = out.landmark.add()
        landmark.CopyFrom(landmarks.landmark[0])  # type: ignore[attr-defined]
        landmark.visibility = float(visibility)  # type: ignore[arg-type]
        return {"NORM_LANDMARKS": out}


class _ConcatenateLists(Calculator):
    """Concatenates the landmark lists present at a timestamp (ConcatenateVectorCalculatorOptions)."""

    inputs = (":*",)
    outputs = (":0",)
    list_type: type = landmark_pb2.NormalizedLandmarkList

    def open(self, side_packets: Mapping[str, object]) -> None:
        if not self.input_tags:
            raise ValueError("at least one input stream is needed")
        options = self.options(concatenate_vector_calculator_pb2.ConcatenateVectorCalculatorOptions)
        self.all_present = options.only_emit_if_all_present

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        present = [inputs.get(key) for key in self.input_tags]
        if self.all_present and any(item is None for item in present):
            return None
        out = self.list_type()
        for item in present:
            if item is not None:
                out.landmark.extend(item.landmark)  # type: ignore[attr-defined]
        return {":0": out}


class ConcatenateNormalizedLandmarkListCalculator(_ConcatenateLists):
    """Untagged NormalizedLandmarkList inputs -> one NormalizedLandmarkList, in input order."""

    list_type = landmark_pb2.NormalizedLandmarkList


class ConcatenateLandmarkListCalculator(_ConcatenateLists):
    """Untagged LandmarkList inputs -> one LandmarkList, in input order."""

    list_type = landmark_pb2.LandmarkList
