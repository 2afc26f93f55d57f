"""One node of a running Python graph: its calculator instance, streams, handler and calls.

`NodeRuntime` follows mediapipe/framework/calculator_node.cc (v0.10.21):
`OpenNode`, `ProcessNode` (and the source-node branch) and `CloseNode`, with
the output bookkeeping of output_stream_handler.cc (`PropagateOutputPackets`,
`TryPropagateTimestampBound`). It is also the context behind the helper
methods of `Calculator` (emit, set_next_timestamp_bound, ...) while one of the
calculator's methods runs. Exceptions from user code become graph errors in
MediaPipe's words ("Calculator::Process() for node "x" failed: ...").
"""

from __future__ import annotations

import logging
import operator
import os
import traceback
from collections.abc import Callable, Mapping

from ovms_notebook.engine.python.api import EMPTY, STOP, Bound, Calculator, Packet, canonical_key, declares
from ovms_notebook.engine.python.handlers import InputSlot, Readiness, make_handler
from ovms_notebook.engine.python.streams import (
    INTERNAL,
    ErrorSink,
    InputStream,
    OutputShard,
    OutputStream,
    Status,
    allowed_in_stream,
    builder_status,
    next_allowed,
)
from ovms_notebook.engine.python.tracing import NodeTracer, now_us
from ovms_notebook.engine.python.validate import NodePlan
from ovms_notebook.framework.timestamps import DONE, UNSTARTED, debug_string

log = logging.getLogger(__name__)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def describe(error: BaseException) -> str:
    """`Type: message` and the traceback from the calculator's own frames down.

    The traceback points a user at the line of their calculator that failed; when every frame is this
    package's own (a built-in node such as OpenVINOInferenceCalculator rejecting a tensor), it would only
    show our internals to the client, so the message stands alone.
    """
    text = f"{type(error).__name__}: {error}"
    frames = traceback.extract_tb(error.__traceback__)[1:]
    if frames and not all(os.path.abspath(frame.filename).startswith(_PACKAGE) for frame in frames):
        text += "\nTraceback (most recent call last):\n" + "".join(traceback.format_list(frames)).rstrip()
    return text


Task = tuple[int, dict[str, InputSlot]]
"""A prepared invocation: input timestamp (Done() = close) and the inputs filled when it was scheduled."""


