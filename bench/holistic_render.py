"""What drawing costs: OVMS's holistic demo graph (landmarks drawn, image out) against the landmarks alone.

RENDER = frames/s of "holisticTracking" (graphs/holistic_tracking, the demo pbtxt: HolisticLandmarkCpu,
         the render subgraph expanded with its Python nodes, the native AnnotationOverlayCalculator)
       / frames/s of "holisticLandmarks" (graphs/holistic: HolisticLandmarkCpu only),
each over one ModelStreamInfer stream in lock-step (send a frame, wait for its answer), 320x320 frames
of the camera panning over the astronaut; the two runs alternate in the same process and server.

    .venv/bin/python bench/holistic_render.py [--frames 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from common import REPO, StreamDriver, make_request, report

import ovms_notebook
from ovms_notebook.sources import astronaut, pan_zoom

INPUT = "first_input_video"
#: The outputs that finish a frame, per model (the landmarks graph: pose and face, which every frame has).
DONE = {"holisticTracking": frozenset({"output"}),
        "holisticLandmarks": frozenset({"pose_landmarks", "face_landmarks"})}


def lockstep(address: str, model: str, frames: list) -> float:
    """Frames/s over one stream, one frame in flight; frame 0 (model loading) is not timed."""
    driver = StreamDriver(address)
    start = 0.0
    for timestamp, frame in enumerate(frames):
        if timestamp == 1:
            start = time.perf_counter()
        driver.send(make_request(model, {INPUT: frame}))
        seen: set[str] = set()
        while not DONE[model] <= seen:
            response = driver.receive()
            assert not response.error_message, response.error_message
            out = response.infer_response
            assert out.parameters["OVMS_MP_TIMESTAMP"].int64_param == timestamp
            seen.add(out.outputs[0].name)
    elapsed = time.perf_counter() - start
    driver.close()
    return (len(frames) - 1) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per run (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the two runs")
    args = parser.parse_args()
    frames = list(pan_zoom(astronaut(), args.frames + 1, (320, 320)))
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        rates: dict[str, list[float]] = {model: [] for model in DONE}
        for _ in range(args.rounds):
            for model in DONE:
                rates[model].append(lockstep(server.address, model, frames))
    finally:
        server.stop()
    drawn, plain = max(rates["holisticTracking"]), max(rates["holisticLandmarks"])
    report("RENDER holistic frames/s, drawn demo graph / landmarks only", drawn / plain, "informational",
           f"holisticTracking {drawn:.1f}/s, holisticLandmarks {plain:.1f}/s "
           f"(best of {args.rounds} x {args.frames} frames 320x320, lock-step, one stream each)")


if __name__ == "__main__":
    main()
