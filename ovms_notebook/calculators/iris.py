"""The iris-tracking calculators of mediapipe/graphs/iris_tracking the 0.10.21 wheel lacks, as Python calculators.

OVMS's iris tracking demo (graphs/iris_tracking) names two calculators that
live in MediaPipe's example graph folder, not in its calculator library, so the
wheel never registered them:

* `UpdateFaceLandmarksCalculator`: FACE_LANDMARKS (468) + NEW_EYE_LANDMARKS (142,
  the two eyes' 71 contour landmarks) -> UPDATED_FACE_LANDMARKS, the face mesh
  with its eye region replaced by the iris model's finer contour;
* `IrisToRenderDataCalculator`: IRIS (10 landmarks, both eyes) + IMAGE_SIZE
  [+ LEFT/RIGHT_IRIS_DEPTH_MM] -> RENDER_DATA, an oval per iris (its diameter the
  mean of the iris landmarks' two spans) and its five landmarks as points,
  plus a depth line per eye when a depth is given;
* `IrisToDepthCalculator` (MediaPipe's iris depth graph): IRIS + IMAGE_SIZE with the
  camera's focal length in pixels (FOCAL_LENGTH, or IMAGE_FILE_PROPERTIES side
  packet) -> LEFT/RIGHT_IRIS_DEPTH_MM, the distance at which an 11.8 mm iris looks
  that big, smoothed over frames (weight 0.1 for each new one).

Both follow mediapipe/graphs/iris_tracking/calculators/*.cc at v0.10.21. The
wheel ships no `IrisToRenderDataCalculatorOptions` module, so the message is
built here from the .proto's fields (same package, names, numbers, defaults and
extension number) and added to protobuf's default pool on import: the demo's
`node_options` then parse, and `Calculator.options` reads them like any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mediapipe.framework import calculator_options_pb2  # noqa: F401  (the pool needs CalculatorOptions)
from mediapipe.framework.formats import landmark_pb2
from mediapipe.util import color_pb2, render_data_pb2  # noqa: F401  (the pool needs Color)

from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "EYE_LANDMARK_INDICES",
    "IrisOptions",
    "IrisToDepthCalculator",
    "IrisToRenderDataCalculator",
    "UpdateFaceLandmarksCalculator",
    "iris_to_render_data",
    "update_face_landmarks",
]

_PROTO = "mediapipe/graphs/iris_tracking/calculators/iris_to_render_data_calculator.proto"
_EXTENSION = 289530040
_NAME = "mediapipe.IrisToRenderDataCalculatorOptions"


def _iris_options_class() -> type:
    """IrisToRenderDataCalculatorOptions as in MediaPipe's .proto (added to the default pool once)."""
    pool = descriptor_pool.Default()
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(_NAME))
    except KeyError:
        pass
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name=_PROTO, package="mediapipe", syntax="proto2",
        dependency=["mediapipe/framework/calculator_options.proto", "mediapipe/util/color.proto"])
    message = proto.message_type.add(name="IrisToRenderDataCalculatorOptions")
    optional = F.LABEL_OPTIONAL
    for name, number, kind, default in (
        ("oval_color", 1, F.TYPE_MESSAGE, None), ("landmark_color", 9, F.TYPE_MESSAGE, None),
        ("oval_thickness", 2, F.TYPE_DOUBLE, "1"), ("landmark_thickness", 10, F.TYPE_DOUBLE, "1"),
        ("font_height_px", 3, F.TYPE_INT32, "50"), ("horizontal_offset_px", 7, F.TYPE_INT32, "0"),
        ("vertical_offset_px", 8, F.TYPE_INT32, "0"), ("font_face", 5, F.TYPE_INT32, "0"),
        ("location", 6, F.TYPE_ENUM, "TOP_LEFT"),
    ):
        field = message.field.add(name=name, number=number, type=kind, label=optional)
        if kind == F.TYPE_MESSAGE:
            field.type_name = ".mediapipe.Color"
        elif kind == F.TYPE_ENUM:
            field.type_name = ".mediapipe.IrisToRenderDataCalculatorOptions.Location"
        if default is not None:
            field.default_value = default
    location = message.enum_type.add(name="Location")
    location.value.add(name="TOP_LEFT", number=0)
    location.value.add(name="BOTTOM_LEFT", number=1)
    message.extension.add(name="ext", number=_EXTENSION, label=optional, type=F.TYPE_MESSAGE,
                          type_name=".mediapipe.IrisToRenderDataCalculatorOptions",
                          extendee=".mediapipe.CalculatorOptions")
    pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(_NAME))
    cls.ext = pool.FindExtensionByName("mediapipe.IrisToRenderDataCalculatorOptions.ext")  # as a _pb2 module sets it
    return cls


IrisOptions = _iris_options_class()

#: Where each of the 142 refined eye landmarks (left eye's 71, then the right's) goes in the 468-point face mesh.
EYE_LANDMARK_INDICES: tuple[int, ...] = (
    # left eye: lower contour, upper contour, halo x2 lower/upper, halo x3 lower/upper, x4 (brow inner), x5
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245, 156, 70, 63, 105, 66, 107, 55, 193,
    # right eye, same order
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417,
)
_FACE_LANDMARKS = 468
_FONT_HEIGHT_SCALE = 1.5


