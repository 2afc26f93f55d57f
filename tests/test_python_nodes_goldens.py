"""Python calculators follow MediaPipe's rules: the recorded 0.10.21 goldens replayed on a PythonGraph.

The stock calculators the goldens use are re-written here with the Python
calculator API (same inputs, same input stream handler, same timestamp offset
as the C++ ones at v0.10.21) and registered under their native names in a
private registry. Each golden is replayed like the recording harness did:
wait_until_idle() after every step, wait_until_done() after close_all, outputs
compared exactly, bound-only EMPTY entries included.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import deque
from pathlib import Path

import pytest
from mediapipe.calculators.core import (
    concatenate_vector_calculator_pb2,
    flow_limiter_calculator_pb2,
    gate_calculator_pb2,
)

from ovms_notebook.engine.python.api import (
    EMPTY,
    STOP,
    Bound,
    Calculator,
    Packet,
    Registry,
    register,
    registered,
    unregister,
)
from ovms_notebook.engine.python.scheduler import GraphConfigError, PythonGraph, PythonGraphError
from ovms_notebook.engine.python.streams import next_allowed
from ovms_notebook.framework.timestamps import MAX, MIN, POSTSTREAM, PRESTREAM, UNSET, UNSTARTED

GOLDENS = json.loads((Path(__file__).parent / "goldens" / "mediapipe_0_10_21_timestamps.json").read_text())["goldens"]
NAMED = {"PRESTREAM": PRESTREAM, "POSTSTREAM": POSTSTREAM, "MIN": MIN, "MAX": MAX}
NAMES = {value: name for name, value in NAMED.items()}

STOCK = Registry()


@STOCK.register("ConcatenateFloatVectorCalculator")
class ConcatenateVector(Calculator):
    """api2 node: Offset(0) by default; only_emit_if_all_present skips a timestamp with any EMPTY input."""

    inputs = (":*",)
    outputs = (":0",)

    def open(self, side_packets):
        options = self.options(concatenate_vector_calculator_pb2.ConcatenateVectorCalculatorOptions)
        self.only_emit_if_all_present = options.only_emit_if_all_present

    def process(self, timestamp, inputs):
        if self.only_emit_if_all_present and any(value is None for value in inputs.values()):
            return None
        output: list = []
        for value in inputs.values():
            if isinstance(value, list | tuple):
                output.extend(value)
            elif value is not None:
                output.append(value)
        return {":0": output}


@STOCK.register("PassThroughCalculator")
class PassThrough(Calculator):
    """SetOffset(0) in Open; each non-empty input goes to the output with the same tag and index."""

    inputs = ("*",)
    outputs = ("*",)

    def open(self, side_packets):
        if set(self.input_tags) != set(self.output_tags):
            raise ValueError("Input and output streams to PassThroughCalculator must use matching tags and indexes.")

    def process(self, timestamp, inputs):
        return {key: value for key, value in inputs.items() if value is not None}


@STOCK.register("GateCalculator")
class Gate(Calculator):
    """SetOffset(0); an EMPTY ALLOW counts as disallow unless empty_packets_as_allow."""

    inputs = (":*", "ALLOW", "DISALLOW")
    outputs = (":*", "STATE_CHANGE")
    side_packets = ("ALLOW", "DISALLOW")
    UNINITIALIZED = gate_calculator_pb2.GateCalculatorOptions.GATE_UNINITIALIZED
    ALLOWING = gate_calculator_pb2.GateCalculatorOptions.GATE_ALLOW
    DISALLOWING = gate_calculator_pb2.GateCalculatorOptions.GATE_DISALLOW

    def open(self, side_packets):
        options = self.options(gate_calculator_pb2.GateCalculatorOptions)
        self.by_side_packet = "ALLOW" in side_packets or "DISALLOW" in side_packets
        self.side_packet_allow = (
            bool(side_packets["ALLOW"]) if "ALLOW" in side_packets else (not side_packets.get("DISALLOW", False))
        )
        self.by_option = not self.by_side_packet and not {"ALLOW", "DISALLOW"} & set(self.input_tags)
        self.option_allow = options.allow
        self.empty_packets_as_allow = options.empty_packets_as_allow
        self.last_state = options.initial_gate_state
        self.data = [key for key in self.input_tags if key.startswith(":")]

    def process(self, timestamp, inputs):
        allow = self.empty_packets_as_allow
        if self.by_option:
            allow = self.option_allow
        elif self.by_side_packet:
            allow = self.side_packet_allow
        else:
            if inputs.get("ALLOW") is not None:
                allow = bool(inputs["ALLOW"])
            if inputs.get("DISALLOW") is not None:
                allow = not inputs["DISALLOW"]
        state = self.ALLOWING if allow else self.DISALLOWING
        if self.last_state not in (self.UNINITIALIZED, state):
            self.emit("STATE_CHANGE", allow)
        self.last_state = state
        if not allow:
            if self.by_side_packet:
                for key in self.data:
                    self.close_output(key)
            return None
        return {key: inputs[key] for key in self.data if inputs[key] is not None}


@STOCK.register("MergeCalculator")
class Merge(Calculator):
    """api2 node, Offset(0): the first non-empty input in index order wins."""

    inputs = (":*",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        for value in inputs.values():
            if value is not None:
                return {":0": value}
        return None


@STOCK.register("PreviousLoopbackCalculator")
class PreviousLoopback(Calculator):
    """Immediate handler, processes timestamp bounds, no offset: PREV_LOOP at t is LOOP of the previous MAIN."""

    inputs = ("MAIN", "LOOP")
    outputs = ("PREV_LOOP",)
    input_stream_handler = "ImmediateInputStreamHandler"
    process_timestamp_bounds = True
    timestamp_offset = None

    def open(self, side_packets):
        self.main_specs: deque[tuple[int, int]] = deque()
        self.loop_packets: deque[tuple[int, object]] = deque()
        self.prev_main = UNSTARTED
        self.prev_non_empty_main = UNSTARTED
        self.prev_loop = UNSET

    def process(self, timestamp, inputs):
        main_timestamp = self.input_timestamp("MAIN")
        if self.prev_main < main_timestamp:
            if inputs["MAIN"] is not None:
                loop_timestamp = self.prev_non_empty_main
                self.prev_non_empty_main = main_timestamp
            else:
                loop_timestamp = UNSET
            self.main_specs.append((main_timestamp, loop_timestamp))
            self.prev_main = main_timestamp
        loop_timestamp = self.input_timestamp("LOOP")
        if self.prev_loop < loop_timestamp:
            self.loop_packets.append((loop_timestamp, inputs["LOOP"]))
            self.prev_loop = loop_timestamp
        while self.main_specs and self.loop_packets:
            (main_at, wanted), (loop_at, value) = self.main_specs[0], self.loop_packets[0]
            if wanted < loop_at:
                self.set_next_timestamp_bound("PREV_LOOP", main_at + 1)
                self.main_specs.popleft()
            elif wanted > loop_at:
                self.loop_packets.popleft()
            else:
                if value is None:
                    self.set_next_timestamp_bound("PREV_LOOP", main_at + 1)
                else:
                    self.emit("PREV_LOOP", value, main_at)
                self.loop_packets.popleft()
                self.main_specs.popleft()
        if not self.main_specs and self.input_done("MAIN"):
            self.close_output("PREV_LOOP")


@STOCK.register("FlowLimiterCalculator")
class FlowLimiter(Calculator):
    """0.10.21's FlowLimiterCalculator: Immediate handler, bounds processed, explicit output bounds."""

    inputs = (":*", "FINISHED", "OPTIONS")
    outputs = (":*", "ALLOW")
    side_packets = ("MAX_IN_FLIGHT", "OPTIONS")
    input_stream_handler = "ImmediateInputStreamHandler"
    process_timestamp_bounds = True
    timestamp_offset = None

    def open(self, side_packets):
        self.settings = self.options(flow_limiter_calculator_pb2.FlowLimiterCalculatorOptions)
        if "OPTIONS" in side_packets:
            self.settings = side_packets["OPTIONS"]
        if "MAX_IN_FLIGHT" in side_packets:
            self.settings.max_in_flight = side_packets["MAX_IN_FLIGHT"]
        self.data = [key for key in self.input_tags if key.startswith(":")]
        self.queues: dict[str, deque[tuple[int, object]]] = {key: deque() for key in self.data}
        self.in_flight: deque[int] = deque()
        self.allowed_at = [UNSET]
        self.allowed = [True]

    def process(self, timestamp, inputs):
        if inputs.get("OPTIONS") is not None:
            self.settings = inputs["OPTIONS"]
        finished = self.input_timestamp("FINISHED")
        if finished == timestamp:
            while self.in_flight and self.in_flight[0] <= finished:
                self.in_flight.popleft()
        for key in self.data:
            if inputs[key] is not None:
                self.queues[key].append((self.input_timestamp(key), inputs[key]))
        main = self.data[0]
        latest = self.input_timestamp(main)
        timeout = self.settings.in_flight_timeout
        if timeout > 0 and latest == timestamp and latest < MAX:
            while self.in_flight and latest - self.in_flight[0] > timeout:
                self.in_flight.popleft()
        queue = self.queues[main]
        while len(self.in_flight) < self.settings.max_in_flight and queue:
            at, value = queue.popleft()
            self.emit(main, value, at)
            self.send_allow(True, at)
            self.in_flight.append(at)
        while len(queue) > self.settings.max_in_queue:
            at, _ = queue.popleft()
            self.send_allow(False, at)
        if queue:
            settled = self.bound(main, queue[0][0])
        else:
            settled = self.bound(main, next_allowed(latest))
            self.bound("ALLOW", next_allowed(latest))
        for key in self.data[1:]:
            auxiliary = self.queues[key]
            while auxiliary and auxiliary[0][0] < settled:
                at, value = auxiliary.popleft()
                if self.allowed[bisect.bisect_right(self.allowed_at, at) - 1]:
                    self.emit(key, value, at)
            self.bound(key, auxiliary[0][0] if auxiliary else next_allowed(self.input_timestamp(key)))
        lowest = min(q[0][0] if q else next_allowed(self.input_timestamp(k)) for k, q in self.queues.items())
        first = bisect.bisect_right(self.allowed_at, lowest) - 1
        del self.allowed_at[:first], self.allowed[:first]

    def send_allow(self, allow: bool, at: int) -> None:
        self.emit("ALLOW", allow, at)
        index = bisect.bisect_left(self.allowed_at, at)
        if index < len(self.allowed_at) and self.allowed_at[index] == at:
            self.allowed[index] = allow
        else:
            self.allowed_at.insert(index, at)
            self.allowed.insert(index, allow)

    def bound(self, key: str, bound: int) -> int:
        if bound > MAX:
            self.close_output(key)
        else:
            self.set_next_timestamp_bound(key, bound)
        return bound


