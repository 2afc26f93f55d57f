"""Load: 8 concurrent tritonclient streams x 10,000 pass-through requests and 8 x 300 face-detection frames,
every response checked (count, order, timestamps 0..N-1 per stream, echoed values).

Figures, each beside a baseline run in the same process:
  passthrough 8 streams ÷ raw grpcio echo 8 streams (bench/common.py, the transport floor, same client,
      same window): throughput ratio (goal >= 0.8) and both p50/p99 latencies;
  passthrough 8 streams ÷ 1 stream: throughput ratio (do streams add up or fight?);
  face_detection 8 streams ÷ 1 stream: throughput ratio, with p50/p99.
Every stream keeps at most --window requests unanswered (latency = a request's own trip, not a queue).
Absolute figures on a shared 2-core machine are noise; the ratios are the figure.

Run: .venv/bin/python bench/load.py [--requests N] [--frames N] [--streams S] [--window W]
"""

from __future__ import annotations

import argparse
import sys

from common import REPO, start_echo_server

import ovms_notebook
from ovms_notebook.sources import astronaut, pan_zoom
from tests.loadgen import LoadResult, has_output, image_inputs, passthrough_check, passthrough_inputs, run_streams


def echo_check(stream: int, number: int, result: object) -> str:
    value = result.as_numpy("in")  # type: ignore[attr-defined]
    expected = stream * 100_000 + number
    return "" if value is not None and value.tolist() == [expected] else f"expected [{expected}], got {value}"


def line(name: str, result: LoadResult, streams: int) -> None:
    problems = result.problems()
    print(f"{name:<28} {streams} x {result.requests:>5}: {result.throughput:8.0f} responses/s  "
          f"p50 {result.latency_ms(0.5):7.2f} ms  p99 {result.latency_ms(0.99):7.2f} ms  "
          f"{'all accounted for, in order' if not problems else f'PROBLEMS: {problems[:3]}'}", flush=True)
    if problems:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--window", type=int, default=32, help="unanswered requests per stream (frames: a quarter)")
    args = parser.parse_args()
    s, n = args.streams, args.requests
    frame_window = max(1, args.window // 4)
    echo, echo_address = start_echo_server()
    with ovms_notebook.serve(REPO / "graphs") as server:
        ours = server.address
        # warm-up: tritonclient, both servers, the face model
        run_streams(echo_address, "passthrough", passthrough_inputs, echo_check, streams=s, requests=100)
        run_streams(ours, "passthrough", passthrough_inputs, passthrough_check, streams=s, requests=100)
        frames = list(pan_zoom(astronaut(), args.frames))
        faces, detections = image_inputs(frames), has_output("detections")
        run_streams(ours, "face_detection", faces, detections, streams=1, requests=10, window=frame_window)

        echo8 = run_streams(echo_address, "passthrough", passthrough_inputs, echo_check, streams=s, requests=n,
                            window=args.window)
        line("raw grpcio echo", echo8, s)
        ours8 = run_streams(ours, "passthrough", passthrough_inputs, passthrough_check, streams=s, requests=n,
                            window=args.window)
        line("passthrough", ours8, s)
        ours1 = run_streams(ours, "passthrough", passthrough_inputs, passthrough_check, streams=1, requests=n,
                            window=args.window)
        line("passthrough", ours1, 1)
        face8 = run_streams(ours, "face_detection", faces, detections, streams=s, requests=args.frames,
                            window=frame_window)
        line("face_detection 320x320", face8, s)
        face1 = run_streams(ours, "face_detection", faces, detections, streams=1, requests=args.frames,
                            window=frame_window)
        line("face_detection 320x320", face1, 1)
    echo.stop(None)
    print(f"passthrough {s} streams ÷ echo {s} streams, throughput: {ours8.throughput / echo8.throughput:.3f} "
          f"(goal >= 0.8); p99 {ours8.latency_ms(0.99):.2f} vs {echo8.latency_ms(0.99):.2f} ms")
    print(f"passthrough {s} streams ÷ 1 stream, throughput: {ours8.throughput / ours1.throughput:.3f}")
    print(f"face_detection {s} streams ÷ 1 stream, throughput: {face8.throughput / face1.throughput:.3f}")
    print(f"window: {args.window} unanswered requests per stream ({frame_window} for frames)")


if __name__ == "__main__":
    main()
