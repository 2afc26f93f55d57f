"""More of MediaPipe's render-data calculators the 0.10.21 wheel lacks: detections, rects, the face mesh.

OVMS's iris tracking demo draws through the subgraph `IrisRendererCpu`
(expanded by ovms_notebook.framework.subgraphs); besides the landmark and iris
calculators (nodes/render.py, nodes/iris.py) it needs these, run on the Python
side with MediaPipe's names, tags, options protos (the wheel ships their `_pb2`)
and semantics at v0.10.21:

* `DetectionsToRenderDataCalculator` (calculators/util): DETECTION / DETECTIONS /
  DETECTION_LIST -> RENDER_DATA, per detection its label line(s), feature tag,
  box (LOCATION) and relative keypoints;
* `RectToRenderDataCalculator` (calculators/util): one of NORM_RECT, RECT,
  NORM_RECTS, RECTS -> RENDER_DATA, a rectangle or oval per rect;
* `FaceLandmarksToRenderDataCalculator` (graphs/face_mesh/calculators):
  LandmarksToRenderDataCalculator with the face mesh's connections built in.

The drawing itself stays native (the wheel's AnnotationOverlayCalculator).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mediapipe.calculators.util.detections_to_render_data_calculator_pb2 import (
    DetectionsToRenderDataCalculatorOptions as DetectionsOptions,
)
from mediapipe.calculators.util.rect_to_render_data_calculator_pb2 import (
    RectToRenderDataCalculatorOptions as RectOptions,
)
from mediapipe.framework.formats import location_data_pb2
from mediapipe.util import render_data_pb2

from ovms_notebook.calculators.render import LandmarksOptions, LandmarksToRenderDataCalculator
from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "FACE_LANDMARK_CONNECTIONS",
    "DetectionsOptions",
    "DetectionsToRenderDataCalculator",
    "FaceLandmarksToRenderDataCalculator",
    "RectOptions",
    "RectToRenderDataCalculator",
    "detections_to_render_data",
    "rects_to_render_data",
]

_LABEL_TO_BOX_RATIO = 0.1
_BOX = location_data_pb2.LocationData.BOUNDING_BOX
_RELATIVE_BOX = location_data_pb2.LocationData.RELATIVE_BOUNDING_BOX


def _styled(data: render_data_pb2.RenderData, options: object, scene_tag: str) -> render_data_pb2.RenderAnnotation:
    annotation = data.render_annotations.add(scene_tag=scene_tag, thickness=options.thickness)  # type: ignore[attr-defined]
    annotation.color.r, annotation.color.g, annotation.color.b = (options.color.r, options.color.g,  # type: ignore[attr-defined]
                                                                  options.color.b)  # type: ignore[attr-defined]
    return annotation


def _number(value: float) -> str:
    """absl::StrCat of a float: six significant digits, no trailing zeros (like %g)."""
    return f"{value:g}"


def _box(detection: object) -> tuple[bool, float, float, float, float]:
    """(normalized, xmin, ymin, width, height) of a detection's (relative) bounding box."""
    location = detection.location_data  # type: ignore[attr-defined]
    if location.format == _BOX:
        box = location.bounding_box
        return False, box.xmin, box.ymin, box.width, box.height
    box = location.relative_bounding_box
    return True, box.xmin, box.ymin, box.width, box.height


def _text_at(text: object, normalized: bool, left: float, baseline: float) -> None:
    text.normalized = normalized  # type: ignore[attr-defined]
    text.left = max(left, 0.0) if normalized else left  # type: ignore[attr-defined]
    text.baseline = min(baseline, 1.0) if normalized else baseline  # type: ignore[attr-defined]


