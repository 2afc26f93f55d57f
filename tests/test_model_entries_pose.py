"""Pose landmarks infer on the `pose_landmark_full` model entry, as OVMS's MediaPipe fork does.

With the entry served, `PoseLandmarkByRoiCpu` is expanded from MediaPipe's pbtxt: its inference runs on
OpenVINO, and the nodes around it run as Python twins (ovms_notebook.calculators.pose_tensors,
tensor_plumbing): heatmap refinement, the segmentation mask and its warp back onto the image. Each
output is checked against the same graph on the wheel's TFLite path (C++ calculators), and a swapped
model changes the output or fails the stream as OVMS would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.models.wheel import wheel_modules_dir
from ovms_notebook.sources import astronaut, pan_zoom
from tests.test_model_entries import POSE, POSE_MODELS, mesh_folder, mesh_outputs, pose_points

SEGMENTATION = """
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:pose_landmarks"
output_stream: "WORLD_LANDMARKS:world"
output_stream: "SEGMENTATION_MASK:mask"
node { calculator: "ConstantSidePacketCalculator" output_side_packet: "PACKET:segmentation"
  node_options: { [type.googleapis.com/mediapipe.ConstantSidePacketCalculatorOptions]: { packet { bool_value: %s } } } }
node { calculator: "PoseLandmarkCpu" input_side_packet: "ENABLE_SEGMENTATION:segmentation"
  input_stream: "IMAGE:image" output_stream: "LANDMARKS:pose_landmarks" output_stream: "WORLD_LANDMARKS:world"
  output_stream: "SEGMENTATION_MASK:mask" }
"""


def world(outputs: dict[str, object]) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in outputs["world"].landmark])  # type: ignore[attr-defined]


def scores(outputs: dict[str, object]) -> np.ndarray:
    return np.array([[p.visibility, p.presence] for p in outputs["pose_landmarks"].landmark])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Three frames of one size (the mask smoothing needs that) of a camera panning over the astronaut."""
    return list(pan_zoom(astronaut(), 3))


