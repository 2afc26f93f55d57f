"""Python calculators that set an output side packet mid-run, and the nodes that take it as an input side packet.

MediaPipe (calculator_node.cc, output_side_packet_impl.cc at v0.10.21) lets a calculator set an output side
packet in Open() or Process(); a node taking it as an input side packet opens once it is set, its input
streams holding their packets until then; setting it a second time fails the run with
`Output side packet "name" was already set.` (ALREADY_EXISTS). MediaPipe's ImageFilePropertiesCalculator
does this from its input stream, for iris_depth_cpu.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ovms_notebook.engine.python.api import Calculator, Registry
from ovms_notebook.engine.python.scheduler import GraphConfigError, PythonGraph, PythonGraphError

registry = Registry()


@registry.register("FirstValueToSide")
class FirstValueToSide(Calculator):
    """Sets SIDE from each packet on IN (once per run in a correct graph), as ImageFilePropertiesCalculator."""

    inputs = ("IN",)
    output_side_packets = ("SIDE",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> None:
        self.set_side_packet("SIDE", inputs["IN"])


@registry.register("AddSide")
class AddSide(Calculator):
    """OUT = IN + the FACTOR side packet, read in open()."""

    inputs = ("IN",)
    outputs = ("OUT",)
    side_packets = ("FACTOR",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.factor = side_packets["FACTOR"]

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object]:
        return {"OUT": inputs["IN"] + self.factor}  # type: ignore[operator]


GRAPH = """
input_stream: "first" input_stream: "values" output_stream: "out"
node { calculator: "AddSide" input_stream: "IN:values" input_side_packet: "FACTOR:made" output_stream: "OUT:out" }
node { calculator: "FirstValueToSide" input_stream: "IN:first" output_side_packet: "SIDE:made" }
"""


def run(graph: PythonGraph, packets: list[tuple[str, int, int]]) -> tuple[list[tuple[int, int]], str | None]:
    out: list[tuple[int, int]] = []
    graph.observe_output_stream("out", lambda _name, value, timestamp: out.append((timestamp, value)))
    graph.start_run()
    error = None
    try:
        for stream, value, timestamp in packets:
            graph.add_packet_to_input_stream(stream, value, timestamp)
        graph.close()
    except PythonGraphError as failure:
        error = str(failure)
    return out, error


def test_a_node_waits_for_a_side_packet_set_mid_run_and_then_gets_its_queued_inputs() -> None:
    # "values" at 0 and 1 arrive before the side packet: AddSide (opened later) still gets them, in order.
    out, error = run(PythonGraph(GRAPH, registry), [("values", 1, 0), ("values", 2, 1), ("first", 100, 0),
                                                    ("values", 3, 2)])
    assert error is None and out == [(0, 101), (1, 102), (2, 103)]


def test_setting_the_side_packet_twice_fails_the_run_as_mediapipe_does() -> None:
    out, error = run(PythonGraph(GRAPH, registry), [("first", 100, 0), ("values", 1, 0), ("first", 200, 1)])
    assert out == [(0, 101)]
    assert error is not None and 'Output side packet "made" was already set.' in error


def test_a_side_packet_made_by_a_node_is_not_asked_of_the_caller_but_one_made_twice_is_refused() -> None:
    PythonGraph(GRAPH, registry).start_run()  # no "made" given: a node makes it
    twice = GRAPH + 'node { calculator: "FirstValueToSide" input_stream: "IN:values" output_side_packet: "SIDE:made" }'
    with pytest.raises(GraphConfigError, match=r'Output Side Packet "made" defined twice\.'):
        PythonGraph(twice, registry)
    undeclared = 'input_stream: "x" node { calculator: "AddSide" input_stream: "IN:x" output_side_packet: "S:s" }'
    with pytest.raises(GraphConfigError, match='For output side packets ValidatePacketTypeSet failed:\nTag "S"'):
        PythonGraph(undeclared, registry)


@registry.register("AddOptional")
class AddOptional(AddSide):
    """AddSide whose FACTOR may be missing (MediaPipe's Optional()): then it adds 0."""

    optional_side_packets = ("FACTOR",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        self.factor = side_packets.get("FACTOR", 0)


OPTIONAL = """
input_stream: "values" output_stream: "out" input_side_packet: "factor"
node { calculator: "AddOptional" input_stream: "IN:values" input_side_packet: "FACTOR:factor" output_stream: "OUT:out" }
"""


def test_an_optional_side_packet_may_be_missing_and_is_used_when_given() -> None:
    def values(side_packets: dict[str, object] | None, graph: str = OPTIONAL) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        python = PythonGraph(graph, registry)
        python.observe_output_stream("out", lambda _name, value, timestamp: found.append((timestamp, value)))
        python.start_run(side_packets)
        python.add_packet_to_input_stream("values", 5, 0)
        python.close()
        return found

    assert values(None) == [(0, 5)] and values({"factor": 10}) == [(0, 15)]
    with pytest.raises(PythonGraphError, match=r'Side packet "factor" is required but was not provided\.'):
        values(None, OPTIONAL.replace("AddOptional", "AddSide"))
    # made by a node: an optional side packet is waited for like any other
    made = GRAPH.replace('calculator: "AddSide"', 'calculator: "AddOptional"')
    out, error = run(PythonGraph(made, registry), [("values", 1, 0), ("first", 100, 0)])
    assert error is None and out == [(0, 101)]
