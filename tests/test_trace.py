"""Execution traces per stream: MediaPipe's tracer for native nodes, our own records for Python nodes, one picture."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

import ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.engine.python.api import Calculator, register, unregister
from ovms_notebook.framework.trace import INPUT
from ovms_notebook.sources import astronaut, pan_zoom
from ovms_notebook.widgets import PNG_SIGNATURE, Timeline, plot_trace, trace_png
from tests.conftest import GRAPHS, request
from tests.test_goldens_server import GOLDENS, Stepper, as_triples, expected_outputs, tagged_config, wire_value

CHAIN = """
input_stream: "in"
output_stream: "out"
node { name: "first" calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }
node { name: "second" calculator: "PassThroughCalculator" input_stream: "a" output_stream: "b" }
node { name: "third" calculator: "PassThroughCalculator" input_stream: "b" output_stream: "out" }
"""
SANDWICH = """
input_stream: "FLOATS:in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }
node { calculator: "TraceAddOne" input_stream: "a" output_stream: "b" }
node { calculator: "PassThroughCalculator" input_stream: "b" output_stream: "out" }
"""
PYTHON_ONLY = """
input_stream: "FLOATS:in"
output_stream: "out"
node { name: "add" calculator: "TraceAddOne" input_stream: "in" output_stream: "out" }
"""
NODES = ("first", "second", "third")


class AddOne(Calculator):
    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": [x + 1.0 for x in inputs[":0"]]}


@pytest.fixture(autouse=True)
def registered():
    register("TraceAddOne")(AddOne)
    yield
    unregister("TraceAddOne")


def run(server, graph: str, inputs: list[tuple[dict, int | None]], *, trace: bool = True) -> StreamClient:
    client = StreamClient(server.address, graph, trace=trace)
    for values, timestamp in inputs:
        client.send(values, timestamp=timestamp)
    client.wait_for(len(inputs))
    assert client.close().code == "OK"
    return client


@pytest.mark.parametrize("stamps", [[None] * 5, [3, 7, 20, 21, 50]], ids=["automatic", "manual"])
def test_every_node_of_a_chain_runs_once_per_request_at_the_response_timestamps(serve_graphs, stamps):
    server = serve_graphs({"chain": CHAIN})
    client = run(server, "chain", [({"in": np.float32([i])}, stamp) for i, stamp in enumerate(stamps)])
    responses = [entry.timestamp for entry in client.responses]
    assert responses == ([0, 1, 2, 3, 4] if stamps[0] is None else stamps)
    trace = server.trace_for(client)
    assert trace.nodes == NODES
    assert trace.lanes == (INPUT, *NODES)
    assert {trace.kinds[node] for node in NODES} == {"native"}
    assert trace.streams == ("in", "a", "b", "out")
    for node in (INPUT, *NODES):
        assert trace.timestamps(node) == responses, node
    for node in NODES:
        assert all(e.finish_us >= e.start_us >= 0 for e in trace.process_spans(node))
    assert server.trace_for(client.tag) is trace and server.trace_for() is trace


def test_each_node_of_a_chain_starts_after_its_producer_finished(serve_graphs):
    server = serve_graphs({"chain": CHAIN})
    client = run(server, "chain", [({"in": np.float32([i])}, None) for i in range(5)])
    trace = server.trace_for(client)
    waits = trace.queue_waits()
    assert Counter((w.producer, w.consumer, w.stream) for w in waits) == {
        (INPUT, "first", "in"): 5, ("first", "second", "a"): 5, ("second", "third", "b"): 5}
    for wait in waits:
        producer = next(e for e in trace.process_spans(wait.producer) if e.input_timestamp == wait.timestamp)
        consumer = next(e for e in trace.process_spans(wait.consumer) if e.input_timestamp == wait.timestamp)
        assert wait.producer_finish_us == producer.finish_us
        assert wait.consumer_start_us == consumer.start_us
        assert wait.wait_us >= 0
    for upstream, node in itertools.pairwise(NODES):
        for before, after in zip(trace.process_spans(upstream), trace.process_spans(node), strict=True):
            assert after.start_us >= before.finish_us


@pytest.mark.parametrize("name", ["default_handler_only_emit_if_all_present", "gate_missing_allow_packet"])
def test_a_golden_traced_runs_its_node_at_every_timestamp_the_golden_records_even_without_a_packet(
        serve_graphs, name):
    golden = next(g for g in GOLDENS if g["name"] == name)
    server = serve_graphs({"g": tagged_config(golden)}, trace=True)
    stepper = Stepper(server.address)
    got = []
    for step in golden["result"]["steps"]:
        if step["step"][0] != "add":
            continue
        _, stream, stamp, kind, value = step["step"]
        stepper.outbox.put(request("g", {stream: wire_value(kind, value)}, timestamp=stamp))
        got += as_triples(stepper.collect(len(expected_outputs(step))))
    got += as_triples(stepper.close())
    recorded = sorted({stamp for s in golden["result"]["steps"] for entries in s["outputs"].values()
                       for stamp, _ in entries})  # packets and bound-only ("EMPTY") outputs alike
    packets = sorted(stamp for _, stamp, _ in got)
    trace = server.trace_for()
    (node,) = trace.nodes
    assert trace.timestamps(node) == recorded == [0, 1, 2, 3]
    assert set(packets) < set(recorded)  # the other calls ran at a bound and emitted none: the golden's EMPTY
    (key,) = server.traces  # a stream without a client tag is kept by its id
    assert key.startswith("stream-") and server.traces[key] is trace


@pytest.fixture
def example_server():
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


def test_the_face_tracking_trace_shows_the_native_detector_nodes_and_the_python_tracker_at_every_frame(
        example_server):
    frames = list(pan_zoom(astronaut(), 4))
    client = run(example_server, "face_tracking", [({"image": frame}, None) for frame in frames])
    responses = [entry.timestamp for entry in client.responses]
    assert responses == [0, 1, 2, 3]
    trace = example_server.trace_for(client)
    detector = [node for node in trace.nodes if node.startswith("FaceDetectionShortRangeCpu/")]
    assert trace.nodes == (*detector, "tracker")
    assert {"FaceDetectionShortRangeCpu/ImageToTensorCalculator", "FaceDetectionShortRangeCpu/InferenceCalculator",
            "FaceDetectionShortRangeCpu/DetectionProjectionCalculator"} <= set(detector)
    assert trace.kinds["tracker"] == "python" and {trace.kinds[n] for n in detector} == {"native"}
    assert trace.timestamps("tracker") == responses
    assert trace.timestamps("FaceDetectionShortRangeCpu/InferenceCalculator") == responses
    assert trace.timestamps(INPUT) == responses
    hops = [w for w in trace.queue_waits() if w.consumer == "tracker"]
    assert [(w.producer, w.stream, w.timestamp) for w in hops] == [
        ("FaceDetectionShortRangeCpu/DetectionProjectionCalculator", "detections", t) for t in responses]
    assert all(w.wait_us >= 0 for w in hops)


def test_a_hybrid_graph_trace_names_both_halves_and_shows_cut_packets_once(serve_graphs):
    server = serve_graphs({"sandwich": SANDWICH})
    client = run(server, "sandwich", [({"in": np.float32([i])}, 10 + i) for i in range(3)])
    trace = server.trace_for(client)
    assert trace.nodes == ("PassThroughCalculator_1", "TraceAddOne", "PassThroughCalculator_2")
    assert [trace.kinds[n] for n in trace.nodes] == ["native", "python", "native"]
    for node in trace.lanes:
        assert trace.timestamps(node) == [10, 11, 12], node
    assert Counter((w.producer, w.consumer) for w in trace.queue_waits()) == {
        (INPUT, "PassThroughCalculator_1"): 3, ("PassThroughCalculator_1", "TraceAddOne"): 3,
        ("TraceAddOne", "PassThroughCalculator_2"): 3}
    assert all(w.wait_us >= 0 for w in trace.queue_waits())


def test_a_graph_without_native_nodes_has_python_events_only(serve_graphs):
    server = serve_graphs({"py": PYTHON_ONLY})
    client = run(server, "py", [({"in": np.float32([i])}, None) for i in range(3)])
    trace = server.trace_for(client)
    assert trace.nodes == ("add",) and trace.kinds["add"] == "python"
    assert {e.kind for e in trace.events} == {"python", "input"}
    assert trace.timestamps("add") == trace.timestamps(INPUT) == [0, 1, 2]
    assert [(w.producer, w.consumer, w.stream) for w in trace.queue_waits()] == [(INPUT, "add", "in")] * 3


def test_a_stream_without_trace_has_no_trace(serve_graphs):
    server = serve_graphs({"chain": CHAIN})
    client = run(server, "chain", [({"in": np.float32([1])}, None)], trace=False)
    assert server.trace_for(client) is None
    assert server.traces == {}


def test_a_running_stream_shows_what_mediapipe_wrote_so_far(serve_graphs):
    server = serve_graphs({"chain": CHAIN})
    client = StreamClient(server.address, "chain", trace=True)
    client.send({"in": np.float32([1])})
    client.wait_for(1)
    deadline = time.monotonic() + 5
    while not server.trace_for(client).timestamps("third") and time.monotonic() < deadline:
        time.sleep(0.1)  # MediaPipe writes every 500 ms while the graph runs
    live = server.trace_for(client)
    assert [live.timestamps(node) for node in NODES] == [[0], [0], [0]]
    client.send({"in": np.float32([2])})
    client.close()
    assert [server.trace_for(client).timestamps(node) for node in NODES] == [[0, 1]] * 3


def test_plot_trace_draws_one_lane_per_node_with_a_bar_per_call_and_a_png(serve_graphs):
    server = serve_graphs({"chain": CHAIN})
    client = run(server, "chain", [({"in": np.float32([i])}, 5 * i) for i in range(3)])
    trace = server.trace_for(client)
    ax = plot_trace(trace)
    labels = [label.get_text() for label in ax.get_yticklabels()][::-1]
    assert labels == [INPUT, *NODES] and len(labels) == len(trace.nodes) + 1
    starts = sorted(round(min(c.get_paths()[0].vertices[:, 0]), 3) for c in ax.collections
                    if isinstance(c, PolyCollection))
    assert starts == sorted(round(e.start_us / 1000, 3) for node in NODES for e in trace.process_spans(node))
    assert len(starts) == 9
    texts = Counter(t.get_text() for t in ax.texts if t.get_text())
    assert texts == {"0": 4, "5": 4, "10": 4}  # the graph input and three nodes, at each input timestamp
    assert sum(not t.get_text() for t in ax.texts) == 9  # an arrow per hop: in->first, a->second, b->third
    png = trace_png(trace)
    assert png.startswith(PNG_SIGNATURE)
    assert server.trace_for(client)._repr_mimebundle_()["image/png"].startswith(PNG_SIGNATURE)


def test_the_timeline_shows_a_trace_under_its_lanes_and_hides_it_again():
    from ovms_notebook.framework.trace import TraceEvent, build_trace

    events = [TraceEvent(INPUT, "input", "PROCESS", 0, None, 1_000, outputs=(("in", 0),)),
              TraceEvent("n", "native", "PROCESS", 0, 1_100, 1_300, inputs=(), outputs=(("out", 0),))]
    trace = build_trace(events, 0, ["n"])
    timeline = Timeline(min_interval=0)
    try:
        assert timeline.trace_image.layout.display == "none"
        timeline.show_trace(trace)
        assert bytes(timeline.trace_image.value).startswith(PNG_SIGNATURE)
        assert timeline.trace_image.layout.display is None
        timeline.show_trace(None)
        assert timeline.trace_image.layout.display == "none"
    finally:
        timeline.close()


def test_labels_of_calls_too_close_to_read_apart_merge_and_long_subgraph_lanes_take_two_lines():
    from ovms_notebook.framework.trace import TraceEvent, build_trace

    limiter, slow = "FaceDetectionShortRangeCpu/FlowLimiterCalculator", "slow"
    # six calls within 0.5 ms (as the flow limiter sees six requests at once), a seventh 300 ms later
    events = [TraceEvent(limiter, "native", "PROCESS", t, 1_000 + 100 * t, 1_050 + 100 * t) for t in range(6)]
    events += [TraceEvent(limiter, "native", "PROCESS", 6, 301_000, 301_050),
               TraceEvent(slow, "python", "PROCESS", 0, 1_100, 300_900),
               TraceEvent(slow, "python", "PROCESS", 3, 301_100, 302_000),
               TraceEvent(slow, "python", "PROCESS", 5, 302_100, 302_500)]
    trace = build_trace(events, 0, [limiter, slow])
    ax = plot_trace(trace)
    labels = sorted((round(t.xy[1]), t.get_text()) for t in ax.texts if t.get_text())
    limiter_row, slow_row = 1, 0
    assert labels == [(slow_row, "0"), (slow_row, "3,5"), (limiter_row, "0..5"), (limiter_row, "6")]
    assert all(t.get_fontsize() >= 8 for t in ax.texts if t.get_text())
    lanes = [label.get_text() for label in ax.get_yticklabels()][::-1]
    assert lanes == ["FaceDetectionShortRangeCpu/\nFlowLimiterCalculator", "slow"]
