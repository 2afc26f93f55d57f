"""MediaPipe's RecolorCalculator (CPU), which the 0.10.21 wheel lacks, as a Python calculator.

MediaPipe's selfie segmentation example and its pose renderer (`PoseRendererCpu`)
tint the person with it: IMAGE (SRGB ImageFrame) + MASK (VEC32F1 or GRAY8
ImageFrame) -> IMAGE, every pixel blended towards the options' colour by the
mask's weight (mediapipe/calculators/image/recolor_calculator.cc at v0.10.21,
`RenderCpu` and `Blend`):

    weight = mask (a GRAY8 mask is scaled by 1/255), or 1 - mask with invert_mask
    luminance = 1, or (0.299 r + 0.587 g + 0.114 b) / 255 with adjust_with_luminance
    mix = weight * luminance                                   (float)
    out = saturate(round(pixel * (1 - mix))) + saturate(round(colour * mix))   (per channel, saturating)

The mask is first resized to the image with OpenCV's default bilinear
interpolation (a multi-channel mask gives its first channel, or its fourth
with `mask_channel: ALPHA`). A timestamp with no mask passes the image through.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from mediapipe.calculators.image.recolor_calculator_pb2 import RecolorCalculatorOptions as RecolorOptions

from ovms_notebook.calculators.tflite import as_pixels, image_frame
from ovms_notebook.engine.python.api import Calculator

__all__ = ["RecolorCalculator", "RecolorOptions", "recolor"]


def recolor(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int],
    *,
    invert_mask: bool = False,
    adjust_with_luminance: bool = True,
    alpha_channel: bool = False,
) -> np.ndarray:
    """RecolorCalculator::RenderCpu on uint8 [H, W, 3] `image` and a float32 or uint8 [h, w(, c)] `mask`."""
    import cv2

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"RecolorCalculator needs an RGB image (3 channels), got shape {list(image.shape)}")
    if mask.ndim == 3:
        mask = mask[..., 3] if alpha_channel and mask.shape[2] > 3 else mask[..., 0]
    height, width = image.shape[:2]
    full: np.ndarray = cv2.resize(np.ascontiguousarray(mask), (width, height))
    if full.dtype == np.uint8:
        weight: np.ndarray = (full * (1.0 / 255.0)).astype(np.float32)
    elif full.dtype == np.float32:
        weight = full
    else:
        raise ValueError(f"RecolorCalculator needs a VEC32F1 or GRAY8 mask, got {mask.dtype} pixels")
    if invert_mask:
        weight = np.float32(1.0) - weight
    pixels = image.astype(np.float64)
    if adjust_with_luminance:
        luminance = ((pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114) / 255).astype(
            np.float32
        )
        mix = (weight * luminance).astype(np.float64)[..., None]
    else:
        mix = weight.astype(np.float64)[..., None]
    kept = np.clip(np.rint(pixels * (1.0 - mix)), 0, 255)
    added = np.clip(np.rint(np.asarray(color, np.float64) * mix), 0, 255)
    return np.clip(kept + added, 0, 255).astype(np.uint8)


class RecolorCalculator(Calculator):
    """IMAGE + MASK -> IMAGE: the image tinted towards the options' colour where the mask says (CPU only)."""

    inputs = ("IMAGE", "MASK")
    outputs = ("IMAGE",)

    def open(self, side_packets: Mapping[str, object]) -> None:
        if "IMAGE" not in self.input_tags or "IMAGE" not in self.output_tags:
            raise ValueError("RecolorCalculator needs an IMAGE input and an IMAGE output here (no GPU buffers)")
        options = self.options(RecolorOptions)
        if not options.HasField("color"):
            raise ValueError("Missing color option.")
        self.color = (options.color.r, options.color.g, options.color.b)
        self.invert, self.luminance = options.invert_mask, options.adjust_with_luminance
        self.alpha = options.mask_channel == RecolorOptions.ALPHA

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object] | None:
        image, mask = inputs.get("IMAGE"), inputs.get("MASK")
        if image is None:
            return None
        pixels = as_pixels(image)
        if mask is None:  # MediaPipe forwards the input packet unchanged
            return {"IMAGE": image_frame(pixels)}
        return {
            "IMAGE": image_frame(
                recolor(
                    pixels,
                    np.asarray(mask),
                    self.color,
                    invert_mask=self.invert,
                    adjust_with_luminance=self.luminance,
                    alpha_channel=self.alpha,
                )
            )
        }
