"""OVMS's demo graphs infer on the folder's model entries, as OVMS's MediaPipe fork does.

The folders here are laid out as OVMS's iris and holistic demos ship them: the demo pbtxt unchanged
(ovms_notebook/examples) and config.json listing the models its subgraphs ask for, each under
`<name>/1/<file>` (copied from the mediapipe wheel). Swapping a model changes the output or fails
the stream as OVMS would; the same graph in a folder that names no model entry keeps reading the
wheel's files (the examples' own config.json, unchanged).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.models.wheel import wheel_modules_dir
from ovms_notebook.sources import astronaut
from tests.conftest import GRAPHS
from tests.test_iris_tracking import iris_ovals

#: Model entry -> its file in the wheel, as OVMS's demos serve them (their README's download lines).
IRIS_MODELS = {
    "face_detection": "face_detection/face_detection_short_range.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
}
IRIS_TEXT = (GRAPHS / "iris_tracking" / "iris_tracking.pbtxt").read_text()


def demo_folder(root: Path, demo: str, graph: str, pbtxt: str, models: dict[str, str | Path],
                folder: str | None = None) -> Path:
    """OVMS's demo layout: the demo folder copied unchanged (as `folder`, default its own name), each model under
    `<name>/1/`, one config.json."""
    folder = folder or demo
    shutil.copytree(GRAPHS / demo, root / folder)
    for name, source in models.items():
        path = source if isinstance(source, Path) else wheel_modules_dir() / source
        (root / name / "1").mkdir(parents=True)
        for part in [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]:
            shutil.copyfile(part, root / name / "1" / part.name)
    config = {
        "model_config_list": [{"config": {"name": name, "base_path": name}} for name in models],
        "mediapipe_config_list": [{"name": graph, "base_path": folder, "graph_path": pbtxt}],
    }
    (root / "config.json").write_text(json.dumps(config))
    return root


def run(folder: Path, graph: str, frame: np.ndarray, input_name: str = "first_input_video") -> StreamClient:
    """Serve `folder`, send one frame as OVMS's demo client does (on `input_name`), half-close."""
    server = ovms_notebook.serve(folder)
    try:
        assert [(g.name, g.error) for g in server.graphs] == [(graph, None)]
        client = StreamClient(server.address, graph)
        client.send({input_name: frame})
        client.close()
    finally:
        server.stop()
    return client


def drawn(client: StreamClient) -> np.ndarray:
    assert client.status is not None and client.status.text == "OK", client.status
    assert not client.errors, [e.text for e in client.errors]
    (image,) = [e.values["output"] for e in client.responses]
    assert isinstance(image, np.ndarray)
    return image