@STOCK.register("SidePacketToStreamCalculator")
class SidePacketToStream(Calculator):
    """A source node: Process() stops at once, Close() sends side packet i on output i at the tag's timestamp."""

    outputs = ("AT_PRESTREAM:*", "AT_POSTSTREAM:*", "AT_ZERO:*")
    side_packets = (":*",)
    timestamp_offset = None
    STAMPS = {"AT_PRESTREAM": PRESTREAM, "AT_POSTSTREAM": POSTSTREAM, "AT_ZERO": 0}

    def open(self, side_packets):
        tags = {key.partition(":")[0] for key in self.output_tags}
        if len(tags) != 1:
            raise ValueError("Only one of AT_PRESTREAM, AT_POSTSTREAM and AT_ZERO is allowed and required.")
        self.values = side_packets

    def process(self, timestamp, inputs):
        return STOP

    def close(self):
        emitted = {}
        for key in self.output_tags:
            tag, _, index = key.partition(":")
            emitted[key] = Packet(self.values[f":{index or 0}"], self.STAMPS[tag])
        return emitted


# Replaying a golden.


def _timestamp(value: int | str) -> int:
    return NAMED[value] if isinstance(value, str) else value


def _value(kind: str, value: object) -> object:
    return [float(v) for v in value] if kind == "float_vector" else value


