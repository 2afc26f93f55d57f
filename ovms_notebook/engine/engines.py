"""What serving needs from a running graph (`GraphEngine`), and the one place that picks the engine.

Two engines implement it: `native.NativeGraph` (the whole graph on MediaPipe's CalculatorGraph) and
`hybrid.HybridGraph` (a native half plus the Python scheduler, joined at the cut). `make_graph` chooses
by the graph's split, so neither engine module imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import mediapipe as mp

from ovms_notebook.engine.graphconfig import GraphSpec
from ovms_notebook.engine.hybrid import HybridGraph
from ovms_notebook.engine.native import NativeGraph, PacketSink
from ovms_notebook.framework.trace import Trace
from ovms_notebook.status import OvmsStatus

__all__ = ["GraphEngine", "make_graph"]


class GraphEngine(Protocol):
    """One run of a graph: started once with side packets, fed packets, closed once."""

    def start(self, side_packets: Mapping[str, mp.Packet]) -> None:
        """Start the run with the given input side packets."""

    def push(self, packets: Mapping[str, mp.Packet], timestamp: int) -> None:
        """Add one packet per named input stream at `timestamp`."""

    def has_error(self) -> bool:
        """True once the run failed (its error is reported by `close`)."""

    def wait_until_idle(self) -> None:
        """Block until every packet pushed so far is processed."""

    def close(self) -> OvmsStatus | None:
        """Close the inputs, wait for the run to finish; the run's failure, or None."""

    def trace(self, origin_us: int) -> Trace | None:
        """The run's execution trace on a clock starting at `origin_us`, or None when not tracing."""


def make_graph(spec: GraphSpec, sink: PacketSink, *, trace: bool = False) -> GraphEngine:
    """The right engine for a graph: one native graph, or native + Python halves joined at the cut.

    With `trace` the graph records an execution trace (`graph.trace(origin_us)`).
    """
    if spec.split is None:
        return NativeGraph(spec, sink, trace=trace)
    return HybridGraph(spec, sink, spec.split, trace=trace)
