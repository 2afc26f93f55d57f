"""The Python twins of MediaPipe's tensor and detection calculators, against the wheel's C++ on the same input.

When a graph's config.json serves `face_detection`, FaceDetection's ImageToTensor, TensorsToDetections,
SSD anchors, NMS and projection run on the Python side around the OpenVINO inference
(ovms_notebook.calculators.tensors, detections). Each is run here beside the native calculator of the
same name in a one-node (or two-node) MediaPipe graph; tensors leave the native graph through the wheel's
TensorsToFloatsCalculator, detection vectors enter it through ovms_notebook.engine.proto_vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mediapipe as mp
import numpy as np
import pytest
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.framework.formats import detection_pb2, rect_pb2

from ovms_notebook.calculators.detections import PythonDetectionProjectionCalculator, PythonNonMaxSuppressionCalculator
from ovms_notebook.calculators.tensors import PythonImageToTensorCalculator, ssd_anchors
from ovms_notebook.engine.proto_vectors import proto_vector_packet
from ovms_notebook.engine.python.api import Calculator, registered
from ovms_notebook.framework.ovms_fork import PYTHON_TWINS
from ovms_notebook.sources import astronaut


def run_native(text: str, inputs: Mapping[str, mp.Packet], outputs: list[str]) -> dict[str, list[mp.Packet]]:
    """One run of a native graph: every input packet at timestamp 0, the packets of `outputs`."""
    config = text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
    graph = mp.CalculatorGraph(graph_config=config)
    found: dict[str, list[mp.Packet]] = {name: [] for name in outputs}
    for name in outputs:
        graph.observe_output_stream(name, lambda stream, packet: found[stream].append(packet))
    graph.start_run()
    for name, packet in inputs.items():
        graph.add_packet_to_input_stream(name, packet.at(0))
    graph.close()
    return found


def run_python(cls: type[Calculator], node_text: str, inputs: Mapping[str, object]) -> Any:
    """One `process` of a Python calculator built from a pbtxt node (its options and connected tags)."""
    node = text_format.Parse(node_text, calculator_pb2.CalculatorGraphConfig.Node())
    calculator = cls()
    calculator.node = node
    calculator.node_name = "probe"
    calculator.input_tags = tuple(_key(entry) for entry in node.input_stream)
    calculator.output_tags = tuple(_key(entry) for entry in node.output_stream)
    calculator.open({})
    return calculator.process(0, dict(inputs))


def _key(entry: str) -> str:
    parts = entry.split(":")
    return parts[0] if len(parts) == 2 else ":0"


def rect(x: float, y: float, w: float, h: float, rotation: float) -> rect_pb2.NormalizedRect:
    return rect_pb2.NormalizedRect(x_center=x, y_center=y, width=w, height=h, rotation=rotation)


def detection(xmin: float, ymin: float, w: float, h: float, score: float, points: int = 2) -> detection_pb2.Detection:
    found = detection_pb2.Detection(score=[score], label_id=[0])
    location = found.location_data
    location.format = location.RELATIVE_BOUNDING_BOX
    box = location.relative_bounding_box
    box.xmin, box.ymin, box.width, box.height = xmin, ymin, w, h
    for k in range(points):
        location.relative_keypoints.add(x=xmin + w * (k + 1) / (points + 1), y=ymin + h / 2)
    return found


def rows(detections: list[detection_pb2.Detection]) -> np.ndarray:
    out = []
    for found in detections:
        box = found.location_data.relative_bounding_box
        points = [c for k in found.location_data.relative_keypoints for c in (k.x, k.y)]
        out.append([box.xmin, box.ymin, box.width, box.height, *points, *found.score])
    return np.array(out, np.float64)


IMAGE_TO_TENSOR = """
  calculator: "{calculator}" input_stream: "IMAGE:image" input_stream: "NORM_RECT:roi"
  output_stream: "TENSORS:tensors" output_stream: "MATRIX:matrix"
  options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{
    output_tensor_width: {width} output_tensor_height: {height} keep_aspect_ratio: {keep}
    output_tensor_float_range {{ min: {low} max: {high} }} border_mode: {border} }} }}