def _error_text(error: Exception) -> str:
    return f"{'ValueError' if isinstance(error, ValueError) else 'RuntimeError'}: {error}"


def replay(golden: dict) -> dict:
    """The golden's steps on a PythonGraph, recorded in the golden's own format."""
    try:
        graph = PythonGraph(golden["config"], STOCK)
    except GraphConfigError as error:
        # Same text as the wheel; the class is a ValueError here by design where the wheel raises RuntimeError.
        assert isinstance(error, ValueError)
        return {"steps": [], "start_error": f"RuntimeError: {error}", "close_error": None}
    collected: dict[str, list] = {name: [] for name in golden["observe"]}

    def observe(stream: str, value: object, timestamp: int) -> None:
        collected[stream].append([NAMES.get(timestamp, timestamp), "EMPTY" if value is EMPTY else value])

    for name in golden["observe"]:
        graph.observe_output_stream(name, observe, observe_timestamp_bounds=name in golden["bounds"])
    graph.start_run({name: value for name, (_kind, value) in golden["side_packets"].items()})
    steps = []
    for step in golden["steps"]:
        entry: dict = {"step": step}
        try:
            if step[0] in ("add", "add_nowait"):
                graph.add_packet_to_input_stream(step[1], _value(step[3], step[4]), _timestamp(step[2]))
                if step[0] == "add":
                    graph.wait_until_idle()
            elif step[0] == "close":
                graph.close_input_stream(step[1])
                graph.wait_until_idle()
            else:
                graph.close_all_packet_sources()
                graph.wait_until_done()
        except PythonGraphError as error:
            entry["error"] = _error_text(error)
        if step[0] != "add_nowait":
            entry["outputs"] = {name: list(items) for name, items in collected.items() if items}
            for items in collected.values():
                items.clear()
            steps.append(entry)
    return {"steps": steps, "start_error": None, "close_error": None}


