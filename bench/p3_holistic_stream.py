"""P3: what the server costs a real tracking graph, over a stream, against the bare graph.

P3 = holistic frames/s over one ModelStreamInfer stream (model "holisticLandmarks")
     / frames/s of the same graphs/holistic/graph.pbtxt driven in-process by mp.CalculatorGraph, no server
     (goal >= 0.95)

A frame counts once both its pose_landmarks and face_landmarks have arrived (a frame produces one
response per output packet; the astronaut's hands are not in view, so the hand outputs produce
no packet and are not waited for). Each side observes all four outputs, as the server does.
Two ways of driving, both printed, each with its own in-process twin:
  pipelined (the P3 figure): send every frame, half-close, count the frames complete by the end;
      the rate runs from the first send to the response that completed the last frame
      (in-process: add every packet, close, same count and clock);
  lock-step: send one frame, wait for its two outputs, send the next
      (in-process: add one packet, wait for the same two outputs).
Each stream / graph first gets one untimed frame, which loads the models (0.1-0.7 s). Requests
are built before the clock starts (client work); in-process packets are created inside the
clock, as the server decodes its requests inside its own. Frames: 320x320 pan_zoom over
scikit-image's astronaut, no cut (every frame holds the person; the script checks it).

Run: .venv/bin/python bench/p3_holistic_stream.py [--frames N] [--rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time

import mediapipe as mp
from common import REPO, StreamDriver, make_request, report

import ovms_notebook
from ovms_notebook.engine.native import use_wheel_resources
from ovms_notebook.sources import astronaut, pan_zoom

MODEL = "holisticLandmarks"
INPUT = "first_input_video"
OUTPUTS = ("pose_landmarks", "face_landmarks", "left_hand_landmarks", "right_hand_landmarks")
EXPECTED = frozenset(("pose_landmarks", "face_landmarks"))
GRAPH_TEXT = (REPO / "graphs" / "holistic" / "graph.pbtxt").read_text()
TIMESTAMP = "OVMS_MP_TIMESTAMP"


def holistic_frames(count: int, size: tuple[int, int] = (320, 320)) -> list:
    """`count` frames of the camera moving over the astronaut (frame 0 is the untimed warm-up)."""
    return list(pan_zoom(astronaut(), count, size))


class Completion:
    """Which timestamps have all EXPECTED outputs, and when the last one came (thread-safe)."""

    def __init__(self) -> None:
        self.seen: dict[int, set[str]] = {}
        self.done: dict[int, float] = {}
        self.condition = threading.Condition()

    def add(self, name: str, timestamp: int) -> None:
        now = time.perf_counter()
        with self.condition:
            names = self.seen.setdefault(timestamp, set())
            names.add(name)
            if timestamp not in self.done and names >= EXPECTED:
                self.done[timestamp] = now
                self.condition.notify_all()

    def wait(self, timestamp: int, timeout: float = 30.0) -> None:
        with self.condition:
            if not self.condition.wait_for(lambda: timestamp in self.done, timeout):
                raise TimeoutError(f"frame {timestamp}: got only {sorted(self.seen.get(timestamp, ()))}")

    def rate(self, start: float, first: int) -> tuple[float, int]:
        """Frames/s and count of the frames from timestamp `first` on, clocked to the last completion."""
        times = [t for ts, t in self.done.items() if ts >= first]
        return (len(times) / (max(times) - start) if times else 0.0), len(times)


# -- in-process, no server ------------------------------------------------------------------------------------


class InProcessGraph:
    """graphs/holistic/graph.pbtxt on a bare mp.CalculatorGraph, outputs recorded by timestamp."""

    def __init__(self, text: str = GRAPH_TEXT) -> None:
        use_wheel_resources()
        self.completion = Completion()
        self.graph = mp.CalculatorGraph(graph_config=text)
        for name in OUTPUTS:
            self.graph.observe_output_stream(name, self._observer(name))
        self.graph.start_run()

    def _observer(self, name: str):
        completion = self.completion

        def on_packet(_stream: str, packet: mp.Packet) -> None:
            with contextlib.suppress(BaseException):  # an exception escaping into MediaPipe aborts the process
                completion.add(name, packet.timestamp.value)

        return on_packet

    def add(self, frame, timestamp: int) -> None:
        packet = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame)
        self.graph.add_packet_to_input_stream(INPUT, packet, timestamp)

    def close(self) -> None:
        self.graph.close()


def inprocess_lockstep(frames: list) -> tuple[float, int]:
    graph = InProcessGraph()
    graph.add(frames[0], 0)
    graph.completion.wait(0)
    start = time.perf_counter()
    for timestamp in range(1, len(frames)):
        graph.add(frames[timestamp], timestamp)
        graph.completion.wait(timestamp)
    graph.close()
    return graph.completion.rate(start, 1)


def inprocess_pipelined(frames: list) -> tuple[float, int]:
    graph = InProcessGraph()
    graph.add(frames[0], 0)
    graph.completion.wait(0)
    start = time.perf_counter()
    for timestamp in range(1, len(frames)):
        graph.add(frames[timestamp], timestamp)
    graph.close()  # close every input, wait until done: the half-close
    return graph.completion.rate(start, 1)


# -- over the server ------------------------------------------------------------------------------------------


def _record(completion: Completion, response) -> None:
    assert not response.error_message, response.error_message
    out = response.infer_response
    completion.add(out.outputs[0].name, out.parameters[TIMESTAMP].int64_param)


def _receive_until(driver: StreamDriver, completion: Completion, timestamp: int) -> None:
    while timestamp not in completion.done:
        _record(completion, driver.receive())


def stream_lockstep(address: str, requests: list) -> tuple[float, int]:
    """Counter timestamps: the server numbers the stream's requests 0, 1, 2, ..."""
    driver, completion = StreamDriver(address), Completion()
    driver.send(requests[0])
    _receive_until(driver, completion, 0)
    start = time.perf_counter()
    for timestamp in range(1, len(requests)):
        driver.send(requests[timestamp])
        _receive_until(driver, completion, timestamp)
    driver.close()
    return completion.rate(start, 1)


