"""Every notebook runs headless top to bottom in a fresh kernel (nbclient), with no error output, and computes
what the lesson says it computes: each ends by printing `SUMMARY {json}`, which these tests read."""

from __future__ import annotations

import json
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Native MediaPipe/TFLite write a few informational lines straight to the process's stderr; they are not errors.
NATIVE_LOG_PREFIXES = ("INFO: Created TensorFlow Lite", "WARNING: All log messages before absl", "W0000 ", "I0000 ")


def run_notebook(name: str) -> tuple[nbformat.NotebookNode, dict]:
    """Execute notebooks/<name> in a fresh kernel from its own folder; the notebook and its SUMMARY."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    summary = None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{name}: {output.ename}: {output.evalue}"
            if output.output_type == "stream" and output.name == "stderr":
                unexpected = [line for line in output.text.splitlines()
                              if line.strip() and not line.startswith(NATIVE_LOG_PREFIXES)]
                assert unexpected == [], f"{name} wrote to stderr: {unexpected}"
            if output.output_type == "stream" and output.name == "stdout":
                for line in output.text.splitlines():
                    if line.startswith("SUMMARY "):
                        summary = json.loads(line.removeprefix("SUMMARY "))
    assert summary is not None, f"{name} printed no SUMMARY line"
    return notebook, summary


def readme_picture_types(notebook: nbformat.NotebookNode) -> list[str]:
    """The image types the cell tagged `readme-picture` displayed (scripts/lesson_pictures.py saves the last)."""
    tagged = [cell for cell in notebook.cells if "readme-picture" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged readme-picture"
    return [kind for output in tagged[0].get("outputs", []) for kind in output.get("data", {})
            if kind.startswith("image/")]


def test_the_notebooks_folder_holds_the_four_lessons():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "01_explore_graphs.ipynb", "02_timestamps.ipynb", "03_tracking_prototype.ipynb", "04_openvino_models.ipynb"]
    for path in NOTEBOOKS.glob("*.ipynb"):  # committed without outputs: what runs is what the lesson shows
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name


def test_01_explore_graphs():
    notebook, summary = run_notebook("01_explore_graphs.ipynb")
    assert readme_picture_types(notebook) == ["image/svg+xml"]  # the graph drawing
    assert summary["by_hand"] == [[0, 1.5], [10, 2.5], [11, 3.5]]
    assert summary["faces"] == [[t, 1] for t in range(6)]
    assert summary["state"] == {"first": [10, 11], "second": [100]}
    assert summary["exercise"] == [7, 8]


def test_03_tracking_prototype():
    notebook, summary = run_notebook("03_tracking_prototype.ipynb")
    assert readme_picture_types(notebook) == ["image/png"]  # frames with their track ids
    ids = summary["ids"]
    assert ids[:15] == [[1]] * 15  # the face keeps id 1 while the camera pans and zooms
    assert ids[15:24] == [[]] * 9  # the scene cut: no face, yet every frame is answered
    assert ids[24:] == [[2]] * 16  # gone longer than MAX_MISSED: a new identity
    assert summary["fresh_ids"] == [[1]] * 5
    # the trace of frames 12..17 (timestamps 0..5): the tracker runs at every timestamp, with the detector's
    # packet while the face is there and with none (a bound only) once the cut starts
    assert summary["tracker_calls"] == [[t, ["detections"] if t < 3 else []] for t in range(6)]
    assert summary["same_ids_openvino"] is True
    assert summary["largest_difference"] < 1e-3
    assert summary["exercise"] == 5
    assert set(summary["ms_per_frame"]) == {"native", "openvino"}
    # towards OVMS: the detector needs OVMS's face_detection model entry and sends detection protos, which OVMS
    # cannot serialize; the notebook tracker is not portable and keeps state that OVMS would share between streams
    assert summary["portability"] == {
        "detector": ["ovms-subgraph-models", "unserializable-output"],
        "tracking": ["ovms-subgraph-models", "python-calculator", "shared-state"],
        "tracking_openvino": ["python-calculator", "shared-state"]}
    assert summary["left_behind"] == [["graph tracking, node 'tracker'", "not-exported"],
                                      ["graph tracking_openvino, node 'tracker'", "not-exported"]]


def test_04_openvino_models():
    notebook, summary = run_notebook("04_openvino_models.ipynb")
    assert readme_picture_types(notebook) == ["image/png"]  # the latency plot
    assert summary["models"] == ["face_detection_short_range", "palm_detection_lite", "hand_landmark_full",
                                 "pose_detection"]
    assert all(difference < 1e-3 for difference in summary["differences"].values()), summary["differences"]
    for figures in summary["latency_ms"].values():
        assert set(figures) == {"MediaPipe TFLite", "ModelInfer (gRPC, OpenVINO)", "OpenVINO in-process"}
        assert all(value > 0 for value in figures.values())


def test_02_timestamps():
    _, summary = run_notebook("02_timestamps.ipynb")
    assert summary["automatic"] == [0, 1, 2]
    assert summary["mixed"] == [0, 10, 11, 40, 41]
    assert summary["strict_errors"] == [
        'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it received; '
        "got 5; partial deserialization of subsequent requests"]
    assert summary["strict_stamps"] == [5, 6]  # the stream lived on
    assert (summary["mediapipe_end"], summary["mediapipe_stamps"]) == ("INVALID_ARGUMENT", [5])
    assert summary["together_and_apart"] == [[0, [1.0, 2.0]], [1, [3.0, 4.0]]]
    assert summary["default_handler"] == [[2, [5.0]], [3, [7.0, 6.0]]]
    assert summary["trace_process"] == [2, 3]  # the node ran at 2 and 3 only, as the responses show
    assert summary["immediate_handler"][:3] == [[2, [5.0]], [3, [6.0]], [4, [7.0]]]
    assert summary["detections"] == [0, 2]  # the wall frame at 1 is answered by nothing
    assert summary["previous"] == [[1, 10], [20, 11]]
    assert summary["drained"] == [[64, 4.5], [65, 5.5], [66, 6.5]]
    # six requests at once behind the flow limiter: only the first is admitted, then the one sent after its answer
    assert summary["flow_limited"] == [[0, 0.0], [6, 60.0]]
    assert summary["flow_slow_process"] == [0, 6]
    assert (summary["replay_same"], summary["replay_timestamps"]) == (True, [0, 10, 11, 40, 41])
