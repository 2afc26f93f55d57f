"""A newcomer's first hour, as CI can replay it: a fresh clone, the README's main command, every lesson in Chromium.

- `git clone` of this repository's HEAD into a temporary folder, with nothing beside it (no ../shared);
- the first command of the README's first ```bash block, exactly as written, run by `bash` in the clone (as
  whoever runs the tests: root in CI); it must print JupyterLab's `http://127.0.0.1:PORT/lab?token=...`;
- Debian's Chromium (Playwright) opens each lesson of notebooks/ in that Lab, runs all cells, and checks: no error
  output, no stderr block, every widget output rendered, the kernel alive, and as many Python threads after the
  last cell as before the first (measured after `import ovms_notebook`, whose one process-wide thread, the native
  log filter, lives as long as the kernel);
- then the README's python blocks run in a notebook of that Lab's folder and show what tests/test_readme.py says.

Only the Lab's private dirs (runtime, settings, workspaces, config) are redirected into the temporary folder, so
that nothing of the machine's own Jupyter set-up (or an earlier run) takes part. Each lesson's run-all time, OS
threads and RSS of its kernel before and after are written to test-artifacts/newcomer/figures.json and printed;
screenshots go to test-artifacts/newcomer/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ovms_notebook.widgets.pump import IDLE_SECONDS
from tests.browser.jupyter import REPO, JupyterLab, Notebook, chromium, new_page, save_failure, skip_reason
from tests.test_readme import EXPECTED, PROBE_RESULTS, PROBES, WIDGET, cell_with, readme_blocks

pytestmark = [
    pytest.mark.newcomer,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

ARTIFACTS = REPO / "test-artifacts" / "newcomer"
LESSONS = sorted(path.name for path in (REPO / "notebooks").glob("*.ipynb"))
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]+)")
SETUP_TIMEOUT = 1200  # the first run creates .venv: about a minute here with pip's cache, more without
LESSON_TIMEOUT = 600
FIGURES: dict[str, dict[str, Any]] = {}
# The kernel's Python threads but two that serve the whole kernel process once started, whatever the lesson does:
# ipykernel's subshells (JupyterLab's widget manager asks for one when the first widget shows) and pyzmq's
# GarbageCollectorThread (started by the first zero-copy send of a large message, e.g. a widget's image).
THREAD_NAMES = (
    "sorted(t.name for t in __import__('threading').enumerate()"
    " if not t.name.startswith('subshell-') and type(t).__name__ != 'GarbageCollectorThread')"
)

# The outputs of every cell of the notebook open at `path`, from JupyterLab's own model.
_OUTPUTS_JS = """path => {
    for (const widget of window.jupyterapp.shell.widgets('main')) {
        if (widget.context?.path !== path || !widget.content?.model) continue;
        const cells = [];
        for (const cell of widget.content.model.cells) {
            const outputs = [];
            if (cell.type === 'code')
                for (let i = 0; i < cell.outputs.length; i++) outputs.push(cell.outputs.get(i).toJSON());
            cells.push({source: cell.sharedModel.getSource(), outputs: outputs});
        }
        return cells;
    }
    return null;
}"""
# Widget outputs of the notebook open at `path`: the model ids JupyterLab's own model holds, and how many output
# areas show a widget view.
_WIDGETS_JS = (
    """path => {
    const expected = [];
    for (const widget of window.jupyterapp.shell.widgets('main')) {
        if (widget.context?.path !== path || !widget.content?.model) continue;
        for (const cell of widget.content.model.cells) {
            if (cell.type !== 'code') continue;
            for (let i = 0; i < cell.outputs.length; i++) {
                const view = (cell.outputs.get(i).toJSON().data || {})['"""
    + WIDGET
    + """'];
                if (view) expected.push(view.model_id);
            }
        }
    }
    const outputs = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) '
        + '.jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output');
    let rendered = 0;
    for (const output of outputs)
        if (output.firstElementChild?.classList.contains('jupyter-widgets')) rendered++;
    return [expected, rendered];
}"""
)
# The widgets still open in the kernel: a widget the lesson closed itself (a camera released at the end) is gone
# on purpose and shows no view; every other widget output must render.
OPEN_WIDGETS = "sorted(__import__('ipywidgets').Widget.widgets)"


# Select cell `index` of the current notebook and run a command on it (run-all-above / run-all-below); returns
# nothing, so that evaluate() does not wait on the command's promise.
_RUN_JS = """([command, index]) => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    notebook.activeCellIndex = index;
    window.jupyterapp.commands.execute(command);
}"""


def wait_prompts(notebook: Notebook, count: int, timeout: float = LESSON_TIMEOUT) -> None:
    """Until the first `count` code cells show "[1]:" ... "[count]:" and the kernel is idle; fails on an error."""
    deadline = time.monotonic() + timeout
    while True:
        prompts = [text.strip() for text in notebook.prompts.all_inner_texts()][:count]
        if prompts == [f"[{index + 1}]:" for index in range(count)]:
            break
        errors = notebook.error_texts()
        assert not errors, "\n".join(errors)
        assert time.monotonic() < deadline, f"cells not done after {timeout} s: {prompts}"
        notebook.page.wait_for_timeout(200)
    notebook.wait_kernel_ready(timeout)


def main_command() -> str:
    """The first command line of the README's first ```bash block (comments stripped, as bash would)."""
    block = re.search(r"^```bash\n(.*?)^```$", (REPO / "README.md").read_text(), re.S | re.M)
    assert block, "the README has no ```bash block"
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines[0]


def lab_environment(root: Path) -> dict[str, str]:
    """The test process's environment minus what points into the checkout under test, plus private Jupyter dirs."""
    jupyter = root / "jupyter"
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for relative, content in settings.items():
        path = jupyter / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    config = jupyter / "config"
    config.mkdir(parents=True, exist_ok=True)
    # window.jupyterapp, for reading the notebook's model; no update check or news over the network
    (config / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "LabApp": {
                    "expose_app_in_browser": True,
                    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                    "news_url": None,
                }
            }
        )
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "PYTEST_CURRENT_TEST", "PYTHONHOME")
    }
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(jupyter / "data"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
            "IPYTHONDIR": str(jupyter / "ipython"),
        }
    )
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab as the README's main command starts it in a fresh clone."""
    root = tmp_path_factory.mktemp("newcomer")
    clone = root / "ovms_notebook"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert sorted(p.name for p in root.iterdir()) == ["ovms_notebook"]  # nothing beside it: no ../shared
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "main-command.log"
    log = log_path.open("wb")
    command = main_command()
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=clone,
        env=lab_environment(root),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = started + SETUP_TIMEOUT
    match = None
    while match is None:
        text = log_path.read_text(errors="replace")
        match = URL.search(text)
        if match is None and (proc.poll() is not None or time.monotonic() > deadline):
            proc.kill()
            raise AssertionError(f"{command!r} printed no Lab URL (exit {proc.poll()}):\n{text[-4000:]}")
        time.sleep(0.5)
    FIGURES["main command"] = {
        "command": command,
        "seconds_to_url": round(time.monotonic() - started, 1),
        "venv_bytes": _size(clone / ".venv"),
    }
    server = JupyterLab(root, clone / "notebooks", int(match.group(1)), match.group(2), proc, log_path, log)
    try:
        server._wait_ready(60)
        yield server
    finally:
        server.stop()
        (ARTIFACTS / "figures.json").write_text(json.dumps(FIGURES, indent=1))
        print("\nnewcomer figures:", json.dumps(FIGURES, indent=1))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("browser-home")) as launched:
        yield launched