@pytest.mark.parametrize("golden", GOLDENS, ids=[g["name"] for g in GOLDENS])
def test_python_calculators_reproduce_the_recorded_mediapipe_behaviour(golden):
    result = replay(golden)
    expected = golden["result"]
    assert result["start_error"] == expected["start_error"]
    assert result["close_error"] == expected["close_error"]
    assert result["steps"] == expected["steps"]


# The API itself.

PASS = 'input_stream: "in"\nnode { calculator: "Counter" input_stream: "in" output_stream: "out" }'


class Counter(Calculator):
    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets):
        self.seen = 0

    def process(self, timestamp, inputs):
        self.seen += 1
        return {":0": self.seen}


def run(graph: PythonGraph, packets: list[tuple[str, object, int]], streams=("out",), bounds=(), side_packets=None):
    received = []
    for name in streams:
        graph.observe_output_stream(name, lambda s, v, t: received.append((s, v, t)), name in bounds)
    graph.start_run(side_packets)
    for stream, value, timestamp in packets:
        graph.add_packet_to_input_stream(stream, value, timestamp)
    graph.close()
    return received


def test_registering_a_name_again_replaces_the_class_and_says_so(caplog):
    registry = Registry()

    @registry.register("Node")
    class First(Calculator):
        pass

    with caplog.at_level(logging.INFO, logger="ovms_notebook.engine.python.api"):

        @registry.register("Node")
        class Second(Calculator):
            pass

    assert registry.registered("Node") is Second
    assert "re-registered" in caplog.text
    registry.unregister("Node")
    assert registry.registered("Node") is None
    with pytest.raises(GraphConfigError, match='Unable to find Calculator "Node"'):
        PythonGraph('input_stream: "in"\nnode { calculator: "Node" input_stream: "in" }', registry)


