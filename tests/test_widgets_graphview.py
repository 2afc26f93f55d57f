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
from ovms_notebook.widgets import graph_render as graph_render_module
from ovms_notebook.widgets.drawing_size import DrawingSize, fitted_size
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
    text = (
        'input_stream: "in"\noutput_stream: "out"\n'
        'node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "A:mid" }\n'
        'node { calculator: "PassThroughCalculator" input_stream: "B:2:mid" output_stream: "out" }\n'
    )
    assert 'label=" A → B:2:mid "' in graph_dot(text)


@pytest.mark.parametrize(
    ("golden", "tail", "head", "label"),
    [
        ("previous_loopback", "node:1", "node:0", "LOOP:loop"),
        ("flow_limiter_back_edge_max_in_flight_1", "node:1", "node:0", "FINISHED:out"),
    ],
)
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
    text = (
        'input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" name: "echo" '
        'input_stream: "in" output_stream: "out" '
        'input_stream_handler { input_stream_handler: "DefaultInputStreamHandler" } }\n'
    )
    assert 'label="PassThroughCalculator\\nname: echo"' in graph_dot(text)


def test_quotes_and_backslashes_are_escaped_and_dot_still_draws() -> None:
    text = (
        'input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" '
        'name: "say \\"hi\\" \\\\ there" input_stream: "in" output_stream: "out" }\n'
    )
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
    dot = graph_dot(
        'input_stream: "in"\noutput_stream: "out"\n'
        'node { calculator: "PassThroughCalculator" input_stream: "ghost" output_stream: "out" }\n'
    )
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
    monkeypatch.setattr(graph_render_module.shutil, "which", lambda name: None)
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


# -- sized to read ---------------------------------------------------------------------------------------------


def shown_sizes(svg: bytes) -> tuple[float, float, list[float]]:
    """(width px, height px, font sizes in CSS px) of an SVG as a browser shows it: its width/height attributes
    against its viewBox scale every font-size in it."""
    text = svg.decode()
    width, height = (float(v) for v in re.search(r'<svg width="([0-9.]+)px" height="([0-9.]+)px"', text).groups())
    view_width = float(re.search(r'viewBox="[0-9.-]+ [0-9.-]+ ([0-9.]+) [0-9.]+"', text)[1])
    fonts = [float(size) * width / view_width for size in re.findall(r'font-size="([0-9.]+)"', text)]
    return width, height, fonts