@pytest.fixture(scope="module")
def wheel(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """PoseLandmarkCpu with segmentation as the wheel runs it (no entry served): TFLite, C++ calculators."""
    return mesh_outputs(mesh_folder(tmp_path_factory.mktemp("wheel"), {}, SEGMENTATION % "true"), frames)


@pytest.fixture(scope="module")
def entries(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    return mesh_outputs(mesh_folder(tmp_path_factory.mktemp("entries"), dict(POSE_MODELS), SEGMENTATION % "true"),
                        frames)


def test_with_the_entry_pose_landmarks_infer_on_it_with_python_tensor_nodes() -> None:
    spec = parse_graph(SEGMENTATION % "true", models=list(POSE_MODELS))
    assert spec.split is not None and spec.split.python is not None
    python = {node.calculator for node in spec.split.python.node}
    native = {node.calculator for node in spec.split.native.node}  # type: ignore[attr-defined]
    assert {"OpenVINOInferenceCalculator", "PythonRefineLandmarksFromHeatmapCalculator",
            "PythonTensorsToSegmentationCalculator", "PythonInverseMatrixCalculator", "PythonWarpAffineCalculator",
            "PythonGateCalculator", "PythonLandmarkLetterboxRemovalCalculator"} <= python
    # nothing of the wheel's pose landmark path is left: no TFLite inference, no native subgraph
    assert not native & {"PoseLandmarkByRoiCpu", "InferenceCalculator", "PoseLandmarkModelLoader",
                         "RefineLandmarksFromHeatmapCalculator", "WarpAffineCalculator"}
    # the native ConstantSidePacketCalculator's flag reaches the Python gate as a value known at parse time
    assert dict(spec.split.python_constants) == {"segmentation": True}


def test_pose_landmarks_on_the_entry_match_the_wheels(wheel: list[dict[str, object]],
                                                       entries: list[dict[str, object]]) -> None:
    assert [sorted(o) for o in entries] == [sorted(o) for o in wheel] == [["mask", "pose_landmarks", "world"]] * 3
    first, theirs = entries[0], wheel[0]
    # one inference on the ROI the detection placed: measured 8.5e-5 apart (heatmap-refined x, y)
    np.testing.assert_allclose(pose_points(first), pose_points(theirs), rtol=0, atol=3e-4)
    np.testing.assert_allclose(scores(first), scores(theirs), rtol=0, atol=2e-3)
    np.testing.assert_allclose(world(first), world(theirs), rtol=0, atol=3e-4)
    # later frames crop by the last landmarks: MediaPipe's pose model amplifies the first frame's 1e-4 (on the
    # wheel path alone, one pixel's lowest bit moves tracked landmarks by 4e-2), so only closeness is asked
    for mine, other in zip(entries[1:], wheel[1:], strict=True):
        apart = np.abs(pose_points(mine) - pose_points(other))
        assert apart.max() < 2e-2 and np.median(apart) < 2e-3, (apart.max(), np.median(apart))


def test_the_segmentation_mask_on_the_entry_matches_the_wheels_and_covers_the_person(
    wheel: list[dict[str, object]], entries: list[dict[str, object]], frames: list[np.ndarray]
) -> None:
    mine, theirs = (np.asarray(o["mask"], np.float32)[..., 0] for o in (entries[0], wheel[0]))
    assert mine.shape == theirs.shape == frames[0].shape[:2]
    # TensorsToSegmentation (sigmoid, resize) and the warp back by the inverse crop matrix, as in C++:
    # measured 3.8e-6 mean and 5.5e-3 at most apart, on the person's outline
    assert np.abs(mine - theirs).mean() < 5e-5
    assert np.abs(mine - theirs).max() < 5e-2
    assert ((mine > 0.5) != (theirs > 0.5)).mean() < 1e-3
    # the mask is on the astronaut: her face and suit, not the corners of the frame
    person = mine > 0.5
    assert 0.2 < person.mean() < 0.8, person.mean()
    rows = np.nonzero(person)[0]
    assert rows.min() < 60 and rows.max() == mine.shape[0] - 1  # from the top of her head down off the frame
    assert mine[:20, :20].max() < 0.1 and mine[:20, -20:].max() < 0.1


def test_segmentation_stays_off_unless_enabled_and_landmarks_flow(tmp_path: Path, frames: list[np.ndarray],
                                                                  entries: list[dict[str, object]]) -> None:
    off = mesh_outputs(mesh_folder(tmp_path / "off", dict(POSE_MODELS), SEGMENTATION % "false"), frames)
    # the gate shut by the side packet closes the mask streams; the landmarks are those of the enabled run
    assert [sorted(o) for o in off] == [["pose_landmarks", "world"]] * 3
    np.testing.assert_array_equal(pose_points(off[0]), pose_points(entries[0]))
    unset = mesh_outputs(mesh_folder(tmp_path / "unset", dict(POSE_MODELS), POSE), frames[:1])
    assert sorted(unset[0]) == ["pose_detection", "pose_landmarks"]  # the gate's `allow: false` option


def shifted_world_model(path: Path, dx: float) -> Path:
    """The wheel's pose landmark model as OpenVINO IR whose world landmarks' x grows by `dx` metres."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / POSE_MODELS["pose_landmark_full"])
    steps = PrePostProcessor(model)
    shift = np.zeros((1, 117), np.float32)
    shift[0, 0::3] = dx
    steps.output("Identity_4").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


def test_a_replaced_pose_landmark_model_moves_the_world_landmarks(tmp_path: Path) -> None:
    model = shifted_world_model(tmp_path / "shifted" / "model.xml", dx=0.1)
    (before,) = mesh_outputs(mesh_folder(tmp_path / "entries", dict(POSE_MODELS), SEGMENTATION % "false"),
                             [astronaut()])
    (moved,) = mesh_outputs(
        mesh_folder(tmp_path / "swapped", {**POSE_MODELS, "pose_landmark_full": model}, SEGMENTATION % "false"),
        [astronaut()])
    shift = world(moved) - world(before)
    # the ROI's rotation turns the model's x axis: every point moves 0.1 m the same way, z stays
    np.testing.assert_allclose(np.hypot(shift[:, 0], shift[:, 1]), 0.1, atol=1e-4)
    np.testing.assert_allclose(shift[:, :2], np.broadcast_to(shift[0, :2], shift[:, :2].shape), atol=1e-4)
    np.testing.assert_allclose(shift[:, 2], 0.0, atol=1e-5)
    np.testing.assert_array_equal(pose_points(moved), pose_points(before))  # the image landmarks did not move


def test_a_pose_detection_model_under_pose_landmark_full_fails_the_stream_as_ovms_would(tmp_path: Path) -> None:
    folder = mesh_folder(tmp_path, {**POSE_MODELS, "pose_landmark_full": POSE_MODELS["pose_detection"]}, POSE)
    server = ovms_notebook.serve(folder)
    try:
        client = StreamClient(server.address, "faceMesh")
        client.send({"image": astronaut()})
        end = client.close()
    finally:
        server.stop()
    assert end.text != "OK"
    texts = [end.text, *(e.text for e in client.errors)]
    assert any('servable "pose_landmark_full" version 1 has no output \'Identity_2\'' in t for t in texts), texts


def test_without_the_entry_the_pose_graph_keeps_the_wheels_native_subgraph() -> None:
    spec = parse_graph(SEGMENTATION % "true")
    assert spec.split is None  # every node native, PoseLandmarkByRoiCpu among them, on the wheel's file
    assert "PoseLandmarkCpu" in {node.calculator for node in spec.config.node}
