"""OVMS's Python-node and OpenVINO-node streaming cases over the server, with tritonclient (spec §8.1 rows 3, 4,
12-22; §8.2 InferOnReloadedGraph) and models served on their own beside graphs.

The graph folder is laid out as OVMS wants it: config.json with graphs and an OpenVINO "add" model, each
graph's handlers under its base path's scripts/. Each request of OVMS's tests is one FP32 [1] tensor.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

import ovms_notebook
from ovms_notebook.calculators.python_cache import NODE_RESOURCES
from tests.conftest import triton_stream
from tests.ovms_python_graphs import (
    GENERATOR_ONE,
    GENERATOR_TWO,
    INCOMPLETE_INPUTS,
    PYTHON_NODE,
    WITH_CONVERTERS,
    YIELDS_WITHOUT_LOOPBACK,
    write_scripts,
)

ADD_TWO_INPUTS = """
input_stream: "OVTENSOR:in"
input_stream: "OVTENSOR:in2"
output_stream: "OVTENSOR:sum"
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:session"
  node_options: {
    [type.googleapis.com / mediapipe.OpenVINOModelServerSessionCalculatorOptions]: {
      servable_name: "%s"
      servable_version: "1"
    }
  }
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:session"
  input_stream: "INPUT1:in"
  input_stream: "INPUT2:in2"
  output_stream: "SUM:sum"
  node_options: {
    [type.googleapis.com / mediapipe.OpenVINOInferenceCalculatorOptions]: {
      tag_to_input_tensor_names { key: "INPUT1" value: "input1" }
      tag_to_input_tensor_names { key: "INPUT2" value: "input2" }
      tag_to_output_tensor_names { key: "SUM" value: "sum" }
    }
  }
}
"""

GRAPHS = {
    "python_increment": PYTHON_NODE % "symmetric_scalar_increment.py",
    "python_converters": WITH_CONVERTERS,
    "python_incomplete": INCOMPLETE_INPUTS,
    "python_generator": GENERATOR_ONE % "symmetric_scalar_increment_generator.py",
    "python_generator_two": GENERATOR_TWO,
    "python_no_loopback": YIELDS_WITHOUT_LOOPBACK,
    "python_returns_none": PYTHON_NODE % "return_none_object.py",
    "python_returns_int": PYTHON_NODE % "return_non_tensor_object.py",
    "ov_add": ADD_TWO_INPUTS % "add",
    "ov_missing_model": ADD_TWO_INPUTS % "no_such_model",
}

EXECUTION_FAILED = (
    'Mediapipe execution failed. MP status - INTERNAL: CalculatorGraph::Run() failed: \n'
    'Calculator::Process() for node "pythonNode" failed: Error occurred during graph execution'
)


def save_add_model(path: Path) -> None:
    """OVMS's two-input add test model as OpenVINO IR: input1 + input2 -> sum, FP32 of any length [N]."""
    a = ops.parameter([-1], np.float32, name="input1")
    b = ops.parameter([-1], np.float32, name="input2")
    total = ops.add(a, b)
    total.output(0).get_tensor().set_names({"sum"})
    path.parent.mkdir(parents=True)
    ov.save_model(ov.Model([total], [a, b], "add"), path, compress_to_fp16=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ovms_repo")
    for name, text in GRAPHS.items():
        write_scripts(root / name)
        (root / name / "graph.pbtxt").write_text(text)
    save_add_model(root / "add" / "1" / "model.xml")
    config = {
        "model_config_list": [{"config": {"name": "add", "base_path": "add"}}]
        + [{"config": {"name": name, "base_path": name}} for name in GRAPHS],
    }
    (root / "config.json").write_text(json.dumps(config))
    server = ovms_notebook.serve(root)
    yield server
    server.stop()


@pytest.fixture
def client(server):
    with triton.InferenceServerClient(server.address) as client:
        yield client


def fp32(name: str, value: float, shape: tuple[int, ...] = (1,)) -> triton.InferInput:
    tensor = triton.InferInput(name, list(shape), "FP32")
    tensor.set_data_from_numpy(np.full(shape, value, dtype=np.float32))
    return tensor


def run_stream(client: triton.InferenceServerClient, model: str, requests: list[tuple[dict[str, float], int | None]],
               shape: tuple[int, ...] = (1,)) -> tuple[list[tuple[str, float, int]], list[str], object]:
    """Send every request on one stream, half-close, and return (outputs as (name, value, timestamp), in-band
    error texts, the final error or None)."""
    items = triton_stream(client, model, [
        ([fp32(n, v, shape) for n, v in inputs.items()],
         {"OVMS_MP_TIMESTAMP": timestamp} if timestamp is not None else None)
        for inputs, timestamp in requests])
    outputs, errors, final = [], [], None
    for result, error in items:
        if error is not None:
            if result is None and final is None and not _in_band(error):
                final = error
            else:
                errors.append(error.message())
            continue
        response = result.get_response()
        raw = response.raw_output_contents[0]
        outputs.append((response.outputs[0].name, struct.unpack("<f", raw[:4])[0],
                        response.parameters["OVMS_MP_TIMESTAMP"].int64_param))
    return outputs, errors, final


def _in_band(error: InferenceServerException) -> bool:
    return error.status() is None


def rounded(outputs: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
    return [(name, round(value, 4), stamp) for name, value, stamp in outputs]


def test_every_graph_and_the_model_load(server, client):
    assert {d.name: d.available for d in server.graphs} == dict.fromkeys(GRAPHS, True)
    assert all(client.is_model_ready(name) for name in [*GRAPHS, "add"])


def test_row12_python_node_send_1_receive_1(client):
    outputs, errors, final = run_stream(client, "python_increment", [({"input": 3.5}, None)])
    assert (rounded(outputs), errors, final) == ([("output", 4.5, 0)], [], None)


def test_row13_python_node_with_converters(client):
    outputs, errors, final = run_stream(client, "python_converters", [({"in": 3.5}, None)])
    assert (rounded(outputs), errors, final) == ([("out", 4.5, 0)], [], None)


@pytest.mark.parametrize(("graph", "name", "out"), [("python_increment", "input", "output"),
                                                    ("python_converters", "in", "out")])
def test_rows14_15_send_3_receive_3_with_increasing_timestamps(client, graph, name, out):
    outputs, errors, final = run_stream(client, graph, [({name: 3.5}, None), ({name: 7.2}, None),
                                                        ({name: 102.4}, None)])
    assert (rounded(outputs), errors, final) == ([(out, 4.5, 0), (out, 8.2, 1), (out, 103.4, 2)], [], None)


def test_row16_immediate_handler_takes_incomplete_inputs(client):
    outputs, errors, final = run_stream(client, "python_incomplete", [({"input1": 3.5}, None),
                                                                      ({"input2": 7.2}, None)])
    assert (rounded(outputs), errors, final) == ([("output1", 4.5, 0), ("output2", 8.2, 1)], [], None)


def test_row17_generator_with_loopback_send_1_receive_3(client):
    outputs, errors, final = run_stream(client, "python_generator", [({"input": 3.5}, None)])
    assert (rounded(outputs), errors, final) == ([("output", 4.5, 0), ("output", 5.5, 1), ("output", 6.5, 2)],
                                                 [], None)


def test_row18_generator_with_two_streams_in_one_request(client):
    outputs, errors, final = run_stream(client, "python_generator_two", [({"input1": 3.5, "input2": 13.5}, None)])
    assert errors == [] and final is None
    assert sorted(rounded(outputs)) == [("output1", 4.5, 0), ("output1", 5.5, 1), ("output1", 6.5, 2),
                                        ("output2", 14.5, 0), ("output2", 15.5, 1), ("output2", 16.5, 2)]
    for name in ("output1", "output2"):
        assert [stamp for n, _, stamp in outputs if n == name] == [0, 1, 2]


def test_row19_generator_with_two_streams_in_two_requests_at_64(client):
    outputs, errors, final = run_stream(client, "python_generator_two", [({"input1": 3.5}, 64), ({"input2": 7.2}, 64)])
    assert errors == [] and final is None
    assert sorted(rounded(outputs)) == [("output1", 4.5, 64), ("output1", 5.5, 65), ("output1", 6.5, 66),
                                        ("output2", 8.2, 64), ("output2", 9.2, 65), ("output2", 10.2, 66)]


@pytest.mark.parametrize(("graph", "inputs"), [
    ("python_no_loopback", {"input1": 3.5, "input2": 7.2}),  # row 20
    ("python_returns_none", {"input": 3.5}),  # row 21
    ("python_returns_int", {"input": 3.5}),  # row 22
])
def test_rows20_22_bad_handlers_end_the_stream_with_an_execution_error(client, graph, inputs):
    outputs, errors, final = run_stream(client, graph, [(inputs, None)])
    assert outputs == [] and errors == []
    assert final is not None and final.status() == "StatusCode.INVALID_ARGUMENT"
    assert final.message() == EXECUTION_FAILED


def test_row3_openvino_add_with_two_inputs_at_manual_timestamps(client):
    outputs, errors, final = run_stream(client, "ov_add", [({"in": 3.5, "in2": 1.0}, 3), ({"in": 7.2, "in2": 1.0}, 12),
                                                           ({"in": 99.9, "in2": 1.0}, 99)])
    assert (rounded(outputs), errors, final) == ([("sum", 4.5, 3), ("sum", 8.2, 12), ("sum", 100.9, 99)], [], None)


def test_row4_openvino_add_with_one_input_missing_fails_at_close(client):
    outputs, errors, final = run_stream(client, "ov_add", [({"in": 3.5}, 3)])
    assert outputs == [] and errors == []
    assert final.status() == "StatusCode.INVALID_ARGUMENT"
    assert final.message().startswith("Mediapipe execution failed. MP status - ")
    assert "OpenVINOInferenceCalculator expects all input packets at the same time" in final.message()


def test_a_session_whose_model_is_missing_ends_the_stream_with_precondition_failed(client):
    # OVMS: FailedPrecondition from the session node's Open() -> MEDIAPIPE_PRECONDITION_FAILED, gRPC UNKNOWN.
    # Open() runs at start, so the first request already meets a graph in error (in-band, as in OVMS's
    # InferOnReloadedGraph), and the stream ends with the graph's status.
    outputs, errors, final = run_stream(client, "ov_missing_model", [({"in": 3.5, "in2": 1.0}, None)])
    assert outputs == []
    (error,) = errors
    assert error.startswith('Failed to add packet to mediapipe graph input stream - INVALID_ARGUMENT: Graph has '
                            'errors: \nCalculator::Open() for node "OpenVINOModelServerSessionCalculator" failed: '
                            'SessionLoadError: OpenVINOModelServerSessionCalculator failed to load the model '
                            '(servable "no_such_model" version 1: Model with requested name is not found)')
    assert error.endswith("; partial deserialization of first request")
    assert (final.status(), final.message()) == ("StatusCode.UNKNOWN", "Unknown error")


def test_models_are_served_on_their_own_beside_graphs(client):
    metadata = client.get_model_metadata("add", as_json=True)
    assert metadata["platform"] == "OpenVINO" and metadata["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("input1", "FP32", ["-1"]), ("input2", "FP32", ["-1"])]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("sum", "FP32")]
    result = client.infer("add", [fp32("input1", 1.25, (3,)), fp32("input2", 2.0, (3,))], request_id="r7")
    assert result.get_response().id == "r7" and result.get_response().model_version == "1"
    np.testing.assert_array_equal(result.as_numpy("sum"), np.full((3,), 3.25, dtype=np.float32))
    graph = client.get_model_metadata("python_increment", as_json=True)
    assert (graph["versions"], graph["inputs"][0]["datatype"]) == (["1"], "INVALID")


def test_model_requests_get_ovms_validation_texts(client):
    with pytest.raises(InferenceServerException) as caught:
        client.infer("add", [fp32("input1", 1.0, (3,))])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert caught.value.message() == "Invalid number of inputs - Expected: 2; Actual: 1"
    with pytest.raises(InferenceServerException) as caught:
        client.infer("add", [fp32("input1", 1.0, (1, 3)), fp32("input2", 1.0, (1, 3))])
    assert caught.value.message() == (
        "Invalid number of shape dimensions - Expected: (-1); Actual: (1,3); input name: input1")
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("add", model_version="2")
    assert (caught.value.status(), caught.value.message()) == (
        "StatusCode.NOT_FOUND", "Model with requested version is not found")


def test_a_model_name_cannot_stream(client):
    outputs, errors, final = run_stream(client, "add", [({"input1": 1.0, "input2": 2.0}, None)])
    assert outputs == [] and errors == [] and final is not None
    assert (final.status(), final.message()) == (
        "StatusCode.NOT_FOUND", "Mediapipe graph definition with requested name is not found")


def test_python_handlers_are_initialized_once_per_definition_and_finalized_on_retire(tmp_path):
    folder = tmp_path / "repo"
    write_scripts(folder / "echo")
    (folder / "echo" / "graph.pbtxt").write_text(PYTHON_NODE % "recording.py")
    config = folder / "config.json"
    config.write_text(json.dumps({"mediapipe_config_list": [{"name": "echo"}]}))
    with ovms_notebook.serve(folder) as server, triton.InferenceServerClient(server.address) as client:
        (spec_resources,) = server.graphs[0].spec.python_side_packets["py"].values()
        model_class = type(spec_resources.model)
        assert [kwargs["node_name"] for kwargs in model_class.initialized] == ["pythonNode"]
        assert model_class.initialized[0]["base_path"] == str(folder / "echo" / "scripts")
        for _ in range(2):
            outputs, errors, final = run_stream(client, "echo", [({"input": 1.5}, None), ({"input": 2.5}, 7)])
            assert (rounded(outputs), errors, final) == ([("output", 1.5, 0), ("output", 2.5, 7)], [], None)
        assert len(model_class.initialized) == 1 and set(model_class.executed) == {id(spec_resources.model)}
        assert model_class.finalized == []
        config.write_text(json.dumps({"mediapipe_config_list": []}))
        assert server.reload() == {"echo": "retired"}
        assert model_class.finalized == [id(spec_resources.model)]
        assert spec_resources.key not in NODE_RESOURCES


def test_a_graph_named_like_a_model_does_not_load(tmp_path):
    folder = tmp_path / "repo"
    save_add_model(folder / "add" / "1" / "model.xml")
    (folder / "graph").mkdir()
    (folder / "graph" / "graph.pbtxt").write_text(PYTHON_NODE % "echo.py")
    config = {"model_config_list": [{"config": {"name": "add", "base_path": "add"}}],
              "mediapipe_config_list": [{"name": "add", "base_path": "graph"}]}
    (folder / "config.json").write_text(json.dumps(config))
    with ovms_notebook.serve(folder) as server:
        (graph,) = server.graphs
        assert not graph.available and "already used by a model" in graph.error
        with triton.InferenceServerClient(server.address) as client:
            assert client.is_model_ready("add")  # the model still serves
