"""The stream console in a real JupyterLab, in Debian's Chromium: what a person sees after three requests.

JupyterLab runs on a loopback port started by the test (one server and one
browser for the module, a fresh page and kernel per test); assertions read
DOM text with generous timeouts because widgets render asynchronously.
Screenshots go to test-artifacts/browser/ under the repository root; a failing
test leaves failure.png, failure.html, the browser console and the server log.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.jupyter import ARTIFACTS, REPO, JupyterLab, Notebook, browser_page, chromium, skip_reason
from tests.browser.make_notebooks import console_cells, panel_cells, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

GRAPHS = REPO / "graphs"
NOTEBOOKS = REPO / "notebooks"
TIMESTAMPS_NOTEBOOK = NOTEBOOKS / "02_timestamps.ipynb"
RENDER_MS = 30_000  # widgets render asynchronously, and traits set from kernel threads arrive later still

# Code cells of console_cells(): which output shows what.
CONSOLE_PANEL_CELL, CONSOLE_CELL = 2, 3


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("browser-home")) as launched:
        yield launched


def check_kernel(notebook: Notebook) -> None:
    """Code cell 0 printed the kernel's interpreter and where ovms_notebook came from: ours, both."""
    from playwright.sync_api import expect

    expect(notebook.outputs(0)).to_contain_text(f"kernel python: {sys.executable}")
    expect(notebook.outputs(0)).to_contain_text(f"ovms_notebook: {REPO / 'ovms_notebook' / '__init__.py'}")


def wait_image_decoded(page: Any, image: Any) -> None:
    """An ipywidgets Image shows a decoded picture (its src is a blob: URL in ipywidgets 8)."""
    from playwright.sync_api import expect

    expect(image).to_have_attribute("src", re.compile(r"^(blob|data):"), timeout=RENDER_MS)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=image.element_handle(), timeout=RENDER_MS)


def check_server_panel(notebook: Notebook, cell: int) -> None:
    """The server panel of `server` renders as a widget, running, with passthrough among its graphs."""
    from playwright.sync_api import expect

    panel = notebook.outputs(cell)
    expect(panel.locator(".widget-html", has_text="ovms_notebook server")).to_contain_text("running",
                                                                                           timeout=RENDER_MS)
    expect(panel.locator(".widget-html table")).to_contain_text("passthrough", timeout=RENDER_MS)


def test_console_shows_three_requests_their_timestamps_outputs_and_the_end(lab: JupyterLab, browser: Any) -> None:
    from playwright.sync_api import expect

    if not (REPO / "ovms_notebook" / "widgets" / "console.py").exists():
        pytest.skip("ovms_notebook/widgets/console.py (StreamConsole) does not exist yet")
    write_notebook(lab.notebook_dir / "console.ipynb", console_cells(GRAPHS), title="# StreamConsole in Chromium")
    with browser_page(browser, lab, ARTIFACTS, "page.png", "console.png", "timeline.png") as page:
        kernels_before = lab.kernel_starts()
        notebook = Notebook.open(page, lab, "console.ipynb")
        notebook.run_all()
        check_kernel(notebook)
        check_server_panel(notebook, CONSOLE_PANEL_CELL)

        console = notebook.outputs(CONSOLE_CELL).filter(has=page.locator(".widget-vbox"))
        # One line per request, response and the end (console_log.py): "request #0 @0 (auto) in=[1.5]",
        # "response out @0: [1.5]", ..., "stream ended: OK".
        log = console.locator(".widget-html", has_text=re.compile(r"request #\d+ @"))
        expect(log).to_contain_text("stream ended: OK", timeout=RENDER_MS)
        for text in ("@0", "@10", "@11", "1.5", "2.5", "3.5"):
            expect(log).to_contain_text(text)
        # In order: auto @0, manual @10, auto @11 (the counter goes on from the manual timestamp).
        expect(log).to_contain_text(re.compile(
            r"request #\d+ @0 \(auto\) in=\[1\.5\][\s\S]*request #\d+ @10 \(manual\) in=\[2\.5\]"
            r"[\s\S]*request #\d+ @11 \(auto\) in=\[3\.5\][\s\S]*stream ended: OK"))
        for timestamp, value in ((0, "1.5"), (10, "2.5"), (11, "3.5")):
            expect(log).to_contain_text(f"response out @{timestamp}: [{value}]")
        # The live outputs show the newest value, with its timestamp in the panel's header.
        expect(console.locator(".widget-vbox", has_text="out @11").last).to_contain_text("3.5")
        # The timeline's image is the one just before its "Export PNG" row (LiveOutputs has images too).
        timeline = console.locator("xpath=.//img[contains(@class, 'widget-image')]"
                                   "[following-sibling::*[1][.//button[contains(., 'Export PNG')]]]")
        wait_image_decoded(page, timeline)
        assert notebook.error_texts() == []
        assert lab.kernel_starts() == kernels_before + 1, "one kernel ran every cell"

        notebook.fit_viewport()
        page.screenshot(path=str(ARTIFACTS / "page.png"))
        console.screenshot(path=str(ARTIFACTS / "console.png"))
        timeline.screenshot(path=str(ARTIFACTS / "timeline.png"))