def test_each_graph_run_gets_its_own_calculator_instance():
    registry = Registry()
    registry.register("Counter")(Counter)
    first, second = PythonGraph(PASS, registry), PythonGraph(PASS, registry)
    assert run(first, [("in", "x", 1), ("in", "x", 2), ("in", "x", 3)]) == [("out", 1, 1), ("out", 2, 2), ("out", 3, 3)]
    assert run(second, [("in", "x", 7)]) == [("out", 1, 7)]
    first.start_run()  # a new run starts from a fresh instance too
    first.add_packet_to_input_stream("in", "x", 0)
    first.close()


def test_an_exception_in_process_becomes_a_graph_error_naming_the_node():
    registry = Registry()

    @registry.register()
    class Fails(Calculator):
        inputs = (":0",)
        outputs = (":0",)

        def process(self, timestamp, inputs):
            raise ZeroDivisionError(f"no luck at {timestamp}")

    graph = PythonGraph(
        'input_stream: "in"\nnode { name: "boom" calculator: "Fails" input_stream: "in" output_stream: "out" }',
        registry,
    )
    graph.start_run()
    graph.add_packet_to_input_stream("in", 1, 3)  # returns normally, like the wheel
    assert graph.has_error()
    assert graph.error.startswith('Calculator::Process() for node "boom" failed: ZeroDivisionError: no luck at 3')
    assert "in process" in graph.error and "raise ZeroDivisionError" in graph.error
    with pytest.raises(RuntimeError, match=r"CalculatorGraph::Run\(\) failed: \nCalculator::Process\(\) for node"):
        graph.wait_until_idle()
    with pytest.raises(PythonGraphError, match="Graph has errors"):
        graph.add_packet_to_input_stream("in", 2, 4)
    assert graph.get_combined_error_message().startswith("INTERNAL: CalculatorGraph::Run() failed: ")
    with pytest.raises(PythonGraphError, match="no luck at 3"):
        graph.close()
    graph.close()  # the error is raised once; closing again is fine and the finished run has no error
    assert not graph.has_error()


GENERATOR = """
input_stream: "in"
output_stream: "out"
node {
  name: "generate"
  calculator: "Generate"
  input_stream: "INPUT:in"
  input_stream: "LOOPBACK:loopback"
  input_stream_info: { tag_index: "LOOPBACK:0" back_edge: true }
  input_stream_handler {
    input_stream_handler: "SyncSetInputStreamHandler"
    options {
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] {
        sync_set { tag_index: "LOOPBACK:0" }
      }
    }
  }
  output_stream: "OUTPUT:out"
  output_stream: "LOOPBACK:loopback"
}
"""


class Generate(Calculator):
    """OVMS's generative PythonExecutor recipe: a generator advanced one step per LOOPBACK packet."""

    inputs = ("INPUT", "LOOPBACK")
    outputs = ("OUTPUT", "LOOPBACK")

    def open(self, side_packets):
        self.generator = None
        self.pending = None

    def process(self, timestamp, inputs):
        if inputs["INPUT"] is not None:
            self.generator = iter(f"{inputs['INPUT']}-{i}" for i in range(3))
            self.pending = next(self.generator, None)
        if self.pending is None:
            return None
        out, self.pending = self.pending, next(self.generator, None)
        result = {"OUTPUT": out}
        if self.pending is not None:
            result["LOOPBACK"] = Packet(True, timestamp + 1)
        return result


def test_a_generator_with_a_loopback_back_edge_stamps_outputs_t_t1_t2():
    registry = Registry()
    registry.register(Generate)
    graph = PythonGraph(GENERATOR, registry)
    received = run(graph, [("in", "a", 64), ("in", "b", 100)])
    assert received == [
        ("out", "a-0", 64),
        ("out", "a-1", 65),
        ("out", "a-2", 66),
        ("out", "b-0", 100),
        ("out", "b-1", 101),
        ("out", "b-2", 102),
    ]


