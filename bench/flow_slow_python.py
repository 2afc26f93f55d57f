"""SLOW: memory of a stream feeding a slow Python node behind a native one, bounded vs unbounded hand-over.

A graph PassThroughCalculator (native) -> a Python calculator sleeping 10 ms gets N 640x480x3 frames on one
stream, as fast as the client can send (it reads every answer as it comes and keeps none). Run side by side:
the graph as written (`max_queue_size` unset: MediaPipe's 100) and the same graph with `max_queue_size: -1`
(no bound: what the hand-over did before it was bounded). Per run: peak RSS growth of this process (server and
client in one process; the client keeps nothing) and how far the requests the server took ran ahead of the
Python node at most.

SLOW memory = peak RSS growth bounded ÷ unbounded (goal well below 1).

Run: .venv/bin/python bench/flow_slow_python.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from common import report

import ovms_notebook
from ovms_notebook.codec import encode_input
from ovms_notebook.engine.python.api import Calculator, register, unregister
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS

GRAPH = """{own}
input_stream: "in"
output_stream: "out"
node {{ calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }}
node {{ calculator: "BenchSlow" input_stream: "a" output_stream: "out" }}
"""


class Slow(Calculator):
    """Passes a frame on after 10 ms; records how many requests the server had taken by then."""

    inputs = (":0",)
    outputs = (":0",)
    taken = staticmethod(lambda: 0)
    lag = 0

    def process(self, timestamp, inputs):
        Slow.lag = max(Slow.lag, Slow.taken() - timestamp)
        time.sleep(0.01)
        return {":0": inputs[":0"]}


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(own: str, frames: int) -> tuple[int, int]:
    folder = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    (folder / "g").mkdir()
    (folder / "g" / "graph.pbtxt").write_text(GRAPH.format(own=own))
    (folder / "config.json").write_text('{"mediapipe_config_list": [{"name": "g", "base_path": "g"}]}')
    server = ovms_notebook.serve(folder)
    Slow.taken = staticmethod(lambda: sum(1 for e in server.events.snapshot() if e.kind == "request"))
    Slow.lag = 0
    frame = np.zeros((480, 640, 3), np.uint8)

    def requests():
        for _ in range(frames):
            message = pb.ModelInferRequest(model_name="g")
            tensor, raw = encode_input("in", frame)
            message.inputs.append(tensor)
            message.raw_input_contents.append(raw)
            yield message

    base, peak, done = rss(), rss(), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    method = METHODS["ModelStreamInfer"]
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        call = channel.stream_stream(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        answers = sum(1 for _ in call(requests(), timeout=600))
    done.set()
    sampler.join()
    server.stop()
    if answers != frames:
        raise RuntimeError(f"expected {frames} answers, got {answers}")
    return peak - base, Slow.lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500, help="frames per run (default 500)")
    args = parser.parse_args()
    register("BenchSlow")(Slow)
    try:
        run("", 20)  # warm: imports, first graph
        bounded_bytes, bounded_lag = run("", args.frames)
        unbounded_bytes, unbounded_lag = run("max_queue_size: -1", args.frames)
    finally:
        unregister("BenchSlow")
    print(f"bounded (max_queue_size 100): peak +{bounded_bytes >> 20} MiB, at most {bounded_lag} requests ahead")
    print(f"unbounded (max_queue_size -1): peak +{unbounded_bytes >> 20} MiB, at most {unbounded_lag} ahead")
    report(
        "SLOW memory",
        bounded_bytes / max(1, unbounded_bytes),
        "well below 1",
        f"{bounded_bytes >> 20} MiB vs {unbounded_bytes >> 20} MiB over {args.frames} 640x480x3 frames",
    )


if __name__ == "__main__":
    main()
