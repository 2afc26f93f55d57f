"""Holistic's hands infer on the folder's `hand_landmark_full` and `hand_recrop` entries, as OVMS's fork does.

The graph feeds `HandLandmarksLeftAndRightCpu` (holistic's hand part: the pose's hand points -> recrop -> tracked
hand landmarks) and `HandLandmarkCpu` on its own (a ROI in, landmarks, world landmarks and handedness out) with a
drawn hand (tests.test_mediapipe_gallery.hand_frame) and its pose points, through `PROTO:` inputs. Served with the
entries, both subgraphs are expanded and infer on OpenVINO; without, they are the wheel's TFLite subgraphs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mediapipe.framework.formats import landmark_pb2, rect_pb2

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.models.wheel import wheel_modules_dir
from tests.test_mediapipe_gallery import hand_frame, hand_points, rect
from tests.test_model_entries import mesh_folder

HANDS = """
input_stream: "IMAGE:image"
input_stream: "PROTO:0:pose_landmarks"
input_stream: "PROTO:1:hand_rect"
output_stream: "LEFT_HAND_LANDMARKS:left_hand_landmarks"
output_stream: "LEFT_HAND_ROI_FROM_RECROP:left_hand_roi_from_recrop"
output_stream: "LANDMARKS:hand_landmarks"
output_stream: "WORLD_LANDMARKS:hand_world_landmarks"
output_stream: "HANDEDNESS:handedness"
node { calculator: "HandLandmarksLeftAndRightCpu" input_stream: "IMAGE:image"
  input_stream: "POSE_LANDMARKS:pose_landmarks" output_stream: "LEFT_HAND_LANDMARKS:left_hand_landmarks"
  output_stream: "LEFT_HAND_ROI_FROM_RECROP:left_hand_roi_from_recrop" }
node { calculator: "HandLandmarkCpu" input_stream: "IMAGE:image" input_stream: "ROI:hand_rect"
  output_stream: "LANDMARKS:hand_landmarks" output_stream: "WORLD_LANDMARKS:hand_world_landmarks"
  output_stream: "HANDEDNESS:handedness" }
"""
HAND_MODELS: dict[str, str | Path] = {"hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
                                      "hand_recrop": "holistic_landmark/hand_recrop.tflite"}
OUTPUTS = ["hand_landmarks", "hand_world_landmarks", "handedness", "left_hand_landmarks", "left_hand_roi_from_recrop"]


def pose() -> landmark_pb2.NormalizedLandmarkList:
    """33 pose landmarks, the left hand's four (wrist, pinky, index, thumb) on the drawn hand, the rest zero."""
    found = landmark_pb2.NormalizedLandmarkList(landmark=[landmark_pb2.NormalizedLandmark() for _ in range(33)])
    for index, point in zip((15, 17, 19, 21), hand_points().landmark, strict=True):
        found.landmark[index].CopyFrom(point)
    return found


def frames() -> list[tuple[np.ndarray, rect_pb2.NormalizedRect]]:
    """The hand three times (detection from the pose, then the tracking loop), then moved 20 px right."""
    moved = np.ascontiguousarray(np.roll(hand_frame(), 20, axis=1))
    return [(hand_frame(), rect((224, 340), 260, (448, 448)))] * 3 + [(moved, rect((230, 330), 250, (448, 448)))]


def hand_outputs(folder: Path, sent: list[tuple[np.ndarray, rect_pb2.NormalizedRect]]) -> list[dict[str, object]]:
    server = ovms_notebook.serve(folder)
    try:
        assert [(g.name, g.error) for g in server.graphs] == [("faceMesh", None)]
        client = StreamClient(server.address, "faceMesh")
        for frame, roi in sent:
            client.send({"image": frame, "pose_landmarks": pose().SerializeToString(),
                         "hand_rect": roi.SerializeToString()})
        end = client.close()
    finally:
        server.stop()
    assert end.text == "OK" and not client.errors, (end.text, [e.text for e in client.errors])
    outputs: list[dict[str, object]] = [{} for _ in sent]
    for entry in client.responses:
        assert entry.timestamp is not None
        outputs[entry.timestamp].update(entry.values)
    return outputs


