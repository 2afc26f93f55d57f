"""OVMS's MediaPipe fork: the model entries its subgraphs infer on, so a graph here can use them too.

OVMS links the openvinotoolkit/mediapipe fork, in which stock subgraphs
(`FaceLandmarkFrontCpu`, `HolisticLandmarkCpu`, `IrisLandmarkCpu`, ...) run
their models through an `OpenVINOModelServerSessionCalculator` — a model entry
of config.json, named by `servable_name` — and an `OpenVINOInferenceCalculator`,
where MediaPipe's own versions read the wheel's .tflite files. Which subgraph
needs which entries (nested subgraphs followed) is vendored once, for `check`
and `export`, as ovms_notebook/portability/ovms_subgraphs.json; this module
reads that file as data (it imports nothing from the layers above).

When a graph's config.json serves any of the model entries its subgraphs ask
for, the graph is served the way OVMS serves it:

* the subgraphs of `FORK_INFERENCE` are expanded here from MediaPipe's own
  pbtxt (ovms_notebook.framework.subgraphs; `IrisLandmarkCpu` always, the
  wheel-native face chain `FaceLandmarkFrontCpu` -> `FaceDetectionShortRangeCpu`
  -> `FaceDetectionShortRange` -> `FaceDetection` and `FaceLandmarkCpu` ->
  `TensorsToFaceLandmarks`, `HolisticLandmarkCpu` -> `FaceLandmarksFromPoseCpu`
  -> `FaceDetectionShortRangeByRoiCpu`, `HolisticLandmarkCpu` ->
  `HandLandmarksLeftAndRightCpu` -> `HandLandmarksFromPoseCpu` ->
  `HandRecropByRoiCpu` and `HandLandmarkCpu`, and `PoseLandmarkCpu` ->
  `PoseDetectionCpu` and `PoseLandmarkByRoiCpu` ->
  `TensorsToPoseLandmarksAndSegmentation` and
  `PoseLandmarksAndSegmentationInverseProjection`, only then) and get the fork's
  rewrite of their inference node: a session on the model entry and an
  `OpenVINOInferenceCalculator` in place of `TfLiteInferenceCalculator` or
  `InferenceCalculator`, so the folder's model is the one that runs. The
  tensor calculators around `InferenceCalculator` become their Python twins
  (`PYTHON_TWINS`: ovms_notebook.calculators.tensors, detections,
  tensor_plumbing, hand_tensors, pose_tensors), since `std::vector<mediapipe::Tensor>`
  packets cannot cross to native nodes (nor can the `std::array<float, 4>` letterbox padding
  `LandmarkLetterboxRemovalCalculator` reads, or the `std::array<float, 16>` matrix the
  segmentation mask is warped back with); the geometry and tracking
  between them (`FaceDetectionFrontDetectionToRoi`, `HandTracking`, loops,
  `LandmarkProjection`, `WorldLandmarkProjection`, ...) stays native;
* every other entry the graph's subgraphs ask for gets a session node of its
  own (`model_entry_checks`), so a missing or unloadable entry fails the
  stream at start with OVMS's `OpenVINOModelServerSessionCalculator failed to
  load the model`; with every subgraph above expanded, that is only a guard for
  subgraphs the vendored table lists and this module does not rewrite.

Which subgraph infers on which entry, here:

    subgraph                      entry            inference with the entry served
    IrisLandmarkCpu               iris_landmark    OpenVINO on the entry (TfLite* calculators in Python)
    FaceDetectionShortRangeCpu    face_detection   OpenVINO on the entry (tensor calculators in Python)
    FaceLandmarkCpu               face_landmark    OpenVINO on the entry (tensor calculators in Python;
                                                   WITH_ATTENTION true ends the run, as the fork's model has
                                                   no attention)
    FaceLandmarkFrontCpu          both above       both above, its glue native
    PoseDetectionCpu              pose_detection   OpenVINO on the entry (tensor calculators in Python)
    PoseLandmarkCpu               pose_detection,  both, as below
                                  pose_landmark_full
    HandLandmarkCpu               hand_landmark_full  OpenVINO on the entry (tensor calculators, handedness and
                                                   letterbox removal in Python; projections native)
    HandRecropByRoiCpu            hand_recrop      OpenVINO on the entry (tensor calculators in Python)
    HandLandmarksLeftAndRightCpu, both above       both above, per hand; HandTracking & co. native
      HandLandmarksFromPoseCpu
    HolisticLandmarkCpu           all six          face, pose and hands as above
    PoseLandmarkByRoiCpu          pose_landmark_full  OpenVINO on the entry (heatmap refinement, segmentation mask,
                                                   inverse matrix and warp in Python; projections native)

A graph whose config.json serves none of them names no model entry: it runs
MediaPipe's subgraphs on the wheel's files, as MediaPipe does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "FORK_INFERENCE",
    "PYTHON_TWINS",
    "SESSION_CALCULATOR",
    "TENSOR_SUBGRAPHS",
    "ForkInference",
    "fork_servables",
    "inference_node_text",
    "model_entry_checks",
    "session_node_text",
    "session_servables",
]

SESSION_CALCULATOR = "OpenVINOModelServerSessionCalculator"
_SESSION_OPTIONS = "type.googleapis.com/mediapipe.OpenVINOModelServerSessionCalculatorOptions"
_INFERENCE_OPTIONS = "type.googleapis.com/mediapipe.OpenVINOInferenceCalculatorOptions"
#: Prefix of the session nodes `model_entry_checks` adds (one per model entry).
CHECK_PREFIX = "ovms_model_entry"


@dataclass(frozen=True)
class ForkInference:
    """How the fork infers inside one subgraph: its model entry and the model's tensor names in order."""

    servable: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


