"""The Python twins of the pose landmark subgraph's tensor nodes, against MediaPipe's C++ calculators.

The crop matrix -> inverse -> warp chain runs twice on the same frame, ROI and mask: once as the
wheel's ImageToTensorCalculator, InverseMatrixCalculator and WarpAffineCalculator in one native
graph, once as their twins on the Python engine. Heatmap refinement is checked on heatmaps whose
answer is known (RefineLandmarksFromHeatMap's weighted mean, kernel clipped at the edges).
"""

from __future__ import annotations

from typing import Any

import mediapipe as mp
import numpy as np
import pytest
from mediapipe.framework.formats import landmark_pb2, rect_pb2

from ovms_notebook.calculators.pose_tensors import refine_from_heatmap
from ovms_notebook.calculators.tensors import pixels_of
from ovms_notebook.engine.python.scheduler import PythonGraph, PythonGraphError

CHAIN = """
input_stream: "image" input_stream: "roi" input_stream: "mask"
output_stream: "warped"
node { calculator: "%(crop)s" input_stream: "IMAGE:image" input_stream: "NORM_RECT:roi"
  output_stream: "TENSORS:tensors" output_stream: "MATRIX:matrix"
  options { [mediapipe.ImageToTensorCalculatorOptions.ext] { output_tensor_width: 64 output_tensor_height: 48
    keep_aspect_ratio: true output_tensor_float_range { min: 0 max: 1 } } } }
node { calculator: "%(inverse)s" input_stream: "MATRIX:matrix" output_stream: "MATRIX:inverse" }
%(size)s
node { calculator: "%(warp)s" input_stream: "IMAGE:mask" input_stream: "MATRIX:inverse"
  input_stream: "OUTPUT_SIZE:size" output_stream: "IMAGE:warped"
  options { [mediapipe.WarpAffineCalculatorOptions.ext] { border_mode: %(border)s } } }
"""
NATIVE_SIZE = ('node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" '
               'output_stream: "SIZE:size" }')


def frame() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)


def roi() -> rect_pb2.NormalizedRect:
    return rect_pb2.NormalizedRect(x_center=0.55, y_center=0.45, width=0.5, height=0.4, rotation=0.5)


def mask() -> np.ndarray:
    """A 48x64 float mask: a gradient from 0.1 with a bright disc, so that a misplaced warp shows."""
    ys, xs = np.mgrid[0:48, 0:64].astype(np.float32)
    return (0.1 + xs / 64 * 0.4 + ((xs - 40) ** 2 + (ys - 20) ** 2 < 80) * 0.5).astype(np.float32)


def native_warp(border: str) -> np.ndarray:
    config = CHAIN % {"crop": "ImageToTensorCalculator", "inverse": "InverseMatrixCalculator", "size": NATIVE_SIZE,
                      "warp": "WarpAffineCalculator", "border": border}
    graph = mp.CalculatorGraph(graph_config=config)
    found: list[np.ndarray] = []
    graph.observe_output_stream(
        "warped", lambda _name, packet: found.append(np.array(mp.packet_getter.get_image(packet).numpy_view())))
    graph.start_run()
    graph.add_packet_to_input_stream("image", mp.packet_creator.create_image_frame(
        data=frame(), image_format=mp.ImageFormat.SRGB).at(0))
    graph.add_packet_to_input_stream("roi", mp.packet_creator.create_proto(roi()).at(0))
    graph.add_packet_to_input_stream("mask", mp.packet_creator.create_image(
        mask(), image_format=mp.ImageFormat.VEC32F1).at(0))
    graph.close()
    (warped,) = found
    return warped


def python_warp(border: str) -> np.ndarray:
    config = CHAIN % {"crop": "PythonImageToTensorCalculator", "inverse": "PythonInverseMatrixCalculator",
                      "size": "", "warp": "PythonWarpAffineCalculator", "border": border}
    config = config.replace('input_stream: "mask"', 'input_stream: "mask" input_stream: "size"')
    graph = PythonGraph(config)
    found: list[Any] = []
    graph.observe_output_stream("warped", lambda _name, value, _timestamp: found.append(value))
    graph.start_run()
    for name, value in (("image", frame()), ("roi", roi()), ("mask", mask()), ("size", (200, 160))):
        graph.add_packet_to_input_stream(name, value, 0)
    graph.close()
    (warped,) = found
    return pixels_of(warped)[..., 0]


