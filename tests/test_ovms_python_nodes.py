"""OVMS's Python nodes on a PythonGraph: spec §8.1 rows 12-22, pyovms.Tensor, handler loading and sharing.

Graphs are OVMS's own test graphs (src/test/streaming_test.cpp) with the handler paths
pointing into the test's folder; the handlers are written here with the same behaviour
as OVMS's test scripts. Each request of the C++ tests is one FP32 [1] TensorValue added
at an explicit timestamp (0, 1, 2... where OVMS assigns them automatically).
"""

from __future__ import annotations

import importlib
import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from ovms_notebook.calculators.ovms_python import (
    ALREADY_PROCESSING,
    EXECUTION_FAILED,
    LOOPBACK_ON_BOTH,
    NO_LOOPBACK,
    PyTensorOvTensorConverterCalculator,
    PythonExecutorCalculator,
    PythonNodeError,
    PythonNodeResourcesCache,
    load_python_nodes,
    register_ovms_calculators,
)
from ovms_notebook.calculators.pyovms_tensor import Tensor
from ovms_notebook.codec.blob import TensorValue
from ovms_notebook.engine.python.api import Registry
from ovms_notebook.engine.python.scheduler import PythonGraph, PythonGraphError, _parse
from tests.ovms_python_graphs import (
    GENERATOR_ONE,
    GENERATOR_TWO,
    INCOMPLETE_INPUTS,
    INCREMENT,
    PYTHON_NODE,
    WITH_CONVERTERS,
    YIELDS_WITHOUT_LOOPBACK,
    write_scripts,
)

NODE_FAILED = f'Calculator::Process() for node "pythonNode" failed: {EXECUTION_FAILED}'


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A graph folder with OVMS's test handlers under scripts/."""
    return write_scripts(tmp_path / "graph")


@pytest.fixture
def cache():
    """A private handler cache, released after the test."""
    cache = PythonNodeResourcesCache()
    yield cache
    cache.release_all()


def fp32(name: str, value: float, *, py_tensor: bool = True) -> TensorValue:
    """One request input as OVMS's test helper writes it: FP32, shape [1], 4 raw bytes."""
    return TensorValue(name, "FP32", (1,), struct.pack("<f", value), py_tensor=py_tensor)


def start(config_text: str, base: Path, cache, outputs, *, eager: bool = True):
    """A started graph with OVMS's load-time checks done (resources passed as `py`, as OVMS does),
    and the list of (stream, value, timestamp) its outputs are observed into."""
    config = _parse(config_text)
    resources = load_python_nodes(config, base, "my_graph", cache=cache)
    graph = PythonGraph(config, eager=eager)
    received: list[tuple[str, TensorValue, int]] = []
    for name in outputs:
        graph.observe_output_stream(name, lambda stream, value, timestamp: received.append((stream, value, timestamp)))
    graph.start_run({"py": resources})
    return graph, received


def floats(received: list[tuple[str, TensorValue, int]]) -> list[tuple[str, str, float, int]]:
    """(stream, tensor name, value, timestamp) of outputs holding one 4-byte float."""
    result = []
    for stream, value, timestamp in received:
        assert isinstance(value, TensorValue) and len(value.data) == 4
        result.append((stream, value.name, struct.unpack("<f", value.data)[0], timestamp))
    return result


def expect(*items: tuple[str, str, float, int]) -> list:
    return [(stream, name, pytest.approx(value, rel=1e-6), ts) for stream, name, value, ts in items]


def assert_failed_with(graph: PythonGraph, message: str = NODE_FAILED, code: str = "INTERNAL") -> None:
    assert graph.has_error()
    assert graph.error == message
    assert graph.get_combined_error_message() == f"{code}: CalculatorGraph::Run() failed: \n{message}"
    with pytest.raises(PythonGraphError) as raised:
        graph.close()
    assert str(raised.value) == f"CalculatorGraph::Run() failed: \n{message}"


# Spec §8.1 rows 12-22.


