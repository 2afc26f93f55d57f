"""Models served on their own: the wheel's .tflite models in OVMS's layout, compiled by OpenVINO, with KServe's
ModelReady / ModelMetadata / ModelInfer semantics and OVMS's validation texts. Real OpenVINO, no download."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from ovms_notebook.models import (
    UNCONVERTIBLE,
    ModelRepository,
    VersionState,
    metadata_dict,
    model_infer,
    model_metadata,
    model_ready,
    read_model_entries,
    wheel_model_repository,
    wheel_models,
)
from ovms_notebook.models.serving import decode_inputs
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.sources import astronaut
from ovms_notebook.status import OvmsStatus, StatusCode

FACE = "face_detection_short_range"


@pytest.fixture(scope="module")
def wheel_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheel_model_repository(tmp_path_factory.mktemp("wheel"), [FACE, "iris_landmark", "selfie_segmentation"])


@pytest.fixture(scope="module")
def models(wheel_repo: Path) -> ModelRepository:
    return ModelRepository(wheel_repo)


def face_input() -> np.ndarray:
    """The astronaut as face_detection_short_range sees it: 128x128 RGB scaled to [-1, 1] (ImageToTensor's range)."""
    return _normalised(cv2.resize(astronaut(), (128, 128), interpolation=cv2.INTER_AREA))


def _normalised(image: np.ndarray) -> np.ndarray:
    # TensorConverterCalculator's arithmetic: value * (max - min) / 255 + min, in float32.
    return (image.astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0))[None]


def mediapipe_tflite(model_path: Path, image: np.ndarray, outputs: int) -> list[np.ndarray]:
    """The same model run by MediaPipe's own InferenceCalculator (TFLite + XNNPACK) on the same image."""
    splits = " ".join(f"ranges {{ begin: {i} end: {i + 1} }}" for i in range(outputs))
    streams = "".join(f'output_stream: "o{i}" ' for i in range(outputs))
    floats = "".join(
        f'node {{ calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:o{i}" output_stream: "FLOATS:f{i}" }}'
        for i in range(outputs))
    graph = mp.CalculatorGraph(graph_config=f"""
        input_stream: "image"
        {''.join(f'output_stream: "f{i}" ' for i in range(outputs))}
        node {{ calculator: "TensorConverterCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:t"
          options {{ [mediapipe.TensorConverterCalculatorOptions.ext] {{
            output_tensor_float_range {{ min: -1 max: 1 }} }} }} }}
        node {{ calculator: "InferenceCalculator" input_stream: "TENSORS:t" output_stream: "TENSORS:o"
          options {{ [mediapipe.InferenceCalculatorOptions.ext] {{
            model_path: "{model_path}" delegate {{ xnnpack {{}} }} }} }} }}
        node {{ calculator: "SplitTensorVectorCalculator" input_stream: "o" {streams}
          options {{ [mediapipe.SplitVectorCalculatorOptions.ext] {{ {splits} }} }} }}
        {floats}
    """)
    results: dict[int, np.ndarray] = {}
    for i in range(outputs):
        graph.observe_output_stream(
            f"f{i}", lambda _s, p, i=i: results.__setitem__(i, np.array(mp.packet_getter.get_float_list(p))))
    graph.start_run()
    graph.add_packet_to_input_stream(
        "image", mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=image), 0)
    graph.close()
    return [results[i] for i in range(outputs)]


def infer_request(model: str, inputs: dict[str, np.ndarray], *, datatype: str = "FP32", typed: bool = False,
                  version: str = "") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, model_version=version, id="req-7")
    for name, array in inputs.items():
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if typed:
            tensor.contents.fp32_contents.extend(array.ravel().tolist())
        else:
            request.raw_input_contents.append(array.tobytes())
    return request


def status_of(call) -> OvmsStatus:
    with pytest.raises(OvmsStatus) as caught:
        call()
    return caught.value