def _add_detection(data: render_data_pb2.RenderData, detection: object, options: DetectionsOptions) -> None:
    """MediaPipe's AddDetectionToRenderData: labels, feature tag, then the box and keypoints."""
    location = detection.location_data  # type: ignore[attr-defined]
    if location.format not in (_BOX, _RELATIVE_BOX):
        raise ValueError("Only Detection with formats of BOUNDING_BOX or RELATIVE_BOUNDING_BOX are supported.")
    labels, ids, scores = list(detection.label), list(detection.label_id), list(detection.score)  # type: ignore[attr-defined]
    if labels and ids and len(labels) != len(ids):
        raise ValueError("String or integer labels should be of same size. Or only one of them is present.")
    count = max(len(labels), len(ids))
    if len(scores) != count:
        raise ValueError("Number of scores and labels should match for detection.")
    normalized, xmin, ymin, width, height = _box(detection)
    line_height = (options.text.font_height if not normalized
                   else height * min(_LABEL_TO_BOX_RATIO, 1 / (count + 1)))
    delimiter = options.text_delimiter
    rounded = [math.floor(score * 100 + 0.5) / 100 for score in scores]  # std::round, halves away from zero
    scored = [f"{labels[i] if labels else ids[i]}{delimiter}{_number(rounded[i])}{delimiter}" for i in range(count)]
    lines = [f"Id: {detection.detection_id}"] if options.render_detection_id else []  # type: ignore[attr-defined]
    lines += scored if options.one_label_per_line else ["".join(scored)]
    for i, line in enumerate(lines):
        text = _styled(data, options, "LABEL").text
        text.CopyFrom(options.text)
        text.display_text = line
        if normalized:
            text.font_height = line_height * 0.9
        _text_at(text, normalized, xmin, ymin + (i + 1) * line_height)
    tag = _styled(data, options, "FEATURE").text
    tag.display_text = detection.feature_tag  # type: ignore[attr-defined]
    if normalized:
        tag.font_height = line_height * 0.9
    _text_at(tag, normalized, xmin, ymin + height)
    rect = _styled(data, options, "LOCATION").rectangle
    if not (xmin + width < 0.0 or ymin + height < 0.0 or (normalized and (xmin > 1.0 or ymin > 1.0))):
        rect.normalized = normalized
        rect.left, rect.top = (max(xmin, 0.0), max(ymin, 0.0)) if normalized else (xmin, ymin)
        rect.right, rect.bottom = ((min(xmin + width, 1.0), min(ymin + height, 1.0)) if normalized
                                   else (xmin + width, ymin + height))
    if normalized:
        for keypoint in location.relative_keypoints:
            point = _styled(data, options, "KEYPOINT").point
            point.normalized, point.x, point.y = True, keypoint.x, keypoint.y


def detections_to_render_data(detections: list[object],
                              options: DetectionsOptions) -> render_data_pb2.RenderData | None:
    """The RenderData of some detections; None when there are none and `produce_empty_packet` is off."""
    if not detections and not options.produce_empty_packet:
        return None
    data = render_data_pb2.RenderData(scene_class=options.scene_class)
    for detection in detections:
        _add_detection(data, detection, options)
    return data


