"""The Python twins the hand subgraphs need on a model entry, against the wheel's C++ on the same input.

Tensors enter the native graph through the wheel's TensorConverterCalculator (a MediaPipe Matrix in, its values
as one float tensor out); the letterbox padding is the one each side's ImageToTensor makes for the same ROI.
"""

from __future__ import annotations

import mediapipe as mp
import numpy as np
import pytest
from mediapipe.framework.formats import classification_pb2, landmark_pb2

from ovms_notebook.calculators.hand_tensors import (
    PythonLandmarkLetterboxRemovalCalculator,
    PythonTensorsToClassificationCalculator,
)
from ovms_notebook.calculators.tensors import PythonImageToTensorCalculator
from ovms_notebook.calculators.tflite import resolve_model_path
from ovms_notebook.sources import astronaut
from tests.test_tensor_calculators import IMAGE_TO_TENSOR, rect, run_native, run_python

CLASSIFICATION = """
  calculator: "{calculator}" input_stream: "TENSORS:t" output_stream: "CLASSIFICATIONS:c"
  options {{ [mediapipe.TensorsToClassificationCalculatorOptions.ext] {{ {options} }} }}
"""


def native_classification(scores: np.ndarray, options: str) -> classification_pb2.ClassificationList:
    found = run_native(
        'input_stream: "m" output_stream: "c" node { calculator: "TensorConverterCalculator" input_stream: "MATRIX:m" '
        'output_stream: "TENSORS:t" } node {' + CLASSIFICATION.format(calculator="TensorsToClassificationCalculator",
                                                                     options=options) + "}",
        {"m": mp.packet_creator.create_matrix(scores.reshape(1, -1))}, ["c"])
    (packet,) = found["c"]
    return mp.packet_getter.get_proto(packet)


def entries(found: classification_pb2.ClassificationList) -> list[tuple[int, float, str]]:
    return [(c.index, c.score, c.label) for c in found.classification]


HANDEDNESS = "mediapipe/modules/hand_landmark/handedness.txt"
CLASSIFICATION_CASES = {  # scores, options
    "hand's handedness: binary, top 1, the wheel's label file": (
        [0.8713753], f'top_k: 1 binary_classification: true label_map_path: "{HANDEDNESS}"'),
    "binary, below one half": ([0.2], 'top_k: 1 binary_classification: true'),
    "binary, both kept": ([0.35], "binary_classification: true"),
    "threshold and top 2 of 5": ([0.1, 0.7, 0.4, 0.95, 0.5], "min_score_threshold: 0.45 top_k: 2"),
    "ignored classes, sorted, inline labels": (
        [0.3, 0.6, 0.2, 0.9], "ignore_classes: [3] sort_by_descending_score: true label_map { entries { id: 0 label: "
        '"a" } entries { id: 1 label: "b" } entries { id: 2 label: "c" } entries { id: 3 label: "d" } }'),
    "allowed classes, in class order": ([0.3, 0.6, 0.2, 0.9], "allow_classes: [0, 2]"),
}


@pytest.mark.parametrize("case", list(CLASSIFICATION_CASES))
def test_tensors_to_classification_is_mediapipes(case: str) -> None:
    scores, options = CLASSIFICATION_CASES[case]
    values = np.array(scores, np.float32)
    ours = run_python(PythonTensorsToClassificationCalculator,
                      CLASSIFICATION.format(calculator="PythonTensorsToClassificationCalculator", options=options),
                      {"TENSORS": [values.reshape(1, -1)]})["CLASSIFICATIONS"]
    # the native calculator reads its label file from the working directory; ours finds it in the wheel as MediaPipe's
    # graphs there do (resolve_model_path): the native one is given that path
    expected = native_classification(values, options.replace(HANDEDNESS, str(resolve_model_path(HANDEDNESS))))
    assert entries(ours) == entries(expected) and len(expected.classification) >= 1


