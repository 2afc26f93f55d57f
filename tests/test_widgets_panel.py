"""The server panel: header, graphs table with failure reasons, a live drawing of the chosen graph."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import pytest

import ovms_notebook
from ovms_notebook.widgets import THREAD_PREFIX, ServerPanel, panel_for, server_mimebundle
from ovms_notebook.widgets import graph_render as graph_render_module
from ovms_notebook.widgets.server_tables import _GREEN, graphs_table_html
from tests.conftest import GRAPHS, request, stream

PREVIOUS_VALUE = (GRAPHS / "previous_value" / "graph.pbtxt").read_text()
SIDE_PACKETS = (GRAPHS / "side_packet_ticker" / "graph.pbtxt").read_text()
BROKEN = 'input_stream: "in"\noutput_stream: "out"\nnode { calculator: "NoSuchCalculator" input_stream: "in" ' \
         'output_stream: "out" }\n'


def widget_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def server(serve_graphs) -> ovms_notebook.Server:
    return serve_graphs({"previous_value": PREVIOUS_VALUE, "ticker": SIDE_PACKETS, "broken": BROKEN})


@pytest.fixture
def panel(server: ovms_notebook.Server):
    panel = ServerPanel(server)
    yield panel
    panel.close()
    assert widget_threads() == []


def send_three(server: ovms_notebook.Server) -> None:
    result = stream(server.address, [request("previous_value", {"in": v}) for v in (1, 2, 3)])
    assert sorted(result.stamped()) == [("current", 0), ("current", 1), ("current", 2), ("previous", 1),
                                        ("previous", 2)]
    wait_for(lambda: server.events.packet_counts("previous_value") == {"in": 3, "current": 3, "previous": 2})


def test_header_says_where_the_server_listens_and_how_many_graphs_are_up(server, panel: ServerPanel) -> None:
    assert f"<code>{server.address}</code>" in panel.header.value
    assert "<b>running</b>" in panel.header.value and "0 open streams" in panel.header.value
    assert "2 of 3 graphs available" in panel.header.value


def test_table_lists_graphs_with_streams_and_the_failed_graphs_reason(panel: ServerPanel) -> None:
    table = panel.table.value
    for name in ("previous_value", "ticker", "broken"):
        assert f"<code>{name}</code>" in table
    assert "<code>INT:in</code>" in table and "<code>current, previous</code>" in table
    assert "<code>offset</code>" in table  # the ticker's side packet
    assert "&#9679; LOADING_PRECONDITION_FAILED" in table and "NoSuchCalculator" in table
    assert table.count('color:#15803d">&#9679; AVAILABLE') == 2


def test_the_first_graph_is_drawn_as_svg(panel: ServerPanel) -> None:
    assert panel.graph_picker.options == ("previous_value", "ticker", "broken")
    assert panel.graph_picker.value == "previous_value"
    assert panel.drawing.format == "svg+xml" and b"<svg" in bytes(panel.drawing.value)
    assert b"PreviousLoopbackCalculator" in bytes(panel.drawing.value)
    assert panel.drawing.layout.display is None and panel.dot_text.layout.display == "none"
    assert 'label="previous_value"' in panel.dot


def test_picking_another_graph_redraws_it_and_a_failed_one_is_drawn_with_its_unknown_calculator_marked(
    panel: ServerPanel,
) -> None:
    panel.graph_picker.value = "ticker"
    assert b"SidePacketToStreamCalculator" in bytes(panel.drawing.value) and '"side:offset"' in panel.dot
    panel.graph_picker.value = "broken"
    assert panel.drawing.layout.display is None and panel.dot_text.layout.display == "none"
    assert 'label="broken (LOADING_PRECONDITION_FAILED)"' in panel.dot
    assert re.search(r'"node:0" \[shape=box, style="rounded,filled,bold", fillcolor="#fee2e2", color="#b91c1c".*'
                     r'label="NoSuchCalculator\\n\[unknown calculator\]"', panel.dot)
    assert b"[unknown calculator]" in bytes(panel.drawing.value)
    assert 'Unable to find Calculator &quot;NoSuchCalculator&quot;' in panel.table.value  # the reason, in the table


def test_refresh_shows_packet_counts_after_a_real_stream(server, panel: ServerPanel) -> None:
    assert "packets" not in panel.dot
    send_three(server)
    before = panel.draw_count
    panel.refresh_button.click()
    assert panel.draw_count == before + 1
    assert 'label=" MAIN:in \\n (3 packets) "' in panel.dot
    assert 'label=" PREV_LOOP:previous \\n (2 packets) "' in panel.dot
    assert b"(3 packets)" in bytes(panel.drawing.value)


def test_live_updates_redraw_counts_from_a_daemon_thread_and_stop(server, panel: ServerPanel) -> None:
    panel.start_live(interval=0.05)
    assert panel.live and any(name.endswith("-live") for name in widget_threads())
    send_three(server)
    wait_for(lambda: "PREV_LOOP:previous \\n (2 packets)" in panel.dot and "MAIN:in \\n (3 packets)" in panel.dot)
    drawn = panel.draw_count
    time.sleep(0.2)  # nothing new happened: no redraw
    assert panel.draw_count == drawn
    panel.stop_live()
    assert not panel.live and widget_threads() == []


def test_live_thread_ends_by_itself_when_the_server_stops(server, panel: ServerPanel) -> None:
    panel.start_live(interval=0.05)
    server.stop()
    wait_for(lambda: not panel.live)
    assert "<b>stopped</b>" in panel.header.value
    table = graphs_table_html(server)  # the graphs stay loaded, but a stopped server serves none: not green
    assert "(server stopped)" in table and _GREEN not in table.split("</thead>")[1]


def test_without_graphviz_the_dot_source_is_shown(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_render_module.shutil, "which", lambda name: None)
    panel = ServerPanel(server)
    try:
        assert panel.dot_text.layout.display is None and panel.drawing.layout.display == "none"
        assert panel.dot_text.value == panel.dot and panel.dot.startswith("digraph mediapipe {")
    finally:
        panel.close()


def test_server_mimebundle_has_the_widget_a_static_table_and_a_text_line(server) -> None:
    bundle = server_mimebundle(server)
    panel = panel_for(server)
    try:
        assert panel_for(server) is panel and panel.live
        assert bundle["text/plain"] == repr(server)
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.box.model_id
        assert "previous_value" in bundle["text/html"] and "NoSuchCalculator" in bundle["text/html"]
    finally:
        panel.close()
    assert widget_threads() == []
    assert panel_for(server) is not panel  # a closed panel is replaced
    panel_for(server).close()


def test_live_interval_must_be_positive(server) -> None:
    with pytest.raises(ValueError, match="live_interval must be > 0 seconds, got 0"):
        ServerPanel(server, live_interval=0)


def test_after_a_reload_the_live_panel_lists_every_graph_its_header_counts(server, panel: ServerPanel) -> None:
    panel.start_live(interval=0.05)
    config = server.repository.config_path
    folder = config.parent / "late"
    folder.mkdir()
    (folder / "graph.pbtxt").write_text(PREVIOUS_VALUE)
    entries = json.loads(config.read_text())
    entries["mediapipe_config_list"].append({"name": "late", "base_path": "late"})
    config.write_text(json.dumps(entries))
    assert server.reload()["late"] == "loaded"
    wait_for(lambda: "3 of 4 graphs available" in panel.header.value)
    wait_for(lambda: "<code>late</code>" in panel.table.value)
    counted = int(re.search(r"of (\d+) graphs available", panel.header.value).group(1))
    listed = re.findall(r"<tr><td [^>]*><code>([\w]+)</code>", panel.table.value)
    assert len(listed) == counted and sorted(listed) == sorted(panel.graph_picker.options)
    assert "late" in listed and panel.graph_picker.value == "previous_value"  # the chosen graph stays chosen
    server.stop()  # the table follows the stop as well as the header
    wait_for(lambda: not panel.live)
    assert "<b>stopped</b>" in panel.header.value and "(server stopped)" in panel.table.value


def test_the_panel_says_on_ovms_what_check_says_for_each_example_graph() -> None:
    """Graph by graph, the panel folds a "to change" list exactly where `check` finds errors: the two never disagree
    on which graphs a stock OVMS would refuse."""
    server = ovms_notebook.serve(ovms_notebook.examples)
    try:
        report = ovms_notebook.check(ovms_notebook.examples)
        table = graphs_table_html(server)
        names = [graph.name for graph in server.graphs]
        rows = {name: table.split(f"<code>{name}</code>", 1)[1].split("<tr>", 1)[0] for name in names}
        refused = {graph.name for graph in report.graphs if not graph.portable}
        assert refused and refused != set(rows)  # the examples hold both kinds
        assert {name for name, row in rows.items() if re.search(r"on OVMS: \d+ to change", row)} == refused
    finally:
        server.stop()


def test_open_subgraphs_is_offered_only_where_one_opens_and_the_wheels_own_are_named() -> None:
    server = ovms_notebook.serve(ovms_notebook.examples)
    panel = ServerPanel(server)
    try:
        panel.graph_picker.value = "face_tracking"  # FaceDetectionShortRangeCpu: the wheel's, compiled in
        panel.draw(force=True)
        assert panel.expand.disabled
        hint = panel.subgraph_hint.value
        assert "<code>FaceDetectionShortRangeCpu</code>: the mediapipe wheel's own subgraph" in hint
        assert 'GraphView("FaceDetectionShortRangeCpu")' in hint
        panel.graph_picker.value = "holisticTracking"  # HolisticTrackingToRenderData: inlined by this package
        panel.draw(force=True)
        assert not panel.expand.disabled
        panel.graph_picker.value = "passthrough"
        panel.draw(force=True)
        assert panel.expand.disabled and panel.subgraph_hint.value == ""
    finally:
        panel.close()
        server.stop()


UNTAGGED = ('input_stream: "input_video"\noutput_stream: "IMAGE:out"\n'
            'node { calculator: "ImageTransformationCalculator" input_stream: "IMAGE:input_video" '
            'output_stream: "IMAGE:out" }\n')


def test_a_loaded_graph_whose_first_frame_fails_is_amber_and_an_edited_file_says_reload(serve_graphs) -> None:
    from ovms_notebook.widgets.server_tables import _AMBER

    server = serve_graphs({"untagged": UNTAGGED, "ok": PREVIOUS_VALUE})

    def row(name: str) -> str:
        return re.search(rf"<tr><td [^>]*><code>{name}</code>.*?</tr>", graphs_table_html(server)).group(0)

    assert f'<span style="color:{_AMBER}">&#9679; AVAILABLE</span>' in row("untagged")
    assert "[untagged-image-input]" in row("untagged") and f'color:{_GREEN}">&#9679; AVAILABLE' in row("ok")
    path = server.repository.config_path.parent / "untagged" / "graph.pbtxt"
    path.write_text(UNTAGGED.replace('input_stream: "input_video"', 'input_stream: "IMAGE:input_video"', 1))
    # the file is fixed, the served graph is not yet: the row still tells the served version, and says so
    assert "graph.pbtxt changed since it was loaded" in row("untagged") and "<code>input_video</code>" in row(
        "untagged")
    assert f'<span style="color:{_AMBER}">&#9679; AVAILABLE</span>' in row("untagged")
    assert "[untagged-image-input]" in row("untagged")
    panel = ServerPanel(server)
    try:
        panel.start_live(interval=0.05)
        assert server.reload()["untagged"] == "reloaded"
        wait_for(lambda: "IMAGE:input_video" in panel.table.value)  # the live panel follows a reload by itself
    finally:
        panel.close()
    assert "changed since it was loaded" not in row("untagged")
    assert f'color:{_GREEN}">&#9679; AVAILABLE' in row("untagged") and "IMAGE:input_video" in row("untagged")