def save_add_model(folder: Path) -> None:
    """A two-input IR model: sum = a + b, a [1,4], b [-1,4] (dynamic batch)."""
    a = ops.parameter([1, 4], np.float32, name="a")
    b = ops.parameter([-1, 4], np.float32, name="b")
    total = ops.add(a, b)
    total.output(0).get_tensor().set_names({"sum"})
    ov.save_model(ov.Model([total], [a, b], "add"), folder / "model.xml", compress_to_fp16=False)


def write_config(folder: Path, entries: list[dict], **extra: object) -> Path:
    config = folder / "config.json"
    config.write_text(json.dumps({"model_config_list": [{"config": e} for e in entries], **extra}))
    return config


# ---------------------------------------------------------------- the wheel's models as a repository


def test_wheel_model_repository_lays_out_every_convertible_model_with_a_config(tmp_path):
    config = wheel_model_repository(tmp_path)
    document = json.loads(config.read_text())
    names = [item["config"]["name"] for item in document["model_config_list"]]
    every = {model.name for model in wheel_models()}
    assert set(names) == every - set(UNCONVERTIBLE)
    assert FACE in names and "pose_landmark_full" in names
    for item in document["model_config_list"]:
        entry = item["config"]
        assert entry["base_path"] == entry["name"]
        assert entry["plugin_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
        assert (tmp_path / entry["name"] / "1" / "model.tflite").is_file()
    skipped = json.loads((tmp_path / "skipped.json").read_text())
    assert set(skipped) == {"face_landmark_with_attention", "selfie_segmentation", "selfie_segmentation_landscape"}
    assert "Landmarks2TransformMatrix" in skipped["face_landmark_with_attention"]
    assert "Convolution2DTransposeBias" in skipped["selfie_segmentation"]
    assert not (tmp_path / "selfie_segmentation").exists()
    assert wheel_model_repository(tmp_path) == config  # running again refreshes in place


def test_wheel_model_repository_takes_a_selection_and_rejects_unknown_names(tmp_path):
    config = wheel_model_repository(tmp_path, ["iris_landmark"])
    assert [e.name for e in read_model_entries(config)] == ["iris_landmark"]
    with pytest.raises(ValueError, match="no model named 'nope'"):
        wheel_model_repository(tmp_path, ["nope"])


# ---------------------------------------------------------------- OpenVINO against MediaPipe's own TFLite


def test_face_detection_compiles_in_f32_and_matches_mediapipe_tflite(models, wheel_repo, caplog):
    version = models.resolve(FACE)
    with caplog.at_level(logging.INFO, logger="ovms_notebook.models.repository"):
        compiled = version.compile()
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    messages = [r.getMessage() for r in caplog.records]
    if messages:  # compiled by this test, not an earlier one
        assert messages[0] == f"compiling {FACE} v1 (model.tflite) ..."
        assert messages[1].startswith(f"... {FACE} v1 compiled in ") and " ms " in messages[1]
    image = cv2.resize(astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    ours = version.infer({"input": _normalised(image)})
    regressors, classificators = mediapipe_tflite(wheel_repo.parent / FACE / "1" / "model.tflite", image, 2)
    for name, reference in (("regressors", regressors), ("classificators", classificators)):
        got = ours[name].ravel()
        assert got.shape == reference.shape
        assert np.abs(got - reference).max() / np.abs(reference).max() < 1e-3
        np.testing.assert_allclose(got, reference, rtol=1e-3, atol=1e-3)
    assert ours["classificators"].max() > 0  # a face: some anchor's logit is positive


def test_plugin_config_overrides_the_f32_default(tmp_path):
    shutil.copytree(wheel_model_repository(tmp_path / "wheel", ["iris_landmark"]).parent / "iris_landmark",
                    tmp_path / "iris")
    config = write_config(tmp_path, [{"name": "iris", "base_path": "iris",
                                      "plugin_config": {"INFERENCE_PRECISION_HINT": "bf16"}}])
    compiled = ModelRepository(config).resolve("iris").compile()
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16


def test_concurrent_first_requests_compile_once(tmp_path, caplog):
    config = wheel_model_repository(tmp_path, ["hand_recrop"])
    version = ModelRepository(config).resolve("hand_recrop")
    (spec,) = version.inputs
    x = np.zeros(spec.shape, np.float32)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            version.infer({spec.name: x})
        except BaseException as error:  # reported below
            errors.append(error)

    with caplog.at_level(logging.INFO, logger="ovms_notebook.models.repository"):
        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert [r.getMessage() for r in caplog.records].count("compiling hand_recrop v1 (model.tflite) ...") == 1


# ---------------------------------------------------------------- ModelReady / ModelMetadata


def test_metadata_has_the_real_names_shapes_and_datatypes(models):
    assert metadata_dict(models, FACE) == {
        "name": FACE,
        "versions": ["1"],
        "platform": "OpenVINO",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 128, 128, 3]}],
        "outputs": [{"name": "classificators", "datatype": "FP32", "shape": [1, 896, 1]},
                    {"name": "regressors", "datatype": "FP32", "shape": [1, 896, 16]}],
    }
    response = model_metadata(models, pb.ModelMetadataRequest(name=FACE, version="1"))
    assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
        ("classificators", "FP32", [1, 896, 1]), ("regressors", "FP32", [1, 896, 16])]


