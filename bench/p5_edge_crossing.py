"""P5 (second figure): per-packet cost of crossing the native<->Python edge ÷ the same edge inside one native graph.

Two graphs of the same shape, in one process, no server: in -> PassThrough -> mid -> X -> mid2 ->
PassThrough -> out. In the baseline X is MediaPipe's native PassThroughCalculator, so both edges
stay inside one CalculatorGraph; in the hybrid graph X is a Python calculator, so every packet
crosses native -> Python -> native. Each round pushes N float packets and waits for the last
output; rounds alternate between the two graphs. The ratio is of the per-packet costs above
an empty native graph (in -> out through one PassThrough), so it compares the edge alone.

    .venv/bin/python bench/p5_edge_crossing.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mediapipe as mp

from bench.common import report
from ovms_notebook.engine.engines import make_graph
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.engine.python.api import Calculator, register, unregister

ONE = """
input_stream: "in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""

THREE = """
input_stream: "in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "mid" }
node { calculator: "%s" input_stream: "mid" output_stream: "mid2" }
node { calculator: "PassThroughCalculator" input_stream: "mid2" output_stream: "out" }
"""


class BenchPythonPassThrough(Calculator):
    """The Python side of the edge: hands every packet on unchanged."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp: int, inputs: dict) -> dict:
        return {":0": inputs[":0"]}


def per_packet_seconds(text: str, count: int) -> float:
    """Seconds per packet through a fresh graph instance: push `count` packets, wait for the last output."""
    spec = parse_graph(text)
    done = threading.Event()
    seen = [0]

    def sink(_stream: str, _packet: mp.Packet) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set()

    graph = make_graph(spec, sink)
    graph.start({})
    packets = [mp.packet_creator.create_float(float(i)) for i in range(count)]
    start = time.perf_counter()
    for i, packet in enumerate(packets):
        graph.push({"in": packet}, i)
    done.wait(120)
    elapsed = time.perf_counter() - start
    graph.close()
    assert seen[0] == count, f"{seen[0]} of {count} outputs"
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="packets per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per graph, interleaved (default 7)")
    args = parser.parse_args()
    register("BenchPythonPassThrough")(BenchPythonPassThrough)
    try:
        graphs = {"floor": ONE, "native": THREE % "PassThroughCalculator", "hybrid": THREE % "BenchPythonPassThrough"}
        for text in graphs.values():
            per_packet_seconds(text, 200)  # warm-up: imports, first graph build
        times: dict[str, list[float]] = {name: [] for name in graphs}
        for _ in range(args.rounds):
            for name, text in graphs.items():
                times[name].append(per_packet_seconds(text, args.count))
    finally:
        unregister("BenchPythonPassThrough")
    median = {name: statistics.median(values) for name, values in times.items()}
    native_edge = median["native"] - median["floor"]
    hybrid_edge = median["hybrid"] - median["floor"]
    detail = (
        f"per packet: one PassThrough {median['floor'] * 1e6:.1f} us, three native {median['native'] * 1e6:.1f} us, "
        f"native-python-native {median['hybrid'] * 1e6:.1f} us; the middle node's edges: native "
        f"{native_edge * 1e6:.1f} us, crossing {hybrid_edge * 1e6:.1f} us ({args.rounds} rounds x {args.count})"
    )
    report("P5 edge: crossing ÷ native edge", hybrid_edge / native_edge if native_edge > 0 else float("inf"),
           "report", detail)
    report("P5 edge: whole graph hybrid ÷ native", median["hybrid"] / median["native"], "report", "same graphs")


if __name__ == "__main__":
    main()
