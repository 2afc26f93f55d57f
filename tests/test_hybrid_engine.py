"""Graphs mixing native nodes and Python calculators, served over KServe (DESIGN.md, "Engine")."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from ovms_notebook.codec import decode_output
from ovms_notebook.engine.python.api import Calculator, register, unregister
from tests.conftest import request, stream
from tests.test_goldens_server import (
    GOLDENS,
    NOT_EXPRESSIBLE,
    Stepper,
    as_triples,
    expected_outputs,
    tagged_config,
    wire_value,
)
from tests.test_python_nodes_goldens import STOCK

F = np.float32


class AddOne(Calculator):
    """Adds 1 to a float vector (as a Python list), one output per input."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": [x + 1.0 for x in inputs[":0"]]}


class DropOdd(Calculator):
    """Forwards only even timestamps: at odd ones the output gets no packet, only a bound."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": inputs[":0"]} if timestamp % 2 == 0 else None


class Boom(Calculator):
    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        raise ZeroDivisionError("no tracks to divide")


class Scale(Calculator):
    """Multiplies a float vector by the side packet FACTOR (read once, at open)."""

    inputs = (":0",)
    outputs = (":0",)
    side_packets = ("FACTOR",)

    def open(self, side_packets):
        self.factor = side_packets["FACTOR"]

    def process(self, timestamp, inputs):
        return {":0": inputs[":0"].array() * self.factor}  # a TensorValue from the request


class Ids(Calculator):
    """Per-stream state: numbers each packet it sees, starting at 1 on every new stream."""

    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets):
        self.count = 0

    def process(self, timestamp, inputs):
        self.count += 1
        return {":0": self.count}


SANDWICH = """
input_stream: "FLOATS:in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }
node { calculator: "TestAddOne" input_stream: "a" output_stream: "b" }
node { calculator: "PassThroughCalculator" input_stream: "b" output_stream: "out" }
"""

JOIN = """
input_stream: "FLOATS:0:a"
input_stream: "FLOATS:1:b"
output_stream: "out"
node { calculator: "TestDropOdd" input_stream: "a" output_stream: "a_even" }
node { calculator: "ConcatenateFloatVectorCalculator" input_stream: "a_even" input_stream: "b" output_stream: "out" }
"""

class Gather(Calculator):
    """Concatenates whichever of its two float-vector inputs has a packet (MediaPipe's default input handler)."""

    inputs = ("A", "B")
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": [*(inputs.get("A") or []), *(inputs.get("B") or [])]}


# b reaches the Python node through a native node, c directly; the Python result joins a again on the native side.
ACROSS_AT_CLOSE = """
input_stream: "FLOATS:0:a"
input_stream: "FLOATS:1:b"
input_stream: "FLOATS:2:c"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "b" output_stream: "b_native" }
node { calculator: "TestGather" input_stream: "A:b_native" input_stream: "B:c" output_stream: "g" }
node { calculator: "ConcatenateFloatVectorCalculator" input_stream: "a" input_stream: "g" output_stream: "out" }
"""

PYTHON_ONLY = """
input_stream: "in"
output_stream: "out"
node { calculator: "TestIds" input_stream: "in" output_stream: "out" }
"""

CONSTANT_SIDE_PACKET = """
input_stream: "in"
output_stream: "out"
node { calculator: "ConstantSidePacketCalculator" output_side_packet: "PACKET:0:factor"
  output_side_packet: "PACKET:1:unused"
  options { [mediapipe.ConstantSidePacketCalculatorOptions.ext] {
    packet { float_value: 2.5 } packet { int_value: 7 } } } }
node { calculator: "TestScale" input_side_packet: "FACTOR:factor" input_stream: "in" output_stream: "out" }
"""

FAILING = PYTHON_ONLY.replace('calculator: "TestIds"', 'name: "tracker" calculator: "TestBoom"')


@pytest.fixture(autouse=True)
def registered_calculators():
    names = {"TestAddOne": AddOne, "TestDropOdd": DropOdd, "TestBoom": Boom, "TestIds": Ids, "TestGather": Gather,
             "TestScale": Scale}
    for name, cls in names.items():
        register(name)(cls)
    yield
    for name in names:
        unregister(name)


def values(result) -> list:
    return [decode_output(r.outputs[0], r.raw_output_contents[0]).tolist() for r in result.outputs]


def test_a_python_node_between_native_nodes_transforms_every_request(serve_graphs):
    server = serve_graphs({"g": SANDWICH})
    (definition,) = server.graphs
    assert definition.available and definition.spec.split.to_python == ("a",)
    result = stream(server.address, [request("g", {"in": F([1, 2])}), request("g", {"in": F([5])}, timestamp=9)])
    assert result.code == grpc.StatusCode.OK and result.errors == []
    assert result.stamped() == [("out", 0), ("out", 9)]
    assert values(result) == [[2.0, 3.0], [6.0]]


def test_a_python_node_that_emits_nothing_advances_the_native_bound(serve_graphs):
    server = serve_graphs({"g": JOIN})
    stepper = Stepper(server.address)
    stepper.outbox.put(request("g", {"a": F([0]), "b": F([100])}, timestamp=0))
    assert as_triples(stepper.collect(1)) == [("out", 0, [0.0, 100.0])]
    # At t=1 DropOdd emits nothing: the empty packet it leaves on a_even lets the native node run at once.
    stepper.outbox.put(request("g", {"a": F([1]), "b": F([101])}, timestamp=1))
    assert as_triples(stepper.collect(1)) == [("out", 1, [101.0])]
    assert as_triples(stepper.close()) == []


def test_the_last_request_settles_across_the_cut_on_half_close_as_in_one_graph(serve_graphs):
    """The last request has no b: only closing the graph settles b_native at 1. As in one MediaPipe graph, the
    Python node must learn that before the native node that waits for its output gives up on it."""
    server = serve_graphs({"g": ACROSS_AT_CLOSE})
    result = stream(server.address, [request("g", {"a": F([1]), "b": F([2]), "c": F([3])}, timestamp=0),
                                      request("g", {"a": F([4]), "c": F([6])}, timestamp=1)])
    assert result.code == grpc.StatusCode.OK and result.errors == []
    assert result.stamped() == [("out", 0), ("out", 1)]
    assert values(result) == [[1.0, 2.0, 3.0], [4.0, 6.0]]


def test_cut_streams_close_after_what_their_native_producers_wait_for_back_edges_aside():
    from ovms_notebook.engine.graphconfig import parse_graph
    from ovms_notebook.engine.split import cut_dependencies

    limited = parse_graph("""
input_stream: "in"
output_stream: "out"
node { calculator: "FlowLimiterCalculator" input_stream: "in" input_stream: "FINISHED:out"
       input_stream_info: { tag_index: "FINISHED" back_edge: true } output_stream: "admitted" }
node { calculator: "TestAddOne" input_stream: "admitted" output_stream: "out" }
""")
    assert cut_dependencies(limited.split) == {"admitted": frozenset()}  # the FINISHED back edge is not waited on
    chained = parse_graph("""
input_stream: "FLOATS:in"
output_stream: "out"
node { calculator: "TestAddOne" input_stream: "in" output_stream: "p1" }
node { calculator: "PassThroughCalculator" input_stream: "p1" output_stream: "n1" }
node { calculator: "TestAddOne" input_stream: "n1" output_stream: "out" }
""")
    assert cut_dependencies(chained.split) == {"n1": frozenset({"p1"})}


def test_python_only_graph_keeps_state_per_stream(serve_graphs):
    server = serve_graphs({"g": PYTHON_ONLY})
    first = stream(server.address, [request("g", {"in": F([0])}) for _ in range(3)])
    second = stream(server.address, [request("g", {"in": F([0])}) for _ in range(2)])
    assert values(first) == [[1], [2], [3]] and values(second) == [[1], [2]]
    assert [r.outputs[0].datatype for r in first.outputs] == ["INT32"] * 3


def test_a_python_node_reads_a_side_packet_a_native_constant_node_makes(serve_graphs):
    # side packets do not cross the cut at run time; a ConstantSidePacketCalculator's are known at parse time
    server = serve_graphs({"g": CONSTANT_SIDE_PACKET})
    (definition,) = server.graphs
    assert dict(definition.spec.split.python_constants) == {"factor": 2.5}  # only what a Python node reads
    result = stream(server.address, [request("g", {"in": F([1, 2])}), request("g", {"in": F([4])})])
    assert result.code == grpc.StatusCode.OK and result.errors == []
    assert values(result) == [[2.5, 5.0], [10.0]]


def test_an_exception_in_a_python_node_ends_the_stream_naming_the_node(serve_graphs):
    server = serve_graphs({"g": FAILING})
    result = stream(server.address, [request("g", {"in": F([0])})])
    assert result.outputs == []
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT
    assert result.details.startswith("Mediapipe execution failed. MP status - INTERNAL: CalculatorGraph::Run() failed")
    assert 'Calculator::Process() for node "tracker" failed' in result.details
    assert "ZeroDivisionError: no tracks to divide" in result.details


def test_unary_runs_a_graph_with_python_nodes(serve_graphs):
    from tests.conftest import unary

    server = serve_graphs({"g": SANDWICH})
    response = unary(server.address, "ModelInfer", request("g", {"in": F([1.5])}))
    assert decode_output(response.outputs[0], response.raw_output_contents[0]).tolist() == [2.5]


def test_a_graph_naming_an_unregistered_calculator_loads_after_it_is_registered_and_reloaded(serve_graphs):
    server = serve_graphs({"g": PYTHON_ONLY.replace("TestIds", "TestLater")})
    assert not server.graphs[0].available and "TestLater" in server.graphs[0].error
    register("TestLater")(Ids)
    try:
        assert server.reload() == {"g": "reloaded"}
        assert values(stream(server.address, [request("g", {"in": F([0])})])) == [[1]]
    finally:
        unregister("TestLater")


PY_GOLDENS = [g for g in GOLDENS if g["name"] not in NOT_EXPRESSIBLE and g["result"]["start_error"] is None
              and g["name"] != "non_monotonic_input"]


@pytest.mark.parametrize("golden", PY_GOLDENS, ids=lambda g: g["name"])
def test_goldens_with_python_stand_ins_through_the_server(serve_graphs, golden):
    """Each stock calculator of the golden replaced by its Python stand-in (same contract), served over KServe."""
    text = tagged_config(golden)
    for name, cls in STOCK.items():
        register(f"Py{name}")(cls)
        text = text.replace(f'calculator: "{name}"', f'calculator: "Py{name}"')
    try:
        server = serve_graphs({"g": text})
        assert server.graphs[0].spec.split.native is None  # every node runs on the Python side
        stepper = Stepper(server.address)
        steps = golden["result"]["steps"]
        closing = [s for s in steps if s["step"][0] in ("close", "close_all")]
        for step in steps[: len(steps) - len(closing)]:
            _, name, stamp, kind, value = step["step"]
            stepper.outbox.put(request("g", {name: wire_value(kind, value)}, timestamp=stamp))
            expected = expected_outputs(step)
            assert as_triples(stepper.collect(len(expected))) == expected, step["step"]
        final = sorted(t for s in closing for t in expected_outputs(s))
        got = as_triples(stepper.close())
        assert all(item in final for item in got) if any(expected_outputs(s) for s in closing[:-1]) else got == final
    finally:
        for name in STOCK:
            unregister(f"Py{name}")