def test_server_panel_and_a_timeline_render_in_chromium(lab: JupyterLab, browser: Any) -> None:
    from playwright.sync_api import expect

    artifacts = ARTIFACTS / "panel"
    write_notebook(lab.notebook_dir / "panel.ipynb", panel_cells(GRAPHS))
    with browser_page(browser, lab, artifacts, "page.png", "panel.png", "timeline.png") as page:
        kernels_before = lab.kernel_starts()
        notebook = Notebook.open(page, lab, "panel.ipynb")
        notebook.run_all()
        check_kernel(notebook)
        check_server_panel(notebook, 2)
        # The live panel redraws with the packet counts of the stream that ran.
        expect(notebook.outputs(2).locator("img.widget-image").first).to_be_visible(timeout=RENDER_MS)
        timeline = notebook.outputs(3).locator("img.widget-image").first
        wait_image_decoded(page, timeline)
        expect(notebook.outputs(4)).to_contain_text("@0=1.5 @10=2.5 @11=3.5 OK")
        assert notebook.error_texts() == []
        assert lab.kernel_starts() == kernels_before + 1, "one kernel ran every cell"

        notebook.fit_viewport()
        page.screenshot(path=str(artifacts / "page.png"))
        notebook.outputs(2).first.screenshot(path=str(artifacts / "panel.png"))
        timeline.screenshot(path=str(artifacts / "timeline.png"))


def test_timestamps_notebook_runs_in_chromium(lab: JupyterLab, browser: Any) -> None:
    if not TIMESTAMPS_NOTEBOOK.exists():
        pytest.skip(f"{TIMESTAMPS_NOTEBOOK.relative_to(REPO)} does not exist yet")
    artifacts = ARTIFACTS / "02_timestamps"
    # A copy (JupyterLab never writes into the repository) at the same place relative to the repository's
    # other folders, so relative paths such as "../graphs" still resolve.
    shutil.copytree(NOTEBOOKS, lab.notebook_dir / "notebooks", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for entry in REPO.iterdir():
        link = lab.notebook_dir / entry.name
        if not entry.name.startswith(".") and entry.name not in ("notebooks", "test-artifacts") and not link.exists():
            link.symlink_to(entry)
    with browser_page(browser, lab, artifacts, "page.png") as page:
        notebook = Notebook.open(page, lab, f"notebooks/{TIMESTAMPS_NOTEBOOK.name}")
        notebook.run_all(timeout=90)
        assert notebook.error_texts() == []
        assert notebook.panel.locator(".jp-OutputArea-output").count() > 0, "it shows outputs"
        notebook.fit_viewport()
        page.screenshot(path=str(artifacts / "page.png"))