def holistic_expanded() -> object:
    return parse_graph((GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt").read_text()).config


def test_a_small_graph_is_drawn_at_its_natural_size_with_readable_fonts() -> None:
    for name, nodes in (("passthrough", 1), ("previous_value", 2), ("face_tracking", 2)):
        view = GraphView(example(name))
        width, height, fonts = shown_sizes(view.svg())
        assert view.size is not None and view.size.scale == 1.0 and not view.size.scrolls
        assert width <= 860 and height <= 450, f"{name}: {nodes} nodes drawn {width}x{height} px"
        assert min(fonts) == pytest.approx(12.0, abs=0.1) and max(fonts) == pytest.approx(14.67, abs=0.1)


def test_a_drawing_grows_with_its_node_count() -> None:
    heights = [shown_sizes(GraphView(example(name)).svg())[1] for name in ("passthrough", "face_tracking")]
    chain = "\n".join(
        f'node {{ calculator: "PassThroughCalculator" input_stream: "s{i}" output_stream: "s{i + 1}" }}'
        for i in range(6)
    )
    long = GraphView(f'input_stream: "s0"\noutput_stream: "s6"\n{chain}')
    heights.append(shown_sizes(long.svg())[1])
    assert heights == sorted(heights) and heights[2] > 2 * heights[0]


def fan_out(n: int) -> str:
    """A graph of `n` PassThrough nodes side by side, all reading one input."""
    nodes = "\n".join(
        f'node {{ calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out_{i}" }}' for i in range(n)
    )
    outputs = "\n".join(f'output_stream: "out_{i}"' for i in range(n))
    return f'input_stream: "in"\n{outputs}\n{nodes}'


def test_a_wide_graph_never_exceeds_the_notebook_width_unless_its_text_would_become_unreadable() -> None:
    assert fitted_size(600, 300) == DrawingSize(800, 400, 1.0)  # 600 pt = 800 px: natural size
    shrunk = fitted_size(900, 300)  # 1200 px: shrunk to the page, node labels still >= 10 px
    assert shrunk.width_px == 860 and shrunk.node_font_px == pytest.approx(10.51, abs=0.01) and not shrunk.scrolls
    floor = fitted_size(3000, 300)  # shrinking to the page would make labels 3.8 px: kept at 10 px, scrolls
    assert floor.node_font_px == pytest.approx(10.0) and floor.width_px == 2727 and floor.scrolls
    three = GraphView(fan_out(3))
    assert three.size == DrawingSize(749, 305, 1.0) and "rankdir=TB" in three._fitted[0]
    nine = GraphView(fan_out(9))  # top-to-bottom is 1564 px wide even at the smallest readable scale
    width, height, fonts = shown_sizes(nine.svg())
    assert "rankdir=LR" in nine._fitted[0] and "rankdir=TB" in nine.dot  # drawn across; the DOT text as built
    assert nine.size.scale == 1.0 and width <= 860 and height > width and min(fonts) == pytest.approx(12.0, abs=0.1)
    very_wide = GraphView(holistic_expanded())
    width, _, fonts = shown_sizes(very_wide.svg())
    assert very_wide.size.scrolls and width > 860
    assert max(fonts) == pytest.approx(10.0, abs=0.1), "node labels at the smallest readable size"
    bundle = very_wide._repr_mimebundle_()
    html = bundle["text/html"]
    assert html.startswith('<div style="max-width:100%;overflow-x:auto"><svg style="max-width:none" width=')


def test_the_png_has_the_size_the_svg_is_shown_at() -> None:
    for source in (example("face_tracking"), holistic_expanded()):
        view = GraphView(source)
        width, height = Image.open(io.BytesIO(view.png())).size
        assert width == pytest.approx(view.size.width_px, abs=3) and height == pytest.approx(view.size.height_px, abs=3)


THREE_NODES = """
input_stream: "in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "a" }
node { calculator: "PassThroughCalculator" input_stream: "a" output_stream: "b" }
node { calculator: "PassThroughCalculator" input_stream: "b" output_stream: "out" }
"""


def test_the_server_panel_shows_a_three_node_graph_at_its_own_size_not_stretched(serve_graphs) -> None:
    from ovms_notebook.widgets import ServerPanel

    panel = ServerPanel(serve_graphs({"three": THREE_NODES}))
    try:
        width, height, fonts = shown_sizes(bytes(panel.drawing.value))
        assert width < 400 and 300 < height < 600  # was stretched to the page width: ~1,400 px tall
        assert panel.drawing.layout.width == f"{width:.0f}px" and panel.drawing.layout.height == f"{height:.0f}px"
        assert panel.drawing.layout.align_self == "flex-start" and panel.drawing.layout.max_width == "none"
        assert panel.drawing_box.layout.max_width == "100%" and panel.drawing_box.layout.overflow == "auto hidden"
        assert sorted({round(f, 1) for f in fonts}) == [12.0, 14.7, 16.0]  # edge labels, nodes, title
    finally:
        panel.close()


# -- drawing for exploration -------------------------------------------------------------------------------------


def boxes(dot: str) -> list[str]:
    """The first label line of every node box in a DOT text (the calculator names)."""
    return re.findall(r'^\s*"node:\d+" \[shape=box[^\n]*label="([^"\\]+)', dot, flags=re.MULTILINE)


def test_an_inlined_subgraph_is_drawn_as_the_pbtxt_names_it_and_opens_on_demand() -> None:
    spec = parse_graph((GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt").read_text())
    assert len(spec.config.node) == 32  # what runs: the render subgraph inlined node by node
    closed = GraphView(spec)
    assert boxes(closed.dot) == [
        "HolisticLandmarkCpu",
        "ImagePropertiesCalculator",
        "HolisticTrackingToRenderData",
        "AnnotationOverlayCalculator",
    ]
    assert "__" not in closed.dot and closed.size.scale == 1.0 and not closed.size.scrolls
    assert 'label="HolisticTrackingToRenderData\\n[subgraph: expand to open]"' in closed.dot
    assert 'peripheries=2, style="rounded,filled", fillcolor="#e0f2fe"' in closed.dot
    assert 'label="HolisticLandmarkCpu\\n[the wheel\'s subgraph]"' in closed.dot
    opened = GraphView(spec, expand=True)
    assert sorted(boxes(opened.dot)) == sorted(node.calculator for node in spec.config.node)
    frames = re.findall(r'subgraph "cluster_([a-z_0-9]+)" \{\n\s*graph \[[^\]]*label="(\w+)"\]', opened.dot)
    assert frames == [
        ("holistictrackingtorenderdata", "HolisticTrackingToRenderData"),
        ("handwristforpose", "HandWristForPose"),
        ("handwristforpose_1", "HandWristForPose"),
    ]
    assert "holistictrackingtorenderdata__" not in "".join(re.findall(r'label="([^"]*)"', opened.dot))
    only = GraphView(spec, expand=["HandWristForPose"])  # nested inside a closed one: nothing opens
    assert boxes(only.dot) == boxes(closed.dot)
    wheel = GraphView(spec, expand=["HolisticLandmarkCpu"])  # the wheel's own, opened from its .binarypb by name
    assert boxes(wheel.dot) == [
        "ImagePropertiesCalculator",
        "HolisticTrackingToRenderData",
        "AnnotationOverlayCalculator",
        "PoseLandmarkCpu",
        "HandLandmarksLeftAndRightCpu",
        "SplitNormalizedLandmarkListCalculator",
        "FaceLandmarksFromPoseCpu",
    ]
    assert 'subgraph "cluster_holisticlandmarkcpu" {' in wheel.dot and 'label="HolisticLandmarkCpu"];' in wheel.dot


def test_on_model_entries_the_forks_subgraphs_open_as_they_run_not_as_the_wheels_modules() -> None:
    entries = ["face_detection", "face_landmark", "hand_landmark_full", "hand_recrop", "pose_detection",
               "pose_landmark_full"]
    spec = parse_graph((GRAPHS / "holistic_tracking" / "holistic_tracking.pbtxt").read_text(), models=entries)
    closed = GraphView(spec)
    # expanded here (inference on the entries): one of our subgraphs, not the wheel's compiled-in module
    assert closed.kinds["HolisticLandmarkCpu"] == "subgraph"
    assert 'label="HolisticLandmarkCpu\\n[subgraph: expand to open]"' in closed.dot
    opened = GraphView(spec, expand=True)
    # every node that runs, the fork's sessions and OpenVINO inference and the Python twins among them
    assert sorted(boxes(opened.dot)) == sorted(node.calculator for node in spec.config.node)
    assert boxes(opened.dot).count("OpenVINOInferenceCalculator") == 8  # face x2, pose x2, hands x2 x2
    for twin in ("OpenVINOInferenceCalculator", "PythonRefineLandmarksFromHeatmapCalculator",
                 "PythonLandmarkLetterboxRemovalCalculator", "PythonWarpAffineCalculator"):
        assert opened.kinds[twin] == "python", twin
    assert not {"TfLiteInferenceCalculator", "InferenceCalculator"} & set(boxes(opened.dot))
    # each session box names the model entry its inference runs on
    assert sorted(set(re.findall(r"model entry: (\w+)", opened.dot))) == sorted(entries)
    # the same pbtxt served without entries keeps the wheel's module, drawn as one box
    assert GraphView(parse_graph(spec.text)).kinds["HolisticLandmarkCpu"] == "wheel-subgraph"


def test_python_run_nodes_and_unknown_calculators_are_told_apart() -> None:
    tracking = GraphView(example("face_tracking"))
    assert tracking.kinds == {"FaceDetectionShortRangeCpu": "wheel-subgraph", "DetectionTrackerCalculator": "python"}
    assert (
        'fillcolor="#ede9fe", color="#6d28d9", label="DetectionTrackerCalculator\\nname: tracker\\n[runs in Python]"'
        in (tracking.dot)
    )
    unknown = GraphView(
        'input_stream: "in" output_stream: "out" '
        'node { calculator: "NoSuchCalculator" input_stream: "in" output_stream: "out" }'
    )
    assert unknown.kinds == {"NoSuchCalculator": "unknown"}
    assert 'color="#b91c1c", fontcolor="#b91c1c", label="NoSuchCalculator\\n[unknown calculator]"' in unknown.dot
    assert b"[unknown calculator]" in unknown.svg()
    plain = GraphView(example("face_tracking"), mark=False)
    assert plain.kinds == {} and "[runs in Python]" not in plain.dot


def test_graph_view_draws_the_wheels_modules_by_name() -> None:
    front = GraphView("FaceLandmarkFrontCpu")
    assert front.title == "FaceLandmarkFrontCpu" and repr(front) == "<GraphView FaceLandmarkFrontCpu: 17 nodes>"
    assert "FaceDetectionShortRangeCpu" in boxes(front.dot) and b"<svg" in front.svg()
    by_stem = GraphView.module("face_detection_short_range_cpu")
    assert by_stem.title == "FaceDetectionShortRangeCpu" and boxes(by_stem.dot) == ["FaceDetectionShortRange"]
    with pytest.raises(KeyError, match=r"ships no module 'IrisLandmarkCpu'; it has FaceDetectionFullRangeCpu, "):
        GraphView.module("IrisLandmarkCpu")


def test_the_server_panel_draws_a_folders_subgraph_closed_and_opens_it_with_the_checkbox(tmp_path: Path) -> None:
    import ovms_notebook
    from ovms_notebook.widgets import ServerPanel
    from tests.test_user_subgraphs import MIRROR, MIRROR_TWICE, folder

    server = ovms_notebook.serve(folder(tmp_path, {"mirror.pbtxt": MIRROR, "subgraphs/twice.pbtxt": MIRROR_TWICE}))
    panel = ServerPanel(server)
    try:
        assert boxes(panel.dot) == ["MirrorCpu", "MirrorTwiceCpu"] and "cluster_" not in panel.dot
        panel.expand.value = True
        assert boxes(panel.dot) == ["ImageTransformationCalculator"] * 3
        assert re.findall(r'label="(Mirror\w+)"\]', panel.dot) == [
            "MirrorCpu",
            "MirrorTwiceCpu",
            "MirrorCpu",
            "MirrorCpu",
        ]
        assert b"MirrorTwiceCpu" in bytes(panel.drawing.value)
    finally:
        panel.close()
        server.stop()


def test_graph_view_draws_a_pbtxt_file_by_its_path_and_says_what_it_cannot_read(tmp_path: Path) -> None:
    path = GRAPHS / "face_tracking" / "graph.pbtxt"
    for source in (path, str(path)):
        assert boxes(GraphView(source).dot) == boxes(GraphView(path.read_text()).dot)
    from ovms_notebook.errors import GraphLoadError

    with pytest.raises(GraphLoadError, match=r"cannot read the graph file '.*missing.pbtxt': No such file"):
        GraphView(str(tmp_path / "missing.pbtxt"))
