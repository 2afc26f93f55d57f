"""P6: do concurrent streams add up, or fight? Aggregate throughput of 8 streams against 1.

P6 = aggregate responses/s of 8 concurrent ModelStreamInfer streams on "passthrough" (FP32[16], every
     stream pipelined: all its requests sent at once) / responses/s of 1 such stream carrying the same
     total (goal >= 1.0: more streams must not lose throughput)
P6 echo = the same ratio through the raw grpcio echo (bench/common.py), the transport's own scaling,
     measured side by side: on this 2-core machine, with one GIL for client and server, neither
     can be expected to gain much beyond 1.
P6 scaling = (ours 8/1) / (echo 8/1): does the server scale as well as the transport under it
     (goal >= 0.95)?
P6 face_detection = the same ratio on "face_detection" with 320x320 frames (pan_zoom over the
     astronaut, a face in every frame): graph work in native threads, where 2 cores can show. Its
     references, side by side: 8 graphs / 1 graph of graphs/face_detection/graph.pbtxt driven
     in-process with no server (threads adding packets, then closing), the framework's own scaling;
     and the transport's own scaling with these 300 KB requests: a raw grpcio "ack" server that
     answers each frame with a small response, as face_detection does (its detections are ~100 bytes);
     P6 face_detection scaling = (ours 8/1) / (ack 8/1) (goal >= 0.95).

Every stream first answers one untimed request (its graph is built, models loaded) and then waits
at a barrier; the clock runs from the barrier to the last response of the last stream.

Run: .venv/bin/python bench/p6_concurrent_streams.py [--count N] [--frames N] [--streams S] [--rounds R]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import grpc
import mediapipe as mp
import numpy as np
from common import REPO, StreamDriver, make_request, pb, report, start_echo_server

import ovms_notebook
from ovms_notebook.engine.native import use_wheel_resources
from ovms_notebook.sources import astronaut, pan_zoom

FACE_GRAPH = (REPO / "graphs" / "face_detection" / "graph.pbtxt").read_text()


def run_together(run: Callable[[int], None], count: int, barrier: threading.Barrier) -> float:
    """Run `run(0..count-1)` on threads that start work at `barrier` (which also waits for this thread);
    returns the clock at the barrier, once every thread has finished."""
    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return start


def _ack(requests, context):
    """Answer every request with a small response (one FP32[4] output), touching nothing else."""
    for number, item in enumerate(requests):
        response = pb.ModelStreamInferResponse()
        out = response.infer_response
        out.model_name, out.model_version = item.model_name, "1"
        out.outputs.add(name="detections", datatype="FP32", shape=[4])
        out.raw_output_contents.append(bytes(16))
        out.parameters["OVMS_MP_TIMESTAMP"].int64_param = number
        yield response


def start_ack_server() -> tuple[grpc.Server, str]:
    """A plain grpcio bidi server of KServe messages answering small (the frame transport's floor)."""
    return start_echo_server(_ack)


def aggregate(address: str, messages: list, streams: int, per_stream: int) -> float:
    """Responses/s of `streams` concurrent pipelined streams, `per_stream` requests each."""
    drivers = [StreamDriver(address) for _ in range(streams)]
    for driver in drivers:  # build each stream's graph before the clock
        driver.send(messages[0])
        response = driver.receive()
        assert not response.error_message, response.error_message
    barrier = threading.Barrier(streams + 1)
    finished = [0.0] * streams
    received = [0] * streams
    errors: list[str] = []

    def run(index: int) -> None:
        driver = drivers[index]
        try:
            barrier.wait()
            for number in range(per_stream):
                driver.send(messages[(number + 1) % len(messages)])
            for _ in range(per_stream):
                response = driver.receive()
                if response.error_message:
                    errors.append(response.error_message)
                received[index] += 1
            finished[index] = time.perf_counter()
        except Exception as error:  # reported below, never lost in a thread
            errors.append(repr(error))
            barrier.abort()

    start = run_together(run, streams, barrier)
    for driver in drivers:
        driver.close()
    assert not errors, errors[:3]
    return sum(received) / (max(finished) - start)


def inprocess_aggregate(frames: list, graphs: int, per_graph: int) -> float:
    """Outputs/s of `graphs` bare face_detection graphs fed from as many threads, `per_graph` frames each."""
    use_wheel_resources()
    counts = [0] * graphs
    last = [0.0] * graphs

    def observer(index: int):
        def on_packet(_stream: str, _packet: mp.Packet) -> None:
            try:  # an exception escaping into MediaPipe aborts the process
                counts[index] += 1
                last[index] = time.perf_counter()
            except BaseException:
                pass
        return on_packet

    def image(frame):
        return mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame)

    instances = []
    for index in range(graphs):  # build and warm each graph before the clock
        graph = mp.CalculatorGraph(graph_config=FACE_GRAPH)
        graph.observe_output_stream("detections", observer(index))
        graph.start_run()
        graph.add_packet_to_input_stream("image", image(frames[0]), 0)
        graph.wait_until_idle()
        instances.append(graph)
    barrier = threading.Barrier(graphs + 1)

    def run(index: int) -> None:
        graph = instances[index]
        barrier.wait()
        for number in range(per_graph):
            graph.add_packet_to_input_stream("image", image(frames[(number + 1) % len(frames)]), number + 1)
        graph.close()

    start = run_together(run, graphs, barrier)
    assert counts == [per_graph + 1] * graphs, counts
    return graphs * per_graph / (max(last) - start)