"""
CASES = {  # roi, tensor size, keep_aspect_ratio, range, border
    "whole image, letterboxed, zero border": (rect(0.5, 0.5, 1.0, 0.6, 0.0), (128, 128), "true", (-1, 1),
                                              "BORDER_ZERO"),
    "rotated face crop, replicated border": (rect(0.45, 0.3, 0.3, 0.35, 0.4), (192, 192), "false", (0, 1),
                                             "BORDER_REPLICATE"),
    "wide tensor past the edge": (rect(0.9, 0.2, 0.5, 0.4, -1.2), (96, 64), "true", (0, 255), "BORDER_ZERO"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_image_to_tensor_gives_mediapipes_tensor_and_matrix(case: str) -> None:
    roi, (width, height), keep, (low, high), border = CASES[case]
    frame = np.ascontiguousarray(astronaut()[40:440])  # 512x400
    options = dict(width=width, height=height, keep=keep, low=low, high=high, border=border)
    probe = [detection(0.1, 0.2, 0.5, 0.3, 0.9), detection(0.6, 0.0, 0.3, 0.8, 0.7)]
    native = run_native(
        'input_stream: "image" input_stream: "roi" input_stream: "probe" output_stream: "floats" '
        'output_stream: "projected" node {' + IMAGE_TO_TENSOR.format(calculator="ImageToTensorCalculator", **options)
        + '} node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:tensors" '
        'output_stream: "FLOATS:floats" } node { calculator: "DetectionProjectionCalculator" '
        'input_stream: "DETECTIONS:probe" input_stream: "PROJECTION_MATRIX:matrix" '
        'output_stream: "DETECTIONS:projected" }',
        {"image": mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame),
         "roi": mp.packet_creator.create_proto(roi), "probe": proto_vector_packet(probe)},
        ["floats", "projected"],
    )
    ours = run_python(PythonImageToTensorCalculator,
                      IMAGE_TO_TENSOR.format(calculator="PythonImageToTensorCalculator", **options),
                      {"IMAGE": frame, "NORM_RECT": roi})
    (tensor,) = ours["TENSORS"]
    assert tensor.shape == (1, height, width, 3) and tensor.dtype == np.float32
    expected = np.array(mp.packet_getter.get_float_list(native["floats"][0]), np.float32)
    assert expected.size == tensor.size and expected.max() - expected.min() > (high - low) / 2  # a picture
    # the same OpenCV warp of the same ROI: equal up to the float rounding of pixel * scale + offset
    np.testing.assert_allclose(tensor.reshape(-1), expected, rtol=0, atol=(high - low) * 1e-6)
    projected = run_python(PythonDetectionProjectionCalculator,
                           'calculator: "PythonDetectionProjectionCalculator" input_stream: "DETECTIONS:d" '
                           'input_stream: "PROJECTION_MATRIX:m" output_stream: "DETECTIONS:o"',
                           {"DETECTIONS": probe, "PROJECTION_MATRIX": ours["MATRIX"]})["DETECTIONS"]
    np.testing.assert_allclose(rows(projected), rows(mp.packet_getter.get_proto_list(native["projected"][0])),
                               atol=2e-6)


def test_an_empty_norm_rect_gives_no_tensor_as_in_mediapipe() -> None:
    options = dict(width=8, height=8, keep="true", low=0, high=1, border="BORDER_ZERO")
    text = IMAGE_TO_TENSOR.format(calculator="PythonImageToTensorCalculator", **options)
    assert run_python(PythonImageToTensorCalculator, text, {"IMAGE": astronaut(), "NORM_RECT": rect(0, 0, 0, 0, 0)}) \
        is None


ANCHORS = """
  num_layers: {layers} min_scale: 0.1484375 max_scale: 0.75 input_size_width: {size} input_size_height: {size}
  anchor_offset_x: 0.5 anchor_offset_y: 0.5 {strides} aspect_ratios: 1.0 {more} fixed_anchor_size: {fixed}
  interpolated_scale_aspect_ratio: 1.0
