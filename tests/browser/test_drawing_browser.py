"""Graph drawings sized to read, as Debian's Chromium lays them out in JupyterLab (1280 px window).

The server panel used to stretch a three-node drawing to the page width (about
1,400 px tall, text twice its size); a module of the wheel drawn by name is
wider than the page and must scroll in its box instead of shrinking its text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.jupyter import ARTIFACTS, JupyterLab, Notebook, chromium, new_page, save_failure, skip_reason
from tests.browser.make_notebooks import write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]

RENDER_MS = 30_000
THREE_NODES = 'input_stream: "in"\\noutput_stream: "out"\\n' + "".join(
    f'node {{ calculator: "PassThroughCalculator" input_stream: "{a}" output_stream: "{b}" }}\\n'
    for a, b in (("in", "a"), ("a", "b"), ("b", "out"))
)
CELLS = [
    "import json, pathlib, tempfile, ovms_notebook\n"
    "from ovms_notebook.widgets import GraphView\n"
    "root = pathlib.Path(tempfile.mkdtemp())\n"
    "(root / 'three').mkdir()\n"
    f"(root / 'three' / 'graph.pbtxt').write_text('{THREE_NODES}')\n"
    "(root / 'config.json').write_text(json.dumps({'mediapipe_config_list': [{'name': 'three'}]}))\n"
    "server = ovms_notebook.serve(root)",
    "server",
    'GraphView("FaceLandmarkFrontCpu")',
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


def box(locator: Any) -> dict[str, float]:
    found = locator.bounding_box()
    assert found is not None, "the element is laid out"
    return found


def test_drawings_keep_a_readable_size_in_chromium(lab: JupyterLab, tmp_path_factory: pytest.TempPathFactory) -> None:
    from playwright.sync_api import expect

    artifacts = ARTIFACTS / "drawing"
    artifacts.mkdir(parents=True, exist_ok=True)
    for stale in ("failure.png", "failure.html", "page.png", "panel.png"):
        (artifacts / stale).unlink(missing_ok=True)
    write_notebook(lab.notebook_dir / "drawing.ipynb", CELLS)
    with chromium(tmp_path_factory.mktemp("browser-home")) as browser:
        page = new_page(browser)
        try:
            notebook = Notebook.open(page, lab, "drawing.ipynb")
            notebook.run_all()
            panel_image = notebook.outputs(1).locator("img.widget-image").first
            expect(panel_image).to_be_visible(timeout=RENDER_MS)
            page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=panel_image.element_handle())
            area = box(notebook.outputs(1).first)
            drawn = box(panel_image)
            # the SVG's own size (PassThrough x3 with a title: 235 x 541 px), not the output area's width
            assert area["width"] > 700 and drawn["width"] < 300 and 300 < drawn["height"] < 600, (area, drawn)

            module = notebook.outputs(2).locator("svg").first
            expect(module).to_be_visible(timeout=RENDER_MS)
            scroller = notebook.outputs(2).locator("div[style*='overflow-x:auto']").first
            sizes = scroller.evaluate("el => [el.clientWidth, el.scrollWidth]")
            assert sizes[0] <= box(notebook.outputs(2).first)["width"] + 1 and sizes[1] > sizes[0] + 500, sizes
            font = module.locator("text").first.evaluate("el => el.getBoundingClientRect().height")
            assert font >= 9.5, f"node labels drawn {font:.1f} px tall"
            assert notebook.error_texts() == []
            notebook.fit_viewport()
            page.screenshot(path=str(artifacts / "page.png"))
            notebook.outputs(1).first.screenshot(path=str(artifacts / "panel.png"))
        except BaseException:
            save_failure(page, artifacts)
            raise
        finally:
            page.context.close()
            lab.shutdown_kernels()
