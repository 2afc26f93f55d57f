"""Lesson 05 (the live camera) run headless: no browser, so no camera; it says so and feeds a synthetic one.

The lesson's live path (a camera in JupyterLab) is tests/browser/test_camera_browser.py's
test_the_lesson_records_a_live_camera_and_replays_it.
"""

from __future__ import annotations

import pytest

from tests.test_notebooks import run_notebook

pytest.importorskip("anywidget")
pytestmark = pytest.mark.notebook


def test_05_live_camera_headless_feeds_the_synthetic_camera_and_replays_it_exactly() -> None:
    notebook, summary = run_notebook("05_live_camera.ipynb")
    said = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "no camera connected (camera state 'off'): feeding a synthetic camera instead" in said
    assert summary["live"] is False
    assert summary["requests"] == 60
    assert summary["timestamps"] == [round(i * 1e6 / 30) for i in range(60)]  # capture times, 30 fps
    assert summary["same"] is True
    assert summary["ids"] == [[1]] * 60  # the astronaut keeps id 1 as she slides across the frame
    assert summary["detector_same_timestamps"] is True
    assert summary["left_behind"] == []
