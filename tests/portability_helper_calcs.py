"""Calculators that use ovms_notebook's own helpers, written the way a notebook cell writes them."""

import numpy as np

from ovms_notebook.calculators.tracking import boxes_of, iou
from ovms_notebook.engine.python.api import Calculator, register


@register("SelfOverlap")
class SelfOverlap(Calculator):
    """IoU of the first box with itself shifted by a tenth: uses `iou`, a self-contained package helper."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        box = [float(v) for v in np.asarray(inputs[":0"].array()).ravel()[:4]]
        moved = [box[0] + box[2] / 10, *box[1:]]
        return {":0": np.float32([iou(box, moved)])}


@register("BoxCount")
class BoxCount(Calculator):
    """How many boxes a detection tensor holds: uses `boxes_of`, which needs more of the package."""

    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp, inputs):
        return {":0": np.int32([len(boxes_of(inputs[":0"]))])}
