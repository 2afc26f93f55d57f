"""OVMS's OpenVINO calculators on the Python side: a session node and an inference node in a PythonGraph,
running the wheel's face detector and a two-input IR model with real OpenVINO."""

from __future__ import annotations

import json

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2

from ovms_notebook.calculators.openvino import (
    NOT_ALL_INPUTS,
    SESSION_LOAD_FAILED,
    OpenVINOInferenceCalculator,
    OpenVINOModelServerSessionCalculator,
    ServableSession,
    SessionLoadError,
    bind_sessions,
    parse_servable_version,
    register_openvino_calculators,
)
from ovms_notebook.codec import TensorValue, pack_tensor
from ovms_notebook.engine.python.api import Registry, default_registry
from ovms_notebook.engine.python.scheduler import PythonGraph, PythonGraphError
from ovms_notebook.framework.protos import import_wheel_protos
from ovms_notebook.models import ModelRepository, wheel_model_repository

FACE = "face_detection_short_range"

FACE_GRAPH = """
input_stream: "OVTENSOR:image"
output_stream: "regressors"
output_stream: "classificators"
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:session"
  node_options: {
    [type.googleapis.com/mediapipe.OpenVINOModelServerSessionCalculatorOptions]: {
      servable_name: "%(servable)s"
      servable_version: "%(version)s"
    }
  }
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:session"
  input_stream: "INPUT:image"
  output_stream: "REGRESSORS:regressors"
  output_stream: "CLASSIFICATORS:classificators"
  node_options: {
    [type.googleapis.com/mediapipe.OpenVINOInferenceCalculatorOptions]: {
      tag_to_input_tensor_names { key: "INPUT" value: "input" }
      tag_to_output_tensor_names { key: "REGRESSORS" value: "regressors" }
      tag_to_output_tensor_names { key: "CLASSIFICATORS" value: "classificators" }
    }
  }
}
"""

# OVMS's demo style: options as an extension, tags used as model names where they match.
ADD_GRAPH = """
input_stream: "a"
input_stream: "b"
output_stream: "total"
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:adder"
  options: { [mediapipe.OpenVINOModelServerSessionCalculatorOptions.ext] { servable_name: "add" } }
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:adder"
  input_stream: "A:a"
  input_stream: "B:b"
  output_stream: "SUM:total"
  options: { [mediapipe.OpenVINOInferenceCalculatorOptions.ext] {
    tag_to_input_tensor_names { key: "A" value: "a" }
    tag_to_input_tensor_names { key: "B" value: "b" }
    tag_to_output_tensor_names { key: "SUM" value: "sum" }
  } }
}
"""

VECTOR_GRAPH = """
input_stream: "pair"
output_stream: "sums"
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:adder"
  options: { [mediapipe.OpenVINOModelServerSessionCalculatorOptions.ext] { servable_name: "add" } }
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:adder"
  input_stream: "OVTENSORS:pair"
  output_stream: "OVTENSORS:sums"
  options: { [mediapipe.OpenVINOInferenceCalculatorOptions.ext] { input_order_list: "b" input_order_list: "a" } }
}
"""


def parse(text: str) -> calculator_pb2.CalculatorGraphConfig:
    import_wheel_protos()
    return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    folder = tmp_path_factory.mktemp("models")
    config = wheel_model_repository(folder, [FACE])
    a = ops.parameter([1, 4], np.float32, name="a")
    b = ops.parameter([1, 4], np.float32, name="b")
    total = ops.add(a, b)
    total.output(0).get_tensor().set_names({"sum"})
    ov.save_model(ov.Model([total], [a, b], "add"), folder / "add" / "1" / "model.xml", compress_to_fp16=False)
    document = json.loads(config.read_text())
    document["model_config_list"].append({"config": {"name": "add", "base_path": "add"}})
    config.write_text(json.dumps(document))
    return ModelRepository(config)


class Run:
    """A PythonGraph built the way the engine builds one: sessions bound, outputs observed."""

    def __init__(self, text: str, models: ModelRepository | None) -> None:
        config, self.sessions = bind_sessions(parse(text), models)
        self.graph = PythonGraph(config)
        self.outputs: dict[str, list[tuple[int, object]]] = {name: [] for name in self.graph.output_streams}
        for name in self.graph.output_streams:
            self.graph.observe_output_stream(name, lambda stream, value, ts: self.outputs[stream].append((ts, value)))
        self.graph.start_run(self.sessions)

    def add(self, stream: str, value: object, timestamp: int) -> None:
        self.graph.add_packet_to_input_stream(stream, value, timestamp)


def face_tensor(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)


def test_both_calculators_are_registered_under_ovms_names():
    assert default_registry["OpenVINOModelServerSessionCalculator"] is OpenVINOModelServerSessionCalculator
    assert default_registry["OpenVINOInferenceCalculator"] is OpenVINOInferenceCalculator
    registry = Registry()
    register_openvino_calculators(registry)
    assert set(registry) == {"OpenVINOModelServerSessionCalculator", "OpenVINOInferenceCalculator"}


def test_bind_sessions_turns_the_session_output_side_packet_into_an_input_and_builds_it(models):
    original = parse(FACE_GRAPH % {"servable": FACE, "version": "1"})
    config, sessions = bind_sessions(original, models)
    assert list(original.node[0].output_side_packet) == ["SESSION:session"]  # the input config is untouched
    assert (list(config.node[0].output_side_packet), list(config.node[0].input_side_packet)) == ([],
                                                                                               ["SESSION:session"])
    (session,) = sessions.values()
    assert list(sessions) == ["session"] and isinstance(session, ServableSession)
    assert (session.servable_name, session.servable_version) == (FACE, 1)
    assert [parse_servable_version(text) for text in ("", "3", " 2 ", "x", "-1", str(2**32))] == [0, 3, 2, 0, 0, 0]


