"""Face detection post-processing as MediaPipe's FaceDetectionShortRange graph does it.

SSD anchors (SsdAnchorsCalculator), box and keypoint decoding with sigmoid
scores (TensorsToDetectionsCalculator), weighted non-maximum suppression
(NonMaxSuppressionCalculator) and letterbox removal (the detection projection
back onto the image), with the options of mediapipe's face_detection_short_range
graph. The result is one FP32 tensor [N, 17] per frame: xmin, ymin, width,
height, six keypoints (x, y), score - all relative to the image, N may be 0.
An OVMS Python node handler: runs unchanged on OpenVINO Model Server too.
"""

import numpy as np

from pyovms import Tensor

SIZE = 128
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_CELL = 2  # aspect ratio 1 and the interpolated scale, per layer
SCALE = 128.0
MIN_SCORE = 0.5
SUPPRESSION_IOU = 0.3
KEYPOINTS = 6
COLUMNS = 4 + 2 * KEYPOINTS + 1


def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres (x, y); fixed anchor size 1 (SsdAnchorsCalculator with the model's options)."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        last = layer
        while last < len(STRIDES) and STRIDES[last] == STRIDES[layer]:
            last += 1
        per_cell = ANCHORS_PER_CELL * (last - layer)
        cells = -(-SIZE // STRIDES[layer])
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
        layer = last
    return np.array(centres, dtype=np.float32)


def decode(regressors: np.ndarray, classificators: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(M, 17) candidate detections above the score threshold, in tensor-relative coordinates."""
    raw = regressors.reshape(-1, 16).astype(np.float32)
    with np.errstate(over="ignore"):  # exp(100) is inf in float32: a score of 0, as in MediaPipe
        scores = 1.0 / (1.0 + np.exp(-np.clip(classificators.reshape(-1).astype(np.float32), -100.0, 100.0)))
    keep = scores >= MIN_SCORE
    raw, scores, centre = raw[keep], scores[keep], anchors[keep]
    x = raw[:, 0] / SCALE + centre[:, 0]
    y = raw[:, 1] / SCALE + centre[:, 1]
    w = raw[:, 2] / SCALE
    h = raw[:, 3] / SCALE
    xmin, ymin, xmax, ymax = x - w / 2, y - h / 2, x + w / 2, y + h / 2
    points = raw[:, 4:16].reshape(-1, KEYPOINTS, 2) / SCALE + centre[:, np.newaxis, :]
    return np.column_stack([xmin, ymin, xmax - xmin, ymax - ymin, points.reshape(-1, 2 * KEYPOINTS), scores])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where((inter > 0) & (union > 0), inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(candidates: np.ndarray) -> np.ndarray:
    """MediaPipe's WEIGHTED non-maximum suppression (IoU > 0.3 merges, weighted by score)."""
    order = np.argsort(-candidates[:, -1], kind="stable")
    remaining = candidates[order]
    kept = []
    while len(remaining):
        top = remaining[0]
        overlapping = _iou(top, remaining) > SUPPRESSION_IOU
        if not overlapping.any():  # a box without area overlaps nothing, not even itself: kept as it is
            kept.append(top)
            break
        group = remaining[overlapping]
        weights = group[:, -1:]
        total = weights.sum()
        corners = np.column_stack([group[:, 0], group[:, 1], group[:, 0] + group[:, 2], group[:, 1] + group[:, 3]])
        xmin, ymin, xmax, ymax = (corners * weights).sum(axis=0) / total
        points = (group[:, 4:4 + 2 * KEYPOINTS] * weights).sum(axis=0) / total
        kept.append(np.concatenate([[xmin, ymin, xmax - xmin, ymax - ymin], points, [top[-1]]]))
        remaining = remaining[~overlapping]
    return np.array(kept, dtype=np.float32).reshape(-1, COLUMNS)


def remove_letterbox(detections: np.ndarray, width: int, height: int) -> np.ndarray:
    """Tensor-relative -> image-relative coordinates (the letterbox of the pre-processing taken off)."""
    aspect = height / width
    pad_x = (1.0 - 1.0 / aspect) / 2.0 if aspect > 1.0 else 0.0
    pad_y = (1.0 - aspect) / 2.0 if aspect < 1.0 else 0.0
    out = detections.copy()
    xs = np.r_[0, 4:4 + 2 * KEYPOINTS:2]
    ys = np.r_[1, 5:4 + 2 * KEYPOINTS:2]
    out[:, xs] = (detections[:, xs] - pad_x) / (1.0 - 2 * pad_x)
    out[:, ys] = (detections[:, ys] - pad_y) / (1.0 - 2 * pad_y)
    out[:, 2] = detections[:, 2] / (1.0 - 2 * pad_x)
    out[:, 3] = detections[:, 3] / (1.0 - 2 * pad_y)
    return out


class OvmsPythonModel:
    def initialize(self, kwargs: dict) -> None:
        self.anchors = ssd_anchors()

    def execute(self, inputs: list) -> list:
        by_name = {tensor.name: np.asarray(tensor) for tensor in inputs}
        image = by_name["image"]
        candidates = decode(by_name["regressors"], by_name["classificators"], self.anchors)
        detections = remove_letterbox(weighted_nms(candidates), image.shape[1], image.shape[0])
        return [Tensor("detections", np.ascontiguousarray(detections, dtype=np.float32))]
