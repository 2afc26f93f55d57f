"""Timestamps of a stream: OVMS_MP_TIMESTAMP parsing, range rules, automatic stamps.

MediaPipe's special timestamps sit at both ends of int64; only the range in
between may stamp a packet. Passing a special value to the native bindings
aborts the process, so every timestamp is checked here first (OVMS's rules, from its
src/kfs_frontend/kfs_graph_executor_impl.cpp).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.wire import TIMESTAMP_PARAMETER as TIMESTAMP_PARAMETER  # re-export
from ovms_notebook.status import OvmsStatus, StatusCode

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
UNSET = _INT64_MIN
UNSTARTED = _INT64_MIN + 1
PRESTREAM = _INT64_MIN + 2
MIN = _INT64_MIN + 3
MAX = _INT64_MAX - 3
POSTSTREAM = _INT64_MAX - 2
ONE_OVER_POSTSTREAM = _INT64_MAX - 1
DONE = _INT64_MAX

_SPECIAL_NAMES = {
    UNSET: "Timestamp::Unset()",
    UNSTARTED: "Timestamp::Unstarted()",
    PRESTREAM: "Timestamp::PreStream()",
    MIN: "Timestamp::Min()",
    MAX: "Timestamp::Max()",
    POSTSTREAM: "Timestamp::PostStream()",
    ONE_OVER_POSTSTREAM: "Timestamp::OneOverPostStream()",
    DONE: "Timestamp::Done()",
}

TimestampMode = Literal["counter", "wallclock"]
TIMESTAMP_MODES: tuple[str, ...] = ("counter", "wallclock")


def debug_string(value: int) -> str:
    """MediaPipe's `Timestamp::DebugString()`: special values by name, others as digits."""
    return _SPECIAL_NAMES.get(value, str(value))


def is_range_value(value: int) -> bool:
    """True when `value` may stamp a packet (MediaPipe's `IsRangeValue`)."""
    return MIN <= value <= MAX


def next_allowed(value: int) -> int:
    """MediaPipe's `Timestamp::NextAllowedInStream()`: +1; nothing may follow Max() or PreStream()."""
    if value >= MAX or value == PRESTREAM:
        return ONE_OVER_POSTSTREAM
    if value < MIN:
        return MIN
    return value + 1


def requested_timestamp(parameters: Mapping[str, pb.InferParameter]) -> int | None:
    """The request's `OVMS_MP_TIMESTAMP`, None when absent; OVMS's error when not a valid int64 timestamp."""
    if TIMESTAMP_PARAMETER not in parameters:
        return None
    parameter = parameters[TIMESTAMP_PARAMETER]
    if parameter.WhichOneof("parameter_choice") != "int64_param":
        raise OvmsStatus(
            StatusCode.MEDIAPIPE_INVALID_TIMESTAMP,
            "Invalid timestamp format in request parameter OVMS_MP_TIMESTAMP. Should be int64",
        )
    return check_range(parameter.int64_param)


def check_range(value: int) -> int:
    """Return `value` if it is a range timestamp, else raise OVMS's "Malformed packet timestamp"."""
    if not is_range_value(value):
        raise OvmsStatus(StatusCode.MEDIAPIPE_INVALID_TIMESTAMP, debug_string(value))
    return value


class TimestampPolicy:
    """Assigns each request of one stream its timestamp.

    counter (default, OVMS's documented behaviour): the first request gets 0,
    each request that was pushed whole advances to previous + 1, a manual
    `OVMS_MP_TIMESTAMP` resets the base. A rejected request changes nothing.
    wallclock (OVMS 2025.1+): microseconds since the epoch, kept strictly
    increasing so two requests within one microsecond do not collide.
    """

    def __init__(self, mode: TimestampMode = "counter") -> None:
        if mode not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {', '.join(TIMESTAMP_MODES)}, got {mode!r}")
        self.mode = mode
        self._next = 0
        self._last: int | None = None

    def peek(self) -> int:
        """The timestamp an automatic request would get now (may be out of range after Max())."""
        if self.mode == "wallclock":
            now = time.time_ns() // 1000
            return now if self._last is None else max(now, self._last + 1)
        return self._next

    def resolve(self, parameters: Mapping[str, pb.InferParameter]) -> tuple[int, bool]:
        """The timestamp for a request and whether it was manual; raises OVMS's timestamp errors."""
        manual = requested_timestamp(parameters)
        if manual is not None:
            return manual, True
        return check_range(self.peek()), False

    def commit(self, timestamp: int) -> None:
        """Record that a request stamped `timestamp` was pushed whole."""
        self._last = timestamp
        self._next = next_allowed(timestamp)
