"""The live camera in a real JupyterLab, in Debian's Chromium with a fake camera playing a .y4m made here.

The video is scikit-image's astronaut sliding across a 640x480 frame and back (camera_fake), each
frame stamped with its index. The notebook's kernel records, for every frame its face_tracking
graph answered, the index the frame carries and the tracks; this test compares those boxes with
what the same graph says about the same frame sent directly (positions within 0.03 of the frame),
checks that the timestamps increase, that a busy kernel makes the browser drop (and count) frames,
and that closing the widget releases the camera (its tracks end), the stream and the threads. The same
widget is then driven in Jupyter Notebook 7's page, served by the same Jupyter server.

Cells run one at a time (JupyterLab's run-cell command), because a cell that waited for frames
would hold the kernel's main thread, where the frames arrive.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.jupyter import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    FAILURE_FILES,
    REPO,
    JupyterLab,
    Notebook,
    browser_page,
    skip_reason,
)
from tests.browser.make_notebooks import KERNEL_CHECK, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

GRAPHS = REPO / "graphs"
OUT = ARTIFACTS / "camera"
FRAMES = 60
TOLERANCE = 0.03  # of the frame's width/height: JPEG and I420 move a detector's box a little

STATS_JS = "() => [...(globalThis.ovmsNotebookCameras || new Map()).values()].map(s => s.stats ? s.stats() : null)"
RELEASED_JS = """() => [...(globalThis.ovmsNotebookCameras || new Map()).values()].map(
    s => ({released: s.released, tracks: s.tracks.map(t => t.readyState), active: s.active}))"""


def camera_cells(graphs: Path) -> list[str]:
    return [
        KERNEL_CHECK,
        "import collections, json, threading, numpy as np, ovms_notebook\n"
        "from ovms_notebook.widgets import LiveCamera\n"
        "from ovms_notebook.widgets.camera_fake import frame_index\n"
        f"server = ovms_notebook.serve({str(graphs)!r})\n"
        "records = collections.deque(maxlen=5000)\n"
        "def record(timestamp, outputs, frame):\n"
        "    tracks = outputs.get('tracks')\n"
        "    records.append((frame_index(frame), timestamp, [] if tracks is None else np.asarray(tracks).tolist()))",
        'camera = LiveCamera(server, "face_tracking")\ncamera.on_answer(record)\ncamera',
        "import time\n"
        "# Busy for 6 s: the camera's loop is held, so frames wait and the browser drops newer ones. A bare sleep is\n"
        "# not enough where the widget manager's subshell handles comm messages beside the running cell.\n"
        "with camera.loop._cond:\n    time.sleep(6.0)",
        'print(json.dumps({"records": list(records), "stats": camera.stats}))',
        "threads = [t.name for t in camera.threads]\n"
        "client = camera.loop.client\n"
        "camera.close()\n"
        'print(json.dumps({"before": threads, "after": [t.name for t in camera.threads],\n'
        '                  "ended": client is None or client.ended,\n'
        '                  "alive": [t.name for t in threading.enumerate() if "camera" in t.name]}))',
    ]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, list[float]]]:
    """The .y4m and, per frame index, the face box [xmin, ymin, width, height] the graph finds in that frame."""
    import ovms_notebook
    from ovms_notebook.client import StreamClient
    from ovms_notebook.widgets.camera_fake import moving_face_frames, write_y4m

    frames = moving_face_frames(FRAMES)
    path = write_y4m(tmp_path_factory.mktemp("video") / "astronaut.y4m", frames)
    expected: dict[int, list[float]] = {}
    with ovms_notebook.serve(GRAPHS / "config.json") as server:
        with StreamClient(server.address, "face_tracking", max_log=None) as client:
            for frame in frames:
                client.send({"image": frame})
            responses = client.wait_for(FRAMES, timeout=60)
        for index, entry in enumerate(responses):
            tracks = entry.values["tracks"]
            assert tracks.shape == (1, 6), f"frame {index}: one face expected, got {tracks}"
            expected[index] = tracks[0, 1:5].tolist()
    return path, expected


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


@contextlib.contextmanager
def fake_camera_browser(home: Path, video: Path) -> Iterator[Any]:
    """Debian's Chromium whose camera plays `video` (permission granted without a prompt)."""
    from playwright.sync_api import sync_playwright

    home.mkdir(parents=True, exist_ok=True)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args, env={**os.environ, "HOME": str(home)}
        )
        try:
            yield browser
        finally:
            browser.close()


