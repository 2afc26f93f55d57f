"""The Python calculators MediaPipe's own example graphs need and the wheel lacks, against MediaPipe's C++.

RecolorCalculator (selfie segmentation, pose renderer) and LabelsToRenderDataCalculator (hand renderer),
on small inputs whose expected values are worked out by hand from mediapipe v0.10.21's
recolor_calculator.cc (`Blend`: per-channel saturating cv::Vec3b arithmetic, OpenCV's round-half-even)
and labels_to_render_data_calculator.cc.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.framework.formats import classification_pb2

from ovms_notebook.calculators.labels import LabelsOptions, LabelsToRenderDataCalculator, labels_to_render_data
from ovms_notebook.calculators.recolor import RecolorCalculator, recolor
from ovms_notebook.engine.python.api import registered

PIXELS = np.array([[[100, 200, 50], [0, 255, 10]]], np.uint8)  # one row, two pixels
BLUE = (0, 0, 255)


def test_a_float_mask_blends_each_channel_towards_the_colour_rounding_half_to_even() -> None:
    mask = np.array([[0.25, 1.0]], np.float32)
    out = recolor(PIXELS, mask, BLUE, adjust_with_luminance=False)
    # 100*.75=75, 200*.75=150, 50*.75=37.5 -> 38 (even); 255*.25=63.75 -> 64 added to blue. Full weight: the colour.
    assert out.tolist() == [[[75, 150, 38 + 64], [0, 0, 255]]]


def test_invert_mask_weighs_the_background_and_rounds_half_to_even() -> None:
    out = recolor(PIXELS, np.array([[0.25, 1.0]], np.float32), BLUE, invert_mask=True, adjust_with_luminance=False)
    # weight .75: 100*.25=25, 200*.25=50, 50*.25=12.5 -> 12, 255*.75=191.25 -> 191; weight 0: the pixel.
    assert out.tolist() == [[[25, 50, 12 + 191], [0, 255, 10]]]


def test_luminance_scales_the_weight_by_the_pixel_brightness() -> None:
    out = recolor(PIXELS[:, :1], np.array([[0.25]], np.float32), BLUE)
    # luminance (100*.299 + 200*.587 + 50*.114)/255 = 0.6, mix .15: 85, 170, 42.5 -> 42, 255*.15=38.25 -> 38
    assert out.tolist() == [[[85, 170, 42 + 38]]]


def test_a_gray8_mask_is_scaled_by_one_255th_and_the_sum_saturates() -> None:
    out = recolor(
        np.array([[[250, 250, 250]]], np.uint8),
        np.array([[128]], np.uint8),
        (255, 255, 255),
        adjust_with_luminance=False,
    )
    # weight float(128/255): 250*(1-w)=124.51 -> 125, 255*w=128.0 -> 128: 253 each
    assert out.tolist() == [[[253, 253, 253]]]
    # 255*.5=127.5 rounds to 128 twice (half to even): 256 saturates to 255; 1*.5 -> 0 twice (even)
    white = recolor(
        np.array([[[255, 255, 1]]], np.uint8), np.array([[0.5]], np.float32), (255, 0, 1), adjust_with_luminance=False
    )
    assert white.tolist() == [[[255, 128, 0]]]


def test_the_mask_is_resized_bilinearly_to_the_image_and_alpha_picks_the_fourth_channel() -> None:
    image = np.full((2, 4, 3), 200, np.uint8)
    mask = np.array([[0.0, 1.0]], np.float32)  # 1x2 -> 2x4, OpenCV bilinear: 0, .25, .75, 1 per row
    out = recolor(image, mask, (0, 0, 0), adjust_with_luminance=False)
    assert out[:, :, 0].tolist() == [[200, 150, 50, 0]] * 2
    rgba = np.zeros((1, 1, 4), np.float32)
    rgba[..., 3] = 1.0
    assert recolor(image[:1, :1], rgba, (0, 0, 0), adjust_with_luminance=False, alpha_channel=True).tolist() == [
        [[0, 0, 0]]
    ]
    assert recolor(image[:1, :1], rgba, (0, 0, 0), adjust_with_luminance=False).tolist() == [[[200, 200, 200]]]


def test_recolor_refuses_what_mediapipe_refuses() -> None:
    with pytest.raises(ValueError, match=r"needs an RGB image \(3 channels\), got shape \[1, 1, 4\]"):
        recolor(np.zeros((1, 1, 4), np.uint8), np.zeros((1, 1), np.float32), BLUE)
    with pytest.raises(ValueError, match="needs a VEC32F1 or GRAY8 mask, got float64 pixels"):
        recolor(PIXELS, np.zeros((1, 2), np.float64), BLUE)


def test_both_calculators_register_under_mediapipe_names() -> None:
    assert registered("RecolorCalculator") is RecolorCalculator
    assert registered("LabelsToRenderDataCalculator") is LabelsToRenderDataCalculator


def test_labels_go_top_left_one_line_apart_in_the_option_colours() -> None:
    options = text_format.Parse(
        "color { r: 255 g: 0 b: 0 } color { r: 0 g: 255 b: 0 } thickness: 3 font_height_px: 20 max_num_labels: 3 "
        "horizontal_offset_px: 5 vertical_offset_px: 7 font_face: 1",
        LabelsOptions(),
    )
    data = labels_to_render_data(["Left", "Right", "third", "fourth"], None, options)
    texts = [
        (
            a.text.display_text,
            a.text.left,
            a.text.baseline,
            a.text.font_height,
            a.text.font_face,
            (a.color.r, a.color.g, a.color.b),
            a.thickness,
        )
        for a in data.render_annotations
    ]
    # label height ceil(20 * 1.25) = 25: baselines 7 + 25, + 25, + 25; colours cycle; max 3 labels
    assert texts == [
        ("Left", 5, 32, 20, 1, (255, 0, 0), 3.0),
        ("Right", 5, 57, 20, 1, (0, 255, 0), 3.0),
        ("third", 5, 82, 20, 1, (255, 0, 0), 3.0),
    ]
    assert not data.render_annotations[0].text.HasField("outline_thickness")


def test_labels_defaults_scores_and_outline() -> None:
    options = text_format.Parse("outline_thickness: 1.5 font_height_px: 13", LabelsOptions())
    data = labels_to_render_data(["Left", "Right"], [0.875, 0.1234567], options)
    assert len(data.render_annotations) == 1  # max_num_labels defaults to 1
    annotation = data.render_annotations[0]
    assert annotation.text.display_text == "Left:0.875"  # absl::StrAppend of a float: %g
    assert (annotation.color.r, annotation.color.g, annotation.color.b) == (255, 0, 0)  # no colour: red
    assert annotation.thickness == 2.0 and annotation.text.baseline == 17  # ceil(13 * 1.25)
    assert annotation.text.outline_thickness == 1.5
    outline = annotation.text.outline_color
    assert (outline.HasField("r"), outline.r, outline.g, outline.b) == (True, 0, 0, 0)
    assert labels_to_render_data(["x"], [0.1234567], options).render_annotations[0].text.display_text == "x:0.123457"


def _labels_node(options: str, inputs: dict[str, object]) -> object:
    """The calculator as a graph sets it up: its node (options as the pbtxt gives them) and connected tags."""
    node = LabelsToRenderDataCalculator()
    node.node = text_format.Parse(
        'calculator: "LabelsToRenderDataCalculator" node_options { '
        f"[type.googleapis.com/mediapipe.LabelsToRenderDataCalculatorOptions] {{ {options} }} }}",
        calculator_pb2.CalculatorGraphConfig.Node(),
    )
    node.input_tags = tuple(inputs)
    node.output_tags = ("RENDER_DATA",)
    return node


def test_the_calculator_reads_classifications_by_label_or_display_name() -> None:
    handedness = classification_pb2.ClassificationList()
    handedness.classification.add(label="Left", display_name="gauche", score=0.9375)
    for options, expected in (
        ("", "Left"),
        ("use_display_name: true", "gauche"),
        ("display_classification_score: true", "Left:0.9375"),
    ):
        node = _labels_node(options, {"CLASSIFICATIONS": None})
        node.open({})
        out = node.process(0, {"CLASSIFICATIONS": handedness})
        assert [a.text.display_text for a in out["RENDER_DATA"].render_annotations] == [expected]
    node = _labels_node("", {"CLASSIFICATIONS": None})
    node.open({})
    assert node.process(0, {"CLASSIFICATIONS": None}) is None  # no packet, no render data at this timestamp


def test_the_calculator_refuses_bottom_left_and_missing_labels() -> None:
    with pytest.raises(ValueError, match=r"Only TOP_LEFT is supported without VIDEO_PRESTREAM\."):
        _labels_node("location: BOTTOM_LEFT", {"LABELS": None}).open({})
    with pytest.raises(ValueError, match='Must provide input stream "LABELS"'):
        _labels_node("", {"SCORES": None}).open({})
