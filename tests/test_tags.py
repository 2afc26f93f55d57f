"""framework/tags.py, the one TAG:index:name parser, against the mediapipe wheel itself: the same spellings
accepted, the same ones refused, with MediaPipe's text."""

from __future__ import annotations

from collections.abc import Mapping

import mediapipe as mp
import pytest
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2

from ovms_notebook import Calculator, register
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.tags import parse_tag_index, parse_tag_index_name, split_tag_index_name

STREAMS = ["in", "_x1", "A:in", "A:0:in", "A:1:in", "A:10:in", "A:01:in", "A:00:in", ":0:in", "a:in", "A:B:0:in",
           "A:", "A:in:", "In", "A:-1:in", "1:in", "A :in", ""]
TAG_INDEXES = ["LOOP", "LOOP:0", "LOOP:00", "LOOP:01", "loop", "LOOP:0:x", "LOOP:", ":", "LOOP:-1", "L OOP"]


def _mediapipe_error(text: str) -> str | None:
    config = text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
    try:
        mp.CalculatorGraph(graph_config=config)
    except Exception as error:
        return str(error)
    return None


@pytest.mark.parametrize("entry", STREAMS)
def test_an_input_stream_entry_is_refused_exactly_when_mediapipe_refuses_its_spelling(entry: str) -> None:
    error = _mediapipe_error(f'input_stream: "in" node {{ calculator: "PassThroughCalculator" input_stream: "{entry}" '
                             'output_stream: "out" }')
    assert error is not None or entry == "in"  # the others fail for wiring reasons at the least
    refused_by_mediapipe = f'TAG:index:name is invalid, "{entry}" does not match' in error if error else False
    try:
        split_tag_index_name(entry)
    except ValueError as ours:
        assert refused_by_mediapipe, (entry, error)
        assert str(ours) in error
    else:
        assert not refused_by_mediapipe, (entry, error)


@pytest.mark.parametrize("tag_index", TAG_INDEXES)
def test_a_back_edge_tag_index_is_refused_exactly_when_mediapipe_refuses_it(tag_index: str) -> None:
    error = _mediapipe_error(
        'input_stream: "in" output_stream: "out" node { calculator: "PreviousLoopbackCalculator" '
        f'input_stream: "MAIN:in" input_stream: "LOOP:out" input_stream_info: {{ tag_index: "{tag_index}" '
        'back_edge: true } output_stream: "PREV_LOOP:prev" } '
        'node { calculator: "PassThroughCalculator" input_stream: "prev" output_stream: "out" }')
    refused_by_mediapipe = error is not None and f'TAG:index is invalid, "{tag_index}"' in error
    try:
        parse_tag_index(tag_index)
    except ValueError as ours:
        assert refused_by_mediapipe, (tag_index, error)
        assert str(ours) in error
    else:
        assert not refused_by_mediapipe, (tag_index, error)


def test_the_parsed_parts_follow_mediapipe() -> None:
    assert parse_tag_index_name("in") == ("", -1, "in")
    assert parse_tag_index_name("A:in") == ("A", 0, "in")
    assert parse_tag_index_name("A:2:in") == ("A", 2, "in")
    assert split_tag_index_name("A:in") == ("A", None, "in")
    assert parse_tag_index("") == ("", 0)
    assert parse_tag_index(":3") == ("", 3)
    assert parse_tag_index("VIDEO:2") == ("VIDEO", 2)


@register("TagsTestPassThrough")
class _PassThrough(Calculator):
    inputs = (":0",)
    outputs = (":0",)

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> dict[str, object | None]:
        return {":0": inputs[":0"]}


def test_a_graph_whose_back_edge_mediapipe_refuses_is_refused_at_load_with_its_text() -> None:
    # The split reads the native half's back edges before MediaPipe sees the graph (it used to read
    # "FINISHED:01" as index 1); it refuses what MediaPipe refuses, with MediaPipe's text.
    graph = """
input_stream: "in"
output_stream: "out"
node { calculator: "FlowLimiterCalculator" input_stream: "in" input_stream: "FINISHED:out"
       input_stream_info: { tag_index: "%s" back_edge: true } output_stream: "admitted" }
node { calculator: "TagsTestPassThrough" input_stream: "admitted" output_stream: "out" }
"""
    assert parse_graph(graph % "FINISHED").split is not None
    with pytest.raises(GraphLoadError) as caught:
        parse_graph(graph % "FINISHED:01")
    assert str(caught.value) == (
        "MediaPipe rejected the graph: ValidatedGraphConfig Initialization failed.\n"
        'TAG:index is invalid, "FINISHED:01" does not match "([A-Z_][A-Z0-9_]*)?(:(0|[1-9][0-9]*))?" '
        '(examples: "TAG" "VIDEO:2").'
    )