def test_status_rpcs_use_ovms_texts_for_unknown_names_and_versions(models):
    assert model_ready(models, pb.ModelReadyRequest(name=FACE)).ready
    assert model_ready(models, pb.ModelReadyRequest(name=FACE, version="1")).ready
    cases = [
        (lambda: model_ready(models, pb.ModelReadyRequest(name="nope")), "Model with requested name is not found"),
        (lambda: model_ready(models, pb.ModelReadyRequest(name=FACE, version="2")),
         "Model with requested version is not found"),
        (lambda: model_ready(models, pb.ModelReadyRequest(name=FACE, version="0")),
         "Model with requested version is not found"),
        (lambda: model_metadata(models, pb.ModelMetadataRequest(name=FACE, version="x")),
         "invalid model version format in request"),
        (lambda: model_infer(models, infer_request(FACE, {}, version="3")),
         "Model with requested version is not found"),
    ]
    for call, text in cases:
        assert status_of(call).text == text


def test_a_model_openvino_cannot_read_is_not_ready_and_says_why(tmp_path):
    wheel = {m.name: m.path for m in wheel_models()}
    (tmp_path / "selfie" / "1").mkdir(parents=True)
    shutil.copy(wheel["selfie_segmentation"], tmp_path / "selfie" / "1" / "model.tflite")
    models = ModelRepository(write_config(tmp_path, [{"name": "selfie", "base_path": "selfie"}]))
    assert not model_ready(models, pb.ModelReadyRequest(name="selfie")).ready
    version = models.get("selfie").versions[1]
    assert version.state is VersionState.FAILED and "Convolution2DTransposeBias" in version.error
    status = status_of(lambda: model_metadata(models, pb.ModelMetadataRequest(name="selfie")))
    assert (status.text, status.grpc_code.name) == ("Model with requested version is not loaded yet", "UNAVAILABLE")
    status = status_of(lambda: model_infer(models, infer_request("selfie", {"input": np.zeros((1, 4), np.float32)})))
    assert status.text == "Model with requested version is not loaded yet"


# ---------------------------------------------------------------- ModelInfer


def test_model_infer_answers_like_ovms(models):
    x = face_input()
    response = model_infer(models, infer_request(FACE, {"input": x}))
    assert (response.model_name, response.model_version, response.id) == (FACE, "1", "req-7")
    assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
        ("classificators", "FP32", [1, 896, 1]), ("regressors", "FP32", [1, 896, 16])]
    direct = models.resolve(FACE).infer({"input": x})
    assert response.raw_output_contents[0] == direct["classificators"].tobytes()
    assert response.raw_output_contents[1] == direct["regressors"].tobytes()
    typed = model_infer(models, infer_request(FACE, {"input": x}, typed=True))
    assert typed.raw_output_contents[1] == direct["regressors"].tobytes()