def stream_pipelined(address: str, requests: list) -> tuple[float, int]:
    driver, completion = StreamDriver(address), Completion()
    driver.send(requests[0])
    _receive_until(driver, completion, 0)
    start = time.perf_counter()
    for request in requests[1:]:
        driver.send(request)
    driver.outbox.put(None)  # half-close, then read to the end of the stream
    for response in driver.responses:
        _record(completion, response)
    driver.channel.close()
    return completion.rate(start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="timed frames per run (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the four runs")
    args = parser.parse_args()
    frames = holistic_frames(args.frames + 1)
    requests = [make_request(MODEL, {INPUT: frame}) for frame in frames]
    inprocess_lockstep(frames)  # warm-up; raises if a frame lacks pose or face, so no stream waits forever
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        runs = {"stream pipelined": [], "in-process pipelined": [], "stream lock-step": [], "in-process lock-step": []}
        for _ in range(args.rounds):  # interleave to share the machine's noise
            runs["stream pipelined"].append(stream_pipelined(server.address, requests))
            runs["in-process pipelined"].append(inprocess_pipelined(frames))
            runs["stream lock-step"].append(stream_lockstep(server.address, requests))
            runs["in-process lock-step"].append(inprocess_lockstep(frames))
        for name, results in runs.items():
            counts = {count for _, count in results}
            assert counts == {args.frames}, f"{name}: frames complete per run {sorted(counts)}, expected {args.frames}"
        best = {name: max(rate for rate, _ in results) for name, results in runs.items()}
        for mode in ("pipelined", "lock-step"):
            ours, bare = best[f"stream {mode}"], best[f"in-process {mode}"]
            report(f"P3 holistic {mode} frames/s, stream / in-process", ours / bare, ">= 0.95",
                   f"stream {ours:.1f}/s, in-process {bare:.1f}/s "
                   f"(best of {args.rounds} x {args.frames} frames 320x320)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