def fresh_artifacts(folder: Path) -> Path:
    """`folder`, without the failure files an earlier failed run left there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FAILURE_FILES:
        (folder / name).unlink(missing_ok=True)
    return folder


def run_cell(notebook: Notebook, index: int, count: int, timeout: float = 60.0) -> None:
    """Run code cell `index` alone (the `count`th execution of the kernel) and wait until it is done."""
    notebook.page.evaluate(
        """index => { const panel = window.jupyterapp.shell.currentWidget;
                      const cells = panel.content.widgets;
                      let code = -1;
                      for (let i = 0; i < cells.length; i++) {
                          if (cells[i].model.type === 'code' && ++code === index) { panel.content.activeCellIndex = i; }
                      }
                      window.jupyterapp.commands.execute('notebook:run-cell'); }""",
        index,
    )
    deadline = time.monotonic() + timeout
    while notebook.prompts.nth(index).inner_text().strip() != f"[{count}]:":
        errors = notebook.error_texts()
        if errors:
            raise AssertionError("a cell raised:\n" + "\n".join(errors))
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell {index} not done after {timeout} s: {notebook.prompts.nth(index).inner_text()}")
        notebook.page.wait_for_timeout(100)


def camera_stats(page: Any) -> dict[str, Any]:
    stats = [s for s in page.evaluate(STATS_JS) if s]
    assert len(stats) == 1, f"one live camera view expected, got {stats}"
    return stats[0]


def wait_shown(page: Any, count: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = [s for s in page.evaluate(STATS_JS) if s]
        if stats and stats[0]["shown"] >= count:
            return stats[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} answered frames drawn after {timeout} s: {stats}")
        page.wait_for_timeout(200)


def assert_boxes_follow_the_face(records: list[list[Any]], expected: dict[int, list[float]]) -> None:
    """Each recorded answer's face box (face_tracking's `tracks`) is where the graph finds the face in that very
    frame of the fake camera's video, and the face moved across the frame over the records."""
    centres = []
    # The camera's frames went through I420 and JPEG: now and then the detector misses the face in one
    # (seen: 1 frame of ~150). Never a second face, and nearly always the one.
    assert all(len(tracks) <= 1 for _, _, tracks in records), [t for _, _, t in records if len(t) > 1]
    missed = [index for index, _, tracks in records if not tracks]
    assert len(missed) <= len(records) // 20, f"no face found in frames {missed}"
    for index, _, tracks in records:
        assert index in expected, f"frame index {index} read from a camera frame is not one of ours"
        if not tracks:
            continue
        _, xmin, ymin, width, height, _ = tracks[0]
        want = expected[index]
        centre, want_centre = (
            (xmin + width / 2, ymin + height / 2),
            (want[0] + want[2] / 2, want[1] + want[3] / 2),
        )
        assert abs(centre[0] - want_centre[0]) < TOLERANCE and abs(centre[1] - want_centre[1]) < TOLERANCE, (
            f"frame {index}: box centre {centre}, the graph finds {want_centre} in the frame itself"
        )
        centres.append(centre[0])
    assert max(centres) - min(centres) > 0.25, "the face moved across the frame"


