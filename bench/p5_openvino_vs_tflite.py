"""P5: what OpenVINO buys inside a graph: our OpenVINO inference node against MediaPipe's own TFLite inference.

P5 = median per-frame time of the OpenVINOInferenceCalculator (with its session node, in a PythonGraph)
     / median per-frame time of MediaPipe's InferenceCalculator (TFLite + XNNPACK, its CPU default)
     on the same .tflite model from the wheel and the same input (goal <= 0.5)

Both sides start from the same uint8 RGB image at the model's input size and end with the model's
outputs delivered to a Python callback. MediaPipe: TensorConverterCalculator (scaling to [-1, 1]) ->
InferenceCalculator, the output tensor vector observed as a packet (not even copied to Python
floats: the cheapest MediaPipe path). Ours: the same scaling in numpy, a TensorValue added to a
PythonGraph whose inference node runs the model compiled by OpenVINO (f32, as the server compiles
it) and emits one TensorValue per output, observed. The two are timed frame by frame, interleaved
(MediaPipe, ours, MediaPipe, ...), after an untimed warm-up that loads/compiles the model. The bare
`infer()` time of the compiled model is printed too: the gap to "ours" is the node's own overhead.
One line per model; the P5 figure is the geometric mean of the per-model ratios.

The same two sides are also timed in blocks of --block frames (alternating which goes first), printed
as context: run frame by frame, each side starts right after the other, whose threads may still be
spinning on this 2-core machine (XNNPACK's pool after MediaPipe, OpenVINO's TBB workers after ours),
and OpenVINO's two inference threads suffer most from that. --gap-ms idles after every frame, as a
camera's pace would; with gaps both sides start cold and OpenVINO loses more of its lead.

Run: .venv/bin/python bench/p5_openvino_vs_tflite.py [--frames N] [--models a,b,...] [--block B] [--gap-ms G]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from common import report
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2

from ovms_notebook.calculators.openvino import bind_sessions
from ovms_notebook.codec import TensorValue
from ovms_notebook.engine.python.scheduler import PythonGraph
from ovms_notebook.framework.protos import import_wheel_protos
from ovms_notebook.models import ModelRepository, wheel_model_repository
from ovms_notebook.sources import astronaut

MODELS = ("face_detection_short_range", "palm_detection_lite", "hand_landmark_full", "pose_detection")

MEDIAPIPE_GRAPH = """
input_stream: "image"
output_stream: "tensors"
node {{ calculator: "TensorConverterCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:input"
  options {{ [mediapipe.TensorConverterCalculatorOptions.ext] {{ output_tensor_float_range {{ min: -1 max: 1 }} }} }} }}
node {{ calculator: "InferenceCalculator" input_stream: "TENSORS:input" output_stream: "TENSORS:tensors"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{path}" delegate {{ xnnpack {{}} }} }} }} }}
"""

OPENVINO_GRAPH = """
input_stream: "image"
{outputs}
node {{
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:session"
  options {{ [mediapipe.OpenVINOModelServerSessionCalculatorOptions.ext] {{ servable_name: "{model}" }} }}
}}
node {{
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:session"
  input_stream: "INPUT:image"
  {output_streams}
  options {{ [mediapipe.OpenVINOInferenceCalculatorOptions.ext] {{
    tag_to_input_tensor_names {{ key: "INPUT" value: "{input}" }}
    {output_map}
  }} }}
}}
"""


class MediaPipeSide:
    """The .tflite model in MediaPipe's own graph; `run(image)` returns once the output packet arrived."""

    def __init__(self, path: Path) -> None:
        self.graph = mp.CalculatorGraph(graph_config=MEDIAPIPE_GRAPH.format(path=path))
        self.arrived = threading.Event()
        self.graph.observe_output_stream("tensors", lambda _stream, _packet: self.arrived.set())
        self.graph.start_run()
        self.timestamp = 0

    def run(self, image: np.ndarray) -> None:
        self.arrived.clear()
        packet = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=image)
        self.graph.add_packet_to_input_stream("image", packet, self.timestamp)
        self.timestamp += 1
        self.arrived.wait()

    def close(self) -> None:
        self.graph.close()


class OpenVINOSide:
    """The same model behind our session + inference nodes; `run(image)` returns once every output arrived."""

    def __init__(self, models: ModelRepository, name: str) -> None:
        version = models.resolve(name)
        (self.input,) = version.inputs
        outputs = [spec.name for spec in version.outputs]
        tags = {output: f"OUT{i}" for i, output in enumerate(outputs)}
        text = OPENVINO_GRAPH.format(
            model=name,
            input=self.input.name,
            outputs="\n".join(f'output_stream: "o{i}"' for i in range(len(outputs))),
            output_streams="\n  ".join(f'output_stream: "{tags[o]}:o{i}"' for i, o in enumerate(outputs)),
            output_map="\n    ".join(f'tag_to_output_tensor_names {{ key: "{tags[o]}" value: "{o}" }}'
                                     for o in outputs),
        )
        import_wheel_protos()
        config, sessions = bind_sessions(text_format.Parse(text, calculator_pb2.CalculatorGraphConfig()), models)
        self.graph = PythonGraph(config)
        self.received = 0
        for i in range(len(outputs)):
            self.graph.observe_output_stream(f"o{i}", self._count)
        self.graph.start_run(sessions)
        self.expected = len(outputs)
        self.timestamp = 0
        self.version = version

    def _count(self, _stream: str, _value: object, _timestamp: int) -> None:
        self.received += 1

    def tensor(self, image: np.ndarray) -> TensorValue:
        x = image.astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0)
        return TensorValue(self.input.name, "FP32", (1, *x.shape), x.tobytes())

    def run(self, image: np.ndarray) -> None:
        self.received = 0
        self.graph.add_packet_to_input_stream("image", self.tensor(image), self.timestamp)
        self.timestamp += 1
        assert self.received == self.expected, (self.received, self.expected)

    def bare(self, image: np.ndarray) -> float:
        """Seconds for one bare infer() of the compiled model (the node's floor)."""
        x = self.tensor(image).array()
        start = time.perf_counter()
        self.version.infer({self.input.name: x})
        return time.perf_counter() - start

    def close(self) -> None:
        self.graph.close()


