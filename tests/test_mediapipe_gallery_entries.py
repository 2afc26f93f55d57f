"""The gallery exported for OVMS and served back here: MediaPipe's graphs then infer on model entries.

`export` lays the gallery out for a real OVMS, with the model entries OVMS's MediaPipe fork needs
(`models/<name>/1/model.tflite`, from the wheel) in config.json. Served here, every graph whose
subgraphs the fork runs on those entries (face detection and landmarks, iris, pose, hands, holistic)
infers on them with OpenVINO, the tensor nodes around in Python. The gallery's own stream tests run
again on that server: the same meaning (boxes on the face, landmarks on the hand, the mask over the
person) must come out of the path a user gets after moving the folder to OVMS and back. Face
landmarks with attention are the exception, as on OVMS: the fork's face landmark model has none, so a
graph that turns attention on fails (here its stream ends with what to change, before any landmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.sources import astronaut
from tests.test_mediapipe_gallery import (  # noqa: F401  (collected again, on the exported folder's server)
    FACE,
    GALLERY,
    GRAPHS,
    one_frame,
    pixels,
    test_detection_modules_find_one_face_or_person,
    test_face_detection_boxes_the_face_and_draws_nothing_on_an_empty_frame,
    test_face_detection_by_roi_finds_the_face_inside_the_roi_only,
    test_hand_landmark_modules_put_21_landmarks_on_the_hand,
    test_hand_modules_fed_a_roi_or_pose_hand_points_put_21_landmarks_on_the_hand,
    test_hand_tracking_draws_the_hand_and_labels_its_handedness_top_left,
    test_holistic_tracking_draws_on_the_face_and_the_body,
    test_iris_module_fed_eye_corners_puts_five_iris_points_in_each_eye,
    test_iris_tracking_finds_both_irises_inside_the_face,
    test_pose_and_face_landmark_modules_fed_their_rois_give_what_the_image_fed_modules_give,
    test_pose_and_holistic_modules_find_the_astronaut,
    test_pose_tracking_finds_the_nose_on_the_face_and_tints_the_background,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ovms_notebook.export(GALLERY, tmp_path_factory.mktemp("export") / "gallery")


@pytest.fixture(scope="module")
def server(exported: Any) -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(exported.out_dir)
    yield server
    server.stop()


def test_export_leaves_the_calculators_ovms_links_alone_and_names_only_what_it_cannot_carry(exported: Any) -> None:
    # the render calculators ovms_notebook runs in Python stand in for OVMS's native ones: they stay as written
    left = {problem.subject for problem in exported.problems if problem.kind == "not-exported"}
    assert left == {"graph iris_depth_cpu, node 'ImageFilePropertiesCalculator'",
                    "graph selfie_segmentation_cpu, node 'RecolorCalculator'"}
    graph = (exported.out_dir / "holistic_tracking_cpu" / "graph.pbtxt").read_text()
    assert 'calculator: "HolisticTrackingToRenderData"' in graph and "PythonExecutorCalculator" not in graph


def test_every_exported_graph_loads_but_the_face_mesh_that_turns_attention_on(server) -> None:
    states = {graph.name: graph.state.name for graph in server.graphs}
    assert states == {name: "FAILED" if name == "face_mesh_desktop_live" else "AVAILABLE" for name in GRAPHS}


def test_the_exported_gallery_serves_the_forks_subgraphs_on_its_model_entries(server) -> None:
    entries = {d.name: sorted(d.spec.model_entries) for d in server.graphs
               if d.spec is not None and d.spec.model_entries}
    assert Path(server.repository.config_path).parent.name == "gallery"
    assert entries["holistic_tracking_cpu"] == ["face_detection", "face_landmark", "hand_landmark_full",
                                                "hand_recrop", "pose_detection", "pose_landmark_full"]
    assert entries["pose_tracking_cpu"] == ["pose_detection", "pose_landmark_full"]
    assert entries["iris_tracking_cpu"] == ["face_detection", "face_landmark", "iris_landmark"]


#: What a graph on the entries says when a side packet turns attention on for face landmarks.
ATTENTION = ("picks channel 1 of 2 of a SwitchContainer (attention on, for face landmarks), but on its model entry "
             "the subgraph runs channel 0: OVMS's MediaPipe fork infers face landmarks with one set of outputs, "
             "without attention, and the same graph fails on OVMS")


@pytest.mark.parametrize("graph", ["face_landmark_front_cpu", "face_landmark_front_cpu_image"])
def test_face_landmark_modules_on_the_entry_give_the_mesh_and_refuse_attention(server, graph: str) -> None:
    (face,) = one_frame(server, graph, astronaut())["multi_face_landmarks"]  # type: ignore[misc]
    assert len(face.landmark) == 468 and within_face(face)  # WITH_ATTENTION not sent: the fork's model
    client = StreamClient(server.address, graph)
    client.send({"image": astronaut()}, parameters={"with_attention": True})
    end = client.close()
    assert f"the side packet 'with_attention' = True {ATTENTION}; give it false, or leave it out of the request" in (
        end.text), end.text
    assert not any("multi_face_landmarks" in entry.values for entry in client.responses)  # the native pass-through
    (face,) = one_frame(server, graph, astronaut(), with_attention=False)["multi_face_landmarks"]  # type: ignore[misc]
    assert len(face.landmark) == 468


def test_face_mesh_with_attention_made_in_the_graph_fails_to_load_and_check_says_what_to_write(server) -> None:
    # MediaPipe's face_mesh_desktop_live makes with_attention true with a ConstantSidePacketCalculator: known when
    # the graph loads, so it is refused then (on OVMS it loads and fails at its first frame)
    (definition,) = [d for d in server.graphs if d.name == "face_mesh_desktop_live"]
    assert definition.error == (f"the side packet 'with_attention' = True {ATTENTION}; in the "
                                "ConstantSidePacketCalculator making with_attention, write: "
                                "packet { bool_value: false }")
    report = ovms_notebook.check(Path(server.repository.config_path).parent)
    findings = report.graph("face_mesh_desktop_live").findings
    (finding,) = [f for f in findings if f.kind == "ovms-fork-attention"]
    assert finding.subject == "node FaceLandmarkFrontCpu WITH_ATTENTION true ('with_attention')"
    assert finding.fix == "packet { bool_value: false }  # in the ConstantSidePacketCalculator making with_attention"
    assert not [f for f in findings if f.kind == "graph-load"]  # the same reason, told once


def within_face(face: object) -> bool:
    from tests.test_mediapipe_gallery import within

    return within(pixels(face, (512, 512)), FACE)
