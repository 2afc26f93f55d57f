"""Subgraphs OVMS's MediaPipe fork runs on OpenVINO, and calculator state OVMS shares across streams.

`check` must name the model entries the fork's subgraphs ask for (error when missing, note when there);
`export` must add them with the wheel's .tflite files byte for byte, rename a graph whose name a model
takes, and the exported folder must still serve here with the same detections; a calculator that keeps
state on self must be reported as sharing it across streams on OVMS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import tritonclient.grpc as triton

import ovms_notebook
from ovms_notebook.engine.python.api import Calculator, register, unregister
from ovms_notebook.portability import check, subgraphs
from ovms_notebook.portability.check import Finding, config_schema
from ovms_notebook.portability.export import Exported, export
from ovms_notebook.portability.state import shared_state_finding, stream_state
from ovms_notebook.sources import astronaut
from tests.conftest import GRAPHS, triton_stream, write_graphs

FORK = "openvinotoolkit/mediapipe@b2dccf07"
SESSION = "OpenVINOModelServerSessionCalculator"
WHEEL = Path(__import__("mediapipe").__file__).parent / "modules"
#: servable name -> the wheel file OVMS's demos serve under it (demos/mediapipe/*/config*.json + README).
WHEEL_FILES = {
    "face_detection": "face_detection/face_detection_short_range.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "hand_recrop": "holistic_landmark/hand_recrop.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
}
HOLISTIC_OWNERS = ("face_detection (asked for by FaceDetection), face_landmark (asked for by FaceLandmarkCpu), "
                   "hand_landmark_full (asked for by HandLandmarkCpu), hand_recrop (asked for by HandRecropByRoiCpu), "
                   "pose_detection (asked for by PoseDetectionCpu), pose_landmark_full (asked for by "
                   "PoseLandmarkByRoiCpu)")
SHARED = ("ovms_notebook creates one calculator per stream, but OVMS creates one OvmsPythonModel per node per graph "
          "definition and uses it for every stream, so on OVMS that state is shared by all streams (and open() runs "
          "once, not per stream)")


def head(file: str, owners: str) -> str:
    return (f"on OVMS this subgraph is {FORK}'s version (mediapipe/modules/{file}), which runs its models on OpenVINO "
            f"through {SESSION} and needs these model entries in config.json's model_config_list: {owners}")


FACE_HEAD = head("face_detection/face_detection_short_range_cpu.pbtxt", "face_detection (asked for by FaceDetection)")
HOLISTIC_HEAD = head("holistic_landmark/holistic_landmark_cpu.pbtxt", HOLISTIC_OWNERS)
EXPORT_HINT = "`ovms-notebook export` adds them with the mediapipe wheel's .tflite files"


def test_the_table_derived_from_the_fork() -> None:
    table = subgraphs.ovms_subgraphs()
    assert table["source"]["mediapipe"]["commit"] == "b2dccf07dc3cd8ae23040d20a8ca68d35d6c75db"
    assert table["source"]["model_server"]["commit"] == "7e4df0c7ae340972bad15020ad777bbba3ee321d"
    assert len(table["subgraphs"]) == 17
    assert sorted(table["models"]) == sorted(WHEEL_FILES)
    assert subgraphs.needed_models(["PassThroughCalculator", "FaceLandmarkFrontCpu", "IrisLandmarkLeftAndRightCpu"]) \
        == {"FaceLandmarkFrontCpu": ["face_detection", "face_landmark"],
            "IrisLandmarkLeftAndRightCpu": ["iris_landmark"]}
    assert subgraphs.sessions("PoseLandmarkCpu") == {"pose_detection": "PoseDetectionCpu",
                                                     "pose_landmark_full": "PoseLandmarkByRoiCpu"}


def ours(findings: list[Finding]) -> list[Finding]:
    """The findings about OVMS's fork subgraphs (the example graphs may gain others, e.g. render nodes)."""
    return [f for f in findings if f.kind in ("ovms-subgraph-models", "name-occupied", "model-not-exported")]


def test_face_detection_and_holistic_in_the_example_graphs() -> None:
    report = check(GRAPHS)
    assert ours(report.graph("face_detection").findings) == [
        Finding("error", "ovms-subgraph-models", "FaceDetectionShortRangeCpu",
                f"{FACE_HEAD}; config.json lacks face_detection, so the graph fails on OVMS. {EXPORT_HINT}"),
        Finding("error", "name-occupied", "graph 'face_detection'",
                "OVMS needs a model named 'face_detection' for this graph's subgraphs, and refuses a graph whose name "
                "a model has (\"Mediapipe graph name: face_detection is already occupied by model or pipeline\"); "
                "rename the graph (`ovms-notebook export` names it 'face_detection_graph')"),
    ]
    assert ours(report.graph("holisticTracking").findings) == [
        Finding("error", "ovms-subgraph-models", "HolisticLandmarkCpu",
                f"{HOLISTIC_HEAD}; config.json lacks face_detection, face_landmark, hand_landmark_full, hand_recrop, "
                f"pose_detection, pose_landmark_full, so the graph fails on OVMS. {EXPORT_HINT}")]


