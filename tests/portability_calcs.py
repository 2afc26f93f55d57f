"""Calculators for the portability tests, written the way a notebook cell writes them."""

import numpy as np

from ovms_notebook.engine.python.api import Calculator, register

SCALE = 2.0


def doubled(x):
    return x * SCALE


@register("RunningSum")
class RunningSum(Calculator):
    """Adds twice each input to a running total: per-stream state, a module constant and a helper."""

    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets):
        self.total = np.zeros(1, np.float32)

    def process(self, timestamp, inputs):
        value = np.asarray(inputs[":0"].array(), np.float32)
        self.total = self.total + doubled(value)
        return {":0": self.total.astype(np.float32)}


@register("StampedCounter")
class StampedCounter(Calculator):
    """Everything an OVMS Python node cannot do: side packets, bounds, timestamps."""

    inputs = ("IN",)
    outputs = ("OUT",)
    side_packets = ("START",)
    process_timestamp_bounds = True

    def process(self, timestamp, inputs):
        self.set_next_timestamp_bound("OUT", timestamp + 1)
        return {"OUT": np.int64([timestamp])}