"""


@pytest.mark.parametrize(("layers", "size", "strides", "more", "fixed"), [
    (4, 128, "strides: 8 strides: 16 strides: 16 strides: 16", "", "true"),  # face detection short range
    (5, 224, "strides: 8 strides: 16 strides: 32 strides: 32 strides: 32", "aspect_ratios: 2.0", "false"),
])
def test_ssd_anchors_are_mediapipes(layers: int, size: int, strides: str, more: str, fixed: str) -> None:
    from mediapipe.calculators.tflite.ssd_anchors_calculator_pb2 import SsdAnchorsCalculatorOptions

    text = ANCHORS.format(layers=layers, size=size, strides=strides, more=more, fixed=fixed)
    config = text_format.Parse(
        'output_side_packet: "anchors" node { calculator: "SsdAnchorsCalculator" output_side_packet: "anchors" '
        "options { [mediapipe.SsdAnchorsCalculatorOptions.ext] {" + text + "} } }",
        calculator_pb2.CalculatorGraphConfig())
    graph = mp.CalculatorGraph(graph_config=config)
    graph.start_run()
    graph.close()
    native = mp.packet_getter.get_proto_list(graph.get_output_side_packet("anchors"))
    expected = np.array([[a.x_center, a.y_center, a.w, a.h] for a in native], np.float32)
    ours = ssd_anchors(text_format.Parse(text, SsdAnchorsCalculatorOptions()))
    assert ours.shape == expected.shape and len(ours) > 800
    np.testing.assert_allclose(ours, expected, atol=1e-6)


NMS = """
  calculator: "{calculator}" input_stream: "detections" output_stream: "kept"
  options {{ [mediapipe.NonMaxSuppressionCalculatorOptions.ext] {{
    min_suppression_threshold: 0.3 overlap_type: {overlap} algorithm: {algorithm} max_num_detections: {limit} }} }}
"""


@pytest.mark.parametrize(("algorithm", "overlap", "limit"), [
    ("WEIGHTED", "INTERSECTION_OVER_UNION", -1), ("DEFAULT", "INTERSECTION_OVER_UNION", 2),
    ("DEFAULT", "JACCARD", -1), ("WEIGHTED", "MODIFIED_JACCARD", -1),
])
def test_non_max_suppression_keeps_and_merges_as_mediapipe(algorithm: str, overlap: str, limit: int) -> None:
    found = [  # two clusters of overlapping faces and a lone one, distinct scores
        detection(0.10, 0.10, 0.30, 0.30, 0.95), detection(0.12, 0.11, 0.29, 0.31, 0.90),
        detection(0.08, 0.09, 0.33, 0.30, 0.60), detection(0.60, 0.55, 0.20, 0.25, 0.85),
        detection(0.62, 0.56, 0.19, 0.24, 0.55), detection(0.40, 0.05, 0.10, 0.10, 0.70),
    ]
    options = dict(algorithm=algorithm, overlap=overlap, limit=limit)
    native = run_native('input_stream: "detections" output_stream: "kept" node {'
                        + NMS.format(calculator="NonMaxSuppressionCalculator", **options) + "}",
                        {"detections": proto_vector_packet(found)}, ["kept"])
    expected = rows(mp.packet_getter.get_proto_list(native["kept"][0]))
    ours = rows(run_python(PythonNonMaxSuppressionCalculator,
                           NMS.format(calculator="PythonNonMaxSuppressionCalculator", **options),
                           {":0": found})[":0"])
    assert ours.shape == expected.shape and len(ours) >= 2
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_nms_of_no_detections_emits_nothing_as_mediapipe() -> None:
    options = dict(algorithm="WEIGHTED", overlap="INTERSECTION_OVER_UNION", limit=-1)
    assert run_python(PythonNonMaxSuppressionCalculator,
                      NMS.format(calculator="PythonNonMaxSuppressionCalculator", **options), {":0": []}) is None


def test_the_twins_are_registered_under_their_own_names_and_the_stock_names_stay_native() -> None:
    for stock, twin in PYTHON_TWINS.items():
        assert registered(twin) is not None and registered(twin).__name__ == twin  # type: ignore[union-attr]
        assert registered(stock) is None, f"{stock} would move every graph's {stock} to the Python side"


def test_a_list_of_detections_becomes_mediapipes_vector_packet() -> None:
    found = [detection(0.1, 0.2, 0.3, 0.4, 0.9), detection(0.5, 0.5, 0.1, 0.1, 0.6)]
    packet = proto_vector_packet(found)
    assert [d.score[0] for d in mp.packet_getter.get_proto_list(packet)] == pytest.approx([0.9, 0.6])
    with pytest.raises(TypeError, match="messages of one type"):
        proto_vector_packet([])
    with pytest.raises(TypeError, match=r"no native vector packet of mediapipe\.LocationData"):
        proto_vector_packet([found[0].location_data])
    assert math.isclose(rows(found)[0, 0], 0.1, rel_tol=1e-6)


# -- FaceLandmarkCpu's plumbing: floats, thresholds, gates, landmarks -------------------------------------------------

TINY_TENSOR = """
  calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:tensors"
  options { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 8 output_tensor_height: 8 output_tensor_float_range { min: -4 max: 4 } } }
