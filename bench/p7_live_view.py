"""P7: does the live view keep up with a video stream, and does the kernel stay responsive meanwhile?

P7 live view = frames per second the live view draws for a 640x480 stream with overlays: a
     StreamConsole on "face_detection" fed by a FramePlayer as fast as the stream answers (fps=0,
     4 requests in flight) with pan_zoom frames over the astronaut; LiveOutputs draws each frame with
     its detection box (PIL) and encodes a PNG. Counted: completed redraws that drew a frame, per
     second of the measuring window (goal >= 20 fps). Beside it, the rate at which the stream answered frames in
     the same run, and shown / answered (1.0: every answered frame was drawn; the view coalesces,
     so less is allowed).
P7 cell latency = the time of a trivial "cell" (`sum(range(1000))` called and returned on the main
     thread, 200 times, one every 10 ms) while the stream and the live view run, p50 and p99 (goal
     < 50 ms), beside the same loop measured idle. Printed with it, the stricter lateness: from when
     each call was due to when it returned, which also counts waiting for the GIL to wake the main
     thread and the rest of any pause (a full garbage collection of this process, ~70-180 ms once
     mediapipe is imported, lands on whichever thread allocates), with the busy / idle ratio of the p99s.

Each run first sends one untimed frame (the model loads). Rounds alternate idle and busy
measurements, so a noisy shared machine affects both alike.

Run: .venv/bin/python bench/p7_live_view.py [--rounds R] [--warmup S]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time

from common import REPO, percentile_ms, report

import ovms_notebook
from ovms_notebook.sources import ASTRONAUT_FACE, astronaut, pan_zoom
from ovms_notebook.widgets import THREAD_PREFIX, FramePlayer, StreamConsole

SIZE = (480, 640)


def cell_latencies(count: int = 200, spacing: float = 0.01) -> tuple[list[float], list[float]]:
    """A trivial call on this (the main) thread, `count` times, one every `spacing` s.

    Returns (call-and-return seconds, seconds from when the call was due to when it returned): the
    second also counts the wait for the GIL to wake up, and every call due during a pause (a garbage
    collection, a long C call holding the GIL) counts the rest of that pause.
    """
    calls, late = [], []
    start = time.perf_counter()
    for index in range(count):
        due = start + index * spacing
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        begin = time.perf_counter()
        sum(range(1000))
        end = time.perf_counter()
        calls.append(end - begin)
        late.append(end - max(due, start))
    return calls, late


def play_round(console: StreamConsole, frames: list, warmup: float) -> tuple[float, float, tuple[list, list]]:
    """(frames drawn per second, frames answered per second, cell latencies), all over the same window
    while the player runs as fast as the stream answers."""
    console.new_stream()
    console.send({"image": frames[0]})  # untimed: the graph and its model load
    console.wait_for(1, timeout=60)
    answered = itertools.count()
    console.client.on_response(lambda _entry: next(answered))
    outputs = console.outputs
    player = FramePlayer(console, lambda: itertools.cycle(frames), fps=0)
    player.play()
    time.sleep(warmup)
    drawn_before, answered_before, start = outputs.frame_count, next(answered), time.perf_counter()
    latencies = cell_latencies()
    drawn, done, elapsed = outputs.frame_count, next(answered), time.perf_counter() - start
    player.close()
    console.close_stream()
    return (drawn - drawn_before) / elapsed, (done - answered_before - 1) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of playing before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="idle/busy rounds (default 3)")
    args = parser.parse_args()

    frames = list(pan_zoom(astronaut(), 60, SIZE, focus=ASTRONAUT_FACE))
    server = ovms_notebook.serve(REPO / "graphs")
    console = StreamConsole(server, "face_detection")
    try:
        shown, answered = [], []
        busy: tuple[list[float], list[float]] = ([], [])
        idle: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.rounds):
            for into, measured in zip(idle, cell_latencies(), strict=True):
                into += measured
            drawn_rate, answered_rate, latencies = play_round(console, frames, args.warmup)
            shown.append(drawn_rate)
            answered.append(answered_rate)
            for into, measured in zip(busy, latencies, strict=True):
                into += measured
    finally:
        console.close()
        server.stop()
    left = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert not left, f"widget threads left after close(): {left}"

    fps, answered_fps = statistics.median(shown), statistics.median(answered)
    print(f"P7 live view: {fps:.1f} fps shown  (goal >= 20)  stream answered {answered_fps:.1f} frames/s, "
          f"shown/answered {fps / answered_fps:.2f}; {SIZE[1]}x{SIZE[0]} face_detection with boxes, "
          f"{args.rounds} rounds of {len(busy[0]) // args.rounds} cells", flush=True)
    (busy_calls, busy_late), (idle_calls, idle_late) = busy, idle
    print(f"P7 cell latency: call-and-return p50 {percentile_ms(busy_calls, 0.5):.3f} ms, "
          f"p99 {percentile_ms(busy_calls, 0.99):.3f} ms while streaming  (goal < 50 ms)  idle p50 "
          f"{percentile_ms(idle_calls, 0.5):.3f} ms, p99 {percentile_ms(idle_calls, 0.99):.3f} ms", flush=True)
    print(f"P7 cell lateness (due -> returned): p50 {percentile_ms(busy_late, 0.5):.2f} ms, "
          f"p99 {percentile_ms(busy_late, 0.99):.2f} ms, max {max(busy_late) * 1000:.1f} ms while streaming  "
          f"idle p50 {percentile_ms(idle_late, 0.5):.2f} ms, p99 {percentile_ms(idle_late, 0.99):.2f} ms, "
          f"max {max(idle_late) * 1000:.1f} ms", flush=True)
    report("P7 cell lateness p99 busy/idle", percentile_ms(busy_late, 0.99) / percentile_ms(idle_late, 0.99),
           "informational", f"{percentile_ms(busy_late, 0.99):.2f} / {percentile_ms(idle_late, 0.99):.2f} ms")


if __name__ == "__main__":
    main()
