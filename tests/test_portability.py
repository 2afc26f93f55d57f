"""`check` finds each reason a stock OVMS would refuse a graph; `export` writes a folder that loads back
into ovms_notebook and answers a recorded session with the same values and timestamps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import ovms_notebook
import tests.portability_calcs  # noqa: F401  (registers RunningSum and StampedCounter)
from ovms_notebook.client import StreamClient
from ovms_notebook.client.recording import Recording
from ovms_notebook.client.replay import compare, replay
from ovms_notebook.engine.python.api import unregister
from ovms_notebook.portability import check
from ovms_notebook.portability.check import Finding, config_schema
from ovms_notebook.portability.export import export
from tests.conftest import write_graphs

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
PASSTHROUGH = 'input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }\n'  # noqa: E501


def one_node(calculator: str, stream_in: str = "in") -> str:
    return (f'input_stream: "{stream_in}"\noutput_stream: "out"\n'
            f'node {{ name: "n" calculator: "{calculator}" input_stream: "{stream_in}" output_stream: "out" }}\n')


def test_a_portable_graph_reports_clean(tmp_path: Path) -> None:
    report = check(write_graphs(tmp_path, {"passthrough": PASSTHROUGH}))
    assert report.graph("passthrough").findings == []
    assert report.portable
    assert [f.kind for f in report.findings] == ["timestamps", "timestamp-check"]
    assert {f.severity for f in report.findings} == {"warning", "note"}


def test_each_calculator_problem_is_found_with_its_reason(tmp_path: Path) -> None:
    notebook: dict = {"__name__": "__main__"}
    exec("from ovms_notebook.engine.python.api import Calculator, register\n"
         "@register('CellCalculator')\nclass CellCalculator(Calculator):\n"
         "    inputs = (':0',)\n    outputs = (':0',)\n",
         notebook)
    config = write_graphs(tmp_path, {
        "wheel_only": one_node("TensorConverterCalculator"),
        "ovms_only": one_node("BoxTrackerCalculator"),
        "nowhere": one_node("NoSuchCalculator"),
        "cell": one_node("CellCalculator"),
        "tagged": 'input_stream: "INT:in"\noutput_stream: "out"\n'
                  'node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }\n',
    })
    try:
        report = check(config)
    finally:
        unregister("CellCalculator")
    assert not report.portable
    load, wheel_only = report.graph("wheel_only").findings  # the load error first
    assert (wheel_only.severity, wheel_only.kind, wheel_only.subject) == (
        "error", "ovms-lacks-calculator", "TensorConverterCalculator")
    # wired with one untagged stream, it does not load either: MediaPipe's contract check says why
    assert (load.severity, load.kind) == ("error", "graph-load")
    assert "Only one input tag of {IMAGE, IMAGE_GPU, MATRIX} may be specified" in load.reason
    assert wheel_only.reason.startswith("the mediapipe 0.10.21 wheel registers it but OVMS's build does not link it (")
    (ovms_only,) = report.graph("ovms_only").findings
    assert (ovms_only.severity, ovms_only.kind) == ("warning", "wheel-lacks-calculator")
    assert report.graph("ovms_only").portable  # runs on OVMS; only ovms_notebook cannot run it
    assert report.graph("nowhere").findings == [Finding(
        "error", "unknown-calculator", "NoSuchCalculator",
        "neither OVMS's build nor the mediapipe 0.10.21 wheel registers it, and no Python calculator has that name")]
    (cell,) = report.graph("cell").findings
    assert (cell.kind, cell.subject) == ("python-calculator", "CellCalculator")
    assert cell.reason.startswith("a Python calculator registered with ovms_notebook (a notebook cell, class "
                                  "CellCalculator); OVMS has no such calculator.")
    (tag,) = report.graph("tagged").findings
    assert (tag.kind, tag.subject) == ("extension-tag", "input_stream 'INT:in'")
    assert tag.reason.startswith("INT: is an ovms_notebook extension tag")


def test_our_own_tracker_and_the_example_graphs() -> None:
    report = check(GRAPHS)
    tracker, state, models = report.graph("face_tracking").findings
    assert (tracker.kind, tracker.subject) == ("python-calculator", "DetectionTrackerCalculator")
    assert "module ovms_notebook.calculators.tracking" in tracker.reason
    assert (state.severity, state.kind, state.subject) == ("warning", "shared-state", "DetectionTrackerCalculator")
    assert (models.kind, models.subject) == ("ovms-subgraph-models", "FaceDetectionShortRangeCpu")  # see
    # tests/test_portability_ovms_subgraphs.py for face_detection and holisticTracking
    for portable in ("passthrough", "face_detection_openvino", "image_flip"):
        assert report.graph(portable).findings == [], portable
    assert [f.subject for f in report.graph("previous_value").findings] == ["input_stream 'INT:in'"]


def test_what_ovms_notebook_runs_in_place_of_ovms_calculators_is_portable(tmp_path: Path) -> None:
    """The render calculators and the holistic render subgraph are in OVMS's build but not in the wheel; ours
    stand in for them, so a graph naming them runs in both places. A notebook calculator that takes the name
    of an OVMS calculator is still a notebook calculator."""
    notebook: dict = {"__name__": "__main__"}
    exec("from ovms_notebook.engine.python.api import Calculator, register\n"
         "@register('BoxTrackerCalculator')\nclass Impostor(Calculator):\n"
         "    inputs = (':0',)\n    outputs = (':0',)\n",
         notebook)
    config = write_graphs(tmp_path, {
        "render": one_node("LandmarksToRenderDataCalculator", "LANDMARKS:in").replace(
            'output_stream: "out" }', 'output_stream: "RENDER_DATA:out" }'),
        "holistic_render": (GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt").read_text(),
        "impostor": one_node("BoxTrackerCalculator"),
    })
    try:
        report = check(config)
    finally:
        unregister("BoxTrackerCalculator")
    assert report.graph("render").findings == []
    assert [f.kind for f in report.graph("holistic_render").findings] == ["ovms-subgraph-models"]  # models only
    (impostor,) = report.graph("impostor").findings
    assert (impostor.kind, impostor.subject) == ("python-calculator", "BoxTrackerCalculator")


def test_config_fields_ovms_rejects(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "graph.pbtxt").write_text(PASSTHROUGH)
    (tmp_path / "config.json").write_text(json.dumps({
        "mediapipe_config_list": [{"name": "g", "base_path": "g", "graph_pathh": "graph.pbtxt"}],
        "colour": "blue",
    }))
    errors = [(f.subject, f.reason) for f in check(tmp_path).findings if f.kind == "config-schema"]
    assert errors == [
        ("config.json", "OVMS's config schema rejects it: 'model_config_list' is a required property"),
        ("config.json", "OVMS's config schema rejects it: Additional properties are not allowed ('colour' was "
                        "unexpected)"),
        ("config.json['mediapipe_config_list'][0]", "OVMS's config schema rejects it: Additional properties are "
                                                    "not allowed ('graph_pathh' was unexpected)"),
    ]


def test_handler_importing_ovms_notebook(tmp_path: Path) -> None:
    graph = ('input_stream: "OVMS_PY_TENSOR:in"\noutput_stream: "OVMS_PY_TENSOR:out"\n'
             'node { name: "p" calculator: "PythonExecutorCalculator" input_side_packet: "PYTHON_NODE_RESOURCES:py" '
             'input_stream: "IN:in" output_stream: "OUT:out" node_options: { '
             '[type.googleapis.com/mediapipe.PythonExecutorCalculatorOptions]: { handler_path: "h.py" } } }\n')
    config = write_graphs(tmp_path, {"py": graph})
    (tmp_path / "py" / "h.py").write_text("from ovms_notebook.codec import blob\nclass OvmsPythonModel: ...\n")
    assert check(config).graph("py").findings == [Finding(
        "error", "handler-import", "node 'p' (h.py)",
        "the handler imports ovms_notebook, which OVMS's Python image does not have")]
    assert [f.kind for f in check(config, ovms_version="2023.2").graph("py").findings] == [
        "handler-import", "python-nodes"]


@pytest.mark.parametrize(("version", "timestamps", "kinds"), [
    ("2025.0", "counter", ["timestamp-check"]),
    ("2025.1", "counter", ["timestamps", "timestamp-check"]),
    ("v2024.5", "wallclock", ["timestamps", "timestamp-check"]),
    ("2026.3", "wallclock", ["timestamp-check"]),
])
def test_timestamp_defaults_against_ovms_versions(tmp_path: Path, version: str, timestamps: str,
                                                  kinds: list[str]) -> None:
    config = write_graphs(tmp_path, {"passthrough": PASSTHROUGH})
    assert [f.kind for f in check(config, ovms_version=version, timestamps=timestamps).findings] == kinds
    assert check(config, ovms_version=version, timestamp_check="mediapipe",
                 timestamps=timestamps).findings == [f for f in check(config, ovms_version=version, timestamps=timestamps).findings if f.kind != "timestamp-check"]  # noqa: E501


def test_check_command_line(tmp_path: Path) -> None:
    good = write_graphs(tmp_path / "good", {"passthrough": PASSTHROUGH})
    bad = write_graphs(tmp_path / "bad", {"nowhere": one_node("NoSuchCalculator")})
    command = [sys.executable, "-m", "ovms_notebook.cli", "check"]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "graph passthrough: portable" in ok.stdout
    refused = subprocess.run([*command, str(bad)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "graph nowhere: NOT portable" in refused.stdout
    assert "error: [unknown-calculator] NoSuchCalculator:" in refused.stdout
    missing = subprocess.run([*command, str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert "expected an OVMS config.json or a folder holding one" in missing.stderr


def running_sum_folder(tmp_path: Path) -> Path:
    return write_graphs(tmp_path / "src", {"running_sum": one_node("RunningSum", "x").replace('"out"', '"total"')})


def test_export_writes_an_ovms_folder(tmp_path: Path) -> None:
    result = export(running_sum_folder(tmp_path), tmp_path / "out")
    out = tmp_path / "out"
    document = json.loads((out / "config.json").read_text())
    jsonschema.Draft4Validator(config_schema()).validate(document)
    assert document == {"model_config_list": [], "mediapipe_config_list": [
        {"name": "running_sum", "base_path": "running_sum", "graph_path": "graph.pbtxt"}]}
    graph = (out / "running_sum" / "graph.pbtxt").read_text()
    assert 'calculator: "PythonExecutorCalculator"' in graph
    assert 'input_stream: "OVMS_PY_TENSOR:x"' in graph and 'output_stream: "OVMS_PY_TENSOR:total"' in graph
    assert 'handler_path: "n.py"' in graph
    handler = (out / "running_sum" / "n.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+ovms_notebook", handler, re.M)  # OVMS's image has no ovms_notebook
    assert result.handlers == {"running_sum/n": out / "running_sum" / "n.py"}
    (shared,) = result.problems  # RunningSum's total: per stream here, shared by every stream on OVMS
    assert (shared.severity, shared.kind, shared.subject) == ("warning", "shared-state", "graph running_sum, node 'n'")
    assert result.portable
    assert result.docker == (f"docker run --rm -u $(id -u):$(id -g) -p 9000:9000 -v {out.resolve()}:/models:ro "
                             "openvino/model_server:2026.3-py --config_path /models/config.json --port 9000")
    assert "kind: InferenceService" in result.manifest
    assert "image: openvino/model_server:2026.3-py" in result.manifest
    # in a notebook: one line as the cell's value, the whole story as HTML
    assert repr(result) == f"<Exported 1 graph(s) to {out}: 1 handler(s), 0 left behind, portable>"
    shown = result._repr_html_()
    assert "<b>exported 1 graph(s)</b>" in shown and "[shared-state]" in shown and "docker run --rm" in shown


def test_what_cannot_be_exported_is_listed_with_reasons(tmp_path: Path) -> None:
    graph = ('input_stream: "x"\ninput_side_packet: "start"\noutput_stream: "y"\n'
             'node { name: "c" calculator: "StampedCounter" input_stream: "IN:x" output_stream: "OUT:y" '
             'input_side_packet: "START:start" }\n')
    result = export(write_graphs(tmp_path / "src", {"stamped": graph}), tmp_path / "out")
    assert not result.portable and result.handlers == {}
    reasons = [p.reason for p in result.problems if p.subject == "graph stamped, node 'c'"]
    assert reasons == [
        "takes input side packets ['START:start']",
        "declares input side packets ('START',); OVMS gives Python nodes only PYTHON_NODE_RESOURCES",
        "runs on timestamp bounds (process_timestamp_bounds=True); an OVMS Python node runs only when a packet "
        "arrives",
        "uses self.set_next_timestamp_bound, which OVMS's Python node API has no counterpart for",
        "process() reads its timestamp argument 'timestamp'; OVMS's execute() gets no timestamp",
    ]
    assert not result.report.graph("stamped").portable  # the node stays as it was; check says so too
    # exporting again (a re-run cell) replaces what the last export wrote, and only that
    (tmp_path / "out" / "stale.txt").write_text("from an earlier export")
    again = export(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out" / "stale.txt").exists() and again.graphs == result.graphs
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not an export")
    with pytest.raises(ovms_notebook.ConfigError, match="export needs an empty or new output folder, or one an "
                       r"earlier export wrote, got '.*mine' \(not empty, and no \.ovms_notebook_export in it\)"):
        export(tmp_path / "src", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_the_exported_folder_answers_a_recorded_session_the_same(tmp_path: Path) -> None:
    source = running_sum_folder(tmp_path)
    export(source, tmp_path / "out")
    original = ovms_notebook.serve(source)
    exported = ovms_notebook.serve(tmp_path / "out")
    try:
        assert exported.repository.get("running_sum").available, exported.repository.get("running_sum").error
        with StreamClient(original.address, "running_sum", max_log=None) as client:
            for value in (1.0, 2.0, 3.0):
                client.send({"x": np.float32([value])})
            client.wait_for(3, timeout=30)
        recording = Recording.from_client(client)
        assert [r.timestamp for r in recording.responses] == [0, 1, 2]
        assert [r.outputs["total"].value().tolist() for r in recording.responses] == [[2.0], [6.0], [12.0]]
        again = replay(recording, exported.address)
        difference = compare(recording, again)
        assert difference.same, difference
        assert [r.timestamp for r in again.responses] == [0, 1, 2]
        assert [r.outputs["total"].value().tolist() for r in again.responses] == [[2.0], [6.0], [12.0]]
    finally:
        original.stop()
        exported.stop()


def test_export_of_the_openvino_example_copies_models(tmp_path: Path) -> None:
    result = export(GRAPHS, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "models" / "face_detection_short_range" / "1" / "model.tflite").is_file()
    assert (out / "face_detection_openvino" / "postprocess.py").is_file()
    document = json.loads((out / "config.json").read_text())
    jsonschema.Draft4Validator(config_schema()).validate(document)
    assert document["model_config_list"][0] == {"config": {"name": "face_detection_short_range",
                                                           "base_path": "models/face_detection_short_range"}}
    assert result.report.graph("face_detection_openvino").portable
    tracker = [p.reason for p in result.problems if p.subject == "graph face_tracking, node 'tracker'"]
    assert tracker[0] == "input 'DETECTIONS:detections' comes from native node FaceDetectionShortRangeCpu, not a pyovms Tensor"  # noqa: E501


def test_server_panel_portability_button(tmp_path: Path) -> None:
    from ovms_notebook.widgets.server_panel import ServerPanel

    server = ovms_notebook.serve(write_graphs(tmp_path, {"passthrough": PASSTHROUGH,
                                                        "nowhere": one_node("NoSuchCalculator")}))
    try:
        panel = ServerPanel(server)
        assert panel.portability.value == ""
        panel.portability_button.click()
        assert "NOT portable to OVMS 2026.3" in panel.portability.value
        assert "<b>✔ passthrough</b>" in panel.portability.value
        assert "<b>✘ nowhere</b>" in panel.portability.value
        assert "[unknown-calculator] NoSuchCalculator" in panel.portability.value
        panel.close()
    finally:
        server.stop()
