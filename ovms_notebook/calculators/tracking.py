"""A detection tracker as a Python calculator: identities kept across the requests of one stream.

`IouTracker` is the logic (greedy IoU matching frame to frame, new ids for new
faces, tracks dropped after `max_missed` frames without a match);
`DetectionTrackerCalculator` puts one tracker in each graph run, so every
stream has its own tracks and ids, as the per-stream graph instance of OVMS's
streaming API promises. It runs on the Python side next to native nodes:

    node {
      calculator: "DetectionTrackerCalculator"
      input_stream: "DETECTIONS:detections"     # mediapipe Detection protos, or an [N, >=5] array
      output_stream: "TRACKS:tracks"            # FP32 [N, 6]: id, xmin, ymin, width, height, score
    }

A frame that brings no detections packet (MediaPipe's face detector sends none
when it finds nothing) still counts: the node also runs on timestamp bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ovms_notebook.codec.blob import TensorValue
from ovms_notebook.engine.python.api import Calculator

__all__ = ["DetectionTrackerCalculator", "IouTracker", "Track", "boxes_of", "iou"]

TRACK_COLUMNS = ("id", "xmin", "ymin", "width", "height", "score")


@dataclass
class Track:
    """One identity: its last box (xmin, ymin, width, height, relative), score and frames since last seen."""

    id: int
    box: tuple[float, float, float, float]
    score: float
    missed: int = 0


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (xmin, ymin, width, height) boxes; 0 when they do not overlap."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if inter > 0 and union > 0 else 0.0


def boxes_of(detections: object) -> list[tuple[tuple[float, float, float, float], float]]:
    """(box, score) pairs from mediapipe Detection protos (a list or a DetectionList), or from a tensor whose
    rows are xmin, ymin, width, height, ..., score (the face_detection_openvino graph's [N, 17]: a numpy array,
    TensorValue or pyovms Tensor)."""
    if detections is None:
        return []
    if hasattr(detections, "detection") and not hasattr(detections, "location_data"):  # a DetectionList
        detections = list(detections.detection)
    if isinstance(detections, TensorValue):
        detections = detections.array()
    if isinstance(detections, list | tuple) and all(hasattr(d, "location_data") for d in detections):
        pairs = []
        for detection in detections:
            box = detection.location_data.relative_bounding_box
            score = float(detection.score[0]) if len(detection.score) else 1.0
            pairs.append(((box.xmin, box.ymin, box.width, box.height), score))
        return pairs
    array = np.asarray(detections, dtype=np.float32)
    if array.size == 0:
        return []
    if array.ndim != 2 or array.shape[1] < 5:
        raise ValueError(
            f"expected Detection protos or an array [N, >=5] (xmin, ymin, width, height, ..., score), got shape "
            f"{array.shape}"
        )
    return [((float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(r[-1])) for r in array]


class IouTracker:
    """Greedy IoU tracking: each detection takes the free track it overlaps most (IoU >= `min_iou`)."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: Sequence[tuple[tuple[float, float, float, float], float]]) -> list[Track]:
        """Match one frame's (box, score) pairs; returns the tracks seen in this frame, in detection order."""
        pairs = sorted(
            (
                (iou(track.box, box), t, d)
                for t, track in enumerate(self.tracks)
                for d, (box, _) in enumerate(detections)
            ),
            reverse=True,
        )
        matched_tracks: set[int] = set()
        matched_detections: dict[int, int] = {}
        for overlap, t, d in pairs:
            if overlap < self.min_iou:
                break
            if t in matched_tracks or d in matched_detections:
                continue
            matched_tracks.add(t)
            matched_detections[d] = t
        for t, track in enumerate(self.tracks):  # the tracks before this frame's new ones
            if t not in matched_tracks:
                track.missed += 1
        seen: list[Track] = []
        for d, (box, score) in enumerate(detections):
            if d in matched_detections:
                track = self.tracks[matched_detections[d]]
                track.box, track.score, track.missed = box, score, 0
            else:
                track = Track(self._next_id, box, score)
                self._next_id += 1
                self.tracks.append(track)
            seen.append(track)
        self.tracks = [track for track in self.tracks if track.missed <= self.max_missed]
        return seen


class DetectionTrackerCalculator(Calculator):
    """Per-stream identities for detections: one `IouTracker` per graph run (see the module docstring).

    Node options are not needed; `MIN_IOU` and `MAX_MISSED` input side packets tune it.
    """

    inputs = ("DETECTIONS",)
    outputs = ("TRACKS",)
    side_packets = ("MIN_IOU", "MAX_MISSED")
    process_timestamp_bounds = True

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.tracker = IouTracker(float(side_packets.get("MIN_IOU", 0.3)),  # type: ignore[arg-type]
                                  int(side_packets.get("MAX_MISSED", 5)))  # type: ignore[call-overload]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object]:
        tracks = self.tracker.update(boxes_of(inputs.get("DETECTIONS")))
        rows = [[track.id, *track.box, track.score] for track in tracks]
        return {"TRACKS": np.array(rows, dtype=np.float32).reshape(-1, len(TRACK_COLUMNS))}
