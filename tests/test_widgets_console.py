"""The stream console driven from code against a real in-kernel server: what its log, labels and panels show."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterator

import ipywidgets as widgets
import numpy as np
import pytest
from PIL import Image

import ovms_notebook
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.widgets import PNG_SIGNATURE, THREAD_PREFIX, InputEditor, StreamConsole
from ovms_notebook.widgets.console_log import log_lines
from ovms_notebook.widgets.editors import parse_values
from ovms_notebook.widgets.timeline import timeline_figure
from tests.conftest import GRAPHS

RED = "#b91c1c"
TIMESTAMP_ERROR = ('Malformed packet timestamp - input stream "in" needs a timestamp greater than 5, the last one it '
                   "received; got 5; partial deserialization of subsequent requests")


def widget_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def lines(console: StreamConsole) -> list[str]:
    """The log as a person reads it: one text per line."""
    console.flush()
    texts = re.findall(r"<div(?: style=\"[^\"]*\")?>([^<]*)</div>", console.log.value)
    return [t.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&") for t in texts]


def next_label(console: StreamConsole) -> str:
    return re.sub(r"<[^>]+>", "", console.next_label.value)


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


@pytest.fixture
def console_for(server: ovms_notebook.Server) -> Iterator[Callable[..., StreamConsole]]:
    """Consoles closed after the test, which must leave no widget thread behind."""
    consoles: list[StreamConsole] = []

    def make(*args: object, **kwargs: object) -> StreamConsole:
        console = StreamConsole(*(args or (server,)), **kwargs)  # type: ignore[arg-type]
        consoles.append(console)
        return console

    yield make
    for console in consoles:
        console.close()
    assert widget_threads() == []


def test_auto_manual_and_mixed_sends_show_each_timestamp_and_the_next_one_before_sending(console_for) -> None:
    console = console_for(graph="passthrough")
    assert console.graph_picker.value == "passthrough" and list(console.editors) == ["in"]
    console.editors["in"].input.value = "1.5"
    assert next_label(console) == "next timestamp: 0 (auto)"
    console.send_button.click()
    console.wait_for(1)
    assert next_label(console) == "next timestamp: 1 (auto)"
    console.send_button.click()
    console.wait_for(1)  # the answer after the one the previous wait_for returned
    console.mode.value = "manual"
    assert next_label(console) == "next timestamp: 2 (manual)"  # the field offers the smallest allowed one
    console.manual_timestamp.value = 100
    assert next_label(console) == "next timestamp: 100 (manual)"
    console.send_button.click()
    console.wait_for(1)
    assert next_label(console) == "next timestamp: 101 (manual)"
    console.mode.value = "auto"
    assert next_label(console) == "next timestamp: 101 (auto)"  # a manual timestamp sets the counter's base
    entry = console.send()
    assert (entry.timestamp, entry.manual) == (101, False)
    console.wait_for(1)
    assert lines(console) == [
        "request #0 @0 (auto) in=[1.5]", "response out @0: [1.5]",
        "request #1 @1 (auto) in=[1.5]", "response out @1: [1.5]",
        "request #2 @100 (manual) in=[1.5]", "response out @100: [1.5]",
        "request #3 @101 (auto) in=[1.5]", "response out @101: [1.5]",
    ]
    assert console.outputs.panels["out"].header_text == "out @101"


def test_a_manual_timestamp_not_past_the_last_one_is_a_red_error_line_naming_its_request(console_for) -> None:
    console = console_for(graph="previous_value")
    assert console.editors["in"].kind is StreamKind.INT
    console.mode.value = "manual"
    console.manual_timestamp.value = 5
    console.editors["in"].input.value = 1
    console.send_button.click()
    console.wait_for(1)
    console.manual_timestamp.value = 5
    console.send_button.click()
    console.wait_for(1)
    assert f'<div style="color:{RED}">error → request #1: {TIMESTAMP_ERROR}</div>' in console.log.value
    assert lines(console)[-1] == f"error → request #1: {TIMESTAMP_ERROR}"
    assert console.manual_timestamp.value == 6  # the rejected request moved nothing: 6 is the next allowed
    console.send_button.click()  # the stream lives on: the next good timestamp is answered
    console.wait_for(2)
    shown = lines(console)
    assert shown[-3] == "request #2 @6 (manual) in=1"
    assert sorted(shown[-2:]) == ["response current @6: [1]", "response previous @6: [1]"]  # either order


def test_previous_value_shows_the_value_sent_before_the_last_one(console_for) -> None:
    console = console_for(graph="previous_value")
    for number, value in enumerate((10, 11, 12, 13)):
        console.editors["in"].input.value = value
        console.send_button.click()
        console.wait_for(1 if number == 0 else 2)  # the first request has no previous value
    previous, current = console.outputs.panels["previous"], console.outputs.panels["current"]
    assert (previous.header_text, current.header_text) == ("previous @3", "current @3")
    assert ">12</td>" in previous.html.value and ">13</td>" in current.html.value
    assert console.outputs.latest["previous"][1].tolist() == [12]
    assert bytes(current.sparkline.value).startswith(PNG_SIGNATURE)  # the history: 10, 11, 12, 13
    assert "last 4: 10 … 13" in current.html.value


def test_close_stream_drains_the_outputs_and_shows_the_final_status(console_for) -> None:
    console = console_for(graph="passthrough")
    console.editors["in"].input.value = "1, 2"
    console.send_n_button.click()  # send_count defaults to 10
    console.close_button.click()  # half-closes on a widget thread: the click returns at once
    eventually(lambda: "stream ended: OK" in console.log.value)
    shown = lines(console)
    assert shown[-1] == "stream ended: OK"
    assert sum(line.startswith("response out @") for line in shown) == 10
    assert '<div style="color:#15803d">stream ended: OK</div>' in console.log.value
    assert console.send_button.disabled and console.close_button.disabled and not console.new_button.disabled
    assert next_label(console) == "stream ended: press New stream"
    console.send_button.click()  # refused, shown as a line of its own
    assert lines(console)[-1] == "not sent: the stream has ended (OK): press New stream to send again"


def test_new_stream_restarts_timestamps_and_the_graph_state(console_for) -> None:
    console = console_for(graph="previous_value")
    console.send({"in": 5})
    console.send({"in": 6})
    console.wait_for(3)
    first = console.client
    console.new_button.click()
    assert console.client is not first and next_label(console) == "next timestamp: 0 (auto)"
    console.send({"in": 7})
    console.close_stream()
    assert lines(console) == ["request #0 @0 (auto) in=7", "response current @0: [7]", "stream ended: OK"]
    assert console.outputs.panels["previous"].timestamp is None  # no state carried over: nothing to show
    eventually(lambda: first.ended)


def test_a_remote_console_types_inputs_from_metadata_and_ends_an_unknown_graph_with_not_found(
        server: ovms_notebook.Server, console_for) -> None:
    remote = console_for(server.address, "passthrough")
    editor = remote.editors["in"]
    assert editor.kind is StreamKind.UNKNOWN and editor.datatype is not None and editor.datatype.value == "FP32"
    editor.input.value = "1.5, 2"
    remote.send()
    remote.wait_for(1)
    assert lines(remote)[-1] == "response out @0: [1.5, 2]"
    assert remote.timeline.records[-1].lane == "out: out"  # follows the client log

    unknown = console_for(server.address, "no_such_graph")
    assert unknown.graph_picker.options == (("no_such_graph (not ready)", "no_such_graph"),)
    assert unknown.editors == {}
    unknown.send({"in": np.float32([1])})
    eventually(lambda: unknown.client.ended)
    assert lines(unknown)[-1] == ("stream ended: [StatusCode.NOT_FOUND] Mediapipe graph definition with requested "
                                  "name is not found")
    assert f'<div style="color:{RED}">stream ended: [StatusCode.NOT_FOUND]' in unknown.log.value


def test_the_timeline_follows_the_servers_events_of_this_stream(console_for) -> None:
    console = console_for(graph="previous_value")
    console.send({"in": 1})
    console.send({"in": 2}, timestamp=50)
    console.wait_for(3)
    png = console.timeline.png
    assert png.startswith(PNG_SIGNATURE)
    assert Image.open(io.BytesIO(png)).size[0] == 900
    assert {(r.lane, r.timestamp, r.manual) for r in console.timeline.records if r.kind == "request"} == {
        ("in: in", 0, False), ("in: in", 50, True)}


def test_changing_the_graph_builds_its_editors_and_opens_a_stream_to_it(console_for) -> None:
    console = console_for(graph="passthrough")
    console.graph_picker.value = "concat_default"
    assert list(console.editors) == ["a", "b"] and console.client.graph == "concat_default"
    assert [e.kind for e in console.editors.values()] == [StreamKind.FLOATS, StreamKind.FLOATS]
    console.editors["a"].input.value = "1, 2"
    console.editors["b"].input.value = "3"
    console.send()
    console.wait_for(1)
    console.editors["b"].include.value = False  # only "a": the DEFAULT handler waits for "b" until the close
    console.editors["a"].input.value = "4"
    assert console.editor_values().keys() == {"a"}
    console.send()
    console.close_stream()
    assert lines(console) == ["request #0 @0 (auto) a=[1, 2] b=[3]", "response out @0: [1, 2, 3]",
                              "request #1 @1 (auto) a=[4]", "response out @1: [4]", "stream ended: OK"]


def test_a_bad_editor_value_is_shown_and_not_sent(console_for) -> None:
    console = console_for(graph="passthrough")
    console.editors["in"].input.value = "1, x"
    assert "is not a FP32 value" in console.editors["in"].status.value
    console.send_button.click()
    assert lines(console) == ["not sent: input 'in': item 1 ('x') is not a FP32 value"]
    assert console.client.log == []


def test_editors_fit_their_stream_kinds(tmp_path) -> None:
    assert parse_values("1.5, 2").tolist() == [1.5, 2.0] and parse_values("1.5, 2").dtype == np.float32
    assert parse_values("1 2; 3 4", "INT32").shape == (2, 2)
    assert parse_values("a, b c", "BYTES").tolist() == ["a", "b c"]
    with pytest.raises(ValueError, match=r"item 0 \('300'\) is not a INT8 value"):
        parse_values("300", "INT8")
    number = InputEditor("f", StreamKind.FLOAT)
    assert isinstance(number.input, widgets.FloatText)
    number.input.value = 2.5
    assert number.value == np.float32(2.5) and isinstance(number.value, np.float32)
    flag = InputEditor("b", "BOOL")
    flag.input.value = True
    assert flag.value is True
    text = InputEditor("s", StreamKind.STRING)
    text.set_array(np.array([b"hi"], dtype=object))
    assert text.value == "hi"
    vector = InputEditor("v", StreamKind.UNKNOWN)
    vector.set_array(np.array([1, 2], dtype=np.int64))
    assert vector.datatype.value == "INT64" and vector.value.tolist() == [1, 2]
    image = InputEditor("img", StreamKind.IMAGE)
    assert image.value.shape == (240, 320, 3) and bytes(image.thumbnail.value).startswith(PNG_SIGNATURE)
    image.source.value = "checker"
    assert set(np.unique(image.value)) == {0, 255} and not image.height.disabled
    image.source.value = "astronaut"  # a photo has its own size: H and W do not apply
    assert image.value.shape == (512, 512, 3) and image.height.disabled and image.width.disabled
    picture = np.full((20, 30, 3), 7, np.uint8)
    Image.fromarray(picture).save(tmp_path / "seven.png")
    image.source.value = "file"
    image.path.value = str(tmp_path / "seven.png")
    assert image.value.shape == (20, 30, 3) and int(image.value[0, 0, 0]) == 7
    image.set_array(np.zeros((8, 9, 3), np.uint8))
    assert image.source.value == "array" and image.value.shape == (8, 9, 3)
    image.path.value = str(tmp_path / "missing.png")
    image.source.value = "file"
    with pytest.raises(ValueError, match="no image file"):
        _ = image.value
    for editor in (number, flag, text, vector, image):
        editor.close()


def test_the_console_is_exported_by_the_package_and_shows_the_box_it_owns(console_for) -> None:
    import ovms_notebook.widgets as package

    console = console_for(graph="passthrough")
    assert package.StreamConsole is StreamConsole and isinstance(console.box, widgets.VBox)
    assert not isinstance(console, widgets.Widget)  # composed, so no ipywidgets method means two things
    bundle = console._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == console.box.model_id
    assert console.outputs.box in console.box.children and console.timeline.box in console.box.children
    assert log_lines([], {}) == []


def test_with_wallclock_timestamps_the_log_shows_the_ones_the_server_assigned(serve_graphs) -> None:
    from tests.conftest import PASSTHROUGH

    server = serve_graphs({"passthrough": PASSTHROUGH}, timestamps="wallclock")
    console = StreamConsole(server, "passthrough")
    try:
        assert console.timestamps == "wallclock" and next_label(console) == "next timestamp: server clock (auto)"
        entry = console.send({"in": np.float32([1])})
        assert entry.timestamp is None  # the client cannot predict the server's clock
        console.wait_for(1)
        (stamped,) = [e.timestamp for e in server.events.snapshot(client_tag=console.client.tag) if e.kind == "request"]
        assert stamped > 1_000_000
        assert lines(console) == [f"request #0 @{stamped} (auto) in=[1]", f"response out @{stamped}: [1]"]
    finally:
        console.close()
    assert widget_threads() == []


REJECTED_0 = ('Malformed packet timestamp - input stream "in" needs a timestamp greater than 1, the last one it '
              "received; got 0; partial deserialization of subsequent requests")


def rejected_requests(console: StreamConsole) -> list[tuple[str, int | None, bool]]:
    return [(r.lane, r.timestamp, r.manual) for r in console.timeline.records if r.kind == "request" and r.rejected]


@pytest.mark.parametrize("where", ["in-kernel", "remote"])
def test_a_pipelined_bad_manual_timestamp_is_pinned_and_drawn_at_its_request_and_the_next_label_stays_right(
        console_for, server: ovms_notebook.Server, where: str) -> None:
    """Sent without waiting: @0, @1, manual @0 (rejected), auto (@2): the error arrives after the fourth
    request left, and names the third; the timeline draws that request at 0 with its error there."""
    console = console_for(*((server.address,) if where == "remote" else ()), graph="passthrough")
    for value, timestamp in ((0, None), (1, None), (2, 0), (3, None)):
        console.send({"in": np.float32([value])}, timestamp=timestamp)
    answers = console.wait_for(4)
    assert sorted((e.kind, e.timestamp) for e in answers) == [("error", None), ("response", 0), ("response", 1),
                                                              ("response", 2)]
    shown = lines(console)
    assert f"error → request #2: {REJECTED_0}" in shown
    assert "request #3 @2 (auto) in=[3]" in shown
    assert next_label(console) == "next timestamp: 3 (auto)"
    console.mode.value = "manual"  # the field offers the smallest timestamp the server would accept
    assert next_label(console) == "next timestamp: 3 (manual)"
    console.mode.value = "auto"
    eventually(lambda: rejected_requests(console) == [("in: in", 0, True)])
    (error,) = [r for r in console.timeline.records if r.kind == "error"]
    assert (error.timestamp, error.label) == (0, REJECTED_0)
    fig = timeline_figure(console.timeline.records)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes and not any(n.startswith("(no timestamp)") for n in notes)
    console.editors["in"].input.value = "9"
    console.send_button.click()  # a click after code sends: the label said 3, and 3 it gets
    assert console.wait_for(1)[0].timestamp == 3
    assert lines(console)[-2:] == ["request #4 @3 (auto) in=[9]", "response out @3: [9]"]
    assert next_label(console) == "next timestamp: 4 (auto)"


def test_a_repeated_manual_timestamp_then_an_automatic_one_pins_the_error_on_the_repeat(console_for) -> None:
    console = console_for(graph="previous_value")
    console.send({"in": 1}, timestamp=5)
    console.send({"in": 2}, timestamp=5)  # rejected
    console.send({"in": 3})  # @6
    console.wait_for(3)  # current @5, the error, current @6 and previous @6 may still come
    console.close_stream()
    assert f"error → request #1: {TIMESTAMP_ERROR}" in lines(console)
    assert rejected_requests(console) == [("in: in", 5, True)]
    (error,) = [r for r in console.timeline.records if r.kind == "error"]
    assert error.timestamp == 5
    assert sorted(r.timestamp for r in console.timeline.records if r.kind == "request" and not r.rejected) == [5, 6]


def test_wait_for_returns_the_answers_to_the_requests_the_cell_sent_not_earlier_clicks(console_for) -> None:
    console = console_for(graph="passthrough")
    console.editors["in"].input.value = "0.5"
    console.send_n_button.click()  # ten clicks' worth (send_count 10), not waited for
    sent = [console.send({"in": np.float32([1.5])}),
            console.send({"in": np.float32([2.5])}, timestamp=20),
            console.send({"in": np.float32([3.5])})]
    assert [(s.number, s.timestamp) for s in sent] == [(10, 10), (11, 20), (12, 21)]
    answers = console.wait_for(3)
    assert [(a.timestamp, a.values["out"].tolist()) for a in answers] == [(10, [1.5]), (20, [2.5]), (21, [3.5])]
    console.send_button.click()  # nothing sent from code since: the next answer after those returned
    (clicked,) = console.wait_for(1)
    assert (clicked.timestamp, clicked.values["out"].tolist()) == (22, [0.5])
    with pytest.raises(TimeoutError, match=r"0 of the 1 answers waited for arrived within 0\.2 s"):
        console.wait_for(1, timeout=0.2)
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        console.wait_for(0)


def test_an_empty_values_field_shows_an_example_and_send_refuses_saying_what_to_type(console_for) -> None:
    console = console_for(graph="passthrough")
    editor = console.editors["in"]
    assert editor.input.value == "" and editor.input.placeholder == "e.g. 1.5, 2, 3"
    hint = "type comma-separated values (e.g. 1.5, 2, 3), or [] for an empty tensor"
    assert re.sub(r"<[^>]+>", "", editor.status.value) == f"empty: {hint}"  # not "float32[0]"
    console.send_button.click()
    assert lines(console) == [f"not sent: input 'in' is empty: {hint}"]
    assert console.client.log == []  # nothing left
    editor.input.value = "[]"  # said on purpose: an empty tensor goes, and comes back
    console.send_button.click()
    (answer,) = console.wait_for(1)
    assert answer.values["out"].tolist() == []


def test_an_untagged_image_input_says_what_to_write_before_anything_is_sent(serve_graphs, console_for) -> None:
    untagged = ('input_stream: "input_video"\noutput_stream: "IMAGE:out"\n'
                'node { calculator: "ImageTransformationCalculator" input_stream: "IMAGE:input_video" '
                'output_stream: "IMAGE:out" }\n')
    server = serve_graphs({"untagged": untagged, "tagged": untagged.replace('"input_video"', '"IMAGE:input_video"', 1)})
    console = console_for(server, "untagged")
    (hint,) = [w.value for w in console.editors["input_video"]._extra]
    assert "but an untagged input carries a tensor" in hint
    assert "write input_stream: &quot;IMAGE:input_video&quot;" in hint
    tagged = console_for(server, "tagged")
    assert not any("untagged" in getattr(w, "value", "") for w in tagged.editors["input_video"]._extra)


def test_new_stream_after_a_reload_builds_the_editors_of_the_graph_now_served(serve_graphs, console_for) -> None:
    untagged = ('input_stream: "input_video"\noutput_stream: "IMAGE:out"\n'
                'node { calculator: "ImageTransformationCalculator" input_stream: "IMAGE:input_video" '
                'output_stream: "IMAGE:out" }\n')
    server = serve_graphs({"g": untagged})
    console = console_for(server, "g")
    assert console.editors["input_video"].kind is StreamKind.UNKNOWN and console.editors["input_video"]._extra
    path = server.repository.config_path.parent / "g" / "graph.pbtxt"
    path.write_text(untagged.replace('input_stream: "input_video"', 'input_stream: "IMAGE:input_video"', 1))
    assert server.reload()["g"] == "reloaded"
    console.new_button.click()
    editor = console.editors["input_video"]
    assert editor.kind is StreamKind.IMAGE and not any("untagged" in getattr(w, "value", "") for w in editor._extra)


def test_the_end_of_a_stream_counts_the_requests_that_got_no_output(serve_graphs, console_for) -> None:
    gate = ('input_stream: "in" input_stream: "BOOL:allow" output_stream: "out"\n'
            'node { calculator: "GateCalculator" input_stream: "in" input_stream: "ALLOW:allow" '
            'output_stream: "out" }\n')
    console = console_for(serve_graphs({"gate": gate}), "gate")
    for value, allow in ((1.0, True), (2.0, False), (3.0, True), (4.0, False)):
        console.send({"in": np.float32([value]), "allow": allow})
    console.close_stream()
    assert [line for line in lines(console) if line.startswith("response")] == [
        "response out @0: [1]", "response out @2: [3]"]
    assert lines(console)[-1] == (
        "stream ended: OK · 2 of 4 requests got no output at their timestamp (@1, @3): a graph may answer a "
        "request with nothing, e.g. a FlowLimiterCalculator dropping frames")