"""


def tiny_tensor() -> tuple[np.ndarray, mp.Packet]:
    """An 8x8x3 tensor in [-4, 4] from the astronaut (ours) and the image packet the native graphs start from."""
    frame = astronaut()
    image = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame)
    ours = run_python(PythonImageToTensorCalculator, TINY_TENSOR.replace('"ImageToTensorCalculator"', '"X"'),
                      {"IMAGE": frame})["TENSORS"]
    return ours, image


@pytest.mark.parametrize("activation", ["SIGMOID", "NONE"])
def test_tensors_to_floats_is_mediapipes(activation: str) -> None:
    from ovms_notebook.calculators.tensor_plumbing import PythonTensorsToFloatsCalculator

    ours, image = tiny_tensor()
    node = ('calculator: "CALC" input_stream: "TENSORS:tensors" output_stream: "FLOATS:floats" '
            "options { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: " + activation + " } }")
    native = run_native('input_stream: "image" output_stream: "floats" node {' + TINY_TENSOR + "} node {"
                        + node.replace("CALC", "TensorsToFloatsCalculator") + "}", {"image": image}, ["floats"])
    expected = mp.packet_getter.get_float_list(native["floats"][0])
    got = run_python(PythonTensorsToFloatsCalculator, node.replace("CALC", "X"), {"TENSORS": ours})["FLOATS"]
    assert len(got) == len(expected) == 192 and len(set(np.round(expected, 3))) > 20
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_tensors_to_landmarks_is_mediapipes() -> None:
    from ovms_notebook.calculators.tensor_plumbing import PythonTensorsToLandmarksCalculator

    ours, image = tiny_tensor()
    node = ('calculator: "CALC" input_stream: "TENSORS:tensors" output_stream: "NORM_LANDMARKS:landmarks" '
            "options { [mediapipe.TensorsToLandmarksCalculatorOptions.ext] { num_landmarks: 48 "
            "input_image_width: 16 input_image_height: 8 normalize_z: 2 flip_horizontally: true "
            "visibility_activation: SIGMOID } }")  # 192 values: 48 landmarks of 4 (x, y, z, visibility)
    native = run_native('input_stream: "image" output_stream: "landmarks" node {' + TINY_TENSOR + "} node {"
                        + node.replace("CALC", "TensorsToLandmarksCalculator") + "}", {"image": image}, ["landmarks"])
    expected = mp.packet_getter.get_proto(native["landmarks"][0])
    got = run_python(PythonTensorsToLandmarksCalculator, node.replace("CALC", "X"), {"TENSORS": ours})["NORM_LANDMARKS"]

    def table(landmarks: Any) -> np.ndarray:
        return np.array([[p.x, p.y, p.z, p.visibility] for p in landmarks.landmark])

    assert len(got.landmark) == len(expected.landmark) == 48
    np.testing.assert_allclose(table(got), table(expected), rtol=1e-6, atol=1e-6)


def test_thresholding_and_gate_are_mediapipes() -> None:
    from ovms_notebook.calculators.tensor_plumbing import PythonGateCalculator, PythonThresholdingCalculator

    text = ('input_stream: "score" input_stream: "data" output_stream: "flag" output_stream: "passed" '
            'node { calculator: "ThresholdingCalculator" input_stream: "FLOAT:score" output_stream: "FLAG:flag" '
            "options { [mediapipe.ThresholdingCalculatorOptions.ext] { threshold: 0.5 } } } "
            'node { calculator: "GateCalculator" input_stream: "data" input_stream: "ALLOW:flag" '
            'output_stream: "passed" }')
    threshold = ('calculator: "X" input_stream: "FLOAT:score" output_stream: "FLAG:flag" '
                 "options { [mediapipe.ThresholdingCalculatorOptions.ext] { threshold: 0.5 } }")
    gate = 'calculator: "X" input_stream: "data" input_stream: "ALLOW:flag" output_stream: "passed"'
    for score in (0.2, 0.5, 0.5000001, 0.9):
        native = run_native(text, {"score": mp.packet_creator.create_float(score),
                                   "data": mp.packet_creator.create_string(b"tensors")}, ["flag", "passed"])
        flag = run_python(PythonThresholdingCalculator, threshold, {"FLOAT": score})["FLAG"]
        assert flag is mp.packet_getter.get_bool(native["flag"][0]) is (score > 0.5)
        passed = run_python(PythonGateCalculator, gate, {":0": ["tensors"], "ALLOW": flag})
        assert (passed == {":0": ["tensors"]}) == (len(native["passed"]) == 1)
        assert passed if flag else passed is None


# -- the expansion resolves options as MediaPipe's own expansion does -------------------------------------------------

FACE_MESH = """
input_stream: "IMAGE:image" output_stream: "LANDMARKS:multi_face_landmarks"
node { calculator: "FaceLandmarkFrontCpu" input_stream: "IMAGE:image" output_stream: "LANDMARKS:multi_face_landmarks" }
"""
POSE = """
input_stream: "IMAGE:image" output_stream: "LANDMARKS:pose_landmarks"
node { calculator: "PoseLandmarkCpu" input_stream: "IMAGE:image" output_stream: "LANDMARKS:pose_landmarks" }
"""
HOLISTIC_FACE = """
input_stream: "IMAGE:image" output_stream: "FACE_LANDMARKS:face_landmarks"
node { calculator: "HolisticLandmarkCpu" input_stream: "IMAGE:image" output_stream: "FACE_LANDMARKS:face_landmarks" }
"""


def _stock_options(config: Any, stock: dict[str, type]) -> list[tuple[str, bytes]]:
    """(stock calculator, its options serialized deterministically) of every node running one of `stock`,
    a Python twin counted as the stock calculator it stands for and SsdAnchors folded into TensorsToDetections."""
    from ovms_notebook.framework.options import node_options

    stock_of = {twin: name for name, twin in PYTHON_TWINS.items()}
    found = []
    for node in config.node:
        name = stock_of.get(node.calculator, node.calculator)
        folded = node.calculator == PYTHON_TWINS["TensorsToDetectionsCalculator"]
        for calculator in [name, "SsdAnchorsCalculator"] if folded else [name]:
            if calculator in stock:
                options = node_options(node, stock[calculator])
                found.append((calculator, options.SerializeToString(deterministic=True)))
    return sorted(found)


@pytest.mark.parametrize("graph", ["face_detection", "iris demo's face mesh", "holistic face", "pose"])
def test_the_face_subgraphs_expand_with_the_options_mediapipe_gives_their_nodes(graph: str) -> None:
    from mediapipe.calculators.tensor.image_to_tensor_calculator_pb2 import ImageToTensorCalculatorOptions
    from mediapipe.calculators.tensor.tensors_to_detections_calculator_pb2 import (
        TensorsToDetectionsCalculatorOptions,
    )
    from mediapipe.calculators.tensor.tensors_to_floats_calculator_pb2 import TensorsToFloatsCalculatorOptions
    from mediapipe.calculators.tflite.ssd_anchors_calculator_pb2 import SsdAnchorsCalculatorOptions
    from mediapipe.calculators.util.non_max_suppression_calculator_pb2 import NonMaxSuppressionCalculatorOptions
    from mediapipe.calculators.util.thresholding_calculator_pb2 import ThresholdingCalculatorOptions

    from ovms_notebook.framework.protos import parse_graph_config
    from ovms_notebook.framework.subgraphs import expand_subgraphs
    from tests.conftest import GRAPHS

    text = {
        "face_detection": (GRAPHS / "face_detection" / "graph.pbtxt").read_text(),
        "iris demo's face mesh": FACE_MESH,
        "holistic face": HOLISTIC_FACE,
        "pose": POSE,
    }[graph]
    stock = {
        "ImageToTensorCalculator": ImageToTensorCalculatorOptions,
        "TensorsToDetectionsCalculator": TensorsToDetectionsCalculatorOptions,
        "SsdAnchorsCalculator": SsdAnchorsCalculatorOptions,
        "NonMaxSuppressionCalculator": NonMaxSuppressionCalculatorOptions,
        "TensorsToFloatsCalculator": TensorsToFloatsCalculatorOptions,
        "ThresholdingCalculator": ThresholdingCalculatorOptions,
    }
    ours = expand_subgraphs(parse_graph_config(text), model_entries=True)
    config = parse_graph_config(text)
    native = text_format.Parse(mp.CalculatorGraph(graph_config=expand_subgraphs(config)).text_config,
                               calculator_pb2.CalculatorGraphConfig())  # the wheel's own expansion
    mine, theirs = _stock_options(ours, stock), _stock_options(native, stock)
    assert len(mine) >= (4 if graph in ("face_detection", "pose") else 7)
    assert {name for name, _ in mine} >= {"ImageToTensorCalculator", "SsdAnchorsCalculator"}
    if graph in ("holistic face", "pose"):  # pose landmarks and hands stay the wheel's subgraphs, unexpanded here
        from collections import Counter

        assert not Counter(mine) - Counter(theirs)
    else:
        assert mine == theirs


def test_detection_letterbox_removal_is_mediapipes() -> None:
    from ovms_notebook.calculators.detections import PythonDetectionLetterboxRemovalCalculator

    frame = np.ascontiguousarray(astronaut()[:, 100:400])  # 300 wide, 512 tall: padded left and right
    letterbox = ('calculator: "CALC" input_stream: "IMAGE:image" output_stream: "TENSORS:tensors" '
                 'output_stream: "LETTERBOX_PADDING:padding" options { [mediapipe.ImageToTensorCalculatorOptions.ext] '
                 "{ output_tensor_width: 224 output_tensor_height: 224 keep_aspect_ratio: true "
                 "output_tensor_float_range { min: -1 max: 1 } } }")
    probe = [detection(0.3, 0.2, 0.4, 0.3, 0.9, points=4), detection(0.05, 0.6, 0.2, 0.2, 0.7, points=4)]
    native = run_native(
        'input_stream: "image" input_stream: "probe" output_stream: "removed" node {'
        + letterbox.replace("CALC", "ImageToTensorCalculator") + '} node { calculator: '
        '"DetectionLetterboxRemovalCalculator" input_stream: "DETECTIONS:probe" '
        'input_stream: "LETTERBOX_PADDING:padding" output_stream: "DETECTIONS:removed" }',
        {"image": mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame),
         "probe": proto_vector_packet(probe)},
        ["removed"],
    )
    padding = run_python(PythonImageToTensorCalculator, letterbox.replace("CALC", "X"),
                         {"IMAGE": frame})["LETTERBOX_PADDING"]
    assert padding[0] == padding[2] > 0.2 and padding[1] == padding[3] == 0  # (1 - 300/512) / 2 each side
    removed = run_python(PythonDetectionLetterboxRemovalCalculator,
                         'calculator: "X" input_stream: "DETECTIONS:d" input_stream: "LETTERBOX_PADDING:p" '
                         'output_stream: "DETECTIONS:o"', {"DETECTIONS": probe, "LETTERBOX_PADDING": padding})
    np.testing.assert_allclose(rows(removed["DETECTIONS"]), rows(mp.packet_getter.get_proto_list(native["removed"][0])),
                               atol=1e-6)
