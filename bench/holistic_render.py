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

from common import REPO, best_interleaved, lockstep_frames_per_second, report

import ovms_notebook
from ovms_notebook.sources import astronaut, pan_zoom

INPUT = "first_input_video"
#: The outputs that finish a frame, per model (the landmarks graph: pose and face, which every frame has).
DONE = {"holisticTracking": frozenset({"output"}),
        "holisticLandmarks": frozenset({"pose_landmarks", "face_landmarks"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per run (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the two runs")
    args = parser.parse_args()
    frames = list(pan_zoom(astronaut(), args.frames + 1, (320, 320)))
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        best = best_interleaved(
            lambda model: lockstep_frames_per_second(server.address, model, INPUT, frames, DONE[model]),
            DONE, args.rounds)
    finally:
        server.stop()
    drawn, plain = best["holisticTracking"], best["holisticLandmarks"]
    report("RENDER holistic frames/s, drawn demo graph / landmarks only", drawn / plain, "informational",
           f"holisticTracking {drawn:.1f}/s, holisticLandmarks {plain:.1f}/s "
           f"(best of {args.rounds} x {args.frames} frames 320x320, lock-step, one stream each)")


if __name__ == "__main__":
    main()
