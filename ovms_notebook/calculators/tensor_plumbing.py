"""The rest of MediaPipe's face landmark subgraph around an inference on the Python side.

`FaceLandmarkCpu`, expanded with the fork's rewrite (ovms_notebook.framework.ovms_fork),
splits the model's two output tensors, turns the face flag into a presence
score, thresholds it, gates the landmark tensor on it and decodes 468
landmarks. Those nodes handle `std::vector<mediapipe::Tensor>` (or sit between
two nodes that do), so they run here as Python twins with MediaPipe v0.10.21's
semantics (calculators/core/split_vector_calculator.cc, gate_calculator.cc,
calculators/util/thresholding_calculator.cc, calculators/tensor/
tensors_to_floats_calculator.cc and tensors_to_landmarks_calculator.cc):

* `PythonSplitTensorVectorCalculator`: a list of tensors -> one list per range;
* `PythonTensorsToFloatsCalculator`: TENSORS -> FLOAT (one value) or FLOATS,
  SIGMOID activation or NONE;
* `PythonThresholdingCalculator`: FLOAT -> FLAG (value > threshold), ACCEPT, REJECT;
* `PythonGateCalculator`: untagged streams passed on while ALLOW is true (or
  DISALLOW false), a side packet or a stream; options `empty_packets_as_allow`
  and `allow`;
* `PythonTensorsToLandmarksCalculator`: TENSORS -> NORM_LANDMARKS / LANDMARKS.

Tensors are `TensorValue`s (what `OpenVINOInferenceCalculator` gives on
TENSORS) or float32 numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mediapipe.calculators.core.gate_calculator_pb2 import GateCalculatorOptions
from mediapipe.calculators.tensor.tensors_to_floats_calculator_pb2 import TensorsToFloatsCalculatorOptions
from mediapipe.calculators.tensor.tensors_to_landmarks_calculator_pb2 import TensorsToLandmarksCalculatorOptions
from mediapipe.calculators.util.thresholding_calculator_pb2 import ThresholdingCalculatorOptions

from ovms_notebook.calculators.tensors import tensor_array
from ovms_notebook.calculators.tflite import SplitTfLiteTensorVectorCalculator, TfLiteTensorsToLandmarksCalculator
from ovms_notebook.engine.python.api import Calculator

__all__ = [
    "PythonGateCalculator",
    "PythonSplitTensorVectorCalculator",
    "PythonTensorsToFloatsCalculator",
    "PythonTensorsToLandmarksCalculator",
    "PythonThresholdingCalculator",
]


class PythonSplitTensorVectorCalculator(SplitTfLiteTensorVectorCalculator):
    """SplitTensorVectorCalculator: a list of tensors -> one untagged list (or element) per range."""


class PythonTensorsToFloatsCalculator(Calculator):
    """TENSORS -> FLOAT or FLOATS: the first tensor's values, through the options' activation."""

    inputs = ("TENSORS",)
    outputs = ("FLOAT", "FLOATS")

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(TensorsToFloatsCalculatorOptions)
        self.sigmoid = options.activation == TensorsToFloatsCalculatorOptions.SIGMOID

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors: Any = inputs.get("TENSORS")
        if tensors is None:
            return None
        if not len(tensors):
            raise ValueError("TensorsToFloatsCalculator needs at least one tensor")
        values = tensor_array(tensors[0]).reshape(-1)
        if self.sigmoid:
            values = (np.float32(1.0) / (np.float32(1.0) + np.exp(-values))).astype(np.float32)
        if "FLOAT" in self.output_tags:
            if values.size != 1:
                raise ValueError(f"FLOAT needs a tensor of one value, got {values.size}")
            return {"FLOAT": float(values[0])}
        return {"FLOATS": [float(v) for v in values]}


class PythonThresholdingCalculator(Calculator):
    """FLOAT [+ THRESHOLD] -> FLAG (value > threshold), ACCEPT (true when above), REJECT (false when not)."""

    inputs = ("FLOAT", "THRESHOLD")
    outputs = ("FLAG", "ACCEPT", "REJECT")

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(ThresholdingCalculatorOptions)
        if not options.HasField("threshold") and "THRESHOLD" not in self.input_tags:
            raise ValueError("Must specify threshold in options or THRESHOLD input stream")
        self.threshold = options.threshold

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        given = inputs.get("THRESHOLD")
        if given is not None:
            self.threshold = float(given)  # type: ignore[arg-type]
        value = inputs.get("FLOAT")
        if value is None:
            raise ValueError("ThresholdingCalculator got no FLOAT packet at a timestamp it runs")
        accept = float(np.float32(value)) > self.threshold  # type: ignore[arg-type]
        out: dict[str, object] = {}
        if "FLAG" in self.output_tags:
            out["FLAG"] = accept
        if accept and "ACCEPT" in self.output_tags:
            out["ACCEPT"] = True
        if not accept and "REJECT" in self.output_tags:
            out["REJECT"] = False
        return out


class PythonGateCalculator(Calculator):
    """Untagged streams passed on while allowed: by an ALLOW / DISALLOW side packet (fixed for the run; a
    disallowed gate closes its outputs), else by ALLOW / DISALLOW streams (an empty one counts as
    `empty_packets_as_allow`), else by the `allow` option (GateCalculatorOptions)."""

    inputs = (":*", "ALLOW", "DISALLOW")
    outputs = (":*",)
    side_packets = ("ALLOW", "DISALLOW")
    optional_side_packets = ("ALLOW", "DISALLOW")  # a graph side packet no request gives: the streams or options

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(GateCalculatorOptions)
        streams = {"ALLOW", "DISALLOW"} & set(self.input_tags)
        if len(streams) > 1:
            raise ValueError("Only one of ALLOW and DISALLOW can be connected")
        self.by_side_packet: bool | None = None
        if side_packets.get("ALLOW") is not None:
            self.by_side_packet = bool(side_packets["ALLOW"])
        elif side_packets.get("DISALLOW") is not None:
            self.by_side_packet = not bool(side_packets["DISALLOW"])
        self.by_option = options.allow if self.by_side_packet is None and not streams else None
        self.empty_as_allow = options.empty_packets_as_allow
        self.data = sorted(key for key in self.input_tags if key.startswith(":"))
        self.closed = False

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        if self.by_side_packet is not None:
            allow = self.by_side_packet
        elif self.by_option is not None:
            allow = self.by_option
        else:
            allow = self.empty_as_allow
            if inputs.get("ALLOW") is not None:
                allow = bool(inputs["ALLOW"])
            if inputs.get("DISALLOW") is not None:
                allow = not bool(inputs["DISALLOW"])
        if not allow:
            if self.by_side_packet is not None and not self.closed:  # as MediaPipe: shut for the run, it closes
                self.closed = True
                for key in self.data:
                    self.close_output(key)
            return None
        return {key: inputs[key] for key in self.data if inputs.get(key) is not None}


class PythonTensorsToLandmarksCalculator(TfLiteTensorsToLandmarksCalculator):
    """TENSORS [+ FLIP_*] -> NORM_LANDMARKS and/or LANDMARKS (TensorsToLandmarksCalculatorOptions)."""

    options_type = TensorsToLandmarksCalculatorOptions

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        tensors: Any = inputs.get("TENSORS")
        if tensors is not None:
            inputs = {**inputs, "TENSORS": [tensor_array(tensors[0])]}
        return super().process(timestamp, inputs)
