"""What OVMS's iris demo costs here: irisTracking frames/s against face detection alone, over one stream each.

IRIS = frames/s of "irisTracking" (graphs/iris_tracking, the demo pbtxt: FaceLandmarkFrontCpu natively,
       the iris subgraphs expanded with the legacy TfLite chain and the renderer as Python nodes, the
       iris model on OpenVINO, the native AnnotationOverlayCalculator)
     / frames/s of "face_detection" (graphs/face_detection: FaceDetectionShortRangeCpu only, native),
each over one ModelStreamInfer stream in lock-step (send a frame, wait for its answer), 320x320 frames
of the camera panning over the astronaut; the two runs alternate in the same process and server.

    .venv/bin/python bench/iris_tracking.py [--frames 40] [--rounds 3]
"""

from __future__ import annotations

import argparse

from common import REPO, best_interleaved, lockstep_frames_per_second, report

import ovms_notebook
from ovms_notebook.sources import astronaut, pan_zoom

#: model -> (its image input, the outputs that finish a frame)
MODELS = {"irisTracking": ("first_input_video", frozenset({"output"})),
          "face_detection": ("image", frozenset({"detections"}))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per run (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the two runs")
    args = parser.parse_args()
    frames = list(pan_zoom(astronaut(), args.frames + 1, (320, 320)))
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        best = best_interleaved(
            lambda model: lockstep_frames_per_second(server.address, model, MODELS[model][0], frames,
                                                     MODELS[model][1]), MODELS, args.rounds)
    finally:
        server.stop()
    iris, faces = best["irisTracking"], best["face_detection"]
    report("IRIS frames/s, iris demo graph / face detection only", iris / faces, "informational",
           f"irisTracking {iris:.1f}/s, face_detection {faces:.1f}/s "
           f"(best of {args.rounds} x {args.frames} frames 320x320, lock-step, one stream each)")


if __name__ == "__main__":
    main()
