"""Every lesson runs headless top to bottom in a fresh kernel (nbclient), with no error output, computes what the
lesson says it computes (each ends by printing `SUMMARY {json}`), gives the same text outputs on every run, and
leaves no thread of ours behind.

Each lesson runs `RUNS` times (the lessons side by side, one kernel each): once as committed (every exercise
still a blank, which must say "your turn" and nothing else: no picture, no value that gives the answer away), once
with wrong answers (which must be called wrong) and otherwise with
the answers of tests/lesson_solutions.py (called right). Text outputs - stdout and the text of results, not
pictures or widgets - are compared across runs after `normalised` takes out what differs by nature (ports,
object addresses, temporary folders, and the figures of cells tagged `timing`).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.lesson_solutions import SOLUTIONS, WRONG

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = ["01_explore_graphs.ipynb", "02_timestamps.ipynb", "03_tracking_prototype.ipynb",
           "04_openvino_models.ipynb", "05_live_camera.ipynb"]
RUNS = 10
YOUR_TURN = "your turn: replace the ... in `answer = ...` with your prediction and run this cell again\n"
# Native MediaPipe/TFLite write a few informational lines straight to the process's stderr; they are not errors.
NATIVE_LOG_PREFIXES = ("INFO: Created TensorFlow Lite", "WARNING: All log messages before absl", "W0000 ", "I0000 ")
# Appended to every run: our threads (server, clients, widgets) must be gone once the lesson's last cell ran; the
# package's one process-wide thread, which forwards native log lines in a kernel, is started by the import.
THREADS_CELL = '''import threading as _threading, time as _time
from ovms_notebook._native_logs import THREAD_NAME as _LOGS
def _ours():
    return sorted(t.name for t in _threading.enumerate() if t.name.startswith("ovms-") and t.name != _LOGS)
_deadline = _time.monotonic() + 15
while _time.monotonic() < _deadline and _ours():
    _time.sleep(0.1)
_ours = _ours()
print("THREADS", __import__("json").dumps(_ours))'''


@dataclass
class Run:
    """One headless run of a lesson: its SUMMARY, the verdict of each exercise, the normalised text per cell."""

    variant: str  # "blank", "wrong" or "right"
    summary: dict
    verdicts: dict[str, str]
    texts: list[str]
    exercise_cells: set[int]
    threads: list[str]
    picture_types: list[str]
    shown: dict[int, list[str]]  # per cell, the kinds of what it displayed (pictures, widgets, results)


def normalised(text: str, timing: bool) -> str:
    text = re.sub(r"(127\.0\.0\.1|localhost|\[::1\]):\d+", r"\1:PORT", text)
    text = re.sub(r"0x[0-9a-f]{6,}", "0xADDR", text)
    text = re.sub(r"/tmp/[\w.\-]+", "/tmp/TEMP", text)
    if timing:
        text = re.sub(r"\d+\.\d+(e[-+]?\d+)?", "#", text)
    return text


def fill(notebook: nbformat.NotebookNode, answers: dict[str, object] | None) -> None:
    """Put `answers` in place of the blank `answer = ...` of each exercise cell (None: leave the blanks)."""
    for cell in notebook.cells:
        name = cell.get("metadata", {}).get("exercise")
        if name is None:
            continue
        assert re.search(r"^answer = \.\.\.", cell.source, re.M), f"exercise {name} has no blank: {cell.source}"
        if answers is not None:
            cell.source = re.sub(r"^answer = \.\.\.", f"answer = {answers[name]!r}", cell.source, flags=re.M)


def run_notebook(name: str, variant: str = "right") -> Run:
    """Execute notebooks/<name> in a fresh kernel from its own folder, with the exercises filled per `variant`."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    fill(notebook, {"blank": None, "wrong": WRONG, "right": SOLUTIONS}[variant])
    notebook.cells.append(nbformat.v4.new_code_cell(THREADS_CELL))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    summary, threads, verdicts, texts, exercises, pictures, shown = None, None, {}, [], set(), [], {}
    for index, cell in enumerate(notebook.cells):
        timing = "timing" in cell.get("metadata", {}).get("tags", [])
        parts = []
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{name}: {output.ename}: {output.evalue}"
            if output.output_type == "stream" and output.name == "stderr":
                unexpected = [line for line in output.text.splitlines()
                              if line.strip() and not line.startswith(NATIVE_LOG_PREFIXES)]
                assert unexpected == [], f"{name} wrote to stderr: {unexpected}"
            elif output.output_type == "stream":
                parts.append(output.text)
            else:
                data = output.get("data", {})
                shown.setdefault(index, []).append(next(iter(data), output.output_type))
                if "readme-picture" in cell.get("metadata", {}).get("tags", []):
                    pictures += [kind for kind in data if kind.startswith("image/")]
                if not any(kind.startswith(("image/", "application/vnd.jupyter.widget")) for kind in data):
                    parts.append(data.get("text/plain", ""))
        # one print may arrive as several stream messages on a busy machine: read the cell's text as a whole
        for line in "".join(parts).splitlines():
            if line.startswith("SUMMARY "):
                summary = json.loads(line.removeprefix("SUMMARY "))
            elif line.startswith("THREADS "):
                threads = json.loads(line.removeprefix("THREADS "))
        exercise = cell.get("metadata", {}).get("exercise")
        if exercise is not None:
            exercises.add(index)
            verdicts[exercise] = next((line for part in parts for line in part.splitlines()
                                       if line.startswith(("right:", "not quite:", "your turn:"))), "")
        texts.append(normalised("".join(parts), timing) if "SUMMARY " not in "".join(parts) else "")
    assert summary is not None, f"{name} printed no SUMMARY line"
    assert threads is not None
    return Run(variant, summary, verdicts, texts, exercises, threads, pictures, shown)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> dict[str, list[Run]]:
    """Every lesson whose test was selected (`-k test_02` runs lesson 02 only) RUNS times, the lessons side by side
    (a lesson's runs one after another)."""
    variants = ["blank", "wrong", *["right"] * (RUNS - 2)]
    selected = {item.name for item in request.session.items}
    lessons = [name for name in LESSONS if f"test_{name.removesuffix('.ipynb')}" in selected]

    def lesson(name: str) -> list[Run]:
        return [run_notebook(name, variant) for variant in variants]

    with concurrent.futures.ThreadPoolExecutor(max(len(lessons), 1)) as pool:
        return dict(zip(lessons, pool.map(lesson, lessons), strict=True))