def update_face_landmarks(face: object, eyes: object) -> landmark_pb2.NormalizedLandmarkList:
    """The face mesh with the eye landmarks' x, y, z and visibility replaced by the refined ones."""
    if len(face.landmark) != _FACE_LANDMARKS:  # type: ignore[attr-defined]
        raise ValueError(f"Wrong number of face landmarks: {len(face.landmark)}, "  # type: ignore[attr-defined]
                         f"expected {_FACE_LANDMARKS}")
    if len(eyes.landmark) != len(EYE_LANDMARK_INDICES):  # type: ignore[attr-defined]
        raise ValueError(f"Wrong number of eye landmarks: {len(eyes.landmark)}, "  # type: ignore[attr-defined]
                         f"expected {len(EYE_LANDMARK_INDICES)}")
    out = landmark_pb2.NormalizedLandmarkList()
    out.CopyFrom(face)
    for refined, index in zip(eyes.landmark, EYE_LANDMARK_INDICES, strict=True):  # type: ignore[attr-defined]
        target = out.landmark[index]
        target.x, target.y, target.z, target.visibility = refined.x, refined.y, refined.z, refined.visibility
    return out


class UpdateFaceLandmarksCalculator(Calculator):
    """FACE_LANDMARKS + NEW_EYE_LANDMARKS -> UPDATED_FACE_LANDMARKS; nothing unless both have a packet."""

    inputs = ("FACE_LANDMARKS", "NEW_EYE_LANDMARKS")
    outputs = ("UPDATED_FACE_LANDMARKS",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        face, eyes = inputs.get("FACE_LANDMARKS"), inputs.get("NEW_EYE_LANDMARKS")
        if face is None or eyes is None:
            return None
        return {"UPDATED_FACE_LANDMARKS": update_face_landmarks(face, eyes)}


def _iris_diameter(iris: Sequence[object], size: Sequence[int]) -> float:
    """Mean of the vertical (1-2) and horizontal (3-4) spans of one eye's iris landmarks, in pixels."""
    width, height = size

    def span(a: object, b: object) -> float:
        return math.hypot((a.x - b.x) * width, (a.y - b.y) * height)  # type: ignore[attr-defined]

    return (span(iris[1], iris[2]) + span(iris[3], iris[4])) / 2.0


def _color(annotation: object, color: object) -> None:
    annotation.color.r, annotation.color.g, annotation.color.b = color.r, color.g, color.b  # type: ignore[attr-defined]


def iris_to_render_data(iris: object, size: Sequence[int], options: object,
                        depths_mm: Sequence[float | None] = (None, None)) -> render_data_pb2.RenderData:
    """IrisToRenderDataCalculator's RenderData for 10 iris landmarks (left eye's 5, then the right's).

    Per eye: an OVAL-tagged oval centred on the iris centre, of the iris diameter,
    in `oval_color`/`oval_thickness`; then the 5 landmarks as points in
    `landmark_color`/`landmark_thickness` (MediaPipe's order: 0, 2, 4, 3, 1).
    Then one red text line per finite depth given ("Left : :<cm> cm").
    """
    points = list(iris.landmark)  # type: ignore[attr-defined]
    if len(points) != 10:
        raise ValueError(f"Wrong number of iris landmarks: {len(points)}, expected 10")
    width, height = size
    data = render_data_pb2.RenderData()
    for eye in ([points[i] for i in (0, 2, 4, 3, 1)], [points[i] for i in (5, 7, 9, 6, 8)]):
        radius = _iris_diameter(eye, size) / 2.0
        oval = data.render_annotations.add(scene_tag="OVAL", thickness=options.oval_thickness)  # type: ignore[attr-defined]
        _color(oval, options.oval_color)  # type: ignore[attr-defined]
        rect = oval.oval.rectangle
        centre = eye[0]
        rect.top, rect.bottom = centre.y - radius / height, centre.y + radius / height
        rect.left, rect.right = centre.x - radius / width, centre.x + radius / width
        rect.normalized = True
        for landmark in eye:
            point = data.render_annotations.add(thickness=options.landmark_thickness)  # type: ignore[attr-defined]
            _color(point, options.landmark_color)  # type: ignore[attr-defined]
            point.point.normalized = True
            point.point.x, point.point.y = landmark.x, landmark.y
    lines = [f"{side} : :{_round_half_away(depth / 10):g} cm"
             for side, depth in zip(("Left", "Right"), depths_mm, strict=True)
             if depth is not None and not math.isinf(depth)]
    label_height = math.ceil(options.font_height_px * _FONT_HEIGHT_SCALE)  # type: ignore[attr-defined]
    baseline = options.vertical_offset_px  # type: ignore[attr-defined]
    baseline += label_height if options.location == 0 else height - label_height * len(lines)  # type: ignore[attr-defined]
    for i, line in enumerate(lines):
        label = data.render_annotations.add(thickness=5)
        label.color.r = 255
        text = label.text
        text.display_text, text.font_height = line, options.font_height_px  # type: ignore[attr-defined]
        text.left, text.baseline = options.horizontal_offset_px, baseline + i * label_height  # type: ignore[attr-defined]
        text.font_face = options.font_face  # type: ignore[attr-defined]
    return data


def _round_half_away(value: float) -> float:
    """C's std::round (halves away from zero), unlike Python's banker's round."""
    return math.copysign(math.floor(abs(value) + 0.5), value)


class IrisToRenderDataCalculator(Calculator):
    """IRIS + IMAGE_SIZE [+ LEFT/RIGHT_IRIS_DEPTH_MM] -> RENDER_DATA (IrisToRenderDataCalculatorOptions)."""

    inputs = ("IRIS", "IMAGE_SIZE", "LEFT_IRIS_DEPTH_MM", "RIGHT_IRIS_DEPTH_MM")
    outputs = ("RENDER_DATA",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.settings: Any = self.options(IrisOptions)  # a class built at import: no static type

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        iris = inputs.get("IRIS")
        if iris is None:
            return None
        size = inputs.get("IMAGE_SIZE")
        if size is None:
            raise ValueError(f"IMAGE_SIZE has no packet at {timestamp}, needed with IRIS")
        depths = (inputs.get("LEFT_IRIS_DEPTH_MM"), inputs.get("RIGHT_IRIS_DEPTH_MM"))
        return {"RENDER_DATA": iris_to_render_data(iris, size, self.settings,  # type: ignore[arg-type]
                                                   [None if d is None else float(d) for d in depths])}  # type: ignore[arg-type]


_IRIS_SIZE_MM = 11.8
_DEPTH_WEIGHT_UPDATE = 0.1
#: IrisToDepthCalculatorOptions' defaults: (center, top, bottom, left, right) of each eye among the 10 landmarks.
_LEFT_IRIS, _RIGHT_IRIS = (0, 2, 4, 3, 1), (5, 7, 9, 6, 8)


def iris_depth_mm(iris: Sequence[object], focal_length: float, size: Sequence[int]) -> float:
    """CalculateDepth for one eye's (center, top, bottom, left, right) landmarks in a (width, height) frame."""
    width, height = size
    centre = iris[0]
    off_axis = math.hypot(width / 2 - centre.x * width, height / 2 - centre.y * height)  # type: ignore[attr-defined]
    diagonal = math.sqrt(focal_length * focal_length + off_axis * off_axis)
    return _IRIS_SIZE_MM * diagonal / _iris_diameter(iris, size)


class IrisToDepthCalculator(Calculator):
    """IRIS + IMAGE_SIZE, focal length from FOCAL_LENGTH or IMAGE_FILE_PROPERTIES -> LEFT/RIGHT_IRIS_DEPTH_MM."""

    inputs = ("IRIS", "IMAGE_SIZE")
    outputs = ("LEFT_IRIS_DEPTH_MM", "RIGHT_IRIS_DEPTH_MM")
    side_packets = ("FOCAL_LENGTH", "IMAGE_FILE_PROPERTIES")

    def open(self, side_packets: Mapping[str, object]) -> None:
        if "FOCAL_LENGTH" in side_packets and "IMAGE_FILE_PROPERTIES" in side_packets:
            raise ValueError("IrisToDepthCalculator takes FOCAL_LENGTH or IMAGE_FILE_PROPERTIES, not both")
        self.focal_length = -1.0
        if "FOCAL_LENGTH" in side_packets:
            self.focal_length = float(side_packets["FOCAL_LENGTH"])  # type: ignore[arg-type]
        elif "IMAGE_FILE_PROPERTIES" in side_packets:
            self.focal_length = float(side_packets["IMAGE_FILE_PROPERTIES"].focal_length_pixels)  # type: ignore[attr-defined]
        self.compute = bool(side_packets)
        self.smoothed = [-1.0, -1.0]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        iris = inputs.get("IRIS")
        if iris is None:
            return None
        points = list(iris.landmark)  # type: ignore[attr-defined]
        if len(points) != 10:
            raise ValueError(f"Wrong number of iris landmarks: {len(points)}, expected 10")
        size = inputs.get("IMAGE_SIZE")
        if size is None:
            raise ValueError(f"IMAGE_SIZE has no packet at {timestamp}, needed with IRIS")
        if not (self.compute and self.focal_length > 0):
            return None
        out: dict[str, object] = {}
        eyes = (("LEFT_IRIS_DEPTH_MM", _LEFT_IRIS), ("RIGHT_IRIS_DEPTH_MM", _RIGHT_IRIS))
        for side, (tag, indices) in enumerate(eyes):
            depth = iris_depth_mm([points[i] for i in indices], self.focal_length, size)  # type: ignore[arg-type]
            previous = self.smoothed[side]
            self.smoothed[side] = (depth if previous < 0 or math.isinf(previous)
                                   else previous * (1 - _DEPTH_WEIGHT_UPDATE) + depth * _DEPTH_WEIGHT_UPDATE)
            out[tag] = float(np.float32(self.smoothed[side]))
        return out