def test_camera_frames_go_through_face_tracking_and_come_back_drawn(
    lab: JupyterLab, video: tuple[Path, dict[int, list[float]]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    path, expected = video
    write_notebook(lab.notebook_dir / "camera.ipynb", camera_cells(GRAPHS), title="# LiveCamera in Chromium")
    fresh_artifacts(OUT)
    with fake_camera_browser(tmp_path / "home", path) as browser, browser_page(browser, lab, OUT) as page:
        notebook = Notebook.open(page, lab, "camera.ipynb")
        for count, cell in enumerate((0, 1, 2), start=1):
            run_cell(notebook, cell, count)
        view = notebook.outputs(2)
        expect(view.locator("video.ovms-camera-input")).to_be_visible(timeout=30_000)
        first = wait_shown(page, 90)
        assert (first["width"], first["height"]) == (640, 480)
        # The status line under the camera says what the browser counted.
        expect(view.locator("span", has_text="fps shown")).to_contain_text("sent", timeout=10_000)
        notebook.fit_viewport()
        view.first.screenshot(path=str(OUT / "live.png"))

        # A busy kernel (6 s, about 180 camera frames): frames wait in its queue, the browser keeps at most two in
        # flight and drops the rest. At 3 s one CI run fell short of 30 drops; 6 s leaves a wide margin.
        run_cell(notebook, 3, 4)
        after = wait_shown(page, first["shown"] + 30)
        assert after["dropped_browser"] - first["dropped_browser"] >= 30, (first, after)
        expect(view.locator("span", has_text="fps shown")).to_contain_text(
            re.compile(r"dropped (\d{2,})"), timeout=10_000
        )

        run_cell(notebook, 4, 5)
        report = json.loads(notebook.outputs(4).first.inner_text())
        records = report["records"]
        assert len(records) >= 100, f"only {len(records)} answers recorded"
        timestamps = [timestamp for _, timestamp, _ in records]
        assert all(np.diff(timestamps) > 0), "timestamps increase"
        # Capture time in microseconds: ~33 ms apart at 30 fps, more across dropped frames.
        steps = np.diff(timestamps)
        assert np.median(steps) >= 25_000, f"timestamps are capture times in µs, steps {steps[:10]}"
        assert_boxes_follow_the_face(records, expected)
        # The stream's state lives across frames: between frames a few camera frames apart (the face moved
        # little) the tracker keeps its id. After a larger gap (frames dropped while the kernel was busy, or on
        # a loaded machine) it may start a new track, and for a few frames its greedy matching may pick the
        # old one or the new one. Nondeterministic by nature: checked as a share of the close pairs.
        found = [record for record in records if record[2]]
        pairs = [((b[0] - a[0]) % FRAMES, int(a[2][0][0]), int(b[2][0][0])) for a, b in itertools.pairwise(found)]
        close = [(first, second) for gap, first, second in pairs if gap <= 4]
        assert len(close) >= len(pairs) / 2, pairs
        assert sum(first == second for first, second in close) >= 0.8 * len(close), pairs
        stats = report["stats"]
        assert stats["answered"] >= len(records) and stats["errors"] == 0

        run_cell(notebook, 5, 6)
        closed = json.loads(notebook.outputs(5).first.inner_text())
        assert any("camera" in name for name in closed["before"]), closed
        assert closed["after"] == [] and closed["alive"] == [] and closed["ended"], closed
        page.wait_for_function(
            "() => [...globalThis.ovmsNotebookCameras.values()].every("
            "s => s.released && s.tracks.every(t => t.readyState === 'ended'))",
            timeout=10_000,
        )
        released = page.evaluate(RELEASED_JS)
        assert released and all(r["tracks"] == ["ended"] for r in released), released
        assert notebook.error_texts() == []
        page.screenshot(path=str(OUT / "page.png"))


def test_the_camera_widget_works_the_same_in_jupyter_notebook_7(
    lab: JupyterLab, video: tuple[Path, dict[int, list[float]]], tmp_path: Path
) -> None:
    """The anywidget module is front-end neutral: Notebook 7's page (/notebooks/...), not JupyterLab's, shows the
    camera, streams its frames through face_tracking and draws the answers, and closing releases the camera."""
    path, expected = video
    write_notebook(lab.notebook_dir / "camera7.ipynb", camera_cells(GRAPHS), title="# LiveCamera in Notebook 7")
    out = fresh_artifacts(OUT / "notebook7")
    with fake_camera_browser(tmp_path / "home", path) as browser, browser_page(browser, lab, out) as page:
        page.goto(lab.url("notebooks/camera7.ipynb"))
        notebook = Notebook(page, lab, "camera7.ipynb")
        notebook.panel.locator(".jp-Cell").first.wait_for(state="visible", timeout=60_000)
        assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"  # not JupyterLab's shell
        deadline = time.monotonic() + 60
        while not notebook.session_ready():  # Notebook 7 has no status bar: its session model says when
            assert time.monotonic() < deadline, "Notebook 7's kernel not ready after 60 s"
            page.wait_for_timeout(200)
        for count, cell in enumerate((0, 1, 2), start=1):
            run_cell(notebook, cell, count)
        first = wait_shown(page, 60)
        assert (first["width"], first["height"], first["errors"]) == (640, 480, 0)
        notebook.outputs(2).first.screenshot(path=str(out / "live.png"))
        run_cell(notebook, 4, 4)
        records = json.loads(notebook.outputs(4).first.inner_text())["records"]
        assert len(records) >= 30 and all(np.diff([timestamp for _, timestamp, _ in records]) > 0)
        assert_boxes_follow_the_face(records, expected)
        # The resolution picker, as a user picks it: the camera restarts at 320x240 and the loop goes on.
        notebook.outputs(2).locator("select").nth(1).select_option("320x240")
        page.wait_for_function(f"() => ({STATS_JS})().some(s => s && s.width === 320 && s.height === 240)",
                               timeout=30_000)
        smaller = wait_shown(page, camera_stats(page)["shown"] + 20)
        assert (smaller["width"], smaller["height"], smaller["errors"]) == (320, 240, 0)
        run_cell(notebook, 5, 5)
        closed = json.loads(notebook.outputs(5).first.inner_text())
        assert closed["after"] == [] and closed["alive"] == [] and closed["ended"], closed
        page.wait_for_function(
            "() => [...globalThis.ovmsNotebookCameras.values()].every("
            "s => s.released && s.tracks.every(t => t.readyState === 'ended'))",
            timeout=10_000,
        )
        assert notebook.error_texts() == []
        page.screenshot(path=str(out / "page.png"), full_page=True)


def test_the_lesson_records_a_live_camera_and_replays_it(
    lab: JupyterLab, video: tuple[Path, dict[int, list[float]]], tmp_path: Path
) -> None:
    """Lesson 05 cell by cell, as a person with a camera runs it: live frames recorded, then replayed exactly."""
    import shutil

    path, _ = video
    out = fresh_artifacts(OUT / "lesson")
    # A copy at the same place relative to the repository's other folders ("../graphs" resolves).
    (lab.notebook_dir / "notebooks").mkdir(exist_ok=True)
    shutil.copy2(REPO / "notebooks" / "05_live_camera.ipynb", lab.notebook_dir / "notebooks" / "05_live_camera.ipynb")
    if not (lab.notebook_dir / "graphs").exists():
        (lab.notebook_dir / "graphs").symlink_to(GRAPHS)
    with fake_camera_browser(tmp_path / "home", path) as browser, browser_page(browser, lab, out) as page:
        notebook = Notebook.open(page, lab, "notebooks/05_live_camera.ipynb")
        run_cell(notebook, 0, 1)
        run_cell(notebook, 1, 2)
        before = wait_shown(page, 20)
        run_cell(notebook, 2, 3)  # the camera is on: record live frames
        assert "camera on: recording the next 60 frames" in notebook.outputs(2).first.inner_text()
        wait_shown(page, before["shown"] + 75)
        for count, cell in enumerate(range(3, 8), start=4):
            run_cell(notebook, cell, count)
        summary_text = notebook.outputs(7).first.inner_text()
        summary = json.loads(summary_text[summary_text.index("SUMMARY ") + len("SUMMARY ") :])
        assert summary["live"] is True and summary["requests"] == 60
        assert all(np.diff(summary["timestamps"]) > 0) and summary["timestamps"][0] == 0
        assert summary["same"] is True and summary["detector_same_timestamps"] is True
        # One face in (nearly) every recorded frame (a camera frame now and then loses it to I420 and JPEG); its
        # id may change where the detector missed it for longer than
        # the tracker waits (frames the browser dropped widen the gaps), so only the count is fixed.
        counts = [len(ids) for ids in summary["ids"]]
        assert len(counts) == 60 and max(counts) == 1 and counts.count(0) <= 3, summary["ids"]
        assert summary["left_behind"] == []
        assert notebook.error_texts() == []
        notebook.fit_viewport()
        page.screenshot(path=str(out / "page.png"))
