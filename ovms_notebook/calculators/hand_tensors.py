"""The calculators of MediaPipe's hand subgraphs that must run beside an inference on the Python side.

`HandLandmarkCpu` and `HandRecropByRoiCpu`, expanded with OVMS's fork rewrite
(ovms_notebook.framework.ovms_fork), decode the model's tensors into
handedness and landmarks on this side, and undo the letterbox of the crop with
the `LETTERBOX_PADDING` the Python `ImageToTensor` made (a `std::array<float,
4>` no Python packet can become). MediaPipe v0.10.21's semantics
(calculators/tensor/tensors_to_classification_calculator.cc,
calculators/util/landmark_letterbox_removal_calculator.cc):

* `PythonTensorsToClassificationCalculator`: TENSORS (one tensor) ->
  CLASSIFICATIONS, a ClassificationList: binary classification (score, 1 -
  score), else every allowed class at or above `min_score_threshold`; `top_k`
  or `sort_by_descending_score`; labels from `label_map` or `label_map_path`
  (a file in the wheel, one label a line);
* `PythonLandmarkLetterboxRemovalCalculator`: LANDMARKS (NormalizedLandmarkList,
  one or more by index) + LETTERBOX_PADDING -> LANDMARKS relative to the
  unpadded crop (z scaled as x).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.calculators.tensor.tensors_to_classification_calculator_pb2 import (
    TensorsToClassificationCalculatorOptions,
)
from mediapipe.framework.formats import classification_pb2, landmark_pb2

from ovms_notebook.calculators.tensors import tensor_array
from ovms_notebook.calculators.tflite import resolve_model_path
from ovms_notebook.engine.python.api import Calculator

__all__ = ["PythonLandmarkLetterboxRemovalCalculator", "PythonTensorsToClassificationCalculator", "label_map_file"]

_F = np.float32


@functools.cache
def label_map_file(path: Path) -> tuple[str, ...]:
    """A label map file's labels, one a line (a last empty line ignored), as MediaPipe reads it."""
    lines = path.read_text().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.rstrip("\r") for line in lines)


class PythonTensorsToClassificationCalculator(Calculator):
    """TENSORS (one float tensor) -> CLASSIFICATIONS (TensorsToClassificationCalculatorOptions)."""

    inputs = ("TENSORS",)
    outputs = ("CLASSIFICATIONS",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.settings = self.options(TensorsToClassificationCalculatorOptions)
        if options.allow_classes and options.ignore_classes:
            raise ValueError("Only one of ignore_classes and allow_classes can be specified.")
        self.labels: dict[int, tuple[str, str]] | None = None
        if options.HasField("label_map_path"):
            names = label_map_file(resolve_model_path(options.label_map_path))
            self.labels = {index: (name, "") for index, name in enumerate(names)}
        elif options.HasField("label_map"):
            self.labels = {entry.id: (entry.label, "") for entry in options.label_map.entries}

    def _label(self, index: int, out: classification_pb2.Classification) -> None:
        if self.labels is not None:
            if index not in self.labels:
                raise ValueError(f"label map has no class {index}")
            out.label = self.labels[index][0]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors: Any = inputs.get("TENSORS")
        if tensors is None:
            return None
        options = self.settings
        if len(tensors) != 1:
            raise ValueError(f"TensorsToClassificationCalculator needs one tensor, got {len(tensors)}")
        scores = tensor_array(tensors[0]).reshape(-1)
        count = scores.size
        if options.binary_classification:
            if count != 1:
                raise ValueError(f"binary classification needs a tensor of one value, got {count}")
            count = 2
        if self.labels is not None and count != len(self.labels):
            raise ValueError(f"the tensor has {count} classes, the label map {len(self.labels)}")
        found = classification_pb2.ClassificationList()
        if options.binary_classification:
            first = float(scores[0])
            for index, score in ((0, first), (1, float(_F(1.0 - np.float64(first))))):
                self._label(index, found.classification.add(index=index, score=score))
        else:
            for index in range(count):
                if options.allow_classes and index not in options.allow_classes:
                    continue
                if index in options.ignore_classes:
                    continue
                if scores[index] < _F(options.min_score_threshold):
                    continue
                self._label(index, found.classification.add(index=index, score=float(scores[index])))
        entries = list(found.classification)
        if options.top_k > 0 or options.sort_by_descending_score:
            # a stable sort: ties keep class order (what std::partial_sort gives for the sizes here is not promised)
            entries.sort(key=lambda entry: -entry.score)
            if options.top_k > 0:
                entries = entries[: options.top_k]
        out = classification_pb2.ClassificationList()
        out.classification.extend(entries)
        return {"CLASSIFICATIONS": out}


class PythonLandmarkLetterboxRemovalCalculator(Calculator):
    """LANDMARKS (NormalizedLandmarkList, by index) + LETTERBOX_PADDING (l, t, r, b) -> LANDMARKS, unpadded."""

    inputs = ("LANDMARKS:*", "LETTERBOX_PADDING")
    input_messages = {"LANDMARKS": "mediapipe.NormalizedLandmarkList"}
    outputs = ("LANDMARKS:*",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        padding: Any = inputs.get("LETTERBOX_PADDING")
        if padding is None:
            return None
        left, top, right, bottom = (_F(v) for v in padding)
        across, down = left + right, top + bottom
        out: dict[str, object] = {}
        for key in self.input_tags:
            if not key.startswith("LANDMARKS"):
                continue
            given: Any = inputs.get(key)
            if given is None:
                continue
            removed = landmark_pb2.NormalizedLandmarkList()
            removed.CopyFrom(given)
            for point in removed.landmark:
                point.x = float((_F(point.x) - left) / (_F(1.0) - across))
                point.y = float((_F(point.y) - top) / (_F(1.0) - down))
                point.z = float(_F(point.z) / (_F(1.0) - across))
            out[key] = removed
        return out