def points(landmarks: object) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in landmarks.landmark])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def wheel_hands(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """The hand subgraphs as the wheel runs them (no entry served): TFLite, the wheel's files."""
    return hand_outputs(mesh_folder(tmp_path_factory.mktemp("wheel"), {}, HANDS), frames())


def test_with_the_entries_both_hand_subgraphs_infer_on_them() -> None:
    spec = parse_graph(HANDS, models=list(HAND_MODELS))
    assert spec.split is not None and spec.split.python is not None and spec.split.native is not None
    from ovms_notebook.calculators.openvino import OpenVINOModelServerSessionCalculatorOptions
    from ovms_notebook.framework.options import node_options

    sessions = sorted(node_options(node, OpenVINOModelServerSessionCalculatorOptions).servable_name
                      for node in spec.split.python.node if node.calculator == "OpenVINOModelServerSessionCalculator")
    # both hands of HandLandmarksLeftAndRightCpu (the right one unconnected runs all the same, as in MediaPipe)
    # and the lone HandLandmarkCpu
    assert sessions == ["hand_landmark_full"] * 3 + ["hand_recrop"] * 2
    native = {node.calculator for node in spec.split.native.node}
    assert not native & {"HandLandmarkCpu", "HandRecropByRoiCpu", "HandLandmarksFromPoseCpu", "InferenceCalculator",
                         "HandLandmarkModelLoader", "TensorsToClassificationCalculator",
                         "LandmarkLetterboxRemovalCalculator"}
    # the geometry between the Python-side decoders stays native, and so do holistic's own hand-tracking subgraphs
    assert {"LandmarkProjectionCalculator", "WorldLandmarkProjectionCalculator", "HandTracking",
            "AlignmentPointsRectsCalculator"} <= native
    python = {node.calculator for node in spec.split.python.node}
    assert {"PythonTensorsToClassificationCalculator", "PythonLandmarkLetterboxRemovalCalculator"} <= python


def test_hand_landmarks_on_the_entries_match_the_wheels_frame_by_frame(
    tmp_path: Path, wheel_hands: list[dict[str, object]]
) -> None:
    ours = hand_outputs(mesh_folder(tmp_path, dict(HAND_MODELS), HANDS), frames())
    assert [sorted(o) for o in ours] == [sorted(o) for o in wheel_hands] == [OUTPUTS] * 4
    for index, (mine, theirs) in enumerate(zip(ours, wheel_hands, strict=True)):
        at = f"frame {index}"
        assert points(mine["hand_landmarks"]).shape == (21, 3)
        # one inference on a given ROI: OpenVINO and TFLite 5e-7 apart (measured), landmarks and world landmarks
        for name in ("hand_landmarks", "hand_world_landmarks"):
            np.testing.assert_allclose(points(mine[name]), points(theirs[name]), rtol=0, atol=5e-6, err_msg=at)
        (side,), (expected,) = mine["handedness"].classification, theirs["handedness"].classification  # type: ignore[attr-defined]
        assert (side.index, side.label) == (expected.index, expected.label) == (1, "Right"), at
        assert side.score == pytest.approx(expected.score, abs=1e-5)
        recrop, recrop_expected = mine["left_hand_roi_from_recrop"], theirs["left_hand_roi_from_recrop"]
        np.testing.assert_allclose(
            [recrop.x_center, recrop.y_center, recrop.width, recrop.height, recrop.rotation],  # type: ignore[attr-defined]
            [recrop_expected.x_center, recrop_expected.y_center, recrop_expected.width,  # type: ignore[attr-defined]
             recrop_expected.height, recrop_expected.rotation], rtol=0, atol=1e-5, err_msg=at)  # type: ignore[attr-defined]
        # holistic's tracked hand: the tracking loop crops each frame by the last frame's landmarks, so the two
        # paths' 1e-6 grow frame by frame (measured: 3e-6, 9e-5, 4e-4, 1.1e-3 in x/y; z up to 4.8e-3)
        tracked, tracked_expected = points(mine["left_hand_landmarks"]), points(theirs["left_hand_landmarks"])
        np.testing.assert_allclose(tracked[:, :2], tracked_expected[:, :2], rtol=0, atol=3e-3, err_msg=at)
        np.testing.assert_allclose(tracked[:, 2], tracked_expected[:, 2], rtol=0, atol=1e-2, err_msg=at)


def shifted_hand_model(path: Path, dx: float) -> Path:
    """The wheel's hand landmark model as OpenVINO IR whose 21 x coordinates grow by `dx` (224-px crop units)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / str(HAND_MODELS["hand_landmark_full"]))
    steps = PrePostProcessor(model)
    shift = np.tile(np.float32([dx, 0, 0]), 21).reshape(1, 63)
    steps.output("Identity").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


def test_a_replaced_hand_landmark_model_moves_the_hand(tmp_path: Path, wheel_hands: list[dict[str, object]]) -> None:
    model = shifted_hand_model(tmp_path / "shifted" / "model.xml", dx=22.4)  # 0.1 of the crop
    (moved,) = hand_outputs(mesh_folder(tmp_path / "demo", {**HAND_MODELS, "hand_landmark_full": model}, HANDS),
                            frames()[:1])
    shift = points(moved["hand_landmarks"]) - points(wheel_hands[0]["hand_landmarks"])
    # the ROI is an upright square 260 px of 448 (no letterbox): every point moves right by 0.1 * 260 / 448
    np.testing.assert_allclose(shift[:, 0], 0.1 * 260 / 448, atol=1e-5)
    np.testing.assert_allclose(shift[:, 1:], 0.0, atol=1e-5)
    # the world landmarks come from the model's other output, untouched
    np.testing.assert_allclose(points(moved["hand_world_landmarks"]), points(wheel_hands[0]["hand_world_landmarks"]),
                               rtol=0, atol=5e-6)


def test_a_hand_landmark_model_under_hand_recrop_fails_the_stream_as_ovms_would(tmp_path: Path) -> None:
    folder = mesh_folder(tmp_path, {**HAND_MODELS, "hand_recrop": HAND_MODELS["hand_landmark_full"]}, HANDS)
    server = ovms_notebook.serve(folder)
    try:
        client = StreamClient(server.address, "faceMesh")
        client.send({"image": hand_frame(), "pose_landmarks": pose().SerializeToString(),
                     "hand_rect": frames()[0][1].SerializeToString()})
        client.close()
    finally:
        server.stop()
    assert client.status is not None and client.status.code == "INVALID_ARGUMENT", client.status
    assert 'OpenVINOInferenceCalculator: servable "hand_recrop" version 1 has no output \'output_crop\'' \
        in client.status.text, client.status.text
