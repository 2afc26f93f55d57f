"""Every ```python block of the README runs, in order, as one cell each, in a fresh kernel whose working folder is
`notebooks/` (where the Lab of `scripts/lab.sh` opens), and shows what the README says it shows.

A few cells the README does not have ("probes") run between the blocks to read what a widget did (the frames a
player sent, the timestamps of requests). ipykernel forwards fd 2 to the notebook only when it does not believe it
runs under pytest, so the kernel starts without PYTEST_CURRENT_TEST, as in JupyterLab: a native log line would
show here as it would in the Lab.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LAB_FOLDER = REPO / "notebooks"  # scripts/lab.sh: --notebook-dir=notebooks
WIDGET = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def readme_blocks(text: str | None = None) -> list[str]:
    """The README's ```python blocks, in order."""
    text = README.read_text() if text is None else text
    return [match.group(1) for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)]


def cell_with(blocks: list[str], marker: str) -> int:
    """The index of the one block that contains `marker`."""
    found = [index for index, block in enumerate(blocks) if marker in block]
    assert len(found) == 1, f"{len(found)} README python blocks contain {marker!r}"
    return found[0]


# -- what each block shows --------------------------------------------------------------------------------------


def text_result(cell: nbformat.NotebookNode) -> str:
    """The cell's execute_result as text/plain."""
    results = [output for output in cell.outputs if output.output_type == "execute_result"]
    assert len(results) == 1, f"expected one result, got {cell.outputs}"
    return results[0].data["text/plain"]


def displays_widget(cell: nbformat.NotebookNode) -> bool:
    """Whether the cell displayed a widget (its view's model id in the widget mime type)."""
    return any(
        WIDGET in output.get("data", {}) and output.data[WIDGET].get("model_id")
        for output in cell.outputs
        if output.output_type in ("display_data", "execute_result")
    )


def shows_nothing(cell: nbformat.NotebookNode) -> bool:
    return cell.outputs == []


# marker in a block -> what its cell must show
EXPECTED: dict[str, Callable[[nbformat.NotebookNode], Any]] = {
    "answers.append": lambda cell: text_result(cell) == "[(0, [4.5]), (10, [4.5])]",
    "server = ovms_notebook.serve(ovms_notebook.examples)\nserver": displays_widget,
    'console = StreamConsole(server, "passthrough")': displays_widget,
    "sent = [": lambda cell: text_result(cell) == "[(0, [1.5]), (10, [2.5]), (11, [3.5])]",
    "console.close_stream()": lambda cell: text_result(cell) == "<stream ended: OK (3 responses, 0 errors)>",
    'face = StreamConsole(server, "face_detection")': displays_widget,
    "player = FramePlayer(": displays_widget,
    "player.close()": shows_nothing,
    "trace = server.trace_for(client)": lambda cell: (
        text_result(cell).startswith("<Trace: ") and "image/png" in cell.outputs[0].data
    ),
    'trace.timestamps("tracker")': lambda cell: text_result(cell) == "[0, 1, 2, 3]",
    "trace.queue_waits()[0].wait_us": lambda cell: int(text_result(cell)) >= 0,
    'camera = LiveCamera(server, "face_tracking")': displays_widget,
    "recording = camera.stop_recording()": lambda cell: text_result(cell) == "[0, 33333, 66667]",
    "server.stop()": lambda cell: text_result(cell) == "True",
}

# marker in a block -> a probe cell run right after it; it prints one JSON line the test reads
PROBES: dict[str, str] = {
    "sent = [": "import json; print(json.dumps([request.timestamp for request in sent]))",
    "player = FramePlayer(": (
        "player.play()  # the Play button\n"
        "assert player.wait(120), 'the player did not finish within 120 s'\n"
        "import json; print(json.dumps([answer.timestamp for answer in face.wait_for(60, timeout=60)]))"
    ),
}
PROBE_RESULTS = {
    "sent = [": [0, 10, 11],
    "player = FramePlayer(": list(range(60)),  # every frame answered, in order
}

MISSING_CONFIG = 'ovms_notebook.serve("graphs")  # relative to the working folder, notebooks/: not there'


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], nbformat.NotebookNode]]:
    """The README's blocks, executed as a notebook (with the probes and a last cell serving a missing path)."""
    blocks = readme_blocks()
    cells, where = [], []
    for block in blocks:
        where.append(len(cells))
        cells.append(nbformat.v4.new_code_cell(block.rstrip("\n")))
        for marker, probe in PROBES.items():
            if marker in block:
                cells.append(nbformat.v4.new_code_cell(probe, metadata={"probe": marker}))
    cells.append(nbformat.v4.new_code_cell(MISSING_CONFIG, metadata={"tags": ["raises-exception"]}))
    notebook = nbformat.v4.new_notebook(cells=cells)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTEST_CURRENT_TEST", raising=False)
        nbclient.NotebookClient(
            notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(LAB_FOLDER)}}
        ).execute()
    out = tmp_path_factory.mktemp("readme") / "readme.ipynb"
    nbformat.write(notebook, out)  # kept for a look when a test fails
    notebook.metadata["readme_cells"] = where
    yield blocks, notebook


def test_the_readme_has_the_blocks_the_test_expects():
    blocks = readme_blocks()
    for marker in EXPECTED:
        cell_with(blocks, marker)
    assert all("graphs/" not in block for block in blocks), "README blocks must not depend on the working folder"


def test_every_readme_block_runs_without_errors_or_stderr(executed: tuple[list[str], nbformat.NotebookNode]):
    _, notebook = executed
    for index in notebook.metadata["readme_cells"]:
        cell = notebook.cells[index]
        for output in cell.outputs:
            assert output.output_type != "error", f"README block {cell.source!r} raised {output.ename}: {output.evalue}"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"README block {cell.source!r} wrote to stderr: {output.text!r}"
            )


@pytest.mark.parametrize("marker", list(EXPECTED))
def test_each_block_shows_what_the_readme_says(executed: tuple[list[str], nbformat.NotebookNode], marker: str):
    blocks, notebook = executed
    cell = notebook.cells[notebook.metadata["readme_cells"][cell_with(blocks, marker)]]
    assert EXPECTED[marker](cell), f"README block {cell.source!r} showed {cell.outputs}"


@pytest.mark.parametrize("marker", list(PROBES))
def test_the_widgets_did_what_the_readme_says(executed: tuple[list[str], nbformat.NotebookNode], marker: str):
    _, notebook = executed
    [probe] = [cell for cell in notebook.cells if cell.metadata.get("probe") == marker]
    errors = [f"{o.ename}: {o.evalue}" for o in probe.outputs if o.output_type == "error"]
    assert errors == []
    stdout = "".join(o.text for o in probe.outputs if o.output_type == "stream" and o.name == "stdout")
    assert json.loads(stdout) == PROBE_RESULTS[marker]


def test_a_missing_config_is_one_line_naming_the_absolute_path(executed: tuple[list[str], nbformat.NotebookNode]):
    _, notebook = executed
    [error] = [o for o in notebook.cells[-1].outputs if o.output_type == "error"]
    assert error.ename == "ConfigError"
    assert [_ANSI.sub("", line) for line in error.traceback] == [
        "ConfigError: expected an OVMS config.json or a folder holding one, got 'graphs' "
        f"({LAB_FOLDER / 'graphs'} does not exist)"
    ]