def compare(name: str, runs: dict[str, object], total: int, streams: int, rounds: int,
            goal: str, note: str) -> dict[str, float]:
    """Interleaved rounds of run(count, total // count) for count 1 and `streams`; reports and returns each ratio."""
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):  # interleave to share the machine's noise
        for side, run in runs.items():
            for count in (1, streams):
                rates.setdefault((side, count), []).append(run(count, total // count))
    ratios = {}
    for side in runs:
        one, many = max(rates[(side, 1)]), max(rates[(side, streams)])
        ratios[side] = many / one
        report(f"P6 {name} {side}, {streams} / 1", many / one, goal if side == "ours" else "reference",
               f"{streams}x {many:.0f}/s, 1x {one:.0f}/s (best of {rounds} x {total} requests; {note})")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2400, help="pass-through requests per run, all streams")
    parser.add_argument("--frames", type=int, default=320, help="face_detection frames per run, all streams")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = f"{len(__import__('os').sched_getaffinity(0))} cores"
    value = {"in": np.arange(16, dtype=np.float32)}
    passthrough = [make_request("passthrough", value)]
    frames = list(pan_zoom(astronaut(), args.frames // args.streams + 1))
    faces = [make_request("face_detection", {"image": frame}) for frame in frames]
    echo, echo_address = start_echo_server()
    ack, ack_address = start_ack_server()
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        for address in (echo_address, server.address):  # warm both up
            aggregate(address, passthrough, 2, 200)
        inprocess_aggregate(frames, 1, len(frames) - 1)  # asserts a face in every frame: no stream waits forever
        ratios = compare("pass-through FP32[16]",
                         {"ours": lambda n, each: aggregate(server.address, passthrough, n, each),
                          "echo": lambda n, each: aggregate(echo_address, passthrough, n, each)},
                         args.count, args.streams, args.rounds, ">= 1.0", cores)
        report("P6 pass-through scaling, ours / echo", ratios["ours"] / ratios["echo"], ">= 0.95",
               f"ours {args.streams}/1 {ratios['ours']:.3f}, echo {args.streams}/1 {ratios['echo']:.3f}")
        ratios = compare("face_detection 320x320",
                {"ours": lambda n, each: aggregate(server.address, faces, n, each),
                 "in-process": lambda n, each: inprocess_aggregate(frames, n, each),
                 "ack transport": lambda n, each: aggregate(ack_address, faces, n, each)},
                args.frames, args.streams, args.rounds, ">= 1.0", cores)
        report("P6 face_detection scaling, ours / ack transport", ratios["ours"] / ratios["ack transport"], ">= 0.95",
               f"ours {args.streams}/1 {ratios['ours']:.3f}, ack transport {args.streams}/1 "
               f"{ratios['ack transport']:.3f}, in-process {args.streams}/1 {ratios['in-process']:.3f}")
    finally:
        server.stop()
        echo.stop(0)
        ack.stop(0)


if __name__ == "__main__":
    main()
