"""Timestamp policy and range rules (spec §3), without a server."""

from __future__ import annotations

import time

import pytest

from ovms_notebook.framework import timestamps as ts
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.status import OvmsStatus


def params(value: object = None) -> dict[str, pb.InferParameter]:
    if value is None:
        return {}
    parameter = pb.InferParameter()
    if isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    else:
        parameter.string_param = str(value)
    return {"OVMS_MP_TIMESTAMP": parameter}


def test_special_values_print_like_mediapipe_debug_string():
    assert [ts.debug_string(v) for v in (ts.UNSET, ts.PRESTREAM, ts.MIN, ts.MAX, ts.DONE, 42)] == [
        "Timestamp::Unset()", "Timestamp::PreStream()", "Timestamp::Min()", "Timestamp::Max()", "Timestamp::Done()",
        "42"]


def test_counter_starts_at_zero_and_advances_only_on_commit():
    policy = ts.TimestampPolicy()
    assert policy.resolve(params()) == (0, False)
    assert policy.resolve(params()) == (0, False)  # nothing committed yet
    policy.commit(0)
    assert policy.resolve(params()) == (1, False)


def test_manual_timestamp_resets_the_counter_base():
    policy = ts.TimestampPolicy()
    assert policy.resolve(params(40)) == (40, True)
    policy.commit(40)
    assert policy.resolve(params()) == (41, False)


def test_non_int64_timestamp_parameter_has_ovms_text():
    with pytest.raises(OvmsStatus) as error:
        ts.TimestampPolicy().resolve(params("5"))
    assert str(error.value) == (
        "Malformed packet timestamp - Invalid timestamp format in request parameter OVMS_MP_TIMESTAMP. Should be int64")


def test_counter_after_max_is_one_over_post_stream():
    policy = ts.TimestampPolicy()
    policy.commit(ts.MAX)
    with pytest.raises(OvmsStatus, match=r"Timestamp::OneOverPostStream\(\)"):
        policy.resolve(params())


def test_wallclock_is_microseconds_since_epoch_and_strictly_increasing():
    policy = ts.TimestampPolicy("wallclock")
    first, manual = policy.resolve(params())
    assert not manual and abs(first - time.time_ns() // 1000) < 5_000_000
    policy.commit(first + 10_000_000)  # a stamp in the future
    assert policy.resolve(params())[0] == first + 10_000_001


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="counter, wallclock"):
        ts.TimestampPolicy("frames")  # type: ignore[arg-type]