def test_a_bound_only_add_releases_a_waiting_node_and_is_observed_as_empty():
    registry = Registry()
    registry.register("PassThroughCalculator")(PassThrough)
    graph = PythonGraph(
        'input_stream: "a"\ninput_stream: "b"\n'
        'node { calculator: "PassThroughCalculator" input_stream: "a" input_stream: "b" '
        'output_stream: "x" output_stream: "y" }',
        registry,
    )
    received = run(graph, [("a", 1, 0), ("b", EMPTY, 0)], streams=("x", "y"), bounds=("y",))
    assert received == [("x", 1, 0), ("y", EMPTY, 0)]


def test_close_may_emit_and_bounds_can_be_set_explicitly():
    registry = Registry()

    @registry.register()
    class Summary(Calculator):
        inputs = (":0",)
        outputs = ("TOTAL", "EVENS")
        timestamp_offset = None

        def open(self, side_packets):
            self.total = 0

        def process(self, timestamp, inputs):
            self.total += inputs[":0"]
            return {"EVENS": inputs[":0"]} if inputs[":0"] % 2 == 0 else {"EVENS": Bound(timestamp + 1)}

        def close(self):
            return {"TOTAL": Packet(self.total, POSTSTREAM)}

    graph = PythonGraph(
        'input_stream: "in"\nnode { calculator: "Summary" input_stream: "in" '
        'output_stream: "TOTAL:total" output_stream: "EVENS:evens" }',
        registry,
    )
    received = run(graph, [("in", 1, 0), ("in", 2, 1), ("in", 3, 2)], streams=("total", "evens"), bounds=("evens",))
    assert received == [("evens", EMPTY, 0), ("evens", 2, 1), ("evens", EMPTY, 2), ("total", 6, POSTSTREAM)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            'input_stream: "a"\nnode { calculator: "Gate" input_stream: "a" input_stream: "FOO:a" output_stream: "b" }',
            'Tag "FOO" index 0 was not expected.',
        ),
        (
            'input_stream: "a"\nnode { calculator: "Gate" input_stream: "a" output_stream: "a" }',
            'Output Stream "a" defined twice.',
        ),
        (
            'input_stream: "a"\nnode { calculator: "Gate" input_stream: "zz" output_stream: "b" }',
            'Input Stream "zz" for node with sorted index 0 name Gate does not have a corresponding output stream.',
        ),
        (
            'input_stream: "a"\nnode { calculator: "Gate" input_stream: "a" input_stream: "c" output_stream: "b" '
            'output_stream: "d" }\nnode { calculator: "Gate" input_stream: "b" output_stream: "c" }',
            r"cycle detected in graph: \[Gate_1, Gate_2\]",
        ),
    ],
    ids=["unknown tag", "stream produced twice", "unproduced input", "cycle without back edge"],
)
def test_graphs_mediapipe_rejects_are_rejected_with_its_message(config, message):
    registry = Registry()
    registry.register("Gate")(Gate)
    with pytest.raises(GraphConfigError, match=message):
        PythonGraph(config, registry)


def test_without_eager_the_work_waits_for_wait_until_idle():
    registry = Registry()
    registry.register("Counter")(Counter)
    graph = PythonGraph(PASS, registry, eager=False)
    received = []
    graph.observe_output_stream("out", lambda s, v, t: received.append((v, t)))
    graph.start_run()
    graph.add_packet_to_input_stream("in", "x", 5)
    assert received == []
    graph.wait_until_idle()
    assert received == [(1, 5)]
    graph.close()


def test_a_missing_side_packet_fails_start_run_and_register_uses_the_default_registry():
    @register("SidePacketToStreamCalculator")
    class Stand(SidePacketToStream):
        pass

    try:
        assert registered("SidePacketToStreamCalculator") is Stand
        graph = PythonGraph(
            'input_side_packet: "sp"\nnode { calculator: "SidePacketToStreamCalculator" '
            'input_side_packet: "sp" output_stream: "AT_ZERO:out" }'
        )
        with pytest.raises(ValueError, match='Side packet "sp" is required but was not provided'):
            graph.start_run()
        assert run(graph, [], side_packets={"sp": 7}) == [("out", 7, 0)]
    finally:
        unregister("SidePacketToStreamCalculator")
    assert registered("SidePacketToStreamCalculator") is None