def check_runs(name: str, runs: list[Run]) -> list[Run]:
    """The checks every lesson shares; returns its runs with right answers."""
    first = runs[0]
    for run in runs:
        assert run.threads == [], f"{name} ({run.variant}) left threads: {run.threads}"
        expected = {"blank": "your turn:", "wrong": "not quite:", "right": "right:"}[run.variant]
        assert run.verdicts and all(v.startswith(expected) for v in run.verdicts.values()), (run.variant, run.verdicts)
        if run.variant == "blank":  # an exercise never shows its truth under a blank: "your turn" and nothing else
            for index in run.exercise_cells:
                assert (run.texts[index], run.shown.get(index, [])) == (YOUR_TURN, []), (
                    f"{name} cell {index} shows more than 'your turn' while its answer is blank")
        for index, (text, reference) in enumerate(zip(run.texts, first.texts, strict=True)):
            if index not in run.exercise_cells:
                assert text == reference, f"{name} cell {index}, {run.variant} run:\n{text}\n---\n{reference}"
    right = [run for run in runs if run.variant == "right"]
    for run in right[1:]:
        assert run.texts == right[0].texts, f"{name}: exercise outputs differ between runs with the same answers"
    return right


def test_the_notebooks_folder_holds_the_four_lessons():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == LESSONS
    for path in NOTEBOOKS.glob("*.ipynb"):  # committed without outputs: what runs is what the lesson shows
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name
        exercises = [cell.metadata["exercise"] for cell in notebook.cells if "exercise" in cell.get("metadata", {})]
        assert exercises and set(exercises) <= set(SOLUTIONS) and set(SOLUTIONS) == set(WRONG), path.name


def test_01_explore_graphs(runs):
    for run in check_runs("01", runs["01_explore_graphs.ipynb"]):
        assert run.picture_types == ["image/svg+xml"]  # the graph drawing
        summary = run.summary
        assert summary["by_hand"] == [[0, 1.5], [10, 2.5], [11, 3.5]]
        assert summary["faces"] == [[t, 1] for t in range(6)]
        assert summary["state"] == {"first": [10, 11], "second": [100]}
        assert summary["exercise"] == [7, 8]