@pytest.mark.parametrize(
    ("change", "code", "text"),
    [
        ("missing", StatusCode.INVALID_MISSING_INPUT, "Missing input with specific name - Required input: input"),
        ("none", StatusCode.INVALID_NO_OF_INPUTS, "Invalid number of inputs - Expected: 1; Actual: 0"),
        ("two", StatusCode.INVALID_NO_OF_INPUTS, "Invalid number of inputs - Expected: 1; Actual: 2"),
        ("precision", StatusCode.INVALID_PRECISION,
         "Invalid input precision - Expected: FP32; Actual: UINT8; input name: input"),
        ("shape", StatusCode.INVALID_SHAPE,
         "Invalid input shape - Expected: (1,128,128,3); Actual: (1,128,64,3); input name: input"),
        ("zero", StatusCode.INVALID_SHAPE,
         "Invalid input shape - Negative or zero dimension size is not acceptable: (1,0,128,3); input name: input"),
        ("batch", StatusCode.INVALID_BATCH_SIZE,
         "Invalid input batch size - Expected: 1; Actual: 2; input name: input"),
        ("raw size", StatusCode.INVALID_CONTENT_SIZE,
         "Invalid content size of tensor proto - Expected: 196608 bytes; Actual: 196604 bytes; input name: input"),
        ("typed count", StatusCode.INVALID_VALUE_COUNT,
         "Invalid number of values in tensor proto container - Expected: 49152 values; Actual: 49151 values; "
         "input name: input"),
        ("both", StatusCode.INVALID_MESSAGE_STRUCTURE,
         "Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
         "ModelInferRequest::raw_input_contents is not allowed - Passing buffers both in InferInputTensor contents "
         "and in raw_input_contents is not allowed. Detected buffer in InferInputTensor contents for input: input"),
    ],
)
def test_invalid_requests_get_ovms_validation_texts(models, change, code, text):
    x = face_input()
    request = infer_request(FACE, {"input": x})
    if change == "missing":
        request.inputs[0].name = "image"
    elif change == "none":
        request = infer_request(FACE, {})
    elif change == "two":
        request = infer_request(FACE, {"input": x, "extra": x})
    elif change == "precision":
        request = infer_request(FACE, {"input": x.astype(np.uint8)}, datatype="UINT8")
    elif change == "shape":
        request = infer_request(FACE, {"input": x[:, :, :64]})
    elif change == "zero":
        request = infer_request(FACE, {"input": x[:, :0]})
    elif change == "batch":
        request = infer_request(FACE, {"input": np.concatenate([x, x])})
    elif change == "raw size":
        request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    elif change == "typed count":
        request = infer_request(FACE, {"input": x}, typed=True)
        del request.inputs[0].contents.fp32_contents[-1]
    elif change == "both":
        request.inputs[0].contents.fp32_contents.append(1.0)
    status = status_of(lambda: model_infer(models, request))
    assert (status.code, status.text) == (code, text)
    assert status.grpc_code.name == "INVALID_ARGUMENT"


def test_a_rank_mismatch_prints_both_shapes(models):
    status = status_of(lambda: model_infer(models, infer_request(FACE, {"input": face_input()[0]})))
    assert status.details == "Expected: (1,128,128,3); Actual: (128,128,3); input name: input"
    assert status.code.name == "INVALID_NO_OF_SHAPE_DIMENSIONS"


