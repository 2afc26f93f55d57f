"""Graph drawings: DOT built from parsed graphs (shipped examples and recorded goldens), drawn by Graphviz."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.widgets import PNG_SIGNATURE, GraphRenderError, GraphView, graph_dot, render_graph
from ovms_notebook.widgets import graphview as graphview_module
from tests.conftest import GRAPHS

GOLDENS = {
    case["name"]: case["config"]
    for case in json.loads((Path(__file__).parent / "goldens" / "mediapipe_0_10_21_timestamps.json").read_text())[
        "goldens"
    ]
}
EXAMPLES = sorted(path.parent.name for path in GRAPHS.glob("*/graph.pbtxt"))


def example(name: str):
    return parse_graph((GRAPHS / name / "graph.pbtxt").read_text())


def edge_lines(dot: str, tail: str, head: str) -> list[str]:
    return [line for line in dot.splitlines() if line.strip().startswith(f'"{tail}" -> "{head}"')]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_graph_has_one_box_per_node_and_its_inputs_and_outputs(name: str) -> None:
    spec = example(name)
    dot = graph_dot(spec)
    assert dot.startswith("digraph mediapipe {") and dot.rstrip().endswith("}")
    assert len(re.findall(r'^  "node:\d+" \[shape=box', dot, flags=re.MULTILINE)) == len(spec.config.node)
    for node in spec.config.node:
        assert f'label="{node.calculator}' in dot
    for text in spec.config.input_stream:
        assert re.search(rf'"input:{text.split(":")[-1]}" \[shape=invhouse.*label="graph input\\n{text}"', dot)
    for text in spec.config.output_stream:
        assert re.search(rf'"output:{text.split(":")[-1]}" \[shape=invtrapezium.*label="graph output\\n{text}"', dot)


def test_graph_inputs_show_their_tag_and_index_and_edges_show_the_consumers_tag() -> None:
    dot = graph_dot(example("concat_default"))
    assert 'label="graph input\\nFLOATS:0:a"' in dot and 'label="graph input\\nFLOATS:1:b"' in dot
    flip = graph_dot(example("image_flip"))
    assert edge_lines(flip, "input:in", "node:0") == ['  "input:in" -> "node:0" [label=" IMAGE:in "];']
    assert edge_lines(flip, "node:0", "output:out") == ['  "node:0" -> "output:out" [label=" IMAGE:out "];']


def test_edge_between_different_tags_names_both() -> None:
    dot = graph_dot(example("previous_value"))
    assert 'label=" PREV_LOOP:previous "' in dot
    text = 'input_stream: "in"\noutput_stream: "out"\n' \
           'node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "A:mid" }\n' \
           'node { calculator: "PassThroughCalculator" input_stream: "B:2:mid" output_stream: "out" }\n'
    assert 'label=" A → B:2:mid "' in graph_dot(text)


@pytest.mark.parametrize(("golden", "tail", "head", "label"), [
    ("previous_loopback", "node:1", "node:0", "LOOP:loop"),
    ("flow_limiter_back_edge_max_in_flight_1", "node:1", "node:0", "FINISHED:out"),
])
def test_back_edges_are_dashed_and_do_not_constrain_the_layout(golden: str, tail: str, head: str, label: str) -> None:
    dot = graph_dot(GOLDENS[golden])
    (back,) = edge_lines(dot, tail, head)
    assert f'label=" {label} "' in back and "style=dashed" in back and "constraint=false" in back
    others = [line for line in dot.splitlines() if " -> " in line and line != back]
    assert others and not any("dashed" in line or "constraint" in line for line in others)


def test_the_shipped_previous_value_graph_draws_its_loop_dashed() -> None:
    (loop,) = edge_lines(graph_dot(example("previous_value")), "node:0", "node:1")
    assert 'label=" LOOP:current "' in loop and "style=dashed, constraint=false" in loop


def test_side_packets_are_dashed_ellipses_on_dotted_edges() -> None:
    dot = graph_dot(example("side_packet_ticker"))
    assert re.search(r'"side:offset" \[shape=ellipse, style="dashed,filled".*label="side packet\\noffset"', dot)
    (edge,) = edge_lines(dot, "side:offset", "node:0")
    assert "style=dotted" in edge
    at_prestream = graph_dot(GOLDENS["side_packet_to_stream_at_prestream"])
    assert "style=dotted" in edge_lines(at_prestream, "side:sp", "node:0")[0]
    assert 'label=" AT_PRESTREAM:out "' in at_prestream


def test_node_name_and_a_non_default_input_stream_handler_are_shown_default_is_not() -> None:
    immediate = graph_dot(example("concat_immediate"))
    assert 'label="ConcatenateFloatVectorCalculator\\nhandler: ImmediateInputStreamHandler"' in immediate
    text = ('input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" name: "echo" '
            'input_stream: "in" output_stream: "out" '
            'input_stream_handler { input_stream_handler: "DefaultInputStreamHandler" } }\n')
    assert 'label="PassThroughCalculator\\nname: echo"' in graph_dot(text)


def test_quotes_and_backslashes_are_escaped_and_dot_still_draws() -> None:
    text = ('input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" '
            'name: "say \\"hi\\" \\\\ there" input_stream: "in" output_stream: "out" }\n')
    dot = graph_dot(text, title='a "quoted" title')
    assert 'name: say \\"hi\\" \\\\ there' in dot and 'label="a \\"quoted\\" title"' in dot
    svg = render_graph(dot, "svg")
    assert svg is not None and b"say &quot;hi&quot;" in svg


def test_packet_counts_are_appended_to_the_streams_they_name() -> None:
    dot = graph_dot(example("previous_value"), counts={"in": 3, "current": 3, "previous": 1}, title="previous_value")
    assert edge_lines(dot, "input:in", "node:1") == ['  "input:in" -> "node:1" [label=" MAIN:in \\n (3 packets) "];']
    assert 'label=" PREV_LOOP:previous \\n (1 packet) "' in dot
    assert 'label="previous_value"' in dot


def test_a_stream_nobody_produces_is_drawn_in_red() -> None:
    dot = graph_dot('input_stream: "in"\noutput_stream: "out"\n'
                    'node { calculator: "PassThroughCalculator" input_stream: "ghost" output_stream: "out" }\n')
    assert re.search(r'"missing:ghost" \[shape=plaintext.*label="ghost\\nno producer"', dot)


def test_dot_draws_real_svg_and_png() -> None:
    dot = graph_dot(example("holistic"), title="holisticTracking")
    svg = render_graph(dot, "svg")
    assert svg is not None and svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    assert b"HolisticLandmarkCpu" in svg and b"POSE_LANDMARKS:pose_landmarks" in svg
    png = render_graph(dot, "png")
    assert png is not None and png.startswith(PNG_SIGNATURE)
    width, height = Image.open(io.BytesIO(png)).size
    assert width > 300 and height > 150


def test_without_dot_rendering_returns_none_and_the_view_shows_dot_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphview_module.shutil, "which", lambda name: None)
    assert render_graph("digraph { a -> b }", "png") is None
    view = GraphView(example("passthrough"))
    assert view._repr_mimebundle_() == {"text/plain": view.dot}


def test_graph_view_bundle_has_svg_and_the_dot_source() -> None:
    view = GraphView(example("previous_value"), counts={"in": 2}, title="previous_value")
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == view.dot and "(2 packets)" in view.dot
    assert "<svg" in bundle["image/svg+xml"] and "PreviousLoopbackCalculator" in bundle["image/svg+xml"]
    assert repr(view) == "<GraphView previous_value: 2 nodes>"


def test_dot_errors_raise_with_dots_message() -> None:
    with pytest.raises(GraphRenderError, match=r"dot could not draw the graph: .*syntax error"):
        render_graph("digraph { a -> }", "svg")
    with pytest.raises(ValueError, match="fmt must be 'svg' or 'png', got 'pdf'"):
        render_graph("digraph { a }", "pdf")  # type: ignore[arg-type]
