"""The Python scheduler honours `max_queue_size` as MediaPipe does: a full queue behind a graph input makes an
add run the ready nodes first; a graph idle while throttled raises the full queue's bound (or fails with
`report_deadlock`); ADD_IF_NOT_FULL refuses with "Graph is throttled." and the graph works on."""

from __future__ import annotations

import logging

import pytest

from ovms_notebook.engine.python.scheduler import PythonGraph, PythonGraphError
from tests.test_python_nodes_goldens import STOCK

JOIN = """
max_queue_size: 2
{extra}
input_stream: "a"
input_stream: "b"
output_stream: "out"
node {{ calculator: "ConcatenateFloatVectorCalculator" input_stream: "a" input_stream: "b" output_stream: "out" }}
"""

PASS = """
max_queue_size: 2
input_stream: "in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""


def observed(graph: PythonGraph) -> list[tuple[int, object]]:
    got: list[tuple[int, object]] = []
    graph.observe_output_stream("out", lambda _name, value, timestamp: got.append((timestamp, value)))
    return got


def queue_length(graph: PythonGraph, stream: str) -> int:
    (node,) = graph._nodes  # the queue is what the test is about
    return len(node.inputs[":0" if stream == "a" else ":1"].queue)


def test_the_config_sets_the_queue_bound_and_100_is_the_default():
    assert PythonGraph(PASS, STOCK).max_queue_size == 2
    assert PythonGraph(PASS.replace("max_queue_size: 2", ""), STOCK).max_queue_size == 100
    assert PythonGraph(PASS.replace("max_queue_size: 2", "max_queue_size: -1"), STOCK).max_queue_size is None


def test_an_idle_graph_throttled_by_a_full_queue_raises_its_bound_as_mediapipe_does(caplog):
    graph = PythonGraph(JOIN.format(extra=""), STOCK)
    got = observed(graph)
    graph.start_run()
    with caplog.at_level(logging.WARNING):
        for timestamp in range(5):  # the node waits for b: its "a" queue fills
            graph.add_packet_to_input_stream("a", [float(timestamp)], timestamp)
    assert queue_length(graph, "a") == 5
    assert 'Resolved a deadlock by increasing max_queue_size of input stream: "a"' in caplog.text
    for timestamp in range(5):
        graph.add_packet_to_input_stream("b", [10.0 + timestamp], timestamp)
    graph.close()
    assert got == [(t, [float(t), 10.0 + t]) for t in range(5)]


def test_report_deadlock_fails_the_graph_at_the_throttled_add():
    graph = PythonGraph(JOIN.format(extra="report_deadlock: true"), STOCK)
    graph.start_run()
    graph.add_packet_to_input_stream("a", [0.0], 0)
    graph.add_packet_to_input_stream("a", [1.0], 1)
    with pytest.raises(
        PythonGraphError,
        match=r'Detected a deadlock due to input throttling for: "a"\. All '
        r"calculators are idle while packet sources remain active",
    ):
        graph.add_packet_to_input_stream("a", [2.0], 2)
    assert graph.has_error()
    with pytest.raises(PythonGraphError):
        graph.close()


def test_add_if_not_full_refuses_a_throttled_add_and_the_graph_works_on():
    graph = PythonGraph(JOIN.format(extra=""), STOCK)
    got = observed(graph)
    graph.graph_input_stream_add_mode = "ADD_IF_NOT_FULL"
    graph.start_run()
    graph.add_packet_to_input_stream("a", [0.0], 0)
    graph.add_packet_to_input_stream("a", [1.0], 1)
    with pytest.raises(PythonGraphError, match=r"^Graph is throttled\.$"):
        graph.add_packet_to_input_stream("a", [2.0], 2)
    assert not graph.has_error()
    graph.add_packet_to_input_stream("b", [5.0], 0)
    graph.add_packet_to_input_stream("a", [2.0], 2)  # room again
    graph.close()  # b closed: a's packets at 1 and 2 go alone, as MediaPipe's default handler does
    assert got == [(0, [0.0, 5.0]), (1, [1.0]), (2, [2.0])]
    with pytest.raises(ValueError, match="graph_input_stream_add_mode must be one of"):
        graph.graph_input_stream_add_mode = "DROP"


def test_a_deferred_graph_runs_its_ready_nodes_when_an_add_finds_a_full_queue():
    graph = PythonGraph(PASS, STOCK, eager=False)
    got = observed(graph)
    graph.start_run()
    for timestamp in range(3):  # 0 is scheduled (taken from the queue), 1 and 2 wait in it
        graph.add_packet_to_input_stream("in", timestamp, timestamp)
    assert got == []  # deferred: nothing ran yet
    graph.add_packet_to_input_stream("in", 3, 3)  # the queue is full: the producer waits while it drains
    assert got == [(0, 0), (1, 1), (2, 2)]
    graph.close()
    assert got == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_cancel_drops_the_queued_work_and_close_only_closes():
    graph = PythonGraph(PASS, STOCK, eager=False)
    got = observed(graph)
    graph.start_run()
    graph.add_packet_to_input_stream("in", 0, 0)
    graph.cancel()
    graph.close()
    assert got == []