def test_dynamic_dimensions_show_as_minus_one_and_accept_any_size(tmp_path):
    save_add_model(tmp_path / "add" / "1")
    models = ModelRepository(write_config(tmp_path, [{"name": "add", "base_path": "add"}]))
    assert metadata_dict(models, "add")["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [1, 4]}, {"name": "b", "datatype": "FP32", "shape": [-1, 4]}]
    a, b = np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32)[None]
    response = model_infer(models, infer_request("add", {"b": b, "a": a}))
    assert (response.outputs[0].name, list(response.outputs[0].shape)) == ("sum", [1, 4])
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], np.float32), [1, 2, 3, 4])
    status = status_of(lambda: model_infer(models, infer_request("add", {"a": a, "b": np.ones((1, 5), np.float32)})))
    assert status.text == "Invalid input shape - Expected: (-1,4); Actual: (1,5); input name: b"
    arrays = decode_inputs(models.resolve("add"), infer_request("add", {"a": a, "b": b}, typed=True))
    np.testing.assert_array_equal(arrays["b"], b)


# ---------------------------------------------------------------- config.json, versions, reload


def test_config_entries_versions_and_policies(tmp_path):
    for version in (1, 2, 3):
        save_add_model(tmp_path / "add" / str(version))
    (tmp_path / "add" / "notes").mkdir()
    (tmp_path / "graph_a").mkdir()
    (tmp_path / "graph_a" / "graph.pbtxt").write_text('input_stream: "in"\n')
    save_add_model(tmp_path / "graph_a" / "inner" / "1")
    (tmp_path / "graph_a" / "subconfig.json").write_text(
        json.dumps({"model_config_list": [{"config": {"name": "inner", "base_path": "inner"}}]}))
    config = write_config(tmp_path, [
        {"name": "latest", "base_path": "add"},
        {"name": "two", "base_path": "add", "model_version_policy": {"latest": {"num_versions": 2}}},
        {"name": "every", "base_path": str(tmp_path / "add"), "model_version_policy": {"all": {}}},
        {"name": "picked", "base_path": "add", "model_version_policy": {"specific": {"versions": [1, 3, 9]}}},
        {"name": "graph_a", "base_path": "graph_a"},
        {"name": "empty", "base_path": "nowhere"},
    ])
    models = ModelRepository(config)
    assert models.names == ["latest", "two", "every", "picked", "empty", "inner"]
    assert {m.name: sorted(m.versions) for m in models} == {
        "latest": [3], "two": [2, 3], "every": [1, 2, 3], "picked": [1, 3], "empty": [], "inner": [1]}
    assert models.resolve("two").version == 3 and models.resolve("two", 2).version == 2
    assert "is not a folder" in models.get("empty").error
    assert status_of(lambda: models.resolve("empty")).text == "Model with requested version is not found"
    assert metadata_dict(models, "every")["versions"] == ["1", "2", "3"]
    assert models.get("latest").entry.compile_config == {"INFERENCE_PRECISION_HINT": "f32"}
    assert "graph_a" not in models


def test_reload_adds_new_versions_and_retires_vanished_ones(tmp_path):
    save_add_model(tmp_path / "add" / "1")
    config = write_config(tmp_path, [{"name": "add", "base_path": "add", "model_version_policy": {"all": {}}}])
    models = ModelRepository(config)
    first = models.resolve("add")
    first.compile()
    assert models.reload() == {"add": "unchanged"}
    assert models.resolve("add") is first and first.compiled
    save_add_model(tmp_path / "add" / "2")
    assert models.reload() == {"add": "versions changed"}
    assert models.resolve("add").version == 2 and models.resolve("add", 1) is first
    shutil.rmtree(tmp_path / "add" / "1")
    assert models.reload() == {"add": "versions changed"}
    assert first.state is VersionState.RETIRED
    status = status_of(lambda: models.resolve("add", 1))
    assert (status.text, status.grpc_code.name) == ("Model with requested version is retired", "NOT_FOUND")
    write_config(tmp_path, [])
    assert models.reload() == {"add": "retired"}
    assert status_of(lambda: models.resolve("add")).text == "Model with requested version is retired"
    assert not model_ready(models, pb.ModelReadyRequest(name="add")).ready
