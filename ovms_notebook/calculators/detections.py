"""MediaPipe's detection post-processing after an inference on the Python side: NMS and projection.

The Python twins (see ovms_notebook.calculators.tensors) of two stock calculators
whose `std::vector<Detection>` and `std::array<float, 16>` inputs come from
Python nodes there: `PythonNonMaxSuppressionCalculator` (DEFAULT or WEIGHTED,
relative boxes; mediapipe/calculators/util/non_max_suppression_calculator.cc
at v0.10.21), `PythonDetectionProjectionCalculator` (detection_projection_calculator.cc) and
`PythonDetectionLetterboxRemovalCalculator` (detection_letterbox_removal_calculator.cc).
Detections are lists of Detection protos on this side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mediapipe.calculators.util.non_max_suppression_calculator_pb2 import NonMaxSuppressionCalculatorOptions
from mediapipe.framework.formats import detection_pb2, location_data_pb2

from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "PythonDetectionLetterboxRemovalCalculator",
    "PythonDetectionProjectionCalculator",
    "PythonNonMaxSuppressionCalculator",
    "overlap_similarity",
]

#: A relative box: xmin, ymin, xmax, ymax.
Box = tuple[float, float, float, float]


def _box(detection: detection_pb2.Detection) -> Box:
    bounds = detection.location_data.relative_bounding_box
    return bounds.xmin, bounds.ymin, bounds.xmin + bounds.width, bounds.ymin + bounds.height


def overlap_similarity(kind: int, first: Box, second: Box) -> float:
    """OverlapSimilarity of two relative boxes (xmin, ymin, xmax, ymax)."""
    inter_w = min(first[2], second[2]) - max(first[0], second[0])
    inter_h = min(first[3], second[3]) - max(first[1], second[1])
    if inter_w < 0 or inter_h < 0:
        return 0.0
    intersection = inter_w * inter_h
    area_1 = (first[2] - first[0]) * (first[3] - first[1])
    area_2 = (second[2] - second[0]) * (second[3] - second[1])
    types = NonMaxSuppressionCalculatorOptions
    if kind == types.JACCARD:
        normalization = ((max(first[2], second[2]) - min(first[0], second[0]))
                         * (max(first[3], second[3]) - min(first[1], second[1])))
    elif kind == types.MODIFIED_JACCARD:
        normalization = area_2
    else:
        normalization = area_1 + area_2 - intersection
    return intersection / normalization if normalization > 0 else 0.0


def _keep_top_label(detection: detection_pb2.Detection) -> detection_pb2.Detection | None:
    """RetainMaxScoringLabelOnly: a copy holding only its best score and label; None when it has no label."""
    if not len(detection.label_id) and not len(detection.label):
        return None
    top = max(range(len(detection.score)), key=lambda k: (detection.score[k], -k))
    kept = detection_pb2.Detection()
    kept.CopyFrom(detection)
    del kept.score[:]
    kept.score.append(detection.score[top])
    if len(detection.label_id) > top:
        del kept.label_id[:]
        kept.label_id.append(detection.label_id[top])
    else:
        del kept.label[:]
        kept.label.append(detection.label[top])
    return kept


class PythonNonMaxSuppressionCalculator(Calculator):
    """Detection lists on the untagged inputs -> the kept detections (NonMaxSuppressionCalculatorOptions)."""

    inputs = (":*",)
    outputs = (":0",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.settings = self.options(NonMaxSuppressionCalculatorOptions)
        if options.num_detection_streams <= 0:
            raise ValueError("At least one detection stream need to be specified.")
        if options.max_num_detections == 0:
            raise ValueError("max_num_detections=0 is not a valid value; set -1 for no limit")
        if options.multiclass_nms:
            raise ValueError("multiclass_nms is not supported here")

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        options = self.settings
        found: list[detection_pb2.Detection] = []
        for index in range(options.num_detection_streams):
            found += list(inputs.get(f":{index}") or ())  # type: ignore[call-overload]
        if not found:
            return {":0": []} if options.return_empty_detections else None
        pruned = [kept for kept in map(_keep_top_label, found) if kept is not None]
        order = sorted(range(len(pruned)), key=lambda i: -pruned[i].score[0])  # std::sort: ties in any order
        limit = options.max_num_detections if options.max_num_detections > -1 else len(order)
        if options.algorithm == NonMaxSuppressionCalculatorOptions.WEIGHTED:
            return {":0": self._weighted(pruned, order)}
        return {":0": self._plain(pruned, order, limit)}

    def _plain(self, detections: Sequence[detection_pb2.Detection], order: list[int],
               limit: int) -> list[detection_pb2.Detection]:
        options, kept, boxes = self.settings, [], []  # type: ignore[var-annotated]
        for index in order:
            detection = detections[index]
            if options.min_score_threshold > 0 and detection.score[0] < options.min_score_threshold:
                break
            box = _box(detection)
            if not any(overlap_similarity(options.overlap_type, other, box) > options.min_suppression_threshold
                       for other in boxes):
                kept.append(detection)
                boxes.append(box)
            if len(kept) >= limit:
                break
        return kept

    def _weighted(self, detections: Sequence[detection_pb2.Detection],
                  order: list[int]) -> list[detection_pb2.Detection]:
        options, kept = self.settings, []
        remaining = order
        while remaining:
            detection = detections[remaining[0]]
            if options.min_score_threshold > 0 and detection.score[0] < options.min_score_threshold:
                break
            box = _box(detection)
            threshold = options.min_suppression_threshold
            candidates = [i for i in remaining
                          if overlap_similarity(options.overlap_type, _box(detections[i]), box) > threshold]
            rest = [i for i in remaining if i not in candidates]
            weighted = detection_pb2.Detection()
            weighted.CopyFrom(detection)
            if candidates:
                total = sum(detections[i].score[0] for i in candidates)
                corners = [sum(_box(detections[i])[k] * detections[i].score[0] for i in candidates) / total
                           for k in range(4)]
                bounds = weighted.location_data.relative_bounding_box
                bounds.xmin, bounds.ymin = corners[0], corners[1]
                bounds.width, bounds.height = corners[2] - bounds.xmin, corners[3] - bounds.ymin
                for k, point in enumerate(weighted.location_data.relative_keypoints):
                    point.x = sum(detections[i].location_data.relative_keypoints[k].x * detections[i].score[0]
                                  for i in candidates) / total
                    point.y = sum(detections[i].location_data.relative_keypoints[k].y * detections[i].score[0]
                                  for i in candidates) / total
            kept.append(weighted)
            if len(rest) == len(remaining):
                break
            remaining = rest
        return kept


class PythonDetectionProjectionCalculator(Calculator):
    """DETECTIONS + PROJECTION_MATRIX (16 floats, row-major) -> DETECTIONS projected (relative boxes)."""

    inputs = ("DETECTIONS", "PROJECTION_MATRIX")
    outputs = ("DETECTIONS",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        detections: Any = inputs.get("DETECTIONS")
        matrix: Any = inputs.get("PROJECTION_MATRIX")
        if detections is None or matrix is None:
            return None
        m = [float(v) for v in matrix]

        def project(x: float, y: float) -> tuple[float, float]:
            return m[0] * x + m[1] * y + m[3], m[4] * x + m[5] * y + m[7]

        projected = []
        for detection in detections:
            out = detection_pb2.Detection()
            out.CopyFrom(detection)
            location = out.location_data
            if location.format != location_data_pb2.LocationData.RELATIVE_BOUNDING_BOX:
                raise ValueError("DetectionProjectionCalculator projects RELATIVE_BOUNDING_BOX detections only")
            for point in location.relative_keypoints:
                point.x, point.y = project(point.x, point.y)
            xmin, ymin, xmax, ymax = _box(out)
            corners = [project(x, y) for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax))]
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            bounds = location.relative_bounding_box
            bounds.xmin, bounds.ymin = min(xs), min(ys)
            bounds.width, bounds.height = max(xs) - min(xs), max(ys) - min(ys)
            projected.append(out)
        return {"DETECTIONS": projected}


class PythonDetectionLetterboxRemovalCalculator(Calculator):
    """DETECTIONS + LETTERBOX_PADDING (left, top, right, bottom) -> DETECTIONS relative to the unpadded image."""

    inputs = ("DETECTIONS", "LETTERBOX_PADDING")
    outputs = ("DETECTIONS",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        detections: Any = inputs.get("DETECTIONS")
        padding: Any = inputs.get("LETTERBOX_PADDING")
        if detections is None:
            return None
        if padding is None:
            raise ValueError("DetectionLetterboxRemovalCalculator got detections without LETTERBOX_PADDING")
        left, top, right, bottom = (float(v) for v in padding)
        width, height = 1.0 - (left + right), 1.0 - (top + bottom)
        removed = []
        for detection in detections:
            out = detection_pb2.Detection()
            out.CopyFrom(detection)
            bounds = out.location_data.relative_bounding_box
            bounds.xmin, bounds.ymin = (bounds.xmin - left) / width, (bounds.ymin - top) / height
            bounds.width, bounds.height = bounds.width / width, bounds.height / height
            for point in out.location_data.relative_keypoints:
                point.x, point.y = (point.x - left) / width, (point.y - top) / height
            removed.append(out)
        return {"DETECTIONS": removed}