class NodeRuntime:
    """A node during one graph run, scheduled like `CalculatorNode`: one invocation in flight at a time.

    A change on one of its inputs calls `check_if_became_ready()`, which asks
    the handler; a ready invocation has its inputs filled right away and is
    handed to `enqueue` (the graph's scheduler queue), and `run()` executes it
    and looks again. A node that is not ready lets its offset outputs follow
    its inputs' bound.
    """

    def __init__(
        self,
        plan: NodePlan,
        streams: Mapping[str, OutputStream],
        record: ErrorSink,
        stop_sources: Callable[[], None],
        enqueue: Callable[[NodeRuntime, Task], bool],
        tracer: NodeTracer | None = None,
        set_side: Callable[[str, object], None] | None = None,
    ) -> None:
        self.plan = plan
        self._set_side = set_side
        self._tracer = tracer
        self.id = plan.id
        self.name = plan.name
        self._record = record
        self._stop_sources = stop_sources
        self._enqueue = enqueue
        self.in_flight = False
        self._prepared_close = False
        self.inputs = {
            ref.key: InputStream(ref.name, record, back_edge=ref.key in plan.back_edges) for ref in plan.inputs
        }
        for ref in plan.inputs:
            streams[ref.name].mirrors.append((self.inputs[ref.key], self.check_if_became_ready))
        self.outputs = {ref.key: streams[ref.name] for ref in plan.outputs}
        self.is_source = not plan.inputs
        self.state = "created"
        self.instance: Calculator = plan.cls()
        self.instance.node = plan.config
        self.instance.node_name = plan.name
        self.instance.input_tags = tuple(self.inputs)
        self.instance.output_tags = tuple(self.outputs)
        self.handler = make_handler(
            plan.handler, list(self.inputs.items()), plan.sync_sets, bool(plan.cls.process_timestamp_bounds)
        )
        self._shards: dict[str, OutputShard] = {}
        self._slots: dict[str, InputSlot] = {}
        self._timestamp: int | None = None

    # Lifecycle (CalculatorNode::OpenNode / ProcessNode / CloseNode).

    def open(self, side_packets: Mapping[str, object]) -> bool:
        """Call `open()`; outputs it emitted are propagated. False (error recorded) when it raised."""
        values = {ref.key: side_packets[ref.name] for ref in self.plan.side_packets if ref.name in side_packets}
        shards = self._begin(None, {})
        try:
            self.instance.open(values)
            offset = self.instance.timestamp_offset
            if offset is not None:
                offset = operator.index(offset)
        except Exception as error:
            self._record(_failure("Open", self.name, error))
            return False
        finally:
            self._end()
        for stream in self.outputs.values():
            stream.offset = offset
        if offset is not None and self.handler.sync_set_count > 1:
            log.info(
                'Calculator node "%s" is configured with multiple input sync-sets and an output timestamp-offset, '
                "which will often conflict due to the order of packet arrival.",
                self.name,
            )
        self._post(UNSTARTED, shards)
        self.state = "opened"
        return True

    def check_if_became_ready(self) -> None:
        """`CheckIfBecameReady`: schedule the next invocation unless one is already in flight."""
        if self.state == "opened" and not self.in_flight and not self.is_source:
            self._schedule()

    def _schedule(self) -> None:
        """`ScheduleInvocations` with one invocation allowed in flight."""
        state, timestamp = self.handler.readiness()
        if state is Readiness.NOT_READY:
            for stream in self.outputs.values():
                stream.propagate_input_bound(timestamp)
            return
        if state is Readiness.READY_FOR_CLOSE:
            if self._prepared_close:
                return
            self._prepared_close = True
            self.in_flight = self._enqueue(self, (DONE, {}))
            return
        self.in_flight = self._enqueue(self, (timestamp, self.handler.fill(timestamp)))

    def run(self, task: Task) -> None:
        """Execute a scheduled invocation (`ProcessNode`), then look for the next one (`EndScheduling`)."""
        timestamp, slots = task
        if timestamp == DONE:
            self.close()
        elif not allowed_in_stream(timestamp):
            message = f"Invalid input timestamp in ProcessNode(). timestamp: {debug_string(timestamp)}"
            self._record(builder_status(INTERNAL, message))
        else:
            self._process(timestamp, slots)
        self.in_flight = False
        if self.state == "opened":
            self._schedule()

    def run_source(self) -> None:
        """One `process()` of a source node (dummy input timestamp 0); STOP closes it."""
        self._process(0, {})

    def _process(self, timestamp: int, slots: dict[str, InputSlot]) -> None:
        shards = self._begin(timestamp, slots)
        started = now_us() if self._tracer is not None else 0
        try:
            inputs = {key: slot[0] for key, slot in slots.items()}
            result = self.instance.process(timestamp, inputs)
            stop = result is STOP
            if not stop:
                self._apply(result)
        except Exception as error:
            self._record(_failure("Process", self.name, error))
            return
        finally:
            self._end()
        if self._tracer is not None:
            self._trace(timestamp, slots, shards, started)
        self._post(timestamp, shards)
        if stop:
            if self.is_source:
                self.close()
            else:
                self._stop_sources()

    def _trace(self, timestamp: int, slots: dict[str, InputSlot], shards: Mapping[str, OutputShard],
               started: int) -> None:
        """Record the call that just ended (a source node's input timestamp is its first output's, as in MediaPipe)."""
        outputs = [(shard.name, packet.timestamp) for shard in shards.values() for packet in shard.queue]
        if self.is_source:
            timestamp = outputs[0][1] if outputs else None  # type: ignore[assignment]
        inputs = [(self.inputs[key].name, slot[1]) for key, slot in slots.items()
                  if slot[0] is not None and slot[0] is not EMPTY]
        self._tracer.process(self.name, timestamp, inputs, outputs, started)  # type: ignore[union-attr]

    def close(self, *, propagate: bool = True) -> None:
        """`CloseNode`: inputs closed, `close()` called, outputs flushed and closed (not when the run ended)."""
        for stream in self.inputs.values():
            stream.close()
        shards = self._begin(None, {})
        try:
            self._apply(self.instance.close())
        except Exception as error:
            if propagate:
                self._record(_failure("Close", self.name, error))
            else:
                log.debug("close() of node %s failed after the run ended", self.name, exc_info=True)
        finally:
            self._end()
        self.state = "closed"
        if propagate:
            for key, output in self.outputs.items():
                output.propagate(DONE, shards[key])
                output.close()

    def _post(self, timestamp: int, shards: Mapping[str, OutputShard]) -> None:
        """`PropagateOutputPackets`: each open output's packets and computed bound go to its consumers."""
        for key, stream in self.outputs.items():
            if stream.closed:
                continue
            shard = shards[key]
            stream.propagate(stream.output_bound(shard, timestamp), shard)
            if shard.closed:
                stream.close()

    def _begin(self, timestamp: int | None, slots: dict[str, InputSlot]) -> dict[str, OutputShard]:
        self._shards = {key: stream.shard() for key, stream in self.outputs.items()}
        self._slots = slots
        self._timestamp = timestamp
        self.instance._ovms_context = self
        return self._shards

    def _end(self) -> None:
        self.instance._ovms_context = None
        self._timestamp = None

    def _apply(self, result: object) -> None:
        if result is None:
            return
        if not isinstance(result, Mapping):
            raise TypeError(
                f"expected a mapping of output keys to values (or None{', STOP' if self.is_source else ''}), "
                f"got {type(result).__name__}"
            )
        for tag, item in result.items():
            if item is None:
                continue
            if isinstance(item, Bound):
                self.set_next_timestamp_bound(tag, item.timestamp)
            elif isinstance(item, Packet):
                self.emit(tag, item.value, item.timestamp)
            else:
                self.emit(tag, item, None)

    # The context behind Calculator's helpers (CalculatorContext).

    def _shard(self, tag: str) -> OutputShard | None:
        key = canonical_key(tag)
        if key in self._shards:
            return self._shards[key]
        tag_name, _, index = key.partition(":")
        if declares(self.plan.cls.outputs, tag_name, int(index or 0)):
            return None  # declared but not connected in this graph: nothing to send to
        raise ValueError(
            f'node "{self.name}" has no output "{tag}"; its outputs are {", ".join(self._shards) or "none"}'
        )

    def _slot(self, tag: str) -> InputSlot:
        key = canonical_key(tag)
        if key not in self._slots:
            if self._timestamp is None:
                raise RuntimeError("input timestamps exist only inside process()")
            raise ValueError(f'node "{self.name}" has no input "{tag}"; its inputs are {", ".join(self._slots)}')
        return self._slots[key]

    def set_side_packet(self, tag: str, value: object) -> None:
        """`OutputSidePacket::Set` for output side packet `tag`: the graph opens the nodes waiting for it."""
        key = canonical_key(tag)
        ref = next((ref for ref in self.plan.output_side_packets if ref.key == key), None)
        if ref is None:
            made = ", ".join(ref.key for ref in self.plan.output_side_packets) or "none"
            raise ValueError(f'node "{self.name}" has no output side packet "{tag}"; its output side packets: {made}')
        if value is None:
            raise ValueError(f'Empty packet set on output side packet "{ref.name}".')
        if self._set_side is None:
            raise RuntimeError("output side packets need a graph to receive them")
        self._set_side(ref.name, value)

    def emit(self, tag: str, value: object, timestamp: int | None) -> None:
        shard = self._shard(tag)
        if shard is None:
            return
        if value is None:
            raise ValueError("None is not a packet value; emit nothing, or EMPTY/Bound for a bound-only update")
        if timestamp is None:
            if self._timestamp is None or (self.is_source and value is not EMPTY):
                raise ValueError(
                    "a packet needs an explicit timestamp in open(), close() and a source node's process(): "
                    "emit(tag, value, timestamp) or Packet(value, timestamp)"
                )
            timestamp = self._timestamp
        timestamp = operator.index(timestamp)
        if value is EMPTY:
            shard.set_next_timestamp_bound(next_allowed(timestamp))
        else:
            shard.add(value, timestamp)

    def set_next_timestamp_bound(self, tag: str, timestamp: int) -> None:
        shard = self._shard(tag)
        if shard is not None:
            shard.set_next_timestamp_bound(operator.index(timestamp))

    def close_output(self, tag: str) -> None:
        shard = self._shard(tag)
        if shard is not None:
            shard.close()

    def input_timestamp(self, tag: str) -> int:
        return self._slot(tag)[1]

    def input_done(self, tag: str) -> bool:
        return self._slot(tag)[2]


_ABSL_CODES = frozenset({
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})


def _failure(phase: str, node: str, error: BaseException) -> Status:
    """MediaPipe's status for a calculator method that raised: `Calculator::Process() for node "x" failed: ...`."""
    return Status(_code(error), f'Calculator::{phase}() for node "{node}" failed: {describe(error)}')


def _code(error: BaseException) -> str:
    """The absl status code a calculator's exception stands for: its `code` attribute when it names one
    (e.g. FAILED_PRECONDITION for a session that cannot load its model, as OVMS's Open() returns), else INTERNAL."""
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code in _ABSL_CODES else INTERNAL

