"""A SwitchContainer resolved when the graph loads, and the check that a side packet does not pick otherwise.

`FaceLandmarkCpu` picks two `SwitchContainer` channels by its `WITH_ATTENTION`
side packet (MediaPipe v0.10.21's mediapipe/framework/tool/switch_container.cc:
SELECT -> that channel, ENABLE true -> channel 1, else the options' `select`,
else their `enable`). When the subgraph infers on a model entry
(ovms_notebook.framework.ovms_fork), the container is replaced, when the graph
loads, by the contained node its options select (what runs when no side packet
says otherwise): its contained nodes read tensors, so they must be expanded
into Python twins before the run. OVMS's fork infers on a model with one set of
outputs (face landmarks: no attention), so another channel cannot run there
either. `PythonSwitchChannelCheck` stands beside the resolved node and reads the
same side packets when the run opens its nodes: a side packet that picks another
channel fails the run with a text that says which, and why, instead of a
tensor-count error deeper in the subgraph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediapipe.framework.tool.switch_container_pb2 import SwitchContainerOptions

from ovms_notebook.engine.python.api import STOP, Calculator
from ovms_notebook.framework.options import node_options
from ovms_notebook.framework.tags import split_tag_index_name

__all__ = ["PythonSwitchChannelCheck", "switch_channel"]


def switch_channel(options: SwitchContainerOptions, side_packets: Mapping[str, object]) -> int:
    """The channel a SwitchContainer runs: SELECT, else ENABLE (true -> 1), from the side packets, else the
    options' `select`, else their `enable`."""
    if side_packets.get("SELECT") is not None:
        return int(side_packets["SELECT"])  # type: ignore[call-overload]
    if side_packets.get("ENABLE") is not None:
        return int(bool(side_packets["ENABLE"]))
    return options.select if options.HasField("select") else int(options.enable)


class PythonSwitchChannelCheck(Calculator):
    """Fails the run (as its nodes open) when its ENABLE / SELECT side packets pick another channel than the one
    resolved when the graph loaded (the options' channel); no streams. A side packet the graph makes with a
    `ConstantSidePacketCalculator` is checked when the graph loads (`check_constants`)."""

    side_packets = ("ENABLE", "SELECT")
    optional_side_packets = ("ENABLE", "SELECT")
    timestamp_offset = None

    @classmethod
    def check_constants(cls, node: Any, constants: Mapping[str, tuple[str, object]]) -> None:
        """ValueError, when the graph loads, if constant side packets ({key: (name, value)}) pick another channel."""
        options = node_options(node, SwitchContainerOptions)
        picked = switch_channel(options, {key: value for key, (_name, value) in constants.items()})
        if picked != switch_channel(options, {}):
            name, value = next(iter(constants.values()))
            raise ValueError(_refusal(name, value, picked, options) + f"; in the ConstantSidePacketCalculator making "
                             f"{name}, write: packet {{ bool_value: false }}")

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(SwitchContainerOptions)
        picked = switch_channel(options, side_packets)
        if picked == switch_channel(options, {}):
            return
        names = {split_tag_index_name(entry)[0]: split_tag_index_name(entry)[2]
                 for entry in self.node.input_side_packet}
        key = next(key for key in ("SELECT", "ENABLE") if side_packets.get(key) is not None)
        raise ValueError(_refusal(names.get(key, key), side_packets[key], picked, options)
                         + "; give it false, or leave it out of the request")

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> object:
        return STOP


def _refusal(name: str, value: object, picked: int, options: SwitchContainerOptions) -> str:
    resolved = switch_channel(options, {})
    return (f"the side packet {name!r} = {value!r} picks channel {picked} of {len(options.contained_node)} of a "
            f"SwitchContainer (attention on, for face landmarks), but on its model entry the subgraph runs channel "
            f"{resolved}: OVMS's MediaPipe fork infers face landmarks with one set of outputs, without attention, "
            "and the same graph fails on OVMS")