#: Subgraphs expanded here whose `TfLiteInferenceCalculator` or `InferenceCalculator` the fork replaces by a
#: session on `servable` and an `OpenVINOInferenceCalculator` with the same tensor streams in and out
#: (openvinotoolkit/mediapipe b2dccf07: mediapipe/modules/iris_landmark/iris_landmark_cpu.pbtxt,
#: mediapipe/modules/face_detection/face_detection.pbtxt).
FORK_INFERENCE: dict[str, ForkInference] = {
    "IrisLandmarkCpu": ForkInference("iris_landmark", ("input_1",), ("output_eyes_contours_and_brows", "output_iris")),
    "FaceDetection": ForkInference("face_detection", ("input",), ("regressors", "classificators")),
    "FaceLandmarkCpu": ForkInference("face_landmark", ("input_1",), ("conv2d_21", "conv2d_31")),
    "PoseDetectionCpu": ForkInference("pose_detection", ("input_1",), ("Identity", "Identity_1")),
    "HandLandmarkCpu": ForkInference("hand_landmark_full", ("input_1",),
                                     ("Identity", "Identity_1", "Identity_2", "Identity_3")),
    "HandRecropByRoiCpu": ForkInference("hand_recrop", ("input_1",), ("output_crop",)),
    "PoseLandmarkByRoiCpu": ForkInference("pose_landmark_full", ("input_1",),
                                          ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")),
}

#: Subgraphs nested in those whose every node reads what Python-side nodes make, so their calculators become
#: Python twins too (FaceLandmarkCpu's `SwitchContainer` picks `TensorsToFaceLandmarks`).
TENSOR_SUBGRAPHS = frozenset({"TensorsToFaceLandmarks", "TensorsToPoseLandmarksAndSegmentation",
                              "PoseLandmarksAndSegmentationInverseProjection"})

#: Calculators of those subgraphs that handle `std::vector<mediapipe::Tensor>` (or, downstream, make packets only
#: native nodes could read) -> the Python calculator (ovms_notebook.calculators.tensors) that stands in for them
#: once the inference runs on the Python side. They get names of their own so that the same stock calculators
#: elsewhere in a graph stay native. `SsdAnchorsCalculator` has no twin: its output side packet is folded into
#: the options of the node reading it (see framework/subgraphs).
PYTHON_TWINS: dict[str, str] = {
    "ImageToTensorCalculator": "PythonImageToTensorCalculator",
    "TensorsToDetectionsCalculator": "PythonTensorsToDetectionsCalculator",
    "NonMaxSuppressionCalculator": "PythonNonMaxSuppressionCalculator",
    "DetectionProjectionCalculator": "PythonDetectionProjectionCalculator",
    "DetectionLetterboxRemovalCalculator": "PythonDetectionLetterboxRemovalCalculator",
    "SplitTensorVectorCalculator": "PythonSplitTensorVectorCalculator",
    "TensorsToFloatsCalculator": "PythonTensorsToFloatsCalculator",
    "ThresholdingCalculator": "PythonThresholdingCalculator",
    "GateCalculator": "PythonGateCalculator",
    "TensorsToLandmarksCalculator": "PythonTensorsToLandmarksCalculator",
    "TensorsToClassificationCalculator": "PythonTensorsToClassificationCalculator",
    "LandmarkLetterboxRemovalCalculator": "PythonLandmarkLetterboxRemovalCalculator",
    "RefineLandmarksFromHeatmapCalculator": "PythonRefineLandmarksFromHeatmapCalculator",
    "TensorsToSegmentationCalculator": "PythonTensorsToSegmentationCalculator",
    "InverseMatrixCalculator": "PythonInverseMatrixCalculator",
    "WarpAffineCalculator": "PythonWarpAffineCalculator",
}


@functools.cache
def _table() -> Mapping[str, Any]:
    path = resources.files("ovms_notebook").joinpath("portability", "ovms_subgraphs.json")
    return json.loads(path.read_text())["subgraphs"]


def fork_servables(calculators: Iterable[str]) -> dict[str, str]:
    """{model entry: the first of `calculators` that asks for it} over the fork's subgraphs among `calculators`."""
    table = _table()
    found: dict[str, str] = {}
    for name in calculators:
        for servable in table.get(name, {}).get("servables", ()):
            found.setdefault(servable, name)
    return found


def session_servables(config: Any) -> set[str]:
    """The model entries the session nodes of `config` (a CalculatorGraphConfig) open."""
    from google.protobuf import symbol_database

    from ovms_notebook.framework.protos import import_wheel_protos

    import_wheel_protos()  # OVMS's options protos among them, known by name from then on
    message = symbol_database.Default().GetSymbol(_SESSION_OPTIONS.rpartition("/")[2])
    found = set()
    for node in config.node:
        if node.calculator != SESSION_CALCULATOR:
            continue
        options = message()
        for packed in node.node_options:
            if packed.Is(options.DESCRIPTOR):
                packed.Unpack(options)
        found.add(options.servable_name)
    return found


def session_node_text(servable: str, side_packet: str, name: str = "") -> str:
    """pbtxt of a node opening a session on model entry `servable` (default version) as SESSION:`side_packet`."""
    named = f'name: "{name}" ' if name else ""
    return (
        f'node {{ {named}calculator: "{SESSION_CALCULATOR}" output_side_packet: "SESSION:{side_packet}" '
        f'node_options {{ [{_SESSION_OPTIONS}] {{ servable_name: "{servable}" }} }} }}'
    )


def inference_node_text(fork: ForkInference, side_packet: str, source: str, target: str, name: str = "",
                        tag: str = "TFLITE_TENSORS") -> str:
    """pbtxt of the fork's OpenVINOInferenceCalculator: `tag`:`source` -> `tag`:`target` (TFLITE_TENSORS for the
    legacy TfLite calculators, TENSORS for `InferenceCalculator`'s)."""
    named = f'name: "{name}" ' if name else ""
    inputs = ", ".join(f'"{tensor}"' for tensor in fork.inputs)
    outputs = ", ".join(f'"{tensor}"' for tensor in fork.outputs)
    return (
        f'node {{ {named}calculator: "OpenVINOInferenceCalculator" input_side_packet: "SESSION:{side_packet}" '
        f'input_stream: "{tag}:{source}" output_stream: "{tag}:{target}" '
        f"node_options {{ [{_INFERENCE_OPTIONS}] {{ input_order_list: [{inputs}] "
        f"output_order_list: [{outputs}] }} }} }}"
    )


def model_entry_checks(config: Any, servables: Iterable[str]) -> Any:
    """A copy of `config` with a session node for each of `servables` no session node of it opens yet.

    Such a node only loads its model entry when a run starts (a missing or unloadable one fails it, as
    on OVMS); nothing reads its SESSION side packet.
    """
    from mediapipe.framework import calculator_pb2

    from ovms_notebook.framework.protos import parse_graph_config

    missing = [servable for servable in dict.fromkeys(servables) if servable not in session_servables(config)]
    checked = calculator_pb2.CalculatorGraphConfig()
    checked.CopyFrom(config)
    if missing:
        extra = parse_graph_config(
            " ".join(
                session_node_text(servable, f"{CHECK_PREFIX}__{servable}", f"{CHECK_PREFIX}__{servable}")
                for servable in missing
            )
        )
        checked.node.extend(extra.node)
    return checked