def shifted_iris_model(path: Path, dx: float) -> Path:
    """The wheel's iris model as OpenVINO IR whose 5 iris points are moved by `dx` (64-px crop units)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / IRIS_MODELS["iris_landmark"])
    steps = PrePostProcessor(model)
    shift = np.tile(np.float32([dx, 0, 0]), 5).reshape(1, 15)
    steps.output("output_iris").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


@pytest.fixture(scope="module")
def wheel_drawing() -> np.ndarray:
    """The demo served from the examples' own config.json (no model entries): the wheel's iris model."""
    server = ovms_notebook.serve(GRAPHS)
    try:
        client = StreamClient(server.address, "irisTracking")
        client.send({"first_input_video": astronaut()})
        client.close()
    finally:
        server.stop()
    return drawn(client)


def test_with_model_entries_the_iris_subgraph_infers_on_the_entry_as_the_fork_does() -> None:
    spec = parse_graph(IRIS_TEXT, models=list(IRIS_MODELS))
    assert spec.split is not None and spec.split.python is not None
    python = {node.calculator for node in spec.split.python.node}
    assert {"OpenVINOModelServerSessionCalculator", "OpenVINOInferenceCalculator"} <= python
    assert "TfLiteInferenceCalculator" not in python
    plain = parse_graph(IRIS_TEXT)  # no model entries: MediaPipe's subgraph, the wheel's file
    assert plain.split is not None and plain.split.python is not None
    assert "TfLiteInferenceCalculator" in {node.calculator for node in plain.split.python.node}
    assert "OpenVINOModelServerSessionCalculator" not in {node.calculator for node in plain.split.python.node}
    assert plain.split.native is not None  # and the face part stays the wheel's native subgraph, unexpanded
    assert "FaceLandmarkFrontCpu" in {node.calculator for node in plain.split.native.node}
    assert not {node.calculator for node in plain.split.python.node} & {"PythonImageToTensorCalculator",
                                                                         "PythonTensorsToLandmarksCalculator"}


def test_the_demo_models_draw_what_the_wheel_models_draw(tmp_path: Path, wheel_drawing: np.ndarray) -> None:
    folder = demo_folder(tmp_path, "iris_tracking", "irisTracking", "iris_tracking.pbtxt", dict(IRIS_MODELS))
    ours = drawn(run(folder, "irisTracking", astronaut()))
    # face detection, face landmarks and irises all on OpenVINO here, TFLite (and OpenVINO for the iris) there:
    # landmarks a few 1e-6 apart, so a handful of the drawn points' pixels round the other way
    differ = np.any(ours != wheel_drawing, axis=-1)
    assert 0 <= differ.sum() <= 60, differ.sum()
    assert np.any(ours != astronaut())  # something is drawn


def test_with_its_entries_the_iris_demo_infers_every_model_on_them() -> None:
    spec = parse_graph(IRIS_TEXT, models=list(IRIS_MODELS))
    assert spec.split is not None and spec.split.python is not None and spec.split.native is not None
    from ovms_notebook.calculators.openvino import OpenVINOModelServerSessionCalculatorOptions
    from ovms_notebook.framework.options import node_options

    sessions = sorted(node_options(node, OpenVINOModelServerSessionCalculatorOptions).servable_name
                      for node in spec.split.python.node if node.calculator == "OpenVINOModelServerSessionCalculator")
    assert sessions == ["face_detection", "face_landmark", "iris_landmark", "iris_landmark"]
    native = {node.calculator for node in spec.split.native.node}
    # no model runs natively: no wheel subgraph with a model is left, and the face landmark loader is gone
    assert not native & {"FaceLandmarkFrontCpu", "FaceDetectionShortRangeCpu", "FaceLandmarkCpu", "InferenceCalculator",
                         "FaceLandmarksModelLoader", "TfLiteCustomOpResolverCalculator"}
    assert "PreviousLoopbackCalculator" in native  # FaceLandmarkFrontCpu's tracking loop, expanded, stays native
    # IrisLandmarkCpu's letterbox padding comes from the native ImageTransformationCalculator (a packet no Python
    # node can read), so its LandmarkLetterboxRemovalCalculator stays the stock one, unlike the hands'
    assert "LandmarkLetterboxRemovalCalculator" in native
    assert "PythonLandmarkLetterboxRemovalCalculator" not in {node.calculator for node in spec.split.python.node}


def test_a_replaced_iris_model_moves_the_irises(tmp_path: Path, wheel_drawing: np.ndarray) -> None:
    model = shifted_iris_model(tmp_path / "shifted" / "model.xml", dx=4.0)
    folder = demo_folder(
        tmp_path / "demo",
        "iris_tracking",
        "irisTracking",
        "iris_tracking.pbtxt",
        {**IRIS_MODELS, "iris_landmark": model},
    )
    moved = iris_ovals(drawn(run(folder, "irisTracking", astronaut())))
    before = iris_ovals(wheel_drawing)
    assert len(moved) == len(before) == 2
    shifts = [m[0] - b[0] for m, b in zip(moved, before, strict=True)]
    # 4 crop pixels of a ~25 px eye crop: about half a pixel or more each; the right eye is mirrored (flipped)
    assert shifts[0] * shifts[1] < 0 and all(0.4 < abs(s) < 4 for s in shifts), shifts
    assert all(abs(m[1] - b[1]) <= 1 for m, b in zip(moved, before, strict=True))


def test_a_face_model_under_iris_landmark_fails_the_stream_instead_of_being_ignored(tmp_path: Path) -> None:
    folder = demo_folder(
        tmp_path,
        "iris_tracking",
        "irisTracking",
        "iris_tracking.pbtxt",
        {**IRIS_MODELS, "iris_landmark": IRIS_MODELS["face_landmark"]},
    )
    client = run(folder, "irisTracking", astronaut())
    assert client.status is not None and client.status.code == "INVALID_ARGUMENT"
    assert (
        'OpenVINOInferenceCalculator: servable "iris_landmark" version 1 has no output '
        "'output_eyes_contours_and_brows', 'output_iris'"
    ) in client.status.text


def session_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The servables whose session failed to load, from the server's log (the in-band error that also says so
    reaches the client only when the graph fails before the first request is answered: a matter of timing)."""
    prefix = 'OpenVINOModelServerSessionCalculator failed to load the model (servable "'
    return [r.getMessage()[len(prefix) :].split('"')[0] for r in caplog.records if r.getMessage().startswith(prefix)]


