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

from mediapipe.framework.tool.switch_container_pb2 import SwitchContainerOptions

from ovms_notebook.engine.python.api import STOP, Calculator

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
    resolved when the graph loaded (the options' channel); no streams."""

    side_packets = ("ENABLE", "SELECT")
    optional_side_packets = ("ENABLE", "SELECT")
    timestamp_offset = None

    def open(self, side_packets: Mapping[str, object]) -> None:
        options = self.options(SwitchContainerOptions)
        resolved, picked = switch_channel(options, {}), switch_channel(options, side_packets)
        if picked == resolved:
            return
        names = [node.calculator for node in options.contained_node]
        wanted = f"channel {picked}" + (f" ({names[picked]})" if 0 <= picked < len(names) else f" of {len(names)}")
        given = ", ".join(f"{key} = {value!r}" for key, value in side_packets.items() if key in ("ENABLE", "SELECT"))
        raise ValueError(
            f"the side packet {given} picks {wanted} of a SwitchContainer, but on its model entry the subgraph "
            f"runs channel {resolved} ({names[resolved]}): OVMS's MediaPipe fork infers this model with one set of "
            "outputs (face landmarks without attention), and the same graph fails on OVMS. Leave the side packet "
            "unset or give the value that picks that channel (WITH_ATTENTION: false)"
        )

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> object:
        return STOP
