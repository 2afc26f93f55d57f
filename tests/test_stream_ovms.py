"""OVMS's own streaming test list (spec §8.1/§8.2), driven over a real server on port 0.

Each test names the OVMS test it mirrors. Requests carry FP32 [1] values in
raw_input_contents exactly as OVMS's test helper builds them.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from ovms_notebook.codec import decode_output
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import PASSTHROUGH, request, stream

THREE = """
input_stream: "in1"
input_stream: "in2"
input_stream: "in3"
output_stream: "out1"
output_stream: "out2"
output_stream: "out3"
node {
  calculator: "PassThroughCalculator"
  input_stream: "in1" input_stream: "in2" input_stream: "in3"
  output_stream: "out1" output_stream: "out2" output_stream: "out3"
}
"""

SPLIT = """
input_stream: "FLOATS:in"
output_stream: "out"
node {
  calculator: "SplitFloatVectorCalculator"
  input_stream: "in"
  output_stream: "out"
  options { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges: { begin: 0 end: 3 } } }
}
"""

SIDE = """
input_stream: "tick"
input_side_packet: "val"
output_stream: "out"
node {
  calculator: "SidePacketToStreamCalculator"
  input_stream: "TICK:tick"
  input_side_packet: "val"
  output_stream: "AT_TICK:out"
}
"""

BAD_HANDLER = PASSTHROUGH.replace(
    'output_stream: "out" }', 'output_stream: "out" input_stream_handler { input_stream_handler: "NoSuchHandler" } }'
)

F = np.float32


def value(response: pb.ModelInferResponse) -> float:
    return float(decode_output(response.outputs[0], response.raw_output_contents[0]).reshape(-1)[0])


@pytest.fixture
def graph(serve_graphs):
    return serve_graphs({"my_graph": PASSTHROUGH, "three": THREE, "split": SPLIT, "side": SIDE, "bad": BAD_HANDLER})


def test_automatic_timestamps_start_at_zero_and_increase_by_one(graph):
    # SingleStreamSend3Receive3AutomaticTimestamp (v2025.0 exact stamps)
    result = stream(graph.address, [request("my_graph", {"in": F([x])}) for x in (3.5, 7.2, 102.4)])
    assert result.code == grpc.StatusCode.OK
    assert result.stamped() == [("out", 0), ("out", 1), ("out", 2)]
    assert [value(r) for r in result.outputs] == pytest.approx([3.5, 7.2, 102.4])


def test_manual_timestamps_are_echoed_on_responses(graph):
    # SingleStreamSend3Receive3ManualTimestamp
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, timestamp=t) for t in (3, 12, 99)])
    assert result.code == grpc.StatusCode.OK
    assert [t for _, t in result.stamped()] == [3, 12, 99]


def test_mixed_timestamps_continue_from_the_last_manual_one(graph):
    reqs = [request("my_graph", {"in": F([v])}, timestamp=t) for v, t in ((1, None), (2, 100), (3, None), (4, None))]
    result = stream(graph.address, reqs)
    assert [t for _, t in result.stamped()] == [0, 100, 101, 102]


def test_responses_carry_graph_name_version_and_no_id(graph):
    # ServableNameAndVersionPassedFromFirstRequestToAllResponses
    message = request("my_graph", {"in": F([1.0])})
    message.id = "abc"
    result = stream(graph.address, [message, request("my_graph", {"in": F([2.0])})])
    assert [(r.model_name, r.model_version, r.id) for r in result.outputs] == [("my_graph", "1", "")] * 2


def test_each_output_packet_is_its_own_response_for_separate_requests(graph):
    # MultipleStreamsDeliveredViaMultipleRequests: in1, in2, in3 each in its own request, all @64
    reqs = [request("three", {f"in{i}": F([v])}, timestamp=64) for i, v in ((1, 4.5), (2, 8.2), (3, 103.4))]
    result = stream(graph.address, reqs)
    assert result.code == grpc.StatusCode.OK and result.errors == []
    assert sorted(result.stamped()) == [("out1", 64), ("out2", 64), ("out3", 64)]
    assert {r.outputs[0].name: value(r) for r in result.outputs} == pytest.approx(
        {"out1": 4.5, "out2": 8.2, "out3": 103.4}
    )


def test_one_request_with_three_inputs_gives_three_responses(graph):
    # MultipleStreamsDeliveredViaSingleRequest
    result = stream(graph.address, [request("three", {"in1": F([4.5]), "in2": F([8.2]), "in3": F([103.4])},
                                            timestamp=64)])
    assert sorted(result.stamped()) == [("out1", 64), ("out2", 64), ("out3", 64)]


def test_wrong_order_of_manual_timestamps_is_rejected_in_band_and_the_stream_lives_on(graph):
    result = stream(graph.address, [request("my_graph", {"in": F([4.5])}, timestamp=3),
                                    request("my_graph", {"in": F([5.5])}, timestamp=2),
                                    request("my_graph", {"in": F([6.5])}, timestamp=4)])
    assert result.code == grpc.StatusCode.OK
    assert result.errors == [
        'Malformed packet timestamp - input stream "in" needs a timestamp greater than 3, the last one it received; '
        "got 2; partial deserialization of subsequent requests"
    ]
    assert result.stamped() == [("out", 3), ("out", 4)]


def test_wrong_order_of_manual_timestamps_fails_the_graph_in_mediapipe_mode(serve_graphs):
    # WrongOrderOfManualTimestamps: @3 then @2 -> one response, no in-band error, MEDIAPIPE_EXECUTION_ERROR
    server = serve_graphs({"my_graph": PASSTHROUGH}, timestamp_check="mediapipe")
    result = stream(server.address, [request("my_graph", {"in": F([4.5])}, timestamp=3),
                                     request("my_graph", {"in": F([5.5])}, timestamp=2)])
    assert result.errors == []
    assert result.stamped() == [("out", 3)]
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT
    assert result.details == (
        "Mediapipe execution failed. MP status - INVALID_ARGUMENT: CalculatorGraph::Run() failed: \n"
        'Packet timestamp mismatch on a calculator receiving from stream "in". Current minimum expected timestamp '
        "is 4 but received 2. Are you using a custom InputStreamHandler? Note that some InputStreamHandlers allow "
        "timestamps that are not strictly monotonically increasing. See for example the "
        "ImmediateInputStreamHandler class comment."
    )


def test_first_request_without_inputs_pushes_nothing_and_ends_ok(graph):
    # ExitOnDisconnectionDuringRead
    result = stream(graph.address, [request("my_graph")])
    assert (result.code, result.responses) == (grpc.StatusCode.OK, [])


def test_half_close_before_any_request_ends_with_unknown(graph):
    # InferStreamDisconnectionBeforeFirstRequest
    result = stream(graph.address, [])
    assert (result.code, result.details, result.responses) == (grpc.StatusCode.UNKNOWN, "Unknown error", [])


def test_unknown_graph_ends_the_stream_with_not_found_and_no_response(graph):
    result = stream(graph.address, [request("nope", {"in": F([1.0])}), request("nope", {"in": F([1.0])})])
    assert (result.code, result.responses) == (grpc.StatusCode.NOT_FOUND, [])
    assert result.details == "Mediapipe graph definition with requested name is not found"


def test_graph_that_failed_to_load_is_unavailable(graph):
    # NegativeShouldNotReachInferStreamDueToNonexistentCalculator / InvalidGraph
    result = stream(graph.address, [request("bad", {"in": F([1.0])})])
    assert (result.code, result.details) == (grpc.StatusCode.UNAVAILABLE, "Mediapipe is not loaded yet")


def test_empty_raw_buffer_in_first_request_is_an_in_band_error(graph):
    # ErrorDuringFirstRequestDeserialization
    bad = request("my_graph", {"in": F([1.0])})
    bad.raw_input_contents[0] = b""
    result = stream(graph.address, [bad])
    assert result.code == grpc.StatusCode.OK
    assert result.errors == [
        "Invalid content size of tensor proto - Expected: 4 bytes; Actual: 0 bytes; input name: in; "
        "partial deserialization of first request"
    ]


def test_errors_in_subsequent_requests_are_in_band_and_valid_requests_still_answered(graph):
    # ErrorDuringSubsequentRequestDeserializations
    empty = request("my_graph", {"in": F([1.0])}, timestamp=2)
    empty.raw_input_contents[0] = b""
    unexpected = request("my_graph", {"NONEXISTING": F([1.0]), "in": F([1.0])}, timestamp=2)
    reqs = [request("my_graph", {"in": F([4.5])}, timestamp=0), request("my_graph", {"in": F([8.2])}, timestamp=1),
            empty, unexpected]
    result = stream(graph.address, reqs)
    assert result.code == grpc.StatusCode.OK
    assert result.stamped() == [("out", 0), ("out", 1)]
    assert result.errors == [
        "Invalid content size of tensor proto - Expected: 4 bytes; Actual: 0 bytes; input name: in; "
        "partial deserialization of subsequent requests",
        "Unexpected input - NONEXISTING is unexpected; partial deserialization of subsequent requests",
    ]


def test_process_error_ends_the_stream_with_the_graph_error(graph):
    # ErrorInProcessStopsStream
    result = stream(graph.address, [request("split", {"in": F([1.0])})])
    assert result.responses == []
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT
    assert result.details.startswith(
        "Mediapipe execution failed. MP status - INTERNAL: CalculatorGraph::Run() failed: \n"
        'Calculator::Process() for node "SplitFloatVectorCalculator" failed: '
    )


def test_string_timestamp_is_rejected_in_band(graph):
    # ManualTimestampWrongType
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, parameters={"OVMS_MP_TIMESTAMP": "3"})])
    assert result.code == grpc.StatusCode.OK
    assert result.errors == [
        "Malformed packet timestamp - Invalid timestamp format in request parameter OVMS_MP_TIMESTAMP. "
        "Should be int64; partial deserialization of first request"
    ]


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (-(2**63), "Timestamp::Unset()"),
        (-(2**63) + 1, "Timestamp::Unstarted()"),
        (-(2**63) + 2, "Timestamp::PreStream()"),
        (2**63 - 3, "Timestamp::PostStream()"),
        (2**63 - 2, "Timestamp::OneOverPostStream()"),
        (2**63 - 1, "Timestamp::Done()"),
    ],
)
def test_special_timestamps_are_rejected_in_band_and_the_stream_survives(graph, raw, name):
    # ManualTimestampNotInRange
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, timestamp=raw),
                                    request("my_graph", {"in": F([2.0])}, timestamp=5)])
    assert result.errors == [f"Malformed packet timestamp - {name}; partial deserialization of first request"]
    assert result.stamped() == [("out", 5)]


@pytest.mark.parametrize("raw", [-(2**63) + 3, 2**63 - 4])
def test_min_and_max_timestamps_are_accepted(graph, raw):
    # ManualTimestampInRange
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, timestamp=raw)])
    assert result.stamped() == [("out", raw)]


def test_automatic_timestamp_after_max_is_out_of_range(graph):
    # AutomaticTimestampingExceedsMax (v2025.0)
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, timestamp=2**63 - 4),
                                    request("my_graph", {"in": F([2.0])})])
    assert result.stamped() == [("out", 2**63 - 4)]
    assert result.errors == [
        "Malformed packet timestamp - Timestamp::OneOverPostStream(); partial deserialization of subsequent requests"
    ]


def test_first_request_parameters_become_side_packets(graph):
    # FirstRequestParametersPassedAsSidePackets
    reqs = [request("side", {"tick": F([0.0])}, parameters={"val": 65})] + [
        request("side", {"tick": F([0.0])}) for _ in range(2)
    ]
    result = stream(graph.address, reqs)
    assert result.code == grpc.StatusCode.OK
    values = [decode_output(r.outputs[0], r.raw_output_contents[0]).tolist() for r in result.outputs]
    assert values == [[65], [65], [65]]
    assert [r.outputs[0].datatype for r in result.outputs] == ["INT64"] * 3
    assert [t for _, t in result.stamped()] == [0, 1, 2]


def test_reserved_side_packet_name_py_is_refused(graph):
    # FirstRequestRestrictedParamName
    result = stream(graph.address, [request("side", {"tick": F([0.0])}, parameters={"py": 1})])
    assert result.responses == []
    assert (result.code, result.details) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Failed to initialize mediapipe graph - Incoming input side packet: py is special reserved name and cannot "
        "be used",
    )


def test_missing_required_side_packet_fails_graph_start(graph):
    # FirstRequestMissingRequiredParameter
    result = stream(graph.address, [request("side", {"tick": F([0.0])})])
    assert result.responses == []
    assert result.code == grpc.StatusCode.FAILED_PRECONDITION
    assert result.details.startswith("Failed to start mediapipe graph - ")
    assert "val" in result.details


def test_side_packet_parameter_of_unsupported_type_ends_with_unknown(graph):
    message = request("side", {"tick": F([0.0])})
    message.parameters["val"].Clear()  # oneof unset, as a Triton double_param looks to OVMS
    message.parameters["val"].SetInParent()
    result = stream(graph.address, [message])
    assert (result.code, result.details, result.responses) == (grpc.StatusCode.UNKNOWN, "Unknown error", [])


def test_subsequent_requests_with_wrong_name_or_version_are_rejected_in_band(graph):
    # SubsequentRequestsDoNotMatchServableNameAndVersion
    reqs = [
        request("my_graph", {"in": F([1.0])}),
        request("other", {"in": F([2.0])}),
        request("my_graph", {"in": F([3.0])}, version="2"),
        request("my_graph", {"in": F([4.0])}, version="1"),
        request("my_graph", {"in": F([5.0])}, version="0"),
        request("my_graph", {"in": F([6.0])}, version=""),
    ]
    result = stream(graph.address, reqs)
    assert result.code == grpc.StatusCode.OK
    assert result.errors == [
        "Subsequent request with incorrect servable name; validate subsequent requests",
        "Subsequent request with incorrect servable version; validate subsequent requests",
    ]
    assert [value(r) for r in result.outputs] == [1.0, 4.0, 5.0, 6.0]
    assert [t for _, t in result.stamped()] == [0, 1, 2, 3]


def test_first_request_version_is_not_checked(graph):
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}, version="7")])
    assert result.stamped() == [("out", 0)]


def test_rejected_request_does_not_advance_the_automatic_timestamp(graph):
    bad = request("my_graph", {"in": F([1.0])})
    bad.raw_input_contents[0] = b"12"
    result = stream(graph.address, [request("my_graph", {"in": F([1.0])}), bad, request("my_graph", {"in": F([2.0])})])
    assert len(result.errors) == 1
    assert result.stamped() == [("out", 0), ("out", 1)]