@pytest.mark.parametrize("missing", ["iris_landmark", "face_landmark"])
def test_a_missing_model_entry_fails_the_stream_as_ovms_does(
    tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    # OVMS: the session node's Open() fails (FailedPrecondition) when the run starts, and the stream ends with
    # gRPC UNKNOWN "Unknown error" (any in-band error before it says why).
    models = {name: file for name, file in IRIS_MODELS.items() if name != missing}
    client = run(
        demo_folder(tmp_path, "iris_tracking", "irisTracking", "iris_tracking.pbtxt", models),
        "irisTracking",
        astronaut(),
    )
    assert client.status is not None and client.status.text == "[StatusCode.UNKNOWN] Unknown error"
    assert session_failures(caplog) == [missing]
    why = (
        "SessionLoadError: OpenVINOModelServerSessionCalculator failed to load the model "
        f'(servable "{missing}" version default: Model with requested name is not found)'
    )
    assert all(why in e.text for e in client.errors)


def test_the_holistic_demo_needs_its_six_model_entries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = demo_folder(
        tmp_path,
        "holistic_tracking",
        "holisticTracking",
        "holistic_tracking.pbtxt",
        {"face_detection": IRIS_MODELS["face_detection"]},
    )
    client = run(folder, "holisticTracking", astronaut())
    assert client.status is not None and client.status.text == "[StatusCode.UNKNOWN] Unknown error"
    failed = session_failures(caplog)
    assert failed and set(failed) <= {
        "face_landmark",
        "hand_landmark_full",
        "hand_recrop",
        "pose_detection",
        "pose_landmark_full",
    }
    spec = parse_graph(
        (GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt").read_text(), models=["face_detection"]
    )
    assert spec.split is not None and spec.split.python is not None
    from ovms_notebook.calculators.openvino import OpenVINOModelServerSessionCalculatorOptions
    from ovms_notebook.framework.options import node_options

    sessions = sorted(
        (node_options(node, OpenVINOModelServerSessionCalculatorOptions).servable_name, node.name)
        for node in spec.split.python.node if node.calculator == "OpenVINOModelServerSessionCalculator"
    )
    # face detection, face landmarks, pose detection and landmarks, and both hands (landmarks and recrop) infer on
    # their entries: the fork's sessions, in the expanded subgraphs; no session only loads an entry
    assert sessions == [
        ("face_detection", ""),
        ("face_landmark", ""),
        *[("hand_landmark_full", "")] * 2,
        *[("hand_recrop", "")] * 2,
        ("pose_detection", ""),
        ("pose_landmark_full", ""),
    ]


def test_the_holistic_demo_with_its_entries_runs_and_draws_as_before(tmp_path: Path) -> None:
    # Every model of it infers on its entry (OpenVINO): face, pose and hands.
    models = {
        name: f"{folder}/{name}.tflite"
        for name, folder in (
            ("face_landmark", "face_landmark"),
            ("hand_landmark_full", "hand_landmark"),
            ("hand_recrop", "holistic_landmark"),
            ("pose_detection", "pose_detection"),
            ("pose_landmark_full", "pose_landmark"),
        )
    }
    folder = demo_folder(
        tmp_path / "entries",
        "holistic_tracking",
        "holisticTracking",
        "holistic_tracking.pbtxt",
        {"face_detection": IRIS_MODELS["face_detection"], **models},
    )
    with_entries = drawn(run(folder, "holisticTracking", astronaut()))
    server = ovms_notebook.serve(GRAPHS)
    try:
        client = StreamClient(server.address, "holisticTracking")
        client.send({"first_input_video": astronaut()})
        client.close()
    finally:
        server.stop()
    wheel = drawn(client)
    differ = np.any(with_entries != wheel, axis=-1)
    # landmarks 1e-4 apart (the pose model is chaotic, see below): a few drawn points' pixels round otherwise
    assert differ.sum() <= 300, differ.sum()
    assert np.any(wheel != astronaut())


# -- face detection: FaceDetectionShortRangeCpu on the `face_detection` entry ---------------------------------------

FACE_DETECTION = {"face_detection": IRIS_MODELS["face_detection"]}


def face_rows(address: str, graph: str, frame: np.ndarray) -> np.ndarray:
    """The graph's detections as rows: xmin, ymin, width, height, 6 keypoints (x, y), score (none: 0 rows)."""
    from ovms_notebook.codec import decode_output
    from tests.conftest import request, stream

    result = stream(address, [request(graph, {"image": frame})])
    assert result.errors == [] and result.code.name == "OK", (result.errors, result.details)
    found = []
    for response in result.outputs:
        for detection in decode_output(response.outputs[0], response.raw_output_contents[0]):
            box = detection.location_data.relative_bounding_box
            points = [c for k in detection.location_data.relative_keypoints for c in (k.x, k.y)]
            found.append([box.xmin, box.ymin, box.width, box.height, *points, detection.score[0]])
    return np.array(found, np.float64).reshape(-1, 17)


def face_frames() -> dict[str, np.ndarray]:
    photo = astronaut()[:, 64:448]
    return {
        "square": astronaut(),
        "wide crop": np.ascontiguousarray(astronaut()[100:400]),
        "tall crop": np.ascontiguousarray(astronaut()[:, 100:400]),
        "two faces": np.ascontiguousarray(np.hstack([photo, photo[:, ::-1]])),
        "no face": np.full((240, 320, 3), 90, np.uint8),
    }


@pytest.fixture(scope="module")
def wheel_faces() -> dict[str, np.ndarray]:
    """FaceDetectionShortRangeCpu as the wheel runs it (the examples' config.json serves no entry)."""
    server = ovms_notebook.serve(GRAPHS)
    try:
        return {name: face_rows(server.address, "face_detection", frame) for name, frame in face_frames().items()}
    finally:
        server.stop()


def test_with_the_face_detection_entry_face_detection_infers_on_it_with_python_tensor_nodes() -> None:
    text = (GRAPHS / "face_detection" / "graph.pbtxt").read_text()
    spec = parse_graph(text, models=["face_detection"])
    assert spec.split is not None and spec.split.python is not None and spec.split.native is not None
    assert [node.calculator for node in spec.split.native.node] == ["ToImageCalculator"]
    assert [node.calculator for node in spec.split.python.node] == [
        "PythonImageToTensorCalculator",
        "OpenVINOModelServerSessionCalculator",
        "OpenVINOInferenceCalculator",
        "PythonTensorsToDetectionsCalculator",
        "PythonNonMaxSuppressionCalculator",
        "PythonDetectionProjectionCalculator",
    ]
    # FaceDetectionShortRange's options reached the nested FaceDetection's nodes (graph_options / option_value)
    from mediapipe.calculators.tensor.image_to_tensor_calculator_pb2 import ImageToTensorCalculatorOptions
    from mediapipe.calculators.tflite.ssd_anchors_calculator_pb2 import SsdAnchorsCalculatorOptions

    from ovms_notebook.framework.options import node_options

    to_tensor, _, _, to_detections = spec.split.python.node[:4]
    sized = node_options(to_tensor, ImageToTensorCalculatorOptions)
    assert (sized.output_tensor_width, sized.output_tensor_height, sized.keep_aspect_ratio) == (128, 128, True)
    anchors = node_options(to_detections, SsdAnchorsCalculatorOptions)
    assert (anchors.num_layers, list(anchors.strides), anchors.input_size_width) == (4, [8, 16, 16, 16], 128)
    assert parse_graph(text).split is None  # no entry served: the wheel's native subgraph, its own .tflite


def test_face_detection_on_the_entry_finds_the_faces_the_wheel_finds(
    tmp_path: Path, wheel_faces: dict[str, np.ndarray]
) -> None:
    folder = demo_folder(tmp_path, "face_detection", "faceDetection", "graph.pbtxt", FACE_DETECTION,
                         "face_detection_graph")
    server = ovms_notebook.serve(folder)
    try:
        (definition,) = server.graphs
        assert definition.error is None and definition.spec is not None and definition.spec.split is not None
        python = {node.calculator for node in definition.spec.split.python.node}  # type: ignore[union-attr]
        assert {"OpenVINOInferenceCalculator", "PythonTensorsToDetectionsCalculator"} <= python
        ours = {name: face_rows(server.address, "faceDetection", frame) for name, frame in face_frames().items()}
    finally:
        server.stop()
    assert [len(ours[name]) for name in ours] == [len(wheel_faces[name]) for name in ours] == [1, 1, 1, 2, 0]
    for name in ours:  # OpenVINO vs TFLite on the same model: a few 1e-7 apart
        np.testing.assert_allclose(ours[name], wheel_faces[name], rtol=0, atol=1e-5, err_msg=name)


def shifted_face_detection_model(path: Path, dx: float) -> Path:
    """The wheel's face detection model as OpenVINO IR whose box and keypoint x offsets grow by `dx` (128-px units)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / IRIS_MODELS["face_detection"])
    steps = PrePostProcessor(model)
    shift = np.zeros((1, 1, 16), np.float32)
    shift[..., [0, 4, 6, 8, 10, 12, 14]] = dx
    steps.output("regressors").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


def test_a_replaced_face_detection_model_moves_the_boxes(tmp_path: Path, wheel_faces: dict[str, np.ndarray]) -> None:
    model = shifted_face_detection_model(tmp_path / "shifted" / "model.xml", dx=12.8)  # 0.1 of the 128-px tensor
    folder = demo_folder(tmp_path / "demo", "face_detection", "faceDetection", "graph.pbtxt",
                         {"face_detection": model}, "face_detection_graph")
    server = ovms_notebook.serve(folder)
    try:
        moved = face_rows(server.address, "faceDetection", astronaut())
    finally:
        server.stop()
    before = wheel_faces["square"]
    assert moved.shape == before.shape == (1, 17)
    xs = [0, 4, 6, 8, 10, 12, 14]
    np.testing.assert_allclose(moved[0, xs] - before[0, xs], 0.1, atol=1e-4)  # square frame: no letterbox
    others = [i for i in range(17) if i not in xs]
    np.testing.assert_allclose(moved[0, others], before[0, others], atol=1e-5)


def test_a_face_landmark_model_under_face_detection_fails_the_stream_as_ovms_would(tmp_path: Path) -> None:
    folder = demo_folder(tmp_path, "face_detection", "faceDetection", "graph.pbtxt",
                         {"face_detection": IRIS_MODELS["face_landmark"]}, "face_detection_graph")
    client = run(folder, "faceDetection", astronaut(), "image")
    assert client.status is not None and client.status.code == "INVALID_ARGUMENT", client.status
    assert (
        'OpenVINOInferenceCalculator: servable "face_detection" version 1 has no input \'input\' (for tag TENSORS); '
        "its inputs are input_1"
    ) in client.status.text



# -- face landmarks: FaceLandmarkFrontCpu on the `face_detection` and `face_landmark` entries ------------------------

FACE_MESH = """
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:multi_face_landmarks"
output_stream: "DETECTIONS:face_detections"
node { calculator: "ConstantSidePacketCalculator" output_side_packet: "PACKET:0:num_faces"
  node_options: { [type.googleapis.com/mediapipe.ConstantSidePacketCalculatorOptions]: { packet { int_value: 1 } } } }
node { calculator: "FaceLandmarkFrontCpu" input_stream: "IMAGE:image" input_side_packet: "NUM_FACES:num_faces"
  output_stream: "LANDMARKS:multi_face_landmarks" output_stream: "DETECTIONS:face_detections" }
"""
FACE_MODELS = {name: IRIS_MODELS[name] for name in ("face_detection", "face_landmark")}


def mesh_folder(root: Path, models: dict[str, str | Path], graph: str = FACE_MESH) -> Path:
    """A folder serving `graph` (default FACE_MESH, the iris demo's face part) as `faceMesh`, `models` as entries."""
    (root / "mesh").mkdir(parents=True)
    (root / "mesh" / "graph.pbtxt").write_text(graph)
    for name, source in models.items():
        path = source if isinstance(source, Path) else wheel_modules_dir() / source
        (root / name / "1").mkdir(parents=True)
        for part in [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]:
            shutil.copyfile(part, root / name / "1" / part.name)
    config = {
        "model_config_list": [{"config": {"name": name, "base_path": name}} for name in models],
        "mediapipe_config_list": [{"name": "faceMesh", "base_path": "mesh", "graph_path": "graph.pbtxt"}],
    }
    (root / "config.json").write_text(json.dumps(config))
    return root


def mesh_frames() -> list[np.ndarray]:
    """A face, the same face panned and zoomed (the tracking loop crops by the last landmarks), no face, a face."""
    from ovms_notebook.sources import pan_zoom

    return [astronaut(), *pan_zoom(astronaut(), 3), np.full((320, 320, 3), 90, np.uint8), astronaut()]


def mesh_outputs(folder: Path, frames: list[np.ndarray]) -> list[dict[str, object]]:
    """Each frame's outputs by name, `frames` sent on one stream; the stream must end OK."""
    server = ovms_notebook.serve(folder)
    try:
        (definition,) = server.graphs
        assert definition.error is None, definition.error
        client = StreamClient(server.address, "faceMesh")
        for frame in frames:
            client.send({"image": frame})
        end = client.close()
    finally:
        server.stop()
    assert end.text == "OK" and not client.errors, (end.text, [e.text for e in client.errors])
    outputs: list[dict[str, object]] = [{} for _ in frames]
    for entry in client.responses:
        assert entry.timestamp is not None
        outputs[entry.timestamp].update(entry.values)
    return outputs


def mesh(outputs: dict[str, object]) -> np.ndarray:
    face = outputs["multi_face_landmarks"][0] if "multi_face_landmarks" in outputs else outputs["face_landmarks"]  # type: ignore[index]
    return np.array([[p.x, p.y, p.z] for p in face.landmark])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def wheel_meshes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    """FaceLandmarkFrontCpu as the wheel runs it (no entry served): TFLite, the wheel's files."""
    return mesh_outputs(mesh_folder(tmp_path_factory.mktemp("wheel"), {}), mesh_frames())


def test_face_landmarks_on_the_entries_match_the_wheels_frame_by_frame(
    tmp_path: Path, wheel_meshes: list[dict[str, object]]
) -> None:
    ours = mesh_outputs(mesh_folder(tmp_path, dict(FACE_MODELS)), mesh_frames())
    # detection runs on the first frame, the tracking loop on the next three, nothing on the empty frame, and
    # detection again once the face is lost
    assert [sorted(o) for o in ours] == [sorted(o) for o in wheel_meshes] == [
        ["face_detections", "multi_face_landmarks"], *[["multi_face_landmarks"]] * 3, [],
        ["face_detections", "multi_face_landmarks"],
    ]
    for index, (mine, theirs) in enumerate(zip(ours, wheel_meshes, strict=True)):
        if not mine:
            continue
        assert mesh(mine).shape == (468, 3)
        # OpenVINO vs TFLite: 1e-6 on a detected face, up to ~1e-4 once the tracking loop crops by the landmarks
        np.testing.assert_allclose(mesh(mine), mesh(theirs), rtol=0, atol=5e-4, err_msg=f"frame {index}")
        if "face_detections" in mine:
            (box,), (expected,) = mine["face_detections"], theirs["face_detections"]  # type: ignore[misc]
            assert box.score[0] == pytest.approx(expected.score[0], abs=1e-5)
            assert box.location_data.relative_bounding_box.xmin == pytest.approx(
                expected.location_data.relative_bounding_box.xmin, abs=1e-5)


def shifted_face_landmark_model(path: Path, dx: float) -> Path:
    """The wheel's face landmark model as OpenVINO IR whose 468 x coordinates grow by `dx` (192-px crop units)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / IRIS_MODELS["face_landmark"])
    steps = PrePostProcessor(model)
    shift = np.tile(np.float32([dx, 0, 0]), 468).reshape(1, 1, 1, 1404)
    steps.output("conv2d_21").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


def test_a_replaced_face_landmark_model_moves_the_mesh(tmp_path: Path, wheel_meshes: list[dict[str, object]]) -> None:
    model = shifted_face_landmark_model(tmp_path / "shifted" / "model.xml", dx=9.6)  # 5% of the crop
    (moved,) = mesh_outputs(mesh_folder(tmp_path / "demo", {**FACE_MODELS, "face_landmark": model}), [astronaut()])
    shift = mesh(moved) - mesh(wheel_meshes[0])
    # the crop is the face's ROI (~0.3 of the frame, nearly upright): every point moves right by about 0.015
    assert np.all((shift[:, 0] > 0.01) & (shift[:, 0] < 0.025)), (shift[:, 0].min(), shift[:, 0].max())
    assert np.abs(shift[:, 1]).max() < 0.005 and np.ptp(shift[:, 0]) < 1e-3


def test_an_iris_model_under_face_landmark_fails_the_stream_as_ovms_would(tmp_path: Path) -> None:
    folder = mesh_folder(tmp_path, {**FACE_MODELS, "face_landmark": IRIS_MODELS["iris_landmark"]})
    client = run(folder, "faceMesh", astronaut(), "image")
    assert client.status is not None and client.status.code == "INVALID_ARGUMENT", client.status
    assert (
        'OpenVINOInferenceCalculator: servable "face_landmark" version 1 has no output '
        "'conv2d_21', 'conv2d_31'"
    ) in client.status.text


def test_with_attention_on_the_entries_runs_off_and_ends_a_stream_that_turns_it_on(tmp_path: Path) -> None:
    from ovms_notebook.errors import GraphLoadError

    attention = FACE_MESH.replace('input_side_packet: "NUM_FACES:num_faces"',
                                  'input_side_packet: "NUM_FACES:num_faces" input_side_packet: "WITH_ATTENTION:att"')
    attention = 'input_side_packet: "att"\n' + attention
    assert parse_graph(attention).split is None  # no entry: the wheel's native subgraph, attention and all
    server = ovms_notebook.serve(mesh_folder(tmp_path, dict(FACE_MODELS), attention))
    try:
        ends, meshes = [], []
        for parameters in (None, {"att": False}, {"att": True}):
            client = StreamClient(server.address, "faceMesh")
            client.send({"image": astronaut()}, parameters=parameters)
            ends.append(client.close().text)
            meshes.append([len(e.values["multi_face_landmarks"][0].landmark) for e in client.responses
                           if "multi_face_landmarks" in e.values])
    finally:
        server.stop()
    # unset or false: the fork's face landmark model (no attention); true: what OVMS's fork cannot run, said so
    assert ends[:2] == ["OK", "OK"] and meshes == [[468], [468], []]
    assert ("the side packet 'att' = True picks channel 1 of 2 of a SwitchContainer (attention on, for face "
            "landmarks), but on its model entry the subgraph runs channel 0") in ends[2]
    assert ends[2].endswith("give it false, or leave it out of the request")
    # a channel picked by a stream, packet by packet, is refused when the graph loads
    stream = attention.replace('input_side_packet: "WITH_ATTENTION:att"', "")
    from ovms_notebook.framework.protos import parse_graph_config
    from ovms_notebook.framework.subgraphs.fork import python_twins

    switch = parse_graph_config(
        'node { calculator: "SwitchContainer" input_stream: "ENABLE:flag" input_stream: "t" output_stream: "u" '
        'options { [mediapipe.SwitchContainerOptions.ext] { contained_node { calculator: "SplitTensorVectorCalculator" '
        "} } } }")
    with pytest.raises(GraphLoadError, match=r"picked by the input stream ENABLE:flag, packet by packet"):
        python_twins(list(switch.node))
    assert parse_graph(stream, models=list(FACE_MODELS)).split is not None


HOLISTIC_FACE = """
input_stream: "IMAGE:image"
output_stream: "FACE_LANDMARKS:face_landmarks"
node { calculator: "HolisticLandmarkCpu" input_stream: "IMAGE:image" output_stream: "FACE_LANDMARKS:face_landmarks" }
"""


def test_holistic_face_landmarks_on_the_entries_match_the_wheels(tmp_path: Path) -> None:
    # HolisticLandmarkCpu finds the face from the pose, re-detects it in that ROI (FaceDetectionShortRangeByRoiCpu)
    # and tracks it (FaceTracking); with the entries served both face models and the pose detection run on them.
    # The face ROI comes from the pose landmarks, which MediaPipe's pose model makes chaotic: flipping the lowest
    # bit of one corner pixel moves them by 6e-4 on the wheel path alone, so the face is compared at 2e-3.
    frames = mesh_frames()
    wheel = mesh_outputs(mesh_folder(tmp_path / "wheel", {}, HOLISTIC_FACE), frames)
    models = {
        **FACE_MODELS,
        **{name: f"{folder}/{name}.tflite" for name, folder in (
            ("hand_landmark_full", "hand_landmark"), ("hand_recrop", "holistic_landmark"),
            ("pose_detection", "pose_detection"), ("pose_landmark_full", "pose_landmark"))},
    }
    ours = mesh_outputs(mesh_folder(tmp_path / "entries", models, HOLISTIC_FACE), frames)
    assert [sorted(o) for o in ours] == [sorted(o) for o in wheel]
    faces = [index for index, found in enumerate(ours) if found]
    assert len(faces) >= 4 and 4 not in faces, faces  # the face on the face frames, none on the empty one
    for index in faces:
        assert mesh(ours[index]).shape == (468, 3)
        np.testing.assert_allclose(mesh(ours[index]), mesh(wheel[index]), rtol=0, atol=2e-3, err_msg=f"frame {index}")


def test_two_faces_run_through_the_landmark_loop_on_the_entries_as_on_the_wheel(tmp_path: Path) -> None:
    # NUM_FACES 2: FaceLandmarkFrontCpu's native loop hands two ROIs per frame to the Python-side landmark nodes
    graph = FACE_MESH.replace("int_value: 1", "int_value: 2")
    photo = astronaut()[:, 64:448]
    two = np.ascontiguousarray(np.hstack([photo, photo[:, ::-1]]))
    frames = [two, two, np.ascontiguousarray(two[:, :384]), two]
    wheel = mesh_outputs(mesh_folder(tmp_path / "wheel", {}, graph), frames)
    ours = mesh_outputs(mesh_folder(tmp_path / "entries", dict(FACE_MODELS), graph), frames)
    assert [len(o.get("multi_face_landmarks", [])) for o in ours] == \
        [len(o.get("multi_face_landmarks", [])) for o in wheel] == [2, 2, 0, 2]  # type: ignore[arg-type]
    # (the half frame: the ROIs tracked in the wider frame miss its face, and detection does not run because the
    # frame before had two faces - MediaPipe's own behaviour, on both sides)
    for mine, theirs in zip(ours, wheel, strict=True):
        for face, expected in zip(mine.get("multi_face_landmarks", []), theirs.get("multi_face_landmarks", []),  # type: ignore[call-overload]
                                  strict=True):
            np.testing.assert_allclose([[p.x, p.y, p.z] for p in face.landmark],
                                       [[p.x, p.y, p.z] for p in expected.landmark], rtol=0, atol=5e-4)



# -- pose detection: PoseLandmarkCpu's PoseDetectionCpu on the `pose_detection` entry ---------------------------------

POSE = """
input_stream: "IMAGE:image"
output_stream: "LANDMARKS:pose_landmarks"
output_stream: "DETECTION:pose_detection"
node { calculator: "PoseLandmarkCpu" input_stream: "IMAGE:image" output_stream: "LANDMARKS:pose_landmarks"
  output_stream: "DETECTION:pose_detection" }
"""
POSE_MODELS = {"pose_detection": "pose_detection/pose_detection.tflite",
               "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite"}


def detection_row(found: object) -> np.ndarray:
    box = found.location_data.relative_bounding_box  # type: ignore[attr-defined]
    points = [c for k in found.location_data.relative_keypoints for c in (k.x, k.y)]  # type: ignore[attr-defined]
    return np.array([box.xmin, box.ymin, box.width, box.height, *points, *found.score])  # type: ignore[attr-defined]


def pose_points(outputs: dict[str, object]) -> np.ndarray:
    return np.array([[p.x, p.y] for p in outputs["pose_landmarks"].landmark])  # type: ignore[attr-defined]


def test_pose_detection_on_the_entry_matches_the_wheels(tmp_path: Path) -> None:
    frames = [astronaut(), np.full((320, 320, 3), 90, np.uint8), np.ascontiguousarray(astronaut()[:, 100:400])]
    wheel = mesh_outputs(mesh_folder(tmp_path / "wheel", {}, POSE), frames)
    ours = mesh_outputs(mesh_folder(tmp_path / "entries", dict(POSE_MODELS), POSE), frames)
    # a detection on each frame with a person (the one before had none), nothing on the empty frame
    assert [sorted(o) for o in ours] == [sorted(o) for o in wheel] == [["pose_detection", "pose_landmarks"], [],
                                                                        ["pose_detection", "pose_landmarks"]]
    for mine, theirs in zip(ours, wheel, strict=True):
        if mine:
            assert len(detection_row(mine["pose_detection"])) == 4 + 8 + 1  # box, 4 keypoints, score
            np.testing.assert_allclose(detection_row(mine["pose_detection"]), detection_row(theirs["pose_detection"]),
                                       rtol=0, atol=1e-5)
            # pose landmarks on their entry too (tests/test_model_entries_pose.py), on a crop placed by the
            # detection: a chaotic model (see above), up to 5e-3 apart on the tracked third frame here
            np.testing.assert_allclose(pose_points(mine), pose_points(theirs), rtol=0, atol=2e-3)


def shifted_pose_detection_model(path: Path, dx: float) -> Path:
    """The wheel's pose detection model as OpenVINO IR whose box and keypoint x offsets grow by `dx` (224-px units)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    model = ov.Core().read_model(wheel_modules_dir() / POSE_MODELS["pose_detection"])
    steps = PrePostProcessor(model)
    shift = np.zeros((1, 1, 12), np.float32)
    shift[..., [0, 4, 6, 8, 10]] = dx
    steps.output("Identity").postprocess().custom(lambda node: ops.add(node, ops.constant(shift)).output(0))
    ov.save_model(steps.build(), path, compress_to_fp16=False)
    return path


def test_a_replaced_pose_detection_model_moves_the_detection(tmp_path: Path) -> None:
    model = shifted_pose_detection_model(tmp_path / "shifted" / "model.xml", dx=22.4)  # 0.1 of the tensor
    (before,) = mesh_outputs(mesh_folder(tmp_path / "wheel", {}, POSE), [astronaut()])
    (moved,) = mesh_outputs(mesh_folder(tmp_path / "demo", {**POSE_MODELS, "pose_detection": model}, POSE),
                            [astronaut()])
    shift = detection_row(moved["pose_detection"]) - detection_row(before["pose_detection"])
    np.testing.assert_allclose(shift[[0, 4, 6, 8, 10]], 0.1, atol=1e-4)  # square frame: no letterbox
    np.testing.assert_allclose(shift[[1, 2, 3, 5, 7, 9, 11, 12]], 0.0, atol=1e-5)


def test_a_reload_that_adds_the_entries_moves_the_graph_onto_them(tmp_path: Path) -> None:
    """config.json first without the entries (the wheel's files), then with them: the reload parses the graph
    again onto the entries, though its pbtxt did not change."""
    demo_folder(tmp_path, "iris_tracking", "irisTracking", "iris_tracking.pbtxt", dict(IRIS_MODELS))
    with_entries = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**with_entries, "model_config_list": []}))
    server = ovms_notebook.serve(tmp_path)
    try:
        def on_entries() -> bool:
            spec = server.repository.get("irisTracking").spec  # type: ignore[union-attr]
            assert spec is not None and spec.split is not None and spec.split.python is not None
            return "OpenVINOInferenceCalculator" in {node.calculator for node in spec.split.python.node}

        assert not on_entries()
        (tmp_path / "config.json").write_text(json.dumps(with_entries))
        assert server.reload()["irisTracking"] == "reloaded"
        assert on_entries()
        client = StreamClient(server.address, "irisTracking")
        client.send({"first_input_video": astronaut()})
        assert client.close().text == "OK" and len(client.responses) >= 1
        assert server.reload()["irisTracking"] == "unchanged"  # nothing changed since: no second parse
    finally:
        server.stop()
