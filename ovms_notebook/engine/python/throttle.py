"""MediaPipe's input throttling (`max_queue_size`) for the Python scheduler.

In MediaPipe a graph input stream is throttled while an input queue of a node downstream of it holds
`max_queue_size` packets (100 when the config sets none, -1 for no bound): `AddPacketToInputStream` then waits
(WAIT_TILL_NOT_FULL, the default) or fails with "Graph is throttled." (ADD_IF_NOT_FULL). When every node is
idle while a graph input is throttled, the queue can never drain by itself: MediaPipe raises that queue's
bound by one (a warning every 100th time) or, with `report_deadlock: true`, fails the graph.

The Python scheduler runs the ready nodes on the caller's thread, so "the producer waits" means the add runs
the scheduler until the queue drained; a queue still full afterwards belongs to a node waiting for another
input, i.e. the graph is idle while throttled, and the deadlock rule above applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE_SIZE = 100
WAIT_TILL_NOT_FULL = "WAIT_TILL_NOT_FULL"
ADD_IF_NOT_FULL = "ADD_IF_NOT_FULL"
ADD_MODES = (WAIT_TILL_NOT_FULL, ADD_IF_NOT_FULL)


def queue_bound(config: object) -> int | None:
    """The graph's `max_queue_size` as MediaPipe reads it: unset (0) is 100, a negative value is no bound."""
    size = int(getattr(config, "max_queue_size", 0) or 0)
    if size < 0:
        return None
    return size or DEFAULT_MAX_QUEUE_SIZE


def downstream(graph_inputs: Iterable[str], nodes: Iterable[Any]) -> dict[str, tuple[tuple[int, str], ...]]:
    """For each graph input stream, the (node id, input key) of every node input fed from it, directly or
    through other nodes (plans with `.id`, `.inputs` and `.outputs` refs)."""
    nodes = list(nodes)
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for ref in node.inputs:
            consumers.setdefault(ref.name, []).append(node)
    result = {}
    for name in graph_inputs:
        seen_streams, found = {name}, list[tuple[int, str]]()
        todo = [name]
        while todo:
            stream = todo.pop()
            for node in consumers.get(stream, []):
                found.extend((node.id, ref.key) for ref in node.inputs if ref.name == stream)
                for ref in node.outputs:
                    if ref.name not in seen_streams:
                        seen_streams.add(ref.name)
                        todo.append(ref.name)
        result[name] = tuple(dict.fromkeys(found))
    return result


class Throttle:
    """The per-run throttling state: which node input queues a graph input feeds and their current bounds."""

    def __init__(
        self, bound: int | None, feeds: Mapping[str, tuple[tuple[int, str], ...]], report_deadlock: bool
    ) -> None:
        self.bound = bound
        self.feeds = feeds
        self.report_deadlock = report_deadlock
        self._raised: dict[tuple[int, str], int] = {}  # queues whose bound a deadlock raised
        self.resolved = 0

    def full_queue(self, graph_input: str, nodes: Mapping[int, Any]) -> tuple[int, str, Any] | None:
        """A queue fed from `graph_input` that is at its bound (node id, input key, stream), or None."""
        if self.bound is None:
            return None
        for node_id, key in self.feeds.get(graph_input, ()):
            stream = nodes[node_id].inputs[key]
            if len(stream.queue) >= self._raised.get((node_id, key), self.bound):
                return node_id, key, stream
        return None

    def resolve(self, node_id: int, key: str, stream: Any) -> None:
        """Raise one full queue's bound by one, as MediaPipe resolves a throttling deadlock."""
        self._raised[(node_id, key)] = len(stream.queue) + 1
        self.resolved += 1
        if self.resolved % 100 == 1:
            log.warning(
                'Resolved a deadlock by increasing max_queue_size of input stream: "%s" of a node with ID: '
                "%d. Consider increasing max_queue_size for better performance.",
                stream.name,
                node_id,
            )

    @staticmethod
    def deadlock_message(stream_name: str) -> str:
        return (
            f'Detected a deadlock due to input throttling for: "{stream_name}". All calculators are idle while '
            'packet sources remain active and throttled.  Consider adjusting "max_queue_size" or '
            '"report_deadlock".'
        )