def test_inference_node_gives_what_direct_infer_gives(models):
    run = Run(FACE_GRAPH % {"servable": FACE, "version": "1"}, models)
    inputs = [face_tensor(0), face_tensor(1)]
    run.add("image", TensorValue("image", "FP32", (1, 128, 128, 3), inputs[0].tobytes()), 10)
    run.add("image", inputs[1], 11)  # a numpy array from a Python node works as well
    run.graph.close()
    direct = models.resolve(FACE)
    for name in ("regressors", "classificators"):
        assert [ts for ts, _ in run.outputs[name]] == [10, 11]  # emitted at the input timestamp
        for (_, value), x in zip(run.outputs[name], inputs, strict=True):
            expected = direct.infer({"input": x})[name]
            assert isinstance(value, TensorValue)
            assert (value.name, value.datatype, value.shape) == (name, "FP32", expected.shape)
            np.testing.assert_array_equal(value.array(), expected)


def test_tensor_blobs_from_native_nodes_are_accepted(models):
    run = Run(ADD_GRAPH, models)
    a, b = np.ones((1, 4), np.float32), np.arange(4, dtype=np.float32)[None]
    run.add("a", pack_tensor("a", "FP32", a.shape, a.tobytes()), 0)
    run.add("b", b, 0)
    run.graph.close()
    ((timestamp, total),) = run.outputs["total"]
    assert timestamp == 0 and total.name == "sum"
    np.testing.assert_array_equal(total.array(), [[1, 2, 3, 4]])


def test_vector_tags_follow_the_order_lists(models):
    run = Run(VECTOR_GRAPH, models)
    b, a = np.full((1, 4), 10, np.float32), np.ones((1, 4), np.float32)
    run.add("pair", [b, a], 5)
    run.graph.close()
    ((_, sums),) = run.outputs["sums"]
    assert [t.name for t in sums] == ["sum"]
    np.testing.assert_array_equal(sums[0].array(), np.full((1, 4), 11, np.float32))


def test_every_input_tag_needs_a_packet_at_the_timestamp(models):
    run = Run(ADD_GRAPH, models)
    run.add("a", np.ones((1, 4), np.float32), 0)
    run.add("b", np.ones((1, 4), np.float32), 1)  # b's bound passes 0 with no packet there
    assert run.graph.has_error()
    assert NOT_ALL_INPUTS in run.graph.error
    assert 'Calculator::Process() for node "OpenVINOInferenceCalculator" failed: InferenceError' in run.graph.error
    with pytest.raises(PythonGraphError, match="Graph has errors"):
        run.add("a", np.ones((1, 4), np.float32), 2)


def test_an_input_of_the_wrong_datatype_or_shape_is_a_graph_error(models):
    run = Run(ADD_GRAPH, models)
    run.add("a", np.ones((1, 4), np.float64), 0)
    run.add("b", np.ones((1, 4), np.float32), 0)
    assert 'model input "a" of servable "add" expects FP32 (1,4), got FP64 (1,4)' in run.graph.error
    run = Run(ADD_GRAPH, models)
    run.add("a", np.ones((1, 5), np.float32), 0)
    run.add("b", np.ones((1, 4), np.float32), 0)
    assert 'expects shape (1,4), got (1,5)' in run.graph.error


@pytest.mark.parametrize(("servable", "version"), [("nope", ""), (FACE, "7")])
def test_a_missing_servable_fails_the_session_with_ovms_precondition_text(models, servable, version):
    run = Run(FACE_GRAPH % {"servable": servable, "version": version}, models)
    assert run.graph.has_error()
    (first, *_rest) = run.graph.error.splitlines()
    assert first.startswith(
        'Calculator::Open() for node "OpenVINOModelServerSessionCalculator" failed: SessionLoadError: '
        f"{SESSION_LOAD_FAILED} (servable \"{servable}\" version {version or 'default'}: Model with requested "
    )
    with pytest.raises(PythonGraphError, match=SESSION_LOAD_FAILED):
        run.graph.wait_until_idle()
    with pytest.raises(SessionLoadError) as caught:
        ServableSession(models, servable, int(version or 0)).load()
    assert str(caught.value).startswith(SESSION_LOAD_FAILED) and caught.value.code == "FAILED_PRECONDITION"
    expected = "name is not found" if servable == "nope" else "version is not found"
    assert caught.value.reason.endswith(f"Model with requested {expected}")


def test_without_a_model_repository_the_session_fails_the_same_way():
    run = Run(FACE_GRAPH % {"servable": FACE, "version": "1"}, None)
    assert SESSION_LOAD_FAILED in run.graph.error


def test_a_model_tensor_the_node_names_must_exist(models):
    run = Run(ADD_GRAPH.replace('key: "SUM" value: "sum"', 'key: "SUM" value: "total"'), models)
    assert 'servable "add" version 1 has no output \'total\' (for tag SUM); its outputs are sum' in run.graph.error


def test_session_side_packet_must_come_from_bind_sessions(models):
    graph = PythonGraph(bind_sessions(parse(ADD_GRAPH), models)[0])
    graph.start_run({"adder": "not a session"})
    assert "expected a ServableSession" in graph.error