def _size(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*") if not path.is_symlink())


class Kernel:
    """The one kernel of the Lab: its process (threads, RSS) and a second client on it for silent questions."""

    def __init__(self, lab: JupyterLab) -> None:
        import jupyter_client
        import psutil

        [kernel] = lab.kernels()
        self.id = kernel["id"]
        runtime = Path(lab.root) / "jupyter" / "runtime"
        connection = runtime / f"kernel-{self.id}.json"
        self.client = jupyter_client.BlockingKernelClient(connection_file=str(connection))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)
        pids = [
            child
            for child in psutil.Process(lab.proc.pid).children(recursive=True)
            if str(connection) in " ".join(child.cmdline())
        ]
        assert len(pids) == 1, f"kernel process of {connection}: {pids}"
        self.process = pids[0]

    def ask(self, expression: str, setup: str = "") -> Any:
        """Evaluate `expression` in the kernel, silently (no output reaches the notebook)."""
        reply = self.client.execute_interactive(
            setup, silent=True, store_history=False, user_expressions={"value": expression}, timeout=60
        )
        value = reply["content"]["user_expressions"]["value"]
        assert value["status"] == "ok", value
        return eval(value["data"]["text/plain"])  # a literal: ints, lists of str

    def figures(self) -> dict[str, Any]:
        return {
            "python_threads": len(self.ask(THREAD_NAMES)),
            "os_threads": self.process.num_threads(),
            "rss_mib": round(self.process.memory_info().rss / 2**20, 1),
        }

    def close(self) -> None:
        self.client.stop_channels()


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_lesson_runs_clean_in_the_lab_the_readme_opens(lab: JupyterLab, browser: Any, lesson: str):
    lab.shutdown_kernels()  # each lesson on a fresh kernel
    console: list[str] = []
    page = new_page(browser, height=1000, console=console)
    kernel = None
    try:
        notebook = Notebook.open(page, lab, lesson, timeout=120)
        kernel = Kernel(lab)
        kernel.ask("1", setup="import ovms_notebook")  # the package's own process-wide thread is not the lesson's
        before = kernel.figures()
        names_before = kernel.ask(THREAD_NAMES)
        started = time.monotonic()
        notebook.run_all(timeout=LESSON_TIMEOUT)
        seconds = round(time.monotonic() - started, 1)
        # Threads a last cell asked to stop finish their last lines, and a widget's redraw thread ends
        # IDLE_SECONDS after its last redraw (the server's stop redraws every live widget): wait that long, no more.
        settle_deadline = time.monotonic() + IDLE_SECONDS + 5.0
        while (names_after := kernel.ask(THREAD_NAMES)) != names_before and time.monotonic() < settle_deadline:
            time.sleep(0.25)
        settled = max(0.0, round(time.monotonic() - started - seconds, 1))
        after = kernel.figures()
        model_ids, rendered = page.evaluate(_WIDGETS_JS, lesson)
        still_open = set(kernel.ask(OPEN_WIDGETS))
        widgets = sum(model_id in still_open for model_id in model_ids)
        FIGURES[lesson] = {
            "run_all_seconds": seconds,
            "threads_settled_seconds": settled,
            "before": before,
            "after": after,
            "widget_outputs": widgets,
            "new_threads": sorted(set(names_after) - set(names_before)),
        }
        notebook.fit_viewport()
        page.screenshot(path=str(ARTIFACTS / f"{Path(lesson).stem}.png"), full_page=True)

        assert notebook.error_texts() == []
        assert notebook.stderr_texts() == []
        assert rendered >= widgets, f"{widgets - rendered} of {widgets} open widgets' outputs did not render"
        assert widgets >= len(model_ids) - 1, f"the lesson closed {len(model_ids) - widgets} of its widgets"
        assert [k["id"] for k in lab.kernels()] == [kernel.id] and kernel.process.is_running()
        assert names_after == names_before, "threads left after the last cell"
    except BaseException:
        save_failure(page, ARTIFACTS, f"failure-{Path(lesson).stem}")
        (ARTIFACTS / f"browser-console-{Path(lesson).stem}.log").write_text("\n".join(console))
        raise
    finally:
        if kernel is not None:
            kernel.close()
        page.context.close()


