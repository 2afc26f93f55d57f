"""What honouring OVMS's model entries costs: the OVMS demos served with their model entries vs without.

ENTRIES = frames/s of a demo graph served from a folder laid out as OVMS's demo (config.json lists the
          model entries OVMS's MediaPipe fork infers on, each `<name>/1/<file>.tflite` copied from the wheel;
          the iris demo's face detection, face landmark and iris subgraphs then infer on their entries through
          OpenVINOInferenceCalculator, with the tensor nodes around them on the Python side, and so do the
          holistic demo's face detection, face landmark, pose detection, pose landmark and hand (landmark,
          recrop) subgraphs)
        / frames/s of the same pbtxt served from the examples' config.json (no model entries: the wheel's
          files, face detection and landmarks natively on TFLite, the iris model through the Python
          TfLiteInferenceCalculator on OpenVINO),
for `irisTracking` and `holisticTracking`, each over one ModelStreamInfer stream in lock-step (send a
frame, wait for its answer), 320x320 frames of the camera panning over the astronaut; both servers run in
this process and the four runs alternate.

    .venv/bin/python bench/model_entries.py [--frames 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import REPO, best_interleaved, lockstep_frames_per_second, report

import ovms_notebook
from ovms_notebook.models.wheel import wheel_modules_dir
from ovms_notebook.sources import astronaut, pan_zoom

EXAMPLES = REPO / "ovms_notebook" / "examples"
INPUT, DONE = "first_input_video", frozenset({"output"})
#: graph -> (its folder and pbtxt under the examples)
DEMOS = {
    "irisTracking": ("iris_tracking", "iris_tracking.pbtxt"),
    "holisticTracking": ("holistic_tracking", "holistic_tracking.pbtxt"),
}
#: model entry -> its .tflite in the wheel, as OVMS's demos serve them
MODELS = {
    "face_detection": "face_detection/face_detection_short_range.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "hand_recrop": "holistic_landmark/hand_recrop.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
}


def demo_folder(root: Path) -> Path:
    """Both demos, unchanged, with OVMS's model entries beside them."""
    for folder, _ in DEMOS.values():
        shutil.copytree(EXAMPLES / folder, root / folder)
    for name, file in MODELS.items():
        (root / name / "1").mkdir(parents=True)
        shutil.copyfile(wheel_modules_dir() / file, root / name / "1" / Path(file).name)
    (root / "config.json").write_text(
        json.dumps(
            {
                "model_config_list": [{"config": {"name": name, "base_path": name}} for name in MODELS],
                "mediapipe_config_list": [
                    {"name": graph, "base_path": folder, "graph_path": pbtxt}
                    for graph, (folder, pbtxt) in DEMOS.items()
                ],
            }
        )
    )
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="timed frames per run (plus one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the four runs")
    args = parser.parse_args()
    frames = list(pan_zoom(astronaut(), args.frames + 1, (320, 320)))
    with tempfile.TemporaryDirectory() as tmp:
        wheel = ovms_notebook.serve(EXAMPLES)
        entries = ovms_notebook.serve(demo_folder(Path(tmp)))
        servers = {"wheel": wheel, "entries": entries}
        try:
            runs = [f"{graph} {side}" for graph in DEMOS for side in servers]
            best = best_interleaved(
                lambda run: lockstep_frames_per_second(
                    servers[run.split()[1]].address, run.split()[0], INPUT, frames, DONE
                ),
                runs,
                args.rounds,
            )
        finally:
            entries.stop()
            wheel.stop()
    for graph in DEMOS:
        with_entries, without = best[f"{graph} entries"], best[f"{graph} wheel"]
        report(
            f"ENTRIES {graph} frames/s, model entries / wheel files",
            with_entries / without,
            "informational",
            f"with entries {with_entries:.1f}/s, wheel files {without:.1f}/s "
            f"(best of {args.rounds} x {args.frames} frames 320x320, lock-step, one stream each)",
        )


if __name__ == "__main__":
    main()
