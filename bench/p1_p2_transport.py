"""P1 and P2: what the server adds over the transport floor, on the pass-through graph.

P1 = median stream round trip through the pass-through graph / the same through a raw grpcio echo (goal <= 1.3)
P2 = pipelined throughput through the pass-through graph / the same through the echo (goal >= 0.8)
Floor: MediaPipe's own add->observer round trip on the same graph in-process, measured beside them, so
the note can say how much of the gap is the framework: (echo + MediaPipe) / echo is the best P1 possible.

Run: .venv/bin/python bench/p1_p2_transport.py [--count N]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import REPO, make_request, median_ms, pipelined, report, round_trips, start_echo_server

import ovms_notebook


def mediapipe_round_trips(count: int) -> list[float]:
    """Seconds per add -> observer callback on the pass-through graph, in-process, no server."""
    import threading
    import time

    import mediapipe as mp

    from ovms_notebook.codec import pack_tensor

    done = threading.Event()
    graph = mp.CalculatorGraph(graph_config=(REPO / "graphs" / "passthrough" / "graph.pbtxt").read_text())

    def on_packet(_stream, _packet) -> None:
        done.set()

    graph.observe_output_stream("out", on_packet)
    graph.start_run()
    blob = pack_tensor("in", "FP32", [16], np.arange(16, dtype=np.float32).tobytes())
    times = []
    for index in range(count):
        done.clear()
        start = time.perf_counter()
        graph.add_packet_to_input_stream("in", mp.packet_creator.create_string(blob), index)
        done.wait(5)
        times.append(time.perf_counter() - start)
    graph.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    value = {"in": np.arange(16, dtype=np.float32)}
    messages = [make_request("passthrough", value) for _ in range(1)]

    def message_for(_index: int):
        return messages[0]

    echo, echo_address = start_echo_server()
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        for address in (echo_address, server.address):  # warm both up
            round_trips(address, message_for, 200)
        echo_rt, ours_rt, mp_rt = [], [], []
        for _ in range(3):  # interleave to share the machine's noise
            echo_rt += round_trips(echo_address, message_for, args.count // 3)
            ours_rt += round_trips(server.address, message_for, args.count // 3)
            mp_rt += mediapipe_round_trips(args.count // 3)
        report("P1 stream round trip, pass-through / echo", median_ms(ours_rt) / median_ms(echo_rt), "<= 1.3",
               f"ours {median_ms(ours_rt):.3f} ms, echo {median_ms(echo_rt):.3f} ms (median of {len(ours_rt)})")
        floor = (median_ms(echo_rt) + median_ms(mp_rt)) / median_ms(echo_rt)
        report("P1 floor, (echo + MediaPipe add->callback in-process) / echo", floor, "reference",
               f"MediaPipe alone {median_ms(mp_rt):.3f} ms; "
               f"ours / floor = {median_ms(ours_rt) / (median_ms(echo_rt) + median_ms(mp_rt)):.3f}")
        echo_tp, ours_tp = [], []
        for _ in range(3):
            echo_tp.append(pipelined(echo_address, message_for, args.count))
            ours_tp.append(pipelined(server.address, message_for, args.count))
        report("P2 pipelined throughput, pass-through / echo", max(ours_tp) / max(echo_tp), ">= 0.8",
               f"ours {max(ours_tp):.0f}/s, echo {max(echo_tp):.0f}/s (best of 3 x {args.count})")
    finally:
        server.stop()
        echo.stop(0)


if __name__ == "__main__":
    main()