def test_the_readme_blocks_run_in_the_lab_the_readme_opens(lab: JupyterLab, browser: Any):
    """The README's python blocks as one notebook in the Lab's folder (with test_readme's probes), run in Chromium."""
    lab.shutdown_kernels()
    cells = []
    for block in readme_blocks((lab.notebook_dir.parent / "README.md").read_text()):
        cells.append(nbformat.v4.new_code_cell(block.rstrip("\n")))
        cells += [nbformat.v4.new_code_cell(probe) for marker, probe in PROBES.items() if marker in block]
    name = "readme_blocks.ipynb"
    notebook_file = nbformat.v4.new_notebook(
        cells=cells,
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    )
    nbformat.write(notebook_file, lab.notebook_dir / name)
    close_cell = cell_with([cell.source for cell in cells], "player.close()")
    page = new_page(browser, height=1000)
    try:
        notebook = Notebook.open(page, lab, name, timeout=120)
        # Up to the cell that closes the widgets: every widget shown so far must have rendered.
        page.evaluate(_RUN_JS, ["notebook:run-all-above", close_cell])
        wait_prompts(notebook, close_cell)
        model_ids, rendered = page.evaluate(_WIDGETS_JS, name)
        widgets = len(model_ids)
        notebook.fit_viewport()
        page.screenshot(path=str(ARTIFACTS / "readme_blocks.png"), full_page=True)
        assert widgets == 4 and rendered == widgets, (widgets, rendered)  # panel, two consoles, player
        page.evaluate(_RUN_JS, ["notebook:run-all-below", close_cell])
        notebook.wait_cells_done(LESSON_TIMEOUT)
        assert notebook.error_texts() == []
        assert notebook.stderr_texts() == []
        executed = [
            nbformat.from_dict({"cell_type": "code", "metadata": {}, **cell})
            for cell in page.evaluate(_OUTPUTS_JS, name)
        ]
        blocks = [cell.source for cell in executed]
        for marker, shows in EXPECTED.items():
            cell = executed[cell_with(blocks, marker)]
            assert shows(cell), f"README block {cell.source!r} showed {cell.outputs}"
        for marker, probe in PROBES.items():
            [cell] = [cell for cell in executed if cell.source == probe]
            stdout = "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream")
            assert json.loads(stdout) == PROBE_RESULTS[marker]
    except BaseException:
        save_failure(page, ARTIFACTS, "failure-readme")
        raise
    finally:
        page.context.close()
        with contextlib.suppress(OSError):
            (lab.notebook_dir / name).unlink()
