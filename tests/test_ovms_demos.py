"""OVMS's own MediaPipe demo folders, laid out as OVMS's READMEs lay them out, served by ovms_notebook.

What a user moving between OVMS and ovms_notebook does: clone the demo folder, fetch the models with
the README's curl lines (`<base_path>/1/<name>.tflite`), and start the server on the demo's config
json. Nothing is read from OVMS's repository here: the pbtxt files are the project's byte-for-byte
copies (graphs/holistic_tracking, graphs/iris_tracking), the config json texts are embedded below,
and the .tflite files the curl lines download are the mediapipe wheel's own (the same files).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton

import ovms_notebook
from ovms_notebook.models.wheel import wheel_modules_dir
from ovms_notebook.sources import astronaut
from tests.conftest import GRAPHS, demo_frame_input

# openvinotoolkit/model_server demos/mediapipe/holistic_tracking/config_holistic.json, commit 7e4df0c7.
CONFIG_HOLISTIC = """{
    "model_config_list" : [
        { "config": {
                "name":"face_landmark",
                "base_path":"face_landmark",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"hand_landmark_full",
                "base_path":"hand_landmark_full",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"hand_recrop",
                "base_path":"hand_recrop",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"pose_detection",
                "base_path":"pose_detection",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"face_detection",
                "base_path":"face_detection_short_range",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"pose_landmark_full",
                "base_path":"pose_landmark_full",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        }
    ],
    "mediapipe_config_list": [
        {
            "name":"holisticTracking",
            "base_path":"./",
            "graph_path":"holistic_tracking.pbtxt"
        }
    ]
}
"""

# openvinotoolkit/model_server demos/mediapipe/iris_tracking/config_iris.json@7e4df0c7, one trailing space less.
CONFIG_IRIS = """{
    "model_config_list" : [
        { "config": {
                "name":"face_landmark",
                "base_path":"face_landmark",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
                "name":"face_detection",
                "base_path":"face_detection_short_range",
                "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
            }
        },
        { "config": {
            "name":"iris_landmark",
            "base_path":"iris_landmark",
            "plugin_config": {"PERFORMANCE_HINT": "LATENCY"}
          }
        }
    ],
    "mediapipe_config_list": [
        {
            "name":"irisTracking",
            "base_path":"./",
            "graph_path":"iris_tracking.pbtxt"
        }
    ]
}
"""

#: The files each demo README's curl lines download (as `<name>/1/<name>.tflite`), by the wheel's path for them.
CURLED = {
    "holistic_tracking": ["face_detection/face_detection_short_range", "face_landmark/face_landmark",
                          "hand_landmark/hand_landmark_full", "holistic_landmark/hand_recrop",
                          "iris_landmark/iris_landmark", "palm_detection/palm_detection_full",
                          "pose_detection/pose_detection", "pose_landmark/pose_landmark_full"],
    "iris_tracking": ["face_detection/face_detection_short_range", "face_landmark/face_landmark",
                      "iris_landmark/iris_landmark"],
}
DEMOS = {  # demo folder -> (config file, its text, graph name, models it serves)
    "holistic_tracking": ("config_holistic.json", CONFIG_HOLISTIC, "holisticTracking",
                          ["face_landmark", "hand_landmark_full", "hand_recrop", "pose_detection", "face_detection",
                           "pose_landmark_full"]),
    "iris_tracking": ("config_iris.json", CONFIG_IRIS, "irisTracking", ["face_landmark", "face_detection",
                                                                         "iris_landmark"]),
}


def demo_folder(root: Path, demo: str) -> Path:
    """`root` laid out as `cd model_server/demos/mediapipe/<demo>` after the README's curl lines; its config path."""
    config_name, text, _, _ = DEMOS[demo]
    shutil.copyfile(GRAPHS / demo / f"{demo}.pbtxt", root / f"{demo}.pbtxt")
    (root / config_name).write_text(text)
    for wheel_path in CURLED[demo]:
        name = wheel_path.split("/")[1]
        (root / name / "1").mkdir(parents=True)
        shutil.copyfile(wheel_modules_dir() / f"{wheel_path}.tflite", root / name / "1" / f"{name}.tflite")
    return root / config_name


@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_ovms_demo_folder_serves_its_models_and_graph(tmp_path: Path, demo: str) -> None:
    _, _, graph, models = DEMOS[demo]
    server = ovms_notebook.serve(demo_folder(tmp_path, demo))
    try:
        frame = astronaut()
        with triton.InferenceServerClient(server.address) as client:
            assert {name: client.is_model_ready(name) for name in [*models, graph]} == dict.fromkeys(
                [*models, graph], True)
            result = client.infer(graph, [demo_frame_input(frame)], outputs=[triton.InferRequestedOutput("output")])
    finally:
        server.stop()
    image = result.as_numpy("output")
    assert image.shape == frame.shape and image.dtype == np.uint8
    changed = np.any(image != frame, axis=-1)
    assert changed.sum() > 2_000
    np.testing.assert_array_equal(image[:40, 400:], frame[:40, 400:])  # the sky above the shuttle: untouched
    # Each demo's own colours on the face (rows 60-200, columns 150-300 of the photo).
    face = image[60:200, 150:300].reshape(-1, 3)
    colour = {"holistic_tracking": (0, 217, 231), "iris_tracking": (0, 0, 255)}[demo]  # face joints / iris ovals
    assert np.all(face == colour, axis=-1).sum() > 20