def test_a_note_when_config_json_has_the_models(tmp_path: Path) -> None:
    config = write_graphs(tmp_path, {"faces": (GRAPHS / "face_detection" / "graph.pbtxt").read_text()})
    document = json.loads(config.read_text())
    document["model_config_list"] = [{"config": {"name": "face_detection", "base_path": "models/face_detection"}}]
    config.write_text(json.dumps(document))
    (tmp_path / "models" / "face_detection" / "1").mkdir(parents=True)
    report = check(config)
    findings = report.graph("faces").findings
    assert [f for f in findings if f.kind == "ovms-subgraph-models"] == [
        Finding("note", "ovms-subgraph-models", "FaceDetectionShortRangeCpu", f"{FACE_HEAD}; all present")]
    # What still stops OVMS is the graph's own output: detections, which OVMS cannot serialize.
    assert [(f.kind, f.subject) for f in findings if f.severity == "error"] == [
        ("unserializable-output", "output_stream 'detections'")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return export(GRAPHS, tmp_path_factory.mktemp("export") / "out")


def test_export_adds_the_models_byte_for_byte_from_the_wheel(exported: Exported) -> None:
    out = exported.out_dir
    document = json.loads((out / "config.json").read_text())
    jsonschema.Draft4Validator(config_schema()).validate(document)
    assert document["model_config_list"] == [
        {"config": {"name": "face_detection_short_range", "base_path": "models/face_detection_short_range"}},
        *({"config": {"name": name, "base_path": f"models/{name}"}} for name in sorted(WHEEL_FILES)),
    ]
    for name, wheel_file in WHEEL_FILES.items():
        assert sorted(p.name for p in (out / "models" / name).rglob("*")) == ["1", "model.tflite"], name
        assert (out / "models" / name / "1" / "model.tflite").read_bytes() == (WHEEL / wheel_file).read_bytes(), name
    graphs = {g["name"]: g["base_path"] for g in document["mediapipe_config_list"]}
    assert graphs["face_detection_graph"] == "face_detection_graph" and "face_detection" not in graphs
    assert (out / "face_detection_graph" / "graph.pbtxt").read_text() == (
        GRAPHS / "face_detection" / "graph.pbtxt").read_text()
    assert [p for p in exported.problems if p.kind in ("renamed-graph", "model-not-exported")] == [Finding(
        "warning", "renamed-graph", "graph 'face_detection'",
        "exported as 'face_detection_graph': a model of the exported config.json is named 'face_detection' (OVMS's "
        "MediaPipe fork asks for it in the subgraphs this graph uses), and OVMS refuses a graph whose name a model "
        "has; clients must ask for 'face_detection_graph'")]
    assert exported.report is not None
    assert ours(exported.report.graph("face_detection_graph").findings) == [
        Finding("note", "ovms-subgraph-models", "FaceDetectionShortRangeCpu", f"{FACE_HEAD}; all present")]
    assert ours(exported.report.graph("holisticTracking").findings) == [
        Finding("note", "ovms-subgraph-models", "HolisticLandmarkCpu", f"{HOLISTIC_HEAD}; all present")]


def test_a_servable_without_a_wheel_file_is_listed_not_exported(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    table = json.loads(json.dumps(subgraphs.ovms_subgraphs()))
    table["models"]["iris_landmark"]["file"] = "iris_landmark_v9.tflite"
    table["models"]["ssdlite_object_detection"] = {"file": None, "from": "no OVMS MediaPipe demo serves this servable"}
    monkeypatch.setattr(subgraphs, "ovms_subgraphs", lambda: table)
    entries, problems = subgraphs.export_models(["iris_landmark", "ssdlite_object_detection", "face_landmark"],
                                                set(), tmp_path)
    assert entries == [{"config": {"name": "face_landmark", "base_path": "models/face_landmark"}}]
    assert problems == [
        Finding("error", "model-not-exported", "iris_landmark",
                "a model OVMS's fork asks for, not exported: the mediapipe wheel has no iris_landmark_v9.tflite under "
                "mediapipe/modules/ (demos/mediapipe/iris_tracking/config_iris.json (base_path) + "
                "demos/mediapipe/iris_tracking/README.md (download line))"),
        Finding("error", "model-not-exported", "ssdlite_object_detection",
                "a model OVMS's fork asks for, not exported: no OVMS MediaPipe demo serves this servable"),
    ]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.tflite")) == [
        "models/face_landmark/1/model.tflite"]


@pytest.fixture(scope="module")
def servers(exported: Exported) -> Iterator[tuple[ovms_notebook.Server, ovms_notebook.Server]]:
    original, again = ovms_notebook.serve(GRAPHS), ovms_notebook.serve(exported.out_dir)
    yield original, again
    original.stop()
    again.stop()


def detections(address: str, graph: str) -> list[tuple[str, str, list[int], bytes]]:
    """(name, datatype, shape, raw bytes) of each output of a two-frame tritonclient stream to `graph`."""
    frame = astronaut()
    requests = []
    for image in (frame, np.ascontiguousarray(frame[100:400])):
        tensor = triton.InferInput("image", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image)
        requests.append(([tensor], None))
    with triton.InferenceServerClient(address) as client:
        items = triton_stream(client, graph, requests)
    out = []
    for result, error in items:
        assert error is None, error
        response = result.get_response()
        for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
            out.append((output.name, output.datatype, list(output.shape), raw))
    return out


def test_the_exported_folder_serves_the_models_and_the_same_detections(servers) -> None:
    original, again = servers
    with triton.InferenceServerClient(again.address) as client:
        assert {name: client.is_model_ready(name) for name in ["face_detection_short_range", *WHEEL_FILES]} == \
            dict.fromkeys(["face_detection_short_range", *WHEEL_FILES], True)
        assert client.is_model_ready("face_detection_graph") and client.is_model_ready("holisticTracking")
    before = detections(original.address, "face_detection")
    after = detections(again.address, "face_detection_graph")
    assert [(name, datatype, shape) for name, datatype, shape, _ in before] == [("detections", "BYTES", [1])] * 2
    assert [(name, datatype, shape) for name, datatype, shape, _ in after] == [("detections", "BYTES", [1])] * 2
    # the exported folder serves `face_detection`, so its face detection infers on that entry (OpenVINO, as OVMS's
    # fork) where the original runs the wheel's TFLite: the same face, a few 1e-7 apart
    (definition,) = [g for g in again.graphs if g.name == "face_detection_graph"]
    assert "OpenVINOInferenceCalculator" in {n.calculator for n in definition.spec.split.python.node}
    assert detection_rows(before).shape == (2, 17)  # one face in each frame
    np.testing.assert_allclose(detection_rows(after), detection_rows(before), rtol=0, atol=1e-5)


def detection_rows(outputs: list[tuple[str, str, list[int], bytes]]) -> np.ndarray:
    """Box, keypoints and score of every detection in `outputs` (BYTES: 4-byte length + serialized Detection)."""
    from mediapipe.framework.formats import detection_pb2

    rows = []
    for _name, _datatype, _shape, raw in outputs:
        offset = 0
        while offset < len(raw):
            size = int.from_bytes(raw[offset:offset + 4], "little")
            found = detection_pb2.Detection.FromString(raw[offset + 4:offset + 4 + size])
            offset += 4 + size
            box = found.location_data.relative_bounding_box
            points = [c for k in found.location_data.relative_keypoints for c in (k.x, k.y)]
            rows.append([box.xmin, box.ymin, box.width, box.height, *points, *found.score])
    return np.array(rows, np.float64)


class Counting(Calculator):
    """Keeps a per-stream count and history on self: the state OVMS would share."""

    inputs = (":0",)
    outputs = (":0",)

    def __init__(self) -> None:
        self.limit = 3

    def open(self, side_packets):
        self.count = 0
        self.seen = []

    def process(self, timestamp, inputs):
        self.count += 1
        self.seen.append(inputs[":0"])
        self.cache[self.count] = inputs[":0"]
        return {":0": np.int64([self.count])}

    def helper(self):
        self.last = None


class Stateless(Calculator):
    """Sets things up in open and only reads self afterwards."""

    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets):
        self.scale = 2

    def process(self, timestamp, inputs):
        return {":0": inputs[":0"] * self.scale}