def test_tensors_to_classification_refuses_what_mediapipe_refuses() -> None:
    text = CLASSIFICATION.format(calculator="PythonTensorsToClassificationCalculator",
                                 options="binary_classification: true")
    with pytest.raises(ValueError, match="binary classification needs a tensor of one value, got 2"):
        run_python(PythonTensorsToClassificationCalculator, text, {"TENSORS": [np.float32([[0.1, 0.2]])]})
    labelled = CLASSIFICATION.format(
        calculator="PythonTensorsToClassificationCalculator",
        options='label_map_path: "mediapipe/modules/hand_landmark/handedness.txt"')
    with pytest.raises(ValueError, match="the tensor has 3 classes, the label map 2"):
        run_python(PythonTensorsToClassificationCalculator, labelled, {"TENSORS": [np.float32([[0.1, 0.2, 0.3]])]})


def probe_landmarks() -> landmark_pb2.NormalizedLandmarkList:
    points = [(0.1, 0.2, -0.05), (0.5, 0.5, 0.0), (0.93, 0.81, 0.12), (0.3, 0.05, 0.3)]
    return landmark_pb2.NormalizedLandmarkList(landmark=[
        landmark_pb2.NormalizedLandmark(x=x, y=y, z=z, visibility=0.7, presence=0.9) for x, y, z in points])


@pytest.mark.parametrize("roi", [rect(0.5, 0.5, 0.9, 0.4, 0.0), rect(0.4, 0.6, 0.2, 0.5, 0.3)],
                         ids=["wide roi", "tall rotated roi"])
def test_landmark_letterbox_removal_is_mediapipes(roi: object) -> None:
    frame = np.ascontiguousarray(astronaut()[40:440])
    options = dict(width=224, height=224, keep="true", low=0, high=1, border="BORDER_ZERO")
    native = run_native(
        'input_stream: "image" input_stream: "roi" input_stream: "probe" output_stream: "removed" node {'
        + IMAGE_TO_TENSOR.format(calculator="ImageToTensorCalculator", **options).replace(
            'output_stream: "MATRIX:matrix"', 'output_stream: "LETTERBOX_PADDING:padding"')
        + '} node { calculator: "LandmarkLetterboxRemovalCalculator" input_stream: "LANDMARKS:probe" '
        'input_stream: "LETTERBOX_PADDING:padding" output_stream: "LANDMARKS:removed" }',
        {"image": mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame),
         "roi": mp.packet_creator.create_proto(roi), "probe": mp.packet_creator.create_proto(probe_landmarks())},
        ["removed"],
    )
    text = IMAGE_TO_TENSOR.format(calculator="PythonImageToTensorCalculator", **options).replace(
        'output_stream: "MATRIX:matrix"', 'output_stream: "LETTERBOX_PADDING:padding"')
    padding = run_python(PythonImageToTensorCalculator, text, {"IMAGE": frame, "NORM_RECT": roi})["LETTERBOX_PADDING"]
    assert max(padding) > 0.1  # letterboxed along one axis
    ours = run_python(PythonLandmarkLetterboxRemovalCalculator,
                      'calculator: "PythonLandmarkLetterboxRemovalCalculator" input_stream: "LANDMARKS:l" '
                      'input_stream: "LETTERBOX_PADDING:p" output_stream: "LANDMARKS:o"',
                      {"LANDMARKS": probe_landmarks(), "LETTERBOX_PADDING": padding})["LANDMARKS"]
    (packet,) = native["removed"]
    expected = mp.packet_getter.get_proto(packet)
    assert ours == expected  # every field, bit for bit (visibility and presence kept)


def test_landmark_letterbox_removal_without_padding_emits_nothing_as_mediapipe() -> None:
    text = ('calculator: "PythonLandmarkLetterboxRemovalCalculator" input_stream: "LANDMARKS:l" '
            'input_stream: "LETTERBOX_PADDING:p" output_stream: "LANDMARKS:o"')
    assert run_python(PythonLandmarkLetterboxRemovalCalculator, text, {"LANDMARKS": probe_landmarks()}) is None