def test_row12_send1_receive1(base, cache):
    graph, received = start(PYTHON_NODE % "symmetric_scalar_increment.py", base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    graph.close()
    # py_tensor=True: the server names the response output after the Tensor, shape (4,) as the handler built it
    assert received == [("output", TensorValue("output", "UINT8", (4,), struct.pack("f", 4.5), py_tensor=True), 0)]


def test_row13_send1_receive1_with_converters(base, cache):
    graph, received = start(WITH_CONVERTERS, base, cache, ["out"])
    graph.add_packet_to_input_stream("in", fp32("in", 3.5, py_tensor=False), 0)
    graph.close()
    # an ov::Tensor again (u8 [4], as the handler's Tensor was): py_tensor=False, named after the stream
    assert received == [("out", TensorValue("out", "UINT8", (4,), struct.pack("<f", 4.5)), 0)]


def test_row14_send3_receive3(base, cache):
    graph, received = start(PYTHON_NODE % "symmetric_scalar_increment.py", base, cache, ["output"])
    for timestamp, value in enumerate((3.5, 7.2, 102.4)):
        graph.add_packet_to_input_stream("input", fp32("input", value), timestamp)
    graph.close()
    assert floats(received) == expect(
        ("output", "output", 4.5, 0), ("output", "output", 8.2, 1), ("output", "output", 103.4, 2)
    )


def test_row15_send3_receive3_with_converters(base, cache):
    graph, received = start(WITH_CONVERTERS, base, cache, ["out"])
    for timestamp, value in enumerate((3.5, 7.2, 102.4)):
        graph.add_packet_to_input_stream("in", fp32("in", value, py_tensor=False), timestamp)
    graph.close()
    assert floats(received) == expect(("out", "out", 4.5, 0), ("out", "out", 8.2, 1), ("out", "out", 103.4, 2))


def test_row16_incomplete_inputs_with_the_immediate_handler(base, cache):
    graph, received = start(INCOMPLETE_INPUTS, base, cache, ["output1", "output2"])
    graph.add_packet_to_input_stream("input1", fp32("input1", 3.5), 0)
    assert floats(received) == expect(("output1", "output1", 4.5, 0))
    graph.add_packet_to_input_stream("input2", fp32("input2", 7.2), 1)
    graph.close()
    assert floats(received) == expect(("output1", "output1", 4.5, 0), ("output2", "output2", 8.2, 1))


def test_row17_generator_send1_receive3(base, cache):
    graph, received = start(GENERATOR_ONE % "symmetric_scalar_increment_generator.py", base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    graph.close()
    assert floats(received) == expect(
        ("output", "output", 4.5, 0), ("output", "output", 5.5, 1), ("output", "output", 6.5, 2)
    )


def test_row18_generator_two_streams_in_one_request(base, cache):
    graph, received = start(GENERATOR_TWO, base, cache, ["output1", "output2"])
    graph.add_packet_to_input_stream("input1", fp32("input1", 3.5), 0)
    graph.add_packet_to_input_stream("input2", fp32("input2", 13.5), 0)
    graph.close()
    assert floats(received) == expect(
        ("output1", "output1", 4.5, 0),
        ("output2", "output2", 14.5, 0),
        ("output1", "output1", 5.5, 1),
        ("output2", "output2", 15.5, 1),
        ("output1", "output1", 6.5, 2),
        ("output2", "output2", 16.5, 2),
    )


def test_row19_generator_two_streams_in_two_requests_at_64(base, cache):
    graph, received = start(GENERATOR_TWO, base, cache, ["output1", "output2"])
    graph.add_packet_to_input_stream("input1", fp32("input1", 3.5), 64)
    graph.wait_until_idle()
    assert received == []  # the data sync set waits for input2 at 64
    graph.add_packet_to_input_stream("input2", fp32("input2", 7.2), 64)
    graph.close()
    assert floats(received) == expect(
        ("output1", "output1", 4.5, 64),
        ("output2", "output2", 8.2, 64),
        ("output1", "output1", 5.5, 65),
        ("output2", "output2", 9.2, 65),
        ("output1", "output1", 6.5, 66),
        ("output2", "output2", 10.2, 66),
    )


def test_row20_execute_yields_but_no_loopback(base, cache, caplog):
    graph, received = start(YIELDS_WITHOUT_LOOPBACK, base, cache, ["output1", "output2"])
    with caplog.at_level(logging.INFO, logger="ovms_notebook.calculators.ovms_python"):
        graph.add_packet_to_input_stream("input1", fp32("input1", 3.5), 64)
        graph.add_packet_to_input_stream("input2", fp32("input2", 3.5), 64)
    assert received == []
    assert NO_LOOPBACK in caplog.text  # OVMS logs the reason; the status only says execution failed
    assert_failed_with(graph)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("return_none_object.py", "expected list or generator, got NoneType"),
        ("return_non_tensor_object.py", "expected pyovms.Tensor, got int"),
    ],
    ids=["row21 returns None", "row22 returns [3]"],
)
def test_rows21_22_wrong_execute_results_fail_the_graph(base, cache, caplog, script, reason):
    graph, received = start(PYTHON_NODE % script, base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    assert received == []
    assert reason in caplog.text
    with pytest.raises(PythonGraphError, match="Graph has errors"):
        graph.add_packet_to_input_stream("input", fp32("input", 3.5), 1)
    assert_failed_with(graph)


# More of §7.3: errors, sharing, loading.


def test_an_exception_in_execute_and_an_unknown_output_name_fail_with_the_generic_text(base, cache, caplog):
    (base / "scripts" / "raises.py").write_text(
        "class OvmsPythonModel:\n    def execute(self, inputs):\n        raise ZeroDivisionError('boom')\n"
    )
    (base / "scripts" / "unknown.py").write_text(
        "from pyovms import Tensor\nclass OvmsPythonModel:\n"
        "    def execute(self, inputs):\n        return [Tensor('nope', b'x')]\n"
    )
    for script, detail in (("raises.py", "ZeroDivisionError: boom"), ("unknown.py", "Unexpected output tensor name")):
        graph, received = start(PYTHON_NODE % script, base, cache, ["output"])
        graph.add_packet_to_input_stream("input", fp32("input", 1.0), 0)
        assert received == []
        assert detail in caplog.text
        assert_failed_with(graph)


def test_new_data_while_a_generator_runs_is_resource_exhausted(base, cache):
    graph, received = start(GENERATOR_ONE % "many.py", base, cache, ["output"], eager=False)
    graph.add_packet_to_input_stream("input", fp32("input", 1.0), 0)
    graph.add_packet_to_input_stream("input", fp32("input", 1.0), 2)
    with pytest.raises(PythonGraphError):
        graph.wait_until_idle()
    message = f'Calculator::Process() for node "pythonNode" failed: {ALREADY_PROCESSING}'
    assert graph.error == message
    assert graph.get_combined_error_message() == f"RESOURCE_EXHAUSTED: CalculatorGraph::Run() failed: \n{message}"
    assert [(value, ts) for _, _, value, ts in floats(received)] == [(0.0, 0), (1.0, 1), (2.0, 2)]
    with pytest.raises(PythonGraphError):
        graph.close()


def test_the_generator_resets_after_the_last_yield_and_serves_the_next_request(base, cache):
    graph, received = start(GENERATOR_ONE % "symmetric_scalar_increment_generator.py", base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    graph.add_packet_to_input_stream("input", fp32("input", 10.0), 10)
    graph.close()
    assert [(value, ts) for _, _, value, ts in floats(received)] == [
        (4.5, 0), (5.5, 1), (6.5, 2), (11, 10), (12, 11), (13, 12)
    ]


def test_two_graph_instances_share_one_model_initialized_once_and_finalized_on_release(base, cache, caplog):
    config = _parse(PYTHON_NODE % "recording.py")
    first = load_python_nodes(config, base, "my_graph", cache=cache)
    second = load_python_nodes(config, base, "my_graph", cache=cache)
    assert first["pythonNode"] is second["pythonNode"]
    resources = first["pythonNode"]
    assert str(resources.handler_path.parent) in sys.path  # for the handler's sibling imports, as in OVMS
    model_class = resources.module.OvmsPythonModel
    assert model_class.initialized == [
        {
            "node_name": "pythonNode",
            "input_names": ["input"],
            "output_names": ["output"],
            "base_path": str((base / "scripts").resolve()),
        }
    ]
    graphs = [PythonGraph(config), PythonGraph(config)]
    for graph in graphs:
        graph.start_run({"py": first})
        graph.add_packet_to_input_stream("input", fp32("input", 1.0), 0)
    assert model_class.executed == [id(resources.model)] * 2
    cache.release_all()  # retire while graph instances still run: finalize waits for the last one
    assert model_class.finalized == []
    graphs[0].close()
    assert model_class.finalized == []
    with caplog.at_level(logging.ERROR, logger="ovms_notebook.calculators.ovms_python"):
        graphs[1].close()
    assert model_class.finalized == [id(resources.model)]
    assert "Failed to process python node finalize method" in caplog.text
    assert resources.module.__name__ not in sys.modules
    assert str(resources.handler_path.parent) not in sys.path  # the directory OVMS appends is taken off again


def test_initialize_sees_every_stream_name_including_the_loopback(base, cache):
    config = _parse(GENERATOR_TWO)
    resources = load_python_nodes(config, base, cache=cache)["pythonNode"]
    assert resources.model.kwargs == {
        "node_name": "pythonNode",
        "input_names": ["loopback", "input1", "input2"],
        "output_names": ["loopback", "output1", "output2"],
        "base_path": str((base / "scripts").resolve()),
    }


def test_without_a_resources_map_nodes_load_through_the_cache_against_the_class_base_path(base, cache):
    registry = Registry()
    register_ovms_calculators(registry)
    bound = PythonExecutorCalculator.for_base_path(base)
    bound.resources_cache = cache
    registry.register("PythonExecutorCalculator")(bound)
    config = _parse(PYTHON_NODE % "recording.py")
    graphs = [PythonGraph(config, registry), PythonGraph(config, registry)]
    for graph in graphs:
        graph.start_run({"py": None})  # the side packet is accepted and ignored
        graph.add_packet_to_input_stream("input", fp32("input", 2.0), 0)
        graph.close()
    key = ("pythonNode", str((base / "scripts" / "recording.py").resolve()), str(base.resolve()))
    assert len(cache) == 1 and key in cache
    resources = cache.get(key)
    model_class = resources.module.OvmsPythonModel
    assert len(model_class.initialized) == 1 and model_class.executed == [id(resources.model)] * 2
    assert cache.release_base_path(base) == 1
    assert model_class.finalized == [id(resources.model)]


def test_two_graphs_with_a_model_py_each_do_not_collide(tmp_path, cache):
    for name, increment in (("a", 1.0), ("b", 100.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_text(
            "import struct\nfrom pyovms import Tensor\nclass OvmsPythonModel:\n    def execute(self, inputs):\n"
            "        value = struct.unpack('f', bytes(inputs[0]))[0]\n"
            f"        return [Tensor('output', struct.pack('f', value + {increment}))]\n"
        )
    text = (PYTHON_NODE % "x").replace("scripts/x", "model.py")
    results = []
    for name in ("a", "b"):
        graph, received = start(text, tmp_path / name, cache, ["output"])
        graph.add_packet_to_input_stream("input", fp32("input", 1.0), 0)
        graph.close()
        results.append(floats(received)[0][2])
    assert results == [2.0, 101.0]


def test_options_in_the_extension_form_work_too(base, cache):
    text = (PYTHON_NODE % "symmetric_scalar_increment.py").replace(
        "node_options: {\n        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]",
        "options: {\n        [mediapipe.PythonExecutorCalculatorOptions.ext]",
    )
    graph, received = start(text, base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    graph.close()
    assert floats(received) == expect(("output", "output", 4.5, 0))


@pytest.mark.parametrize(
    "handler_path",
    ["../outside.py", "scripts/../../outside.py", "{outside}", "scripts/link.py"],
    ids=["dotdot", "dotdot inside", "absolute outside", "symlink out"],
)
def test_a_handler_outside_the_base_path_is_refused(base, cache, handler_path):
    outside = base.parent / "outside.py"
    outside.write_text(INCREMENT)
    (base / "scripts" / "link.py").symlink_to(outside)
    text = (PYTHON_NODE % "x").replace("scripts/x", handler_path.format(outside=outside))
    with pytest.raises(PythonNodeError, match="outside the graph's base path") as raised:
        load_python_nodes(_parse(text), base, cache=cache)
    assert raised.value.status == "PYTHON_NODE_FILE_STATE_INITIALIZATION_FAILED"
    registry = Registry()
    register_ovms_calculators(registry)
    bound = PythonExecutorCalculator.for_base_path(base)
    bound.resources_cache = cache
    registry.register("PythonExecutorCalculator")(bound)
    graph = PythonGraph(text, registry)  # the calculator refuses it too when it loads the handler itself
    graph.start_run({"py": None})
    assert "outside the graph's base path" in graph.error and graph.error.startswith("Calculator::Open()")
    with pytest.raises(PythonGraphError):
        graph.close()


def test_an_absolute_handler_path_inside_the_base_path_is_fine(base, cache):
    text = (PYTHON_NODE % "x").replace("scripts/x", str(base / "scripts" / "symmetric_scalar_increment.py"))
    graph, received = start(text, base, cache, ["output"])
    graph.add_packet_to_input_stream("input", fp32("input", 3.5), 0)
    graph.close()
    assert floats(received) == expect(("output", "output", 4.5, 0))


def test_load_time_checks_use_ovms_texts(base, cache):
    missing = PYTHON_NODE % "missing.py"
    with pytest.raises(PythonNodeError) as raised:
        load_python_nodes(_parse(missing), base, cache=cache)
    missing_path = (base / "scripts" / "missing.py").as_posix()
    assert str(raised.value) == f"Python node handler_path: {missing_path} does not exist."
    assert raised.value.status == "PYTHON_NODE_FILE_DOES_NOT_EXIST"

    with pytest.raises(PythonNodeError, match="Python node name is missing in graph: my_graph") as raised:
        load_python_nodes(_parse(missing.replace('name: "pythonNode"', "")), base, "my_graph", cache=cache)
    assert raised.value.status == "PYTHON_NODE_MISSING_NAME"

    (base / "scripts" / "no_class.py").write_text("x = 1\n")
    (base / "scripts" / "no_execute.py").write_text("class OvmsPythonModel:\n    pass\n")
    (base / "scripts" / "bad_init.py").write_text(
        "class OvmsPythonModel:\n    def initialize(self, kwargs):\n        raise ValueError('nope')\n"
        "    def execute(self, inputs):\n        return []\n"
    )
    for script, text in (
        ("no_class.py", "No OvmsPythonModel class found in scripts/no_class.py"),
        ("no_execute.py", "does not implement execute method"),
        ("bad_init.py", "ValueError: nope"),
    ):
        with pytest.raises(PythonNodeError, match=text) as raised:
            load_python_nodes(_parse(PYTHON_NODE % script), base, cache=cache)
        assert raised.value.status == "PYTHON_NODE_FILE_STATE_INITIALIZATION_FAILED"

    doubled = _parse(PYTHON_NODE % "echo.py")
    doubled.node.append(doubled.node[0])
    with pytest.raises(PythonNodeError, match="Python node name: pythonNode already used in graph") as raised:
        load_python_nodes(doubled, base, cache=cache)
    assert raised.value.status == "PYTHON_NODE_NAME_ALREADY_EXISTS"


def test_loopback_must_be_on_both_sides(base, cache):
    config = _parse(
        (PYTHON_NODE % "symmetric_scalar_increment_generator.py").replace(
            'input_stream: "INPUT:input"', 'input_stream: "INPUT:input"\n    input_stream: "LOOPBACK:input"'
        )
    )
    graph = PythonGraph(config)
    graph.start_run({"py": load_python_nodes(config, base, cache=cache)})
    assert graph.error.startswith('Calculator::Open() for node "pythonNode" failed: ValueError: ' + LOOPBACK_ON_BOTH)
    with pytest.raises(PythonGraphError):
        graph.close()


def test_bytes_tensors_keep_name_datatype_shape_and_raw_buffer(base, cache):
    graph, _ = start(PYTHON_NODE % "echo.py", base, cache, [])
    graph.close()
    values = []
    graph.observe_output_stream("output", lambda s, v, t: values.append(v))
    graph.start_run({"py": load_python_nodes(graph.config, base, cache=cache)})
    data = b"\x03\x00\x00\x00abc\x02\x00\x00\x00de"
    graph.add_packet_to_input_stream("input", TensorValue("input", "BYTES", (2,), data, py_tensor=True), 0)
    graph.add_packet_to_input_stream("input", TensorValue("input", "my_string", (3,), b"x" * 23, py_tensor=True), 1)
    graph.close()
    assert values == [
        TensorValue("output", "BYTES", (2,), data, py_tensor=True),
        TensorValue("output", "my_string", (3,), b"x" * 23, py_tensor=True),
    ]
    assert values[0].array().tolist() == [b"abc", b"de"]


# The converter (§7.5).


CONVERT_TO_OV = """
input_stream: "OVMS_PY_TENSOR:input"
output_stream: "OVTENSOR:out"
node {
    name: "convert"
    calculator: "PyTensorOvTensorConverterCalculator"
    input_stream: "OVMS_PY_TENSOR:input"
    output_stream: "OVTENSOR:out"
}
"""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (TensorValue("input", "BYTES", (1,), b"\x01\0\0\0a"), "Undefined precision in input python tensor: BYTES"),
        (TensorValue("input", "FP32", (2,), b"\x00" * 4), "python buffer size: 4; OV tensor size: 8; mismatch"),
        (TensorValue("input", "FP32", (-1,), b""), "dimension negative during conversion: -1"),
    ],
    ids=["bytes", "size", "negative"],
)
def test_py_to_ov_conversion_checks(value, message):
    graph = PythonGraph(CONVERT_TO_OV)
    graph.start_run()
    graph.add_packet_to_input_stream("input", value, 0)
    assert_failed_with(graph, f'Calculator::Process() for node "convert" failed: {message}', "INVALID_ARGUMENT")


def test_py_to_ov_converts_a_pyovms_tensor_too():
    values = []
    graph = PythonGraph(CONVERT_TO_OV)
    graph.observe_output_stream("out", lambda s, v, t: values.append((v, t)))
    graph.start_run()
    graph.add_packet_to_input_stream("input", Tensor("x", np.arange(4, dtype=np.int64).reshape(2, 2)), 7)
    graph.close()
    assert values == [(TensorValue("out", "INT64", (2, 2), np.arange(4, dtype="<i8").tobytes()), 7)]


def test_ov_to_py_needs_the_tensor_name_option_and_a_known_precision():
    text = """
input_stream: "OVTENSOR:in"
output_stream: "OVMS_PY_TENSOR:output"
node {
    name: "convert"
    calculator: "PyTensorOvTensorConverterCalculator"
    input_stream: "OVTENSOR:in"
    output_stream: "OVMS_PY_TENSOR:output"
}
"""
    graph = PythonGraph(text)
    graph.start_run()
    assert 'tag_to_output_tensor_names { key: "OVMS_PY_TENSOR"' in graph.error
    with pytest.raises(PythonGraphError):
        graph.close()
    option = (
        '    options { [mediapipe.PyTensorOvTensorConverterCalculatorOptions.ext] {\n'
        '        tag_to_output_tensor_names { key: "OVMS_PY_TENSOR" value: "named" } } }\n'
    )
    last = '    output_stream: "OVMS_PY_TENSOR:output"\n'
    graph = PythonGraph(text.replace(last + "}", last + option + "}"))
    values = []
    graph.observe_output_stream("output", lambda s, v, t: values.append(v))
    graph.start_run()
    graph.add_packet_to_input_stream("in", fp32("in", 1.5, py_tensor=False), 0)
    assert values == [TensorValue("named", "FP32", (1,), struct.pack("<f", 1.5), py_tensor=True)]
    graph.add_packet_to_input_stream("in", TensorValue("in", "BYTES", (1,), b"\x01\x00\x00\x00a"), 1)
    assert_failed_with(
        graph, 'Calculator::Process() for node "convert" failed: Undefined precision in input tensor: BYTES',
        "INVALID_ARGUMENT",
    )


def test_the_converter_needs_one_input_and_one_output_of_the_two_kinds():
    graph = PythonGraph(
        'input_stream: "OVTENSOR:a"\ninput_stream: "OVTENSOR:b"\noutput_stream: "OVTENSOR:c"\n'
        'node { calculator: "PyTensorOvTensorConverterCalculator" input_stream: "OVTENSOR:a" '
        'input_stream: "OVMS_PY_TENSOR:b" output_stream: "OVTENSOR:c" }'
    )
    graph.start_run()
    assert "needs exactly one input and one output stream" in graph.error
    with pytest.raises(PythonGraphError):
        graph.close()


# pyovms.Tensor (§7.4).

NUMPY_NUMERICAL_TYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.uint64,
                         np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64]
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"]


@pytest.mark.parametrize(("dtype", "datatype"), list(zip(NUMPY_NUMERICAL_TYPES, DATATYPES, strict=True)))
def test_a_tensor_from_a_numpy_array_mirrors_its_buffer(dtype, datatype):
    array = np.ones((1, 3, 30, 30), dtype=dtype)
    tensor = Tensor("input", array)
    assert tensor.name == "input"
    assert tensor.shape == array.shape
    assert tensor.datatype == datatype  # int64 is INT64 (OVMS says INT32: fixed), uint64 UINT64
    assert tensor.data.shape == array.data.shape
    assert tensor.data.format == array.data.format
    assert tensor.data.itemsize == array.data.itemsize
    assert tensor.data.strides == array.data.strides
    assert tensor.data == array.data
    assert tensor.data.readonly
    assert tensor.size == array.nbytes
    assert tensor.ptr == array.__array_interface__["data"][0]  # no copy
    assert tensor.ref_obj is array


def test_int64_is_int64_whatever_its_struct_format():
    assert Tensor("x", np.array([1, 2], dtype=np.int64)).datatype == "INT64"
    assert Tensor("x", np.array([1, 2], dtype=np.longlong)).datatype == "INT64"
    assert Tensor("x", memoryview(struct.pack("<2q", 1, 2)).cast("q")).datatype == "INT64"
    assert Tensor("x", memoryview(struct.pack("<2Q", 1, 2)).cast("L")).datatype == "UINT64"


def test_a_tensor_from_bytes_is_uint8_and_its_shape_is_the_length():
    tensor = Tensor("x", b"abc")
    assert (tensor.datatype, tensor.shape, tensor.size) == ("UINT8", (3,), 3)
    assert tensor.data.format == "B" and tensor.data.strides == (1,)
    assert bytes(tensor) == b"abc"
    packed = Tensor("x", struct.pack("f", 4.5))
    assert (packed.datatype, packed.shape) == ("UINT8", (4,))
    assert struct.unpack("f", bytes(packed)) == (4.5,)


def test_string_arrays_keep_the_raw_format_as_datatype():
    array = np.array(["batch", "of", "strings"])
    tensor = Tensor("input", array)
    assert tensor.datatype == array.data.format == "7w"
    assert tensor.data.tobytes() == array.tobytes()


def test_overrides_do_not_reshape_or_convert():
    array = np.arange(6, dtype=np.float32)
    tensor = Tensor("x", array, shape=[2, 3], datatype="my_type")
    assert (tensor.shape, tensor.datatype, tensor.data.shape, tensor.data.format) == ((2, 3), "my_type", (6,), "f")


def test_the_attributes_are_read_only():
    tensor = Tensor("x", b"abc")
    for attribute in ("name", "shape", "datatype", "data", "size", "ptr", "ref_obj"):
        with pytest.raises(AttributeError):
            setattr(tensor, attribute, None)
    with pytest.raises(TypeError):
        tensor.data[0] = 1


def test_numpy_and_bytes_read_the_tensor():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = Tensor("x", array)
    view = np.asarray(tensor)
    assert view.dtype == np.float32 and view.shape == (2, 3) and not view.flags.writeable
    assert view.__array_interface__["data"][0] == tensor.ptr  # a view, no copy
    copy = np.array(tensor)
    assert copy.flags.writeable and (copy == array).all()
    assert bytes(tensor) == array.tobytes()
    assert (np.frombuffer(tensor.data, dtype=np.float32) == array.ravel()).all()
    assert struct.unpack("6f", tensor.data) == tuple(array.ravel())
    del array, tensor
    assert view.sum() == 15  # the view keeps the memory alive


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ reads __buffer__")
def test_on_python_3_11_the_buffer_protocol_needs_tensor_data():
    with pytest.raises(TypeError):
        memoryview(Tensor("x", b"abc"))  # type: ignore[arg-type]
    assert memoryview(Tensor("x", b"abc").data).tobytes() == b"abc"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ needs Python 3.12")
def test_on_python_3_12_the_tensor_is_a_buffer():  # pragma: no cover - the project runs 3.11
    tensor = Tensor("x", np.arange(3, dtype=np.float32))
    assert memoryview(tensor).format == "f"
    assert (np.frombuffer(tensor, dtype=np.float32) == [0, 1, 2]).all()


def test_a_tensor_wraps_another_tensor_and_strided_arrays_are_made_contiguous():
    strided = np.arange(10, dtype=np.float32)[::2]
    tensor = Tensor("x", strided)
    assert tensor.shape == (5,) and np.array(tensor).tolist() == [0, 2, 4, 6, 8]
    wrapped = Tensor("y", tensor, shape=(5, 1))
    assert wrapped.ref_obj is tensor and wrapped.shape == (5, 1) and bytes(wrapped) == bytes(tensor)
    with pytest.raises(TypeError, match="buffer protocol"):
        Tensor("z", "text")


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "fmt", "buffer_shape"),
    [
        ("FP32", (1,), struct.pack("<f", 3.5), "f", (1,)),
        ("INT64", (2, 1), struct.pack("<2q", 1, -2), "q", (2, 1)),
        ("FP16", (2,), np.array([1, 2], "<f2").tobytes(), "e", (2,)),
        ("BOOL", (), b"\x01", "?", ()),
        ("FP32", (2, 0), b"", "f", (2, 0)),
        ("BYTES", (2,), b"\x01\x00\x00\x00a\x02\x00\x00\x00bc", "B", (11,)),
        ("my_string", (3,), b"x" * 23, "B", (23,)),
    ],
)
def test_tensors_from_request_values_and_back(datatype, shape, data, fmt, buffer_shape):
    value = TensorValue("input", datatype, shape, data, py_tensor=True)
    tensor = Tensor._from_value(value)
    assert (tensor.name, tensor.datatype, tensor.shape, tensor.size) == ("input", datatype, shape, len(data))
    assert (tensor.data.format, tensor.data.shape) == (fmt, buffer_shape)
    assert bytes(tensor) == data
    assert tensor.to_value() == value
    if datatype in ("FP32", "INT64", "FP16", "BOOL"):
        assert np.array_equal(np.asarray(tensor), value.array())


def test_pyovms_is_importable_and_is_the_same_tensor():
    pyovms = importlib.import_module("pyovms")
    assert pyovms.Tensor is Tensor
    assert repr(type(Tensor("x", b""))) == "<class 'pyovms.Tensor'>"


def test_both_calculators_are_registered_by_importing_the_module():
    from ovms_notebook.engine.python.api import registered

    assert registered("PythonExecutorCalculator") is PythonExecutorCalculator
    assert registered("PyTensorOvTensorConverterCalculator") is PyTensorOvTensorConverterCalculator