def measure(models: ModelRepository, folder: Path, name: str, frames: int, block: int, gap: float) -> float:
    ours = OpenVINOSide(models, name)
    height, width = ours.input.shape[1:3]
    image = np.ascontiguousarray(cv2.resize(astronaut(), (width, height), interpolation=cv2.INTER_AREA))
    theirs = MediaPipeSide(folder / name / "1" / "model.tflite")
    for _ in range(5):  # warm-up: interpreter set-up, first inferences
        theirs.run(image)
        ours.run(image)

    def timed(run: Callable[[np.ndarray], object]) -> float:
        start = time.perf_counter()
        run(image)
        elapsed = time.perf_counter() - start
        if gap:
            time.sleep(gap)
        return elapsed

    # The figure: frame by frame, MediaPipe then ours (then the bare infer, which follows ours).
    mediapipe_times, our_times, bare_times = [], [], []
    for _ in range(frames):
        mediapipe_times.append(timed(theirs.run))
        our_times.append(timed(ours.run))
        bare_times.append(ours.bare(image))
    # Context: blocks of `block` frames each, alternating which side goes first.
    block_theirs, block_ours = [], []
    for round_ in range(max(1, frames // block)):
        sides = [(theirs.run, block_theirs), (ours.run, block_ours)]
        for run, times in sides if round_ % 2 == 0 else sides[::-1]:
            times.extend(timed(run) for _ in range(block))
    theirs.close()
    ours.close()
    ms = {key: statistics.median(values) * 1000 for key, values in (
        ("mp", mediapipe_times), ("ours", our_times), ("bare", bare_times), ("block_mp", block_theirs),
        ("block_ours", block_ours))}
    ratio = ms["ours"] / ms["mp"]
    report(
        f"P5 {name} ({width}x{height})", ratio, "<= 0.5",
        f"ours {ms['ours']:.2f} ms / MediaPipe TFLite {ms['mp']:.2f} ms per frame, frame-interleaved; in blocks of "
        f"{block}: {ms['block_ours']:.2f} / {ms['block_mp']:.2f} = {ms['block_ours'] / ms['block_mp']:.3f}; "
        f"bare OpenVINO infer {ms['bare']:.2f} ms; n={frames}",
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--block", type=int, default=20, help="frames per block in the block-interleaved context")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="idle time after each frame (a camera's pace)")
    args = parser.parse_args()
    names = [name for name in args.models.split(",") if name]
    with tempfile.TemporaryDirectory() as tmp:
        config = wheel_model_repository(tmp, names)
        models = ModelRepository(config)
        ratios = [measure(models, config.parent, name, args.frames, args.block, args.gap_ms / 1000)
                  for name in names]
    mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    report("P5 (geometric mean)", mean, "<= 0.5", f"over {len(ratios)} models: {', '.join(names)}")


if __name__ == "__main__":
    main()
