"""MediaPipe's LabelsToRenderDataCalculator, which the 0.10.21 wheel lacks, as a Python calculator.

MediaPipe's hand renderer (`HandRendererSubgraph`) writes each hand's
handedness ("Left", "Right") at the top left of the frame with it:
CLASSIFICATIONS (a ClassificationList), or LABELS (list of str) [+ SCORES
(list of float)] -> RENDER_DATA, one text annotation per label up to
`max_num_labels` (mediapipe/calculators/util/labels_to_render_data_calculator.cc
at v0.10.21):

* the text is the label (or `display_name` with `use_display_name`), followed
  by ":" and the score (absl's six significant digits) when SCORES is connected
  or `display_classification_score` is set;
* label i has the option colour i modulo their number (red when none), the
  options' thickness, font height and face, left = `horizontal_offset_px`,
  baseline = `vertical_offset_px` + ceil(1.25 font_height_px) * (i + 1);
* an outline (colour i modulo theirs, black when none) when `outline_thickness` > 0.

Only TOP_LEFT is supported, as in MediaPipe without a VIDEO_PRESTREAM header
(which no request can carry here); MediaPipe aborts the process on the other
location, this version fails the graph instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mediapipe.calculators.util.labels_to_render_data_calculator_pb2 import (
    LabelsToRenderDataCalculatorOptions as LabelsOptions,
)
from mediapipe.util import render_data_pb2

from ovms_notebook.engine.python.api import Calculator

__all__ = ["LabelsOptions", "LabelsToRenderDataCalculator", "labels_to_render_data"]

_FONT_HEIGHT_SCALE = 1.25


def labels_to_render_data(
    labels: Sequence[str], scores: Sequence[float] | None, options: LabelsOptions
) -> render_data_pb2.RenderData:
    """LabelsToRenderDataCalculator::Process for TOP_LEFT: the RenderData of `labels` (and their `scores`)."""
    data = render_data_pb2.RenderData()
    label_height = math.ceil(options.font_height_px * _FONT_HEIGHT_SCALE)
    baseline = options.vertical_offset_px + label_height
    for i in range(min(len(labels), options.max_num_labels)):
        annotation = data.render_annotations.add(thickness=options.thickness)
        if options.color:
            annotation.color.CopyFrom(options.color[i % len(options.color)])
        else:
            annotation.color.r, annotation.color.g, annotation.color.b = 255, 0, 0
        text = labels[i] if scores is None else f"{labels[i]}:{scores[i]:g}"
        annotation.text.display_text = text
        annotation.text.font_height = options.font_height_px
        annotation.text.left = options.horizontal_offset_px
        annotation.text.baseline = baseline + i * label_height
        annotation.text.font_face = options.font_face
        if options.outline_thickness > 0:
            annotation.text.outline_thickness = options.outline_thickness
            if options.outline_color:
                annotation.text.outline_color.CopyFrom(options.outline_color[i % len(options.outline_color)])
            else:
                annotation.text.outline_color.r = annotation.text.outline_color.g = 0
                annotation.text.outline_color.b = 0
    return data


class LabelsToRenderDataCalculator(Calculator):
    """CLASSIFICATIONS, or LABELS [+ SCORES] -> RENDER_DATA: the labels as text at the top left."""

    inputs = ("CLASSIFICATIONS", "LABELS", "SCORES", "VIDEO_PRESTREAM")
    outputs = ("RENDER_DATA",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        tags = set(self.input_tags)
        if "CLASSIFICATIONS" not in tags and "LABELS" not in tags:
            raise ValueError('Must provide input stream "LABELS"')
        if "VIDEO_PRESTREAM" in tags:
            raise ValueError("VIDEO_PRESTREAM (a VideoHeader) is not supported here: no request can carry one")
        self.settings = self.options(LabelsOptions)
        if self.settings.location != LabelsOptions.TOP_LEFT:
            raise ValueError("Only TOP_LEFT is supported without VIDEO_PRESTREAM.")
        self.classifications = "CLASSIFICATIONS" in tags
        self.with_scores = "SCORES" in tags or self.settings.display_classification_score

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        if self.classifications:
            found = inputs.get("CLASSIFICATIONS")
            if found is None:
                return None
            entries = found.classification  # type: ignore[attr-defined]
            labels = [c.display_name if self.settings.use_display_name else c.label for c in entries]
            scores: list[float] | None = [c.score for c in entries]
        else:
            found = inputs.get("LABELS")
            if found is None:
                return None
            labels = [str(label) for label in found]  # type: ignore[attr-defined]
            given = inputs.get("SCORES")
            scores = [float(s) for s in given] if given is not None else None  # type: ignore[attr-defined]
            if scores is not None and len(scores) != len(labels):
                raise ValueError(f"LABELS has {len(labels)} entries and SCORES {len(scores)}; they must match")
            if scores is None and self.with_scores:
                scores = [0.0] * len(labels)
        return {"RENDER_DATA": labels_to_render_data(labels, scores if self.with_scores else None, self.settings)}