@pytest.mark.parametrize("border", ["BORDER_ZERO", "BORDER_REPLICATE"])
def test_the_inverse_crop_warp_matches_mediapipes(border: str) -> None:
    theirs, mine = native_warp(border), python_warp(border)
    assert mine.shape == theirs.shape == (160, 200) and mine.dtype == theirs.dtype == np.float32
    # the disc lands where the rotated ROI put it, and the outside is zero or the replicated edge
    assert (theirs > 0.6).sum() > 100
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-3)
    assert np.abs(mine - theirs).mean() < 1e-4
    outside = (theirs == 0).mean()  # the frame's corners lie outside the rotated ROI
    if border == "BORDER_ZERO":
        assert theirs[0, 0] == mine[0, 0] == 0.0 and outside > 0.3
    else:
        assert outside == 0.0 and (mine >= 0.1 - 1e-6).all()  # the mask's edge (>= 0.1) repeated


def test_a_singular_matrix_is_refused_with_mediapipes_text() -> None:
    config = ('input_stream: "m" output_stream: "inverse" node { calculator: "PythonInverseMatrixCalculator" '
              'input_stream: "MATRIX:m" output_stream: "MATRIX:inverse" }')
    graph = PythonGraph(config)
    graph.start_run()
    graph.add_packet_to_input_stream("m", [1.0] * 16, 0)
    with pytest.raises(PythonGraphError, match="Inverse matrix cannot be calculated for"):
        graph.close()


def landmarks(*points: tuple[float, float]) -> landmark_pb2.NormalizedLandmarkList:
    return landmark_pb2.NormalizedLandmarkList(
        landmark=[landmark_pb2.NormalizedLandmark(x=x, y=y, z=0.5, visibility=0.9, presence=0.8) for x, y in points])


def logits(confidence: np.ndarray) -> np.ndarray:
    clipped = np.clip(confidence, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped)).astype(np.float32)


def test_a_landmark_moves_to_the_confident_heatmap_peak_in_its_kernel() -> None:
    heat = np.zeros((1, 16, 16, 2), np.float32)
    heat[0, 6, 9, 0] = 1.0  # one confident cell two columns right of landmark 0
    heat[0, 3, 3, 1] = 0.4  # landmark 1's peak is below min_confidence_to_refine (0.5)
    refined = refine_from_heatmap(landmarks((7.5 / 16, 6.5 / 16), (3.2 / 16, 3.2 / 16)), logits(heat), 5, 0.5,
                                  refine_presence=True)
    first, second = refined.landmark
    # all weight on (row 6, col 9): x = 9 / 16, y = 6 / 16; presence capped by the peak (1 - 1e-6)
    assert (first.x, first.y) == pytest.approx((9 / 16, 6 / 16), abs=2e-5)
    assert first.presence == pytest.approx(0.8) and first.visibility == pytest.approx(0.9)
    assert (second.x, second.y) == pytest.approx((3.2 / 16, 3.2 / 16), abs=1e-7)  # not confident: kept
    assert second.presence == pytest.approx(0.4, abs=1e-5)  # refine_presence takes the kernel's peak


def test_the_kernel_is_clipped_at_the_edge_and_outside_points_stay() -> None:
    heat = np.full((8, 8, 2), 0.6, np.float32)  # HWC without batch: every cell equally confident
    refined = refine_from_heatmap(landmarks((0.0, 0.0), (1.2, 0.5)), logits(heat), 7, 0.5)
    corner, outside = refined.landmark
    # kernel rows and cols 0..3 (clipped): the mean cell is (1.5, 1.5), divided by the heatmap size
    assert (corner.x, corner.y) == pytest.approx((1.5 / 8, 1.5 / 8), abs=1e-6)
    assert (outside.x, outside.y) == pytest.approx((1.2, 0.5), abs=1e-7)


def test_a_heatmap_layer_count_other_than_the_landmarks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected a heatmap layer per landmark \(2\), got 3"):
        refine_from_heatmap(landmarks((0.5, 0.5), (0.5, 0.5)), np.zeros((1, 4, 4, 3), np.float32), 3, 0.5)
