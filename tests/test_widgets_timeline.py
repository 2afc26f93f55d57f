"""Stream timelines: records from server events and client logs, the figure's axes, the rate-limited widget."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

import ovms_notebook
from ovms_notebook.serving.events import EventLog, StreamEvent
from ovms_notebook.widgets import (
    PNG_SIGNATURE,
    SPECIAL_TIMESTAMPS,
    THREAD_PREFIX,
    Timeline,
    TimelineRecord,
    latest_stream_events,
    records_from_events,
    records_from_log,
    timeline_figure,
    timeline_png,
)
from tests.conftest import GRAPHS, request, stream

PREVIOUS_VALUE = (GRAPHS / "previous_value" / "graph.pbtxt").read_text()
MANUAL_COLOUR = (234 / 255, 88 / 255, 12 / 255)
AUTO_COLOUR = (37 / 255, 99 / 255, 235 / 255)


def widget_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def points(fig, colour: tuple[float, float, float]) -> list[tuple[float, float]]:
    """(x, y) of the scatter marks drawn in `colour`."""
    found = []
    for collection in fig.axes[0].collections:
        faces = collection.get_facecolors()
        if len(faces) and np.allclose(faces[0][:3], colour, atol=0.01):
            found.extend((float(x), float(y)) for x, y in collection.get_offsets())
    return found


def lanes_of(fig) -> list[str]:
    """Lane names from top to bottom."""
    return [label.get_text() for label in fig.axes[0].get_yticklabels()][::-1]


def run_previous_value(serve_graphs) -> tuple[ovms_notebook.Server, list[StreamEvent]]:
    server = serve_graphs({"previous_value": PREVIOUS_VALUE})
    result = stream(server.address, [
        request("previous_value", {"in": 5}),
        request("previous_value", {"in": 6}),
        request("previous_value", {"in": 7}, timestamp=100),
        request("previous_value", {"in": 8}, timestamp=50),  # not greater than 100: an in-band error
    ])
    assert sorted(result.stamped()) == [("current", 0), ("current", 1), ("current", 100), ("previous", 1),
                                        ("previous", 100)]
    # The server logs a response when its writer sends it: wait until the log has caught up with the client.
    wait_for(lambda: [e.kind for e in server.events.snapshot()].count("output") == 5
             and any(e.kind == "end" for e in server.events.snapshot()))
    return server, server.events.snapshot()


def test_records_from_a_real_streams_events_have_its_lanes_and_timestamps(serve_graphs) -> None:
    _, events = run_previous_value(serve_graphs)
    records = records_from_events(events)
    requests = [r for r in records if r.kind == "request"]
    assert [(r.lane, r.timestamp, r.manual) for r in requests] == [("in: in", 0, False), ("in: in", 1, False),
                                                                    ("in: in", 100, True)]
    outputs = sorted((r.lane, r.timestamp) for r in records if r.kind == "output")
    assert outputs == [("out: current", 0), ("out: current", 1), ("out: current", 100),
                       ("out: previous", 1), ("out: previous", 100)]
    (error,) = [r for r in records if r.kind == "error"]
    assert error.lane == "errors" and error.timestamp is None and "got 50" in error.label
    (end,) = [r for r in records if r.kind == "end"]
    assert (end.lane, end.timestamp, end.label) == ("end", None, "OK")
    assert [r.seq for r in records] == list(range(len(records)))


def test_the_figure_of_a_real_stream_puts_outputs_under_their_requests(serve_graphs) -> None:
    _, events = run_previous_value(serve_graphs)
    fig = timeline_figure(records_from_events(events), title="previous_value")
    assert lanes_of(fig) == ["in: in", "out: current", "out: previous", "errors"]
    row = {lane: len(lanes_of(fig)) - 1 - i for i, lane in enumerate(lanes_of(fig))}
    assert points(fig, AUTO_COLOUR) == [(0, row["in: in"]), (1, row["in: in"])]
    assert points(fig, MANUAL_COLOUR) == [(100, row["in: in"])]
    outputs = points(fig, (22 / 255, 163 / 255, 74 / 255))
    assert sorted(x for x, y in outputs if y == row["out: current"]) == [0, 1, 100]
    assert sorted(x for x, y in outputs if y == row["out: previous"]) == [1, 100]
    (error_x, error_y), = points(fig, (220 / 255, 38 / 255, 38 / 255))
    assert error_x > 100 and error_y == row["errors"]  # no timestamp: after the last point
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert any(n.startswith("(no timestamp) Malformed packet timestamp") and n.endswith("…") for n in notes)
    assert fig.texts[0].get_text() == "previous_value  ·  ended: OK"
    assert fig.axes[0].get_xlabel() == "MediaPipe timestamp"
    guides = fig.axes[0].collections[0].get_segments()
    assert sorted(segment[0][0] for segment in guides) == [0, 1, 100]


def test_records_from_a_client_log_place_an_error_at_its_requests_timestamp() -> None:
    log = [
        SimpleNamespace(kind="request", seq=0, timestamp=7, manual=True, names=("a", "b"), text="", code=None),
        SimpleNamespace(kind="response", seq=1, timestamp=7, manual=False, names=("out",), text="", code=None),
        SimpleNamespace(kind="request", seq=2, timestamp=3, manual=True, names=("a",), text="", code=None),
        SimpleNamespace(kind="error", seq=3, timestamp=None, text="timestamp must be greater than 7, got 3\nmore",
                        code=None, request_seq=2),
        SimpleNamespace(kind="end", seq=4, timestamp=None, text="", code="OK"),
    ]
    records = records_from_log(log)
    assert [(r.kind, r.lane, r.timestamp, r.manual, r.seq) for r in records] == [
        ("request", "in: a", 7, True, 0), ("request", "in: b", 7, True, 0), ("output", "out: out", 7, False, 1),
        ("request", "in: a", 3, True, 2), ("error", "errors", 3, False, 3), ("end", "end", None, False, 4),
    ]
    assert records[-1].label == "OK"
    cancelled = records_from_log([SimpleNamespace(kind="end", seq=0, text="stream closed", code="CANCELLED")])
    assert cancelled[0].label == "CANCELLED: stream closed"


def test_latest_stream_events_keeps_only_the_newest_stream() -> None:
    events = [StreamEvent("request", 1, "g", 0, ("in",)), StreamEvent("request", 2, "g", 0, ("in",)),
              StreamEvent("output", 1, "g", 0, ("out",))]
    assert latest_stream_events(events) == [events[1]]
    assert latest_stream_events([]) == []


def test_wall_clock_timestamps_are_shown_relative_to_the_first() -> None:
    first = 1_712_000_000_000_000
    records = [TimelineRecord("request", "in: image", first + i * 33_333, False, "", i) for i in range(5)]
    fig = timeline_figure(records)
    assert fig.axes[0].get_xlabel() == f"MediaPipe timestamp minus the first one ({first})"
    assert [x for x, _ in points(fig, AUTO_COLOUR)] == [i * 33_333 for i in range(5)]
    assert fig.texts[0].get_text() == "stream timeline  ·  stream open"


def test_special_timestamps_match_mediapipes() -> None:
    import mediapipe as mp

    for name in ("UNSET", "UNSTARTED", "PRESTREAM", "MIN", "MAX", "POSTSTREAM", "DONE"):
        assert SPECIAL_TIMESTAMPS[getattr(mp.Timestamp, name).value].upper() == name


def test_special_and_scattered_timestamps_are_shown_by_rank_with_their_names() -> None:
    prestream, poststream = -(2**63) + 2, 2**63 - 3
    records = [TimelineRecord("output", "out: out", t, False, "", i) for i, t in enumerate((prestream, 5, poststream))]
    records.append(TimelineRecord("end", "end", None, False, "CANCELLED: closed", 3))
    fig = timeline_figure(records)
    assert "in order (special timestamps" in fig.axes[0].get_xlabel()
    assert [x for x, _ in points(fig, (22 / 255, 163 / 255, 74 / 255))] == [0, 1, 2]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["PreStream", "5", "PostStream"]
    assert fig.texts[0].get_text().endswith("ended: CANCELLED: closed")
    scattered = [TimelineRecord("request", "in: a", t, True, "", i) for i, t in enumerate((0, 1, 10_000_000))]
    assert "too far apart" in timeline_figure(scattered).axes[0].get_xlabel()


def test_png_is_a_real_image_of_the_asked_width_and_is_deterministic() -> None:
    records = [TimelineRecord("request", "in: in", 0, False, "", 0), TimelineRecord("output", "out: out", 0, False,
                                                                                      "", 1)]
    png = timeline_png(records, width=8.0, dpi=100)
    assert png.startswith(PNG_SIGNATURE)
    width, height = Image.open(io.BytesIO(png)).size
    assert width == 800 and 150 < height < 400
    assert timeline_png(records, width=8.0, dpi=100) == png
    assert timeline_png([]).startswith(PNG_SIGNATURE)


def test_five_hundred_records_draw_one_mark_per_record_in_two_lanes() -> None:
    # How fast this draws is bench/p7_live_view.py's business, not a test's.
    records = []
    for i in range(250):
        records.append(TimelineRecord("request", "in: in", i, i % 7 == 0, "", 2 * i))
        records.append(TimelineRecord("output", "out: out", i, False, "", 2 * i + 1))
    figure = timeline_figure(records)
    (axes,) = figure.axes
    marks = [c.get_offsets().tolist() for c in axes.collections if type(c).__name__ == "PathCollection"]
    assert sorted(len(points) for points in marks) == [36, 214, 250]  # rejected requests (every 7th) drawn apart
    points = [point for points in marks for point in points]
    assert sorted(x for x, _ in points) == sorted([float(i) for i in range(250)] * 2)
    assert [label.get_text() for label in axes.get_yticklabels()] == ["out: out", "in: in"]


def test_fifty_rapid_updates_coalesce_into_at_most_three_renders_of_the_latest_records() -> None:
    timeline = Timeline(min_interval=0.2, title="burst")
    try:
        assert timeline.render_count == 1 and timeline.png.startswith(PNG_SIGNATURE)
        start = timeline.render_count
        batches = [[TimelineRecord("request", "in: in", t, False, "", t) for t in range(n + 1)] for n in range(50)]
        for batch in batches:
            timeline.update(batch)
        assert timeline.render_count == start  # update() never draws on the caller's thread
        assert timeline.flush(timeout=5)
        assert timeline.records == batches[-1] and timeline.png == timeline_png(batches[-1], title="burst")
        assert 1 <= timeline.render_count - start <= 3
    finally:
        timeline.close()
    assert widget_threads() == []


def test_an_update_after_a_quiet_interval_is_drawn_at_once() -> None:
    timeline = Timeline(min_interval=0.05)
    try:
        time.sleep(0.06)
        timeline.update([TimelineRecord("request", "in: in", 0, False, "", 0)])
        assert timeline.flush(timeout=5) and timeline.render_count == 2
    finally:
        timeline.close()


def test_close_cancels_a_pending_render() -> None:
    timeline = Timeline(min_interval=5.0)
    timeline.update([TimelineRecord("request", "in: in", 0, False, "", 0)])
    assert any("timeline" in name for name in widget_threads())
    timeline.close()
    assert widget_threads() == [] and timeline.render_count == 1


def test_follow_draws_a_live_stream_from_the_servers_event_log(serve_graphs) -> None:
    server = serve_graphs({"previous_value": PREVIOUS_VALUE})
    timeline = Timeline(min_interval=0.05)
    try:
        timeline.follow(server.events)
        stream(server.address, [request("previous_value", {"in": 1}), request("previous_value", {"in": 2},
                                                                              timestamp=10)])
        wait_for(lambda: any(r.kind == "end" for r in timeline.records))
        assert [(r.lane, r.timestamp, r.manual) for r in timeline.records if r.kind == "request"] == [
            ("in: in", 0, False), ("in: in", 10, True)]
        wait_for(lambda: timeline.png == timeline_png(timeline.records))
        timeline.stop_following()
        assert not any("follow" in name for name in widget_threads())
    finally:
        timeline.close()
    assert widget_threads() == []


def test_follow_picks_a_stream_by_id() -> None:
    log = EventLog()
    log.append(StreamEvent("request", 1, "g", 5, ("in",)))
    log.append(StreamEvent("request", 2, "g", 9, ("in",)))
    timeline = Timeline(min_interval=0.02)
    try:
        timeline.follow(log, stream_id=1)
        wait_for(lambda: [r.timestamp for r in timeline.records] == [5])
    finally:
        timeline.close()
    assert widget_threads() == []


def test_export_button_saves_the_png_and_failures_are_shown(tmp_path) -> None:
    timeline = Timeline([TimelineRecord("request", "in: in", 0, False, "", 0)])
    try:
        timeline.path.value = str(tmp_path / "stream.png")
        timeline.export_button.click()
        assert (tmp_path / "stream.png").read_bytes() == timeline.png
        assert "saved" in timeline.status.value and "stream.png" in timeline.status.value
        timeline.path.value = str(tmp_path)  # a folder: cannot be written as a file
        timeline.export_button.click()
        assert "export failed" in timeline.status.value
        assert "could not save the timeline" in timeline.output.outputs[-1]["text"]
    finally:
        timeline.close()


def test_the_widget_bundle_carries_a_static_png() -> None:
    timeline = Timeline([TimelineRecord("output", "out: out", 3, False, "", 0)])
    try:
        bundle = timeline._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["image/png"].startswith("iVBOR")
    finally:
        timeline.close()


def test_min_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_interval must be >= 0 seconds, got -1"):
        Timeline(min_interval=-1)


def test_a_rejected_request_is_drawn_hollow_at_the_timestamp_the_client_gave_with_its_error_under_it(
        serve_graphs) -> None:
    _, events = run_previous_value(serve_graphs)  # request #3, manual @50, was rejected
    sent = {3: SimpleNamespace(timestamp=50, manual=True, names=("in",))}
    records = records_from_events(events, sent)
    assert [(r.lane, r.timestamp, r.manual, r.label) for r in records if r.rejected] == [
        ("in: in", 50, True, "in at 50 (manual, rejected)")]
    (error,) = [r for r in records if r.kind == "error"]
    assert error.timestamp == 50 and "got 50" in error.label
    # The same events seen through a window that starts after request #0: numbering continues from there.
    start = next(i for i, e in enumerate(events) if e.kind == "request") + 1
    windowed = records_from_events(events[start:], sent, first_number=1)
    assert [(r.timestamp, r.rejected) for r in windowed if r.kind == "request"] == [(1, False), (100, False),
                                                                                   (50, True)]
    fig = timeline_figure(records)
    row = {lane: len(lanes_of(fig)) - 1 - i for i, lane in enumerate(lanes_of(fig))}
    assert points(fig, (220 / 255, 38 / 255, 38 / 255)) == [(50, row["errors"])]  # at its request, not after all
    hollow = [c for c in fig.axes[0].collections if isinstance(c, PathCollection) and len(c.get_facecolors()) == 0]
    (mark,) = [tuple(map(float, xy)) for c in hollow for xy in c.get_offsets()]
    assert mark == (50, row["in: in"])
    assert not any(t.get_text().startswith("(no timestamp)") for t in fig.axes[0].texts)
    guides = fig.axes[0].collections[0].get_segments()
    assert sorted(segment[0][0] for segment in guides) == [0, 1, 50, 100]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "request, rejected (hollow)" in legend


def test_records_from_a_client_log_mark_the_request_an_error_is_pinned_to_as_rejected() -> None:
    log = [
        SimpleNamespace(kind="request", seq=0, timestamp=1, manual=False, names=("a",), text="", code=None),
        SimpleNamespace(kind="request", seq=1, timestamp=0, manual=True, names=("a",), text="", code=None),
        SimpleNamespace(kind="response", seq=2, timestamp=1, manual=False, names=("out",), text="", code=None),
        SimpleNamespace(kind="error", seq=3, timestamp=None, text="bad", code=None, request_seq=1),
    ]
    records = records_from_log(log)
    assert [(r.kind, r.timestamp, r.rejected, r.label) for r in records] == [
        ("request", 1, False, "a at 1 (automatic)"), ("request", 0, True, "a at 0 (manual, rejected)"),
        ("output", 1, False, "out at 1"), ("error", 0, False, "bad")]


PASSTHROUGH = 'input_stream: "in"\noutput_stream: "out"\nnode { calculator: "PassThroughCalculator" ' \
              'input_stream: "in" output_stream: "out" }\n'


def test_a_long_failure_status_is_cut_at_a_word_in_the_heading_above_the_legend_and_shown_whole_under_it(
        serve_graphs) -> None:
    from ovms_notebook.client import StreamClient

    server = serve_graphs({"passthrough": PASSTHROUGH}, timestamp_check="mediapipe")
    client = StreamClient(server.address, "passthrough")
    for value, timestamp in ((1, 5), (2, 5), (3, 6)):  # 5 twice: MediaPipe fails the graph
        client.send({"in": np.float32([value])}, timestamp=timestamp)
    client.close()
    assert client.status.code == "INVALID_ARGUMENT" and len(client.status.text) > 300
    records = records_from_log(client.log)
    fig = timeline_figure(records, title="passthrough", width=9.0)
    heading = fig.texts[0].get_text().splitlines()
    assert len(heading) == 2 and heading[0].startswith(
        "passthrough  ·  ended: [StatusCode.INVALID_ARGUMENT] Mediapipe")
    assert heading[-1].endswith(" …") and not heading[-1].endswith("  …")
    words = client.status.text.split()
    assert heading[-1].removesuffix(" …").split()[-1].rstrip(".,;:") in {w.rstrip(".,;:") for w in words}
    # drawn: the heading inside the figure on the right, and wholly above the legend row
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    title_box = fig.texts[0].get_window_extent(renderer)
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert title_box.x1 <= fig.bbox.x1 and title_box.y0 > legend_box.y1
    timeline = Timeline(records, title="passthrough", min_interval=0)
    try:
        assert timeline.ending.layout.display is None
        assert "Packet timestamp mismatch" in timeline.ending.value
        assert timeline.ending.value.endswith(f"{client.status.text.rstrip()[-30:]}</div>".replace('"', "&quot;"))
        timeline.update(records[:-1])  # no end yet: nothing under the picture
        assert timeline.flush() and timeline.ending.value == "" and timeline.ending.layout.display == "none"
    finally:
        timeline.close()