def test_02_timestamps(runs):
    for run in check_runs("02", runs["02_timestamps.ipynb"]):
        summary = run.summary
        assert summary["automatic"] == [0, 1, 2]
        assert summary["mixed"] == [0, 10, 11, 40, 41]
        assert summary["strict_errors"] == [
            'Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it '
            "received; got 5; partial deserialization of subsequent requests"]
        assert summary["strict_stamps"] == [5, 6]  # the stream lived on
        assert summary["strict_error_at"] == [5]  # on the rejected second @5, not on the @6 sent after it
        assert (summary["mediapipe_end"], summary["mediapipe_stamps"]) == ("INVALID_ARGUMENT", [5])
        assert summary["together_and_apart"] == [[0, [1.0, 2.0]], [1, [3.0, 4.0]]]
        assert summary["default_handler"] == [[2, [5.0]], [3, [7.0, 6.0]]]
        assert summary["trace_process"] == [2, 3]  # the node ran at 2 and 3 only, as the responses show
        # the immediate handler: the same first answers in every one of the 30 streams, and only known endings
        assert summary["immediate_handler"] == [[2, [5.0]], [3, [6.0]], [4, [7.0]]]
        assert summary["immediate_unexpected"] == []
        # MediaPipe's own warning about that race, taken by the cell instead of shown as a stderr block
        assert summary["immediate_warnings"] == [
            'Calculator node "ConcatenateFloatVectorCalculator" is configured with multiple input sync-sets and an '
            "output timestamp-offset, which will often conflict due to the order of packet arrival.  With multiple "
            "input sync-sets, use SetProcessTimestampBounds in place of SetTimestampOffset."]
        assert summary["detections"] == [0, 2]  # the wall frame at 1 is answered by nothing
        assert summary["previous"] == [[1, 10], [20, 11]]
        assert summary["drained"] == [[64, 4.5], [65, 5.5], [66, 6.5]]
        # six requests at once behind the flow limiter: only the first is admitted, then the one after its answer
        assert summary["flow_limited"] == [[0, 0.0], [6, 60.0]]
        assert summary["flow_slow_process"] == [0, 6]
        assert (summary["replay_same"], summary["replay_timestamps"]) == (True, [0, 10, 11, 40, 41])


def test_03_tracking_prototype(runs):
    for run in check_runs("03", runs["03_tracking_prototype.ipynb"]):
        assert run.picture_types == ["image/png"]  # frames with their track ids
        summary = run.summary
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
        # towards OVMS: the detector needs OVMS's face_detection model entry and sends detection protos, which
        # OVMS cannot serialize; the notebook tracker is not portable and keeps state that OVMS would share
        assert summary["portability"] == {
            "detector": ["ovms-subgraph-models", "unserializable-output"],
            "tracking": ["ovms-subgraph-models", "python-calculator", "shared-state"],
            "tracking_openvino": ["python-calculator", "shared-state"]}
        assert summary["left_behind"] == [["graph tracking, node 'tracker'", "not-exported"],
                                          ["graph tracking_openvino, node 'tracker'", "not-exported"]]
        # the report speaks of the learner's tracker, never of the package's own internals it uses
        assert summary["problems"] and not any("global" in problem for problem in summary["problems"])
        assert any("process_timestamp_bounds=True" in problem for problem in summary["problems"])
        assert summary["export_kept"] is True  # the folder the docker line names exists after the cell


def test_04_openvino_models(runs):
    for run in check_runs("04", runs["04_openvino_models.ipynb"]):
        assert run.picture_types == ["image/png"]  # the latency plot
        summary = run.summary
        assert summary["models"] == ["face_detection_short_range", "palm_detection_lite", "hand_landmark_full",
                                     "pose_detection"]
        assert all(difference < 1e-3 for difference in summary["differences"].values()), summary["differences"]
        for figures in summary["latency_ms"].values():
            assert set(figures) == {"MediaPipe TFLite", "ModelInfer (gRPC, OpenVINO)", "OpenVINO in-process"}
            assert all(value > 0 for value in figures.values())


def test_four_run_alls_of_lesson_01_in_one_kernel_do_not_grow_threads():
    notebook = nbformat.read(NOTEBOOKS / "01_explore_graphs.ipynb", as_version=4)
    fill(notebook, SOLUTIONS)
    count = nbformat.v4.new_code_cell("import threading as _t, time as _time\n_time.sleep(4)\n"
                                      "print('COUNT', _t.active_count())")
    notebook.cells.append(count)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    counts = []
    with client.setup_kernel():
        for _ in range(4):
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
            counts += [int(line.split()[1]) for output in count.outputs if output.output_type == "stream"
                       for line in output.text.splitlines() if line.startswith("COUNT ")]
    assert len(counts) == 4 and counts == [counts[0]] * 4, counts  # each Run All ends where the first did


def test_05_live_camera(runs):
    """Headless there is no browser, so no camera: the lesson says so and feeds the synthetic one through the
    camera's own path (its live path runs in tests/browser/test_camera_browser.py)."""
    for run in check_runs("05", runs["05_live_camera.ipynb"]):
        assert any("no camera connected (camera state 'off'): feeding a synthetic camera instead" in text
                   for text in run.texts)
        summary = run.summary
        assert summary["live"] is False
        assert summary["requests"] == 60
        assert summary["timestamps"] == [round(i * 1e6 / 30) for i in range(60)]  # capture times at 30 fps, in µs
        assert summary["same"] is True  # the replay on a fresh stream answers exactly as the recording
        assert summary["ids"] == [[1]] * 60  # the astronaut keeps id 1 as she slides across the frame
        assert summary["detector_same_timestamps"] is True
        assert summary["left_behind"] == []
        assert summary["exercise"] == 1
