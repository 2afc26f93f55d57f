"""Widgets own their lifecycle: a re-run cell replaces what the last run made, an abandoned console leaves no
server session and no thread, a stopped server is said so, and no widget shadows an ipywidgets attribute."""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
import pkgutil
import re
import threading
import time
from collections.abc import Callable, Iterator

import ipywidgets as widgets
import numpy as np
import pytest

import ovms_notebook
import ovms_notebook.widgets as package
from ovms_notebook.sources import test_pattern
from ovms_notebook.widgets import THREAD_PREFIX, FramePlayer, StreamConsole, Timeline
from ovms_notebook.widgets.console_streams import SentRequest, StreamEnd
from tests.conftest import GRAPHS, PASSTHROUGH


def widget_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX))


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
        gc.collect()


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GRAPHS)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_widget_thread_before() -> None:
    """Each test starts with no widget thread: idle ones other tests left behind end within a few seconds."""
    eventually(lambda: widget_threads() == [])


def test_no_widget_class_of_the_package_subclasses_an_ipywidget_so_none_can_shadow_its_methods() -> None:
    checked = []
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"ovms_notebook.widgets.{module_info.name}")
        for _, klass in inspect.getmembers(module, inspect.isclass):
            if klass.__module__ != module.__name__:
                continue
            checked.append(klass.__name__)
            assert not issubclass(klass, widgets.Widget), f"{klass.__name__} subclasses an ipywidget"
    assert {"StreamConsole", "FramePlayer", "LiveOutputs", "OutputPanel", "Timeline", "InputEditor",
            "ServerPanel"} <= set(checked)


def test_the_console_shows_its_box_and_focus_is_not_a_request(server) -> None:
    console = StreamConsole(server, "passthrough")
    try:
        bundle = console._repr_mimebundle_()
        assert bundle is not None
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == console.box.model_id
        assert not isinstance(console, widgets.Widget) and not hasattr(console, "focus")
        console.box.focus()  # ipywidgets' own focus message goes to the browser, never onto the stream
        console.flush()
        assert console.client is not None and console.client.log == []
        assert package.StreamConsole is StreamConsole
    finally:
        console.close()
    assert console.closed and widget_threads() == []


def test_send_and_close_stream_return_what_happened_not_an_internal_record(server) -> None:
    console = StreamConsole(server, "passthrough")
    try:
        first = console.send({"in": np.float32([1.5])})
        second = console.send({"in": np.float32([2.5])}, timestamp=10)
        assert (first, second) == (SentRequest(0, 0, False, first.seq), SentRequest(1, 10, True, second.seq))
        assert repr(second) == "<request #1 @10 (manual)>"
        end = console.close_stream()
        assert end == StreamEnd("OK", "OK", 2, 0)
        assert repr(end) == "<stream ended: OK (2 responses, 0 errors)>"
    finally:
        console.close()


def test_a_second_console_for_the_same_server_and_graph_replaces_the_first(server) -> None:
    first = StreamConsole(server, "previous_value")
    first.send({"in": np.int32([1])})
    first.wait_for(1)
    other = StreamConsole(server, "passthrough")  # another graph: both live
    second = StreamConsole(server, "previous_value")
    try:
        assert first.closed and first.client is not None and first.client.ended
        assert not other.closed and not second.closed
        assert first.client.status is not None and first.client.status.code == "CANCELLED"
        eventually(lambda: all(s.graph != "previous_value" or s is not None for s in server.sessions))
        second.send({"in": np.int32([7])})
        second.wait_for(1)
        assert second.outputs.latest["current"][1].tolist() == [7]
    finally:
        other.close()
        second.close()
    eventually(lambda: widget_threads() == [] and server.sessions == [])


def test_abandoned_consoles_leave_no_session_and_no_thread(server) -> None:
    eventually(lambda: server.sessions == [] and widget_threads() == [])
    consoles = [StreamConsole(server, graph) for graph in ("passthrough", "previous_value", "concat_default")]
    for console, inputs in zip(
        consoles,
        ({"in": np.float32([1])}, {"in": np.int32([1])}, {"a": np.float32([1]), "b": np.float32([2])}),
        strict=True,
    ):
        console.send(inputs)
        console.wait_for(1)
    assert len(server.sessions) == 3
    readers = {f"ovms-client-{graph}-reader" for graph in ("passthrough", "previous_value", "concat_default")}
    assert readers <= {t.name for t in threading.enumerate()}  # each console's stream is open
    del consoles, console
    gc.collect()
    eventually(lambda: server.sessions == [] and widget_threads() == []
               and not readers & {t.name for t in threading.enumerate()})


def test_after_the_server_stops_the_console_says_so_and_offers_nothing_that_cannot_work(serve_graphs) -> None:
    eventually(lambda: widget_threads() == [])  # what earlier tests left has gone idle
    stopping = serve_graphs({"passthrough": PASSTHROUGH})
    console = StreamConsole(stopping, "passthrough")
    try:
        console.send({"in": np.float32([1])})
        console.wait_for(1)
        stopping.stop()
        eventually(lambda: console.client is not None and console.client.ended)
        console.flush()
        status = text(console.stream_status.value)
        assert status == (f"the server at {stopping.address} is stopped: start a new one with ovms_notebook.serve(...)")
        assert "ready" not in status
        assert all(
            b.disabled for b in (console.send_button, console.send_n_button, console.close_button, console.new_button)
        )
        assert text(console.next_label.value) == "nothing can be sent: the server is gone"
        with pytest.raises(ovms_notebook.errors.ClientError, match="is stopped"):
            console.new_stream()
        console.new_button.click()  # disabled in the browser; from code it says why, as a log line
        console.flush()
        assert text(console.log.value).endswith(
            f"not sent: the server at {stopping.address} is stopped: start a new one with ovms_notebook.serve(...)"
        )
    finally:
        console.close()
    assert widget_threads() == []