class DetectionsToRenderDataCalculator(Calculator):
    """DETECTION, DETECTIONS and/or DETECTION_LIST -> RENDER_DATA (DetectionsToRenderDataCalculatorOptions)."""

    inputs = ("DETECTION", "DETECTIONS", "DETECTION_LIST")
    outputs = ("RENDER_DATA",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        if not set(self.input_tags) & {"DETECTION", "DETECTIONS", "DETECTION_LIST"}:
            raise ValueError("None of the input streams are provided.")
        self.settings = self.options(DetectionsOptions)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        found: list[object] = []
        listed = inputs.get("DETECTION_LIST")
        if listed is not None:
            found.extend(listed.detection)  # type: ignore[attr-defined]
        found.extend(inputs.get("DETECTIONS") or [])  # type: ignore[arg-type]
        single = inputs.get("DETECTION")
        if single is not None:
            found.append(single)
        data = detections_to_render_data(found, self.settings)
        return None if data is None else {"RENDER_DATA": data}


def rects_to_render_data(rects: list[object], options: RectOptions, *,
                         normalized: bool) -> render_data_pb2.RenderData:
    """RectToRenderDataCalculator's RenderData: one rectangle (oval, filled...) per rect, as the options say.

    An unrotated rect wholly left of / above the image (or, normalized, right of /
    below it) keeps an annotation with an empty shape, as MediaPipe's SetRect does.
    """
    data = render_data_pb2.RenderData()
    for rect in rects:
        annotation = _styled(data, options, "")
        if options.HasField("top_left_thickness"):
            annotation.rectangle.top_left_thickness = options.top_left_thickness
        if options.oval:
            shape = annotation.filled_oval.oval.rectangle if options.filled else annotation.oval.rectangle
        else:
            shape = annotation.filled_rectangle.rectangle if options.filled else annotation.rectangle
        xmin = rect.x_center - rect.width / 2  # type: ignore[attr-defined]
        ymin = rect.y_center - rect.height / 2  # type: ignore[attr-defined]
        width, height, rotation = rect.width, rect.height, rect.rotation  # type: ignore[attr-defined]
        if rotation == 0.0 and (xmin + width < 0.0 or ymin + height < 0.0
                                or (normalized and (xmin > 1.0 or ymin > 1.0))):
            continue
        shape.normalized = normalized
        shape.left, shape.top, shape.right, shape.bottom = xmin, ymin, xmin + width, ymin + height
        shape.rotation = rotation
    return data


class RectToRenderDataCalculator(Calculator):
    """Exactly one of NORM_RECT, RECT, NORM_RECTS, RECTS -> RENDER_DATA (RectToRenderDataCalculatorOptions)."""

    inputs = ("NORM_RECT", "RECT", "NORM_RECTS", "RECTS")
    outputs = ("RENDER_DATA",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        if len(self.input_tags) != 1:
            raise ValueError("Exactly one of NORM_RECT, RECT, NORM_RECTS or RECTS input stream should be provided.")
        self.key = self.input_tags[0]
        self.settings = self.options(RectOptions)
        if self.settings.HasField("top_left_thickness") and (self.settings.filled or self.settings.oval):
            raise ValueError("top_left_thickness is only supported for an unfilled rectangle")

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        value = inputs.get(self.key)
        rects = [] if value is None else list(value) if self.key.endswith("RECTS") else [value]  # type: ignore[call-overload]
        return {"RENDER_DATA": rects_to_render_data(rects, self.settings, normalized=self.key.startswith("NORM"))}


#: The face mesh connections FaceLandmarksToRenderDataCalculator draws (lips, eyes, brows, irises, face oval).
FACE_LANDMARK_CONNECTIONS: tuple[int, ...] = (
    61, 146, 146, 91, 91, 181, 181, 84, 84, 17, 17, 314, 314, 405, 405, 321,
    321, 375, 375, 291, 61, 185, 185, 40, 40, 39, 39, 37, 37, 0, 0, 267, 267,
    269, 269, 270, 270, 409, 409, 291, 78, 95, 95, 88, 88, 178, 178, 87, 87, 14,
    14, 317, 317, 402, 402, 318, 318, 324, 324, 308, 78, 191, 191, 80, 80, 81,
    81, 82, 82, 13, 13, 312, 312, 311, 311, 310, 310, 415, 415, 308,
    33, 7, 7, 163, 163, 144, 144, 145, 145, 153, 153, 154, 154, 155, 155, 133,
    33, 246, 246, 161, 161, 160, 160, 159, 159, 158, 158, 157, 157, 173, 173, 133,
    46, 53, 53, 52, 52, 65, 65, 55, 70, 63, 63, 105, 105, 66, 66, 107,
    474, 475, 475, 476, 476, 477, 477, 474,
    263, 249, 249, 390, 390, 373, 373, 374, 374, 380, 380, 381, 381, 382, 382,
    362, 263, 466, 466, 388, 388, 387, 387, 386, 386, 385, 385, 384, 384, 398, 398, 362,
    276, 283, 283, 282, 282, 295, 295, 285, 300, 293, 293, 334, 334, 296, 296, 336,
    469, 470, 470, 471, 471, 472, 472, 469,
    10, 338, 338, 297, 297, 332, 332, 284, 284, 251, 251, 389, 389, 356, 356,
    454, 454, 323, 323, 361, 361, 288, 288, 397, 397, 365, 365, 379, 379, 378,
    378, 400, 400, 377, 377, 152, 152, 148, 148, 176, 176, 149, 149, 150, 150,
    136, 136, 172, 172, 58, 58, 132, 132, 93, 93, 234, 234, 127, 127, 162, 162,
    21, 21, 54, 54, 103, 103, 67, 67, 109, 109, 10,
)

class FaceLandmarksToRenderDataCalculator(LandmarksToRenderDataCalculator):
    """LandmarksToRenderDataCalculator drawing the face mesh's connections (the options' own are replaced).

    Connections to the iris points (468-477) are skipped on a 468-point mesh, as in MediaPipe.
    """

    def open(self, side_packets: Mapping[str, object]) -> None:
        super().open(side_packets)
        settings = LandmarksOptions()
        settings.CopyFrom(self.settings)
        del settings.landmark_connections[:]
        settings.landmark_connections.extend(FACE_LANDMARK_CONNECTIONS)
        self.settings = settings