def test_state_on_self_is_reported_as_shared_across_streams_on_ovms(tmp_path: Path) -> None:
    assert stream_state(Counting) == {"process": ["count", "seen", "cache"], "helper": ["last"]}
    assert stream_state(Stateless) == {}
    assert shared_state_finding("Stateless", Stateless) is None
    assert shared_state_finding("Counting", Counting) == Finding(
        "warning", "shared-state", "Counting",
        f"keeps state on self between calls (self.count, self.seen, self.cache in process(); self.last in helper()): "
        f"{SHARED}")
    register("Counting")(Counting)
    try:
        graph = ('input_stream: "x"\noutput_stream: "y"\n'
                 'node { name: "c" calculator: "Counting" input_stream: "x" output_stream: "y" }\n')
        config = write_graphs(tmp_path / "src", {"counting": graph})
        kinds = [(f.severity, f.kind, f.subject) for f in check(config).graph("counting").findings]
        assert kinds == [("error", "python-calculator", "Counting"), ("warning", "shared-state", "Counting")]
        result = export(config, tmp_path / "out")
    finally:
        unregister("Counting")
    assert list(result.handlers) == ["counting/c"]
    assert result.problems == [Finding(
        "warning", "shared-state", "graph counting, node 'c'",
        f"keeps state on self between calls (self.count, self.seen, self.cache in process(); self.last in helper()): "
        f"{SHARED}")]
    assert result.portable  # a warning: it runs on OVMS, with every stream counting on the same self