def test_the_player_shows_where_its_frames_go_and_reads_pause_while_playing(server) -> None:
    console = StreamConsole(server, "face_detection")
    frames = [test_pattern("gradient", (120, 160)) for _ in range(200)]
    player = FramePlayer(console, frames, fps=20)
    try:
        assert text(player.destination.value) == (
            "frames go to input stream image of face_detection on the console's stream: its live view is below"
        )
        assert console.outputs.box in player.box.children  # the answers show under the player
        player.play_button.value = True  # a click in the browser
        eventually(lambda: player.playing)
        assert (player.play_button.description, player.play_button.icon) == ("Pause", "pause")
        eventually(lambda: player.sent >= 2)
        player.play_button.value = False
        assert not player.playing and (player.play_button.description, player.play_button.icon) == ("Play", "play")
        again = FramePlayer(console, frames, fps=20)  # a re-run cell replaces the player on this console
        assert player.closed and not again.closed
    finally:
        console.close()  # closes its players too
    assert again.closed and widget_threads() == []


def test_a_following_timeline_is_told_of_new_events_and_closes_with_no_thread(server) -> None:
    timeline = Timeline(min_interval=0.01)
    timeline.follow(server.events)
    # following needs no thread of its own (the event log tells it): only the timeline's drawing thread runs
    assert [re.sub(r"\d+", "N", name) for name in widget_threads()] == [f"{THREAD_PREFIX}timeline-N"]
    console = StreamConsole(server, "passthrough")
    try:
        console.send({"in": np.float32([3])}, timestamp=42)
        console.close_stream()
        eventually(lambda: any(r.kind == "end" for r in timeline.records))
        # the server may log the output before the request that caused it (both come from its own threads)
        assert sorted((r.kind, r.timestamp) for r in timeline.records if r.kind != "end") == [
            ("output", 42),
            ("request", 42),
        ]
        again = Timeline(min_interval=0.01)
        again.follow(server.events)  # a re-run cell: the same stream of the same log
        assert timeline.closed and not again.closed
        again.close()
    finally:
        console.close()
        timeline.close()
    assert widget_threads() == []


def test_a_remote_console_whose_server_went_away_says_so_and_new_stream_asks_again(serve_graphs) -> None:
    going = serve_graphs({"passthrough": PASSTHROUGH})
    console = StreamConsole(going.address, "passthrough")  # by address: the console knows no Server object
    try:
        console.send({"in": np.float32([1])})
        console.wait_for(1)
        going.stop()
        eventually(lambda: console.client is not None and console.client.ended)
        console.new_button.click()  # ModelReady gets no answer: no stream is opened, the log says why
        console.flush()
        shown = text(console.log.value)
        assert re.search(rf"not sent: no server answers at {re.escape(going.address)}: .*UNAVAILABLE", shown), shown
        assert text(console.stream_status.value).startswith(f"no server answers at {going.address}: ")
        assert "ready" not in text(console.stream_status.value)
        assert text(console.next_label.value) == f"nothing can be sent: no server answers at {going.address}"
        assert console.send_button.disabled and not console.new_button.disabled  # it may come back
    finally:
        console.close()
    assert widget_threads() == []


def test_closing_after_the_kernel_socket_is_gone_closes_the_rest_and_prints_no_traceback(caplog):
    import zmq

    from ovms_notebook.widgets.lifecycle import close_all, closing_views

    class GoneSocket(widgets.Label):
        def close(self) -> None:
            raise zmq.error.ZMQError(zmq.ENOTSOCK)

    class Broken(widgets.Label):
        def close(self) -> None:
            raise RuntimeError("boom")

    first, last = widgets.Label("a"), widgets.Label("b")
    box = widgets.VBox([first, GoneSocket("x"), Broken("y"), last])
    with caplog.at_level(logging.DEBUG, logger="ovms_notebook.widgets.lifecycle"), closing_views():
        close_all([box])
    assert first.comm is None and last.comm is None and box.comm is None  # all closed despite the two failures
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [("DEBUG", "closing GoneSocket"),
                      ("WARNING", "closing Broken failed; its other widgets are closed still")]


def test_a_collected_composite_ends_its_threads_but_leaves_its_displayed_views_open(server) -> None:
    # display(Timeline(...)) keeps no reference: the notebook must go on showing it, not "model not found"
    timeline = Timeline(min_interval=0.05, title="shown")
    box = timeline.box
    timeline.update([])
    del timeline
    gc.collect()
    assert box.comm is not None and all(child.comm is not None for child in box.children)
    assert widget_threads() == []
    kept = Timeline(min_interval=0.05, title="closed")
    kept.close()
    assert kept.box.comm is None  # an asked-for close() closes the views
