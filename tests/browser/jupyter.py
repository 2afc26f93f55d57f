"""JupyterLab on a loopback port, driven by Debian's Chromium through Playwright: the harness of tests/browser.

It follows the browser-test recipe of the project notes (server flags, isolated
JUPYTER_* dirs, the kernel readiness gate, teardown):

    with JupyterLab.start(tmp_path / "lab") as lab, chromium(tmp_path / "browser") as browser:
        page = new_page(browser)
        notebook = Notebook.open(page, lab, "demo.ipynb")
        notebook.run_all()
        expect(notebook.outputs(0)).to_contain_text("hello")

- The server runs the test process's interpreter (`sys.executable -m jupyterlab`)
  and, through a kernelspec "python3" written into its private data dir, so does
  the kernel; the kernelspec puts the repository first on the kernel's
  PYTHONPATH, so `import ovms_notebook` is the checkout under test.
- The kernel is ready only when the status bar says "<kernel> | Idle" and the
  notebook's execution indicator agrees on two polls in a row: the indicator
  alone says "idle" before any kernel exists, and Run All then runs nothing or
  starts a second kernel.
- Teardown leaves no process: the browser is closed by Playwright, the server is
  asked to shut down over REST, then terminated and killed, and any kernel it
  had started that is still alive (same PID *and* start time) is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"
RunAllMethod = Literal["menu", "palette", "command"]

# Chromium flags of the recipe: headless, no sandbox (root in a container), no network chatter.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# JupyterLab settings overrides: no news toast, no autosave into the copied notebooks, every cell in the DOM
# (windowing would drop off-screen outputs from the DOM that the tests read).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none", "scrollPastEnd": False},
}

PROMPTS = ".jp-CodeCell .jp-InputArea-prompt"
KERNEL_STATUS = "#jp-main-statusbar .jp-StatusBar-TextItem[title^='Change kernel']"
EXECUTION_INDICATOR = ".jp-Notebook-ExecutionIndicator"


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; never `playwright install`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_kernelspec(data_dir: Path, python: str, pythonpath: list[Path]) -> Path:
    """A kernelspec "python3" in `data_dir` that runs `python` with `pythonpath` first on sys.path.

    It wins over the venv's own "python3" (whose argv is a bare "python") only
    when the user data dir comes first in Jupyter's search path, which in a
    venv needs JUPYTER_PREFER_ENV_PATH=0 (JupyterLab.start sets it).
    """
    folder = data_dir / "kernels" / "python3"
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(ImportError, OSError):  # the logos, for the launcher and the kernel picker
        from ipykernel.kernelspec import RESOURCES

        for logo in Path(RESOURCES).glob("logo-*"):
            shutil.copy2(logo, folder / logo.name)
    path = os.pathsep.join([*map(str, pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "env": {"PYTHONPATH": path, "MPLBACKEND": "Agg"},
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


@dataclass
class JupyterLab:
    """A JupyterLab server on 127.0.0.1 with a random token and private config, data, runtime and settings dirs."""

    root: Path
    notebook_dir: Path
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False)

    @classmethod
    def start(cls, root: Path, *, python: str = sys.executable, pythonpath: tuple[Path, ...] = (REPO,),
              timeout: float = 60.0, attempts: int = 3) -> JupyterLab:
        """Start the server and wait until `/api/status` answers; retries on a port taken meanwhile."""
        root.mkdir(parents=True, exist_ok=True)
        notebook_dir = root / "nb"
        notebook_dir.mkdir(exist_ok=True)
        jupyter = root / "jupyter"  # outside the notebook dir, so the file browser does not show it
        for relative, content in LAB_SETTINGS.items():
            settings = jupyter / "settings" / relative
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps(content))
        write_kernelspec(jupyter / "data", python, list(pythonpath))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
            "JUPYTER_DATA_DIR": str(jupyter / "data"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTER_PREFER_ENV_PATH": "0",  # our data dir (and its kernelspec) before the venv's
            "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
            "IPYTHONDIR": str(jupyter / "ipython"),
            "MPLBACKEND": "Agg",
        }
        env.pop("JUPYTER_PATH", None)
        error = ""
        for attempt in range(attempts):
            port, token = _free_port(), secrets.token_hex(24)
            log_path = root / f"jupyter-server-{attempt}.log"
            cmd = [
                python, "-m", "jupyterlab", "--no-browser",
                f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={token}", f"--notebook-dir={notebook_dir}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
                "--LabApp.expose_app_in_browser=True",
                "--JupyterNotebookApp.expose_app_in_browser=True",  # Notebook 7's pages too (/notebooks/...)
            ]
            if os.geteuid() == 0:
                cmd.append("--allow-root")
            log = log_path.open("wb")
            # Same process group as pytest: a signal that ends pytest reaches the server (and so its kernels).
            proc = subprocess.Popen(cmd, cwd=notebook_dir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
            lab = cls(root, notebook_dir, port, token, proc, log_path, log)
            try:
                lab._wait_ready(timeout)
                lab._check_kernelspec(python)
                return lab
            except RuntimeError as failure:
                error = str(failure)
                lab.stop()
                if "already in use" not in lab.log_text():  # only a port taken since the probe is worth a retry
                    break
        raise RuntimeError(error)

    # -- HTTP --------------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """A browser URL with the token, e.g. url("lab/tree/demo.ipynb")."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        """Call the REST API with the token; (status, decoded JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}/api/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterlab exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if self.api("GET", "status", timeout=2)[0] == 200:
                    return
            time.sleep(0.25)
        raise RuntimeError(f"jupyterlab did not answer within {timeout} s:\n{self.log_text()[-3000:]}")

    def _check_kernelspec(self, python: str) -> None:
        status, specs = self.api("GET", "kernelspecs")
        argv = (specs or {}).get("kernelspecs", {}).get("python3", {}).get("spec", {}).get("argv", [])
        if status != 200 or not argv or argv[0] != python:
            raise RuntimeError(f"the python3 kernelspec the server found runs {argv}, not {python}: "
                               "another kernelspec dir shadows ours")

    def log_text(self) -> str:
        """The server's log so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kernels(self) -> list[dict[str, Any]]:
        """The running kernels (id, name, execution_state...)."""
        status, kernels = self.api("GET", "kernels")
        return kernels if status == 200 and kernels else []

    def kernel_starts(self) -> int:
        """How many kernels the server has started so far (from its log)."""
        return self.log_text().count("Kernel started:")

    def shutdown_kernels(self) -> None:
        """Shut every kernel down (their atexit handlers run, so a notebook's server stops)."""
        for kernel in self.kernels():
            self.api("DELETE", f"kernels/{kernel['id']}", timeout=20)

    # -- teardown ----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Shut the server and its kernels down; kills whatever is left. Idempotent."""
        import psutil

        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.api("POST", "shutdown", timeout=10)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        for child in children:  # psutil checks the start time too, so a reused PID is never hit
            with contextlib.suppress(psutil.Error):
                if child.is_running():
                    child.kill()
                    child.wait(5)
        with contextlib.suppress(OSError):
            self._log.close()

    def __enter__(self) -> JupyterLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- browser -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(home: Path, *, headless: bool = True) -> Iterator[Any]:
    """Debian's Chromium through Playwright (never a downloaded browser); closed on exit.

    `home` becomes the browser's $HOME, so crashpad writes nothing into the real one.
    """
    from playwright.sync_api import sync_playwright

    home.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=headless, args=CHROMIUM_ARGS,
                                             env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, *, width: int = 1280, height: int = 900, timeout_ms: int = 30_000,
             console: list[str] | None = None) -> Any:
    """A page in a fresh context; browser console messages and page errors go to `console` if given."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    if console is not None:
        page.on("console", lambda message: console.append(f"[{message.type}] {message.text}"))
        page.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
    return page


# -- notebooks -----------------------------------------------------------------------------------------------


# [height the cells need, height shown] in the notebook's scroller (its scrollHeight also counts the
# "scroll past end" space, which grows with the viewport).
_SCROLLER_JS = """() => {
    const scroller = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')
                     || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell');
    if (!scroller || !cells.length) return [0, 0];
    const bottom = cells[cells.length - 1].getBoundingClientRect().bottom;
    return [Math.ceil(bottom - scroller.getBoundingClientRect().top + scroller.scrollTop), scroller.clientHeight];
}"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The error outputs of the notebook open at `path`, from JupyterLab's own model (needs expose_app_in_browser).
_ERRORS_JS = """path => {
    const errors = [];
    for (const widget of window.jupyterapp.shell.widgets('main')) {
        if (widget.context?.path !== path || !widget.content?.model) continue;
        for (const cell of widget.content.model.cells) {
            if (cell.type !== 'code') continue;
            for (let i = 0; i < cell.outputs.length; i++) {
                const output = cell.outputs.get(i).toJSON();
                if (output.output_type === 'error') errors.push((output.traceback || []).join('\\n'));
            }
        }
    }
    return errors;
}"""


class CellError(AssertionError):
    """A notebook cell raised, or a widget failed to display."""


@dataclass
class Notebook:
    """One notebook open in JupyterLab: wait for its kernel, run all cells, find outputs."""

    page: Any
    lab: JupyterLab
    path: str
    run_all_retries: int = 0

    @classmethod
    def open(cls, page: Any, lab: JupyterLab, path: str, *, timeout: float = 60.0) -> Notebook:
        """Open `path` (relative to the notebook dir) and wait until its kernel is ready."""
        notebook = cls(page, lab, path)
        # A workspace of its own: the default one would restore the tabs an earlier page left open, and
        # their cells would match every selector too.
        page.goto(lab.url(f"lab/workspaces/{secrets.token_hex(6)}/tree/{path}"))
        notebook.panel.locator(".jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)
        notebook.wait_kernel_ready(timeout)
        return notebook

    @property
    def panel(self) -> Any:
        """The notebook's panel: every cell and output selector is scoped to it."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    # -- kernel --------------------------------------------------------------------------------------------

    def kernel_status(self) -> tuple[str, str | None]:
        """(status-bar kernel text, execution indicator's data-status)."""
        texts = self.page.locator(KERNEL_STATUS).all_inner_texts()
        indicator = self.panel.locator(EXECUTION_INDICATOR)
        status = indicator.first.get_attribute("data-status") if indicator.count() else None
        return (texts[0].strip() if texts else ""), status

    def _accept_kernel_dialog(self) -> bool:
        dialog = self.page.locator(".jp-Dialog", has_text="Select Kernel")
        if not dialog.count():
            return False
        select = dialog.locator("select")
        if select.count():  # it defaults to "No Kernel": choose ours first
            select.first.select_option(label=KERNEL_DISPLAY_NAME)
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        return True

    def wait_kernel_ready(self, timeout: float = 60.0) -> None:
        """Until the status bar reads "<kernel> | Idle" and the indicator is idle, twice in a row.

        The indicator alone reads "idle" before any kernel exists; Run All then runs nothing or starts a
        second kernel. The status bar goes "No Kernel | Initializing" ... "| Connecting" ... "| Idle".
        """
        deadline = time.monotonic() + timeout
        stable = 0
        seen = ("", None)
        while time.monotonic() < deadline:
            self._accept_kernel_dialog()
            seen = text, status = self.kernel_status()
            ready = text.endswith("| Idle") and not text.startswith("No Kernel") and status == "idle"
            stable = stable + 1 if ready else 0
            if stable >= 2 and self.session_ready():  # JupyterLab's own model agrees with the DOM
                return
            self.page.wait_for_timeout(200)
        raise TimeoutError(f"kernel of {self.path} not ready after {timeout} s: status bar {seen[0]!r}, "
                           f"indicator {seen[1]!r}")

    def session_ready(self) -> bool:
        """JupyterLab's own view (needs expose_app_in_browser): session ready and kernel connected."""
        return bool(self.page.evaluate(
            """() => { const s = window.jupyterapp?.shell?.currentWidget?.sessionContext;
                       return !!(s && s.isReady && s.session?.kernel?.connectionStatus === 'connected'); }"""))

    # -- running -------------------------------------------------------------------------------------------

    @property
    def prompts(self) -> Any:
        return self.panel.locator(PROMPTS)

    def code_cells(self) -> Any:
        return self.panel.locator(".jp-CodeCell")

    def _trigger_run_all(self, method: RunAllMethod) -> None:
        page = self.page
        if method == "menu":
            page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu:visible .lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()
        elif method == "palette":
            self.panel.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
            page.keyboard.press("Control+Shift+C")
            page.locator(".lm-CommandPalette-input:visible").fill("Run All Cells")
            page.locator(".lm-CommandPalette-item:visible", has_text="Run All Cells").first.click()
        elif method == "command":
            # Nothing returned: evaluate() would await the command's promise, with no timeout.
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        else:
            raise ValueError(f"method must be menu, palette or command, got {method!r}")

    def run_all(self, *, method: RunAllMethod | None = None, timeout: float = 60.0,
                allow_errors: bool = False) -> None:
        """Run every cell and wait until each code cell shows its execution count and the kernel is idle again.

        A cell that raises fails the call with its traceback (CellError), unless `allow_errors`.
        """
        from playwright.sync_api import expect

        method = method or os.environ.get("RUN_ALL_METHOD", "menu")  # type: ignore[assignment]
        self._trigger_run_all(method)
        try:
            expect(self.prompts.first).not_to_have_text("[ ]:", timeout=10_000)
        except AssertionError:
            self.run_all_retries += 1  # never seen once the readiness gate was right: say so when it happens
            warnings.warn(f"Run All ({method}) did not start {self.path}; triggering it once more", stacklevel=2)
            self.wait_kernel_ready()
            self._trigger_run_all(method)
        self.wait_cells_done(timeout, allow_errors=allow_errors)

    def wait_cells_done(self, timeout: float = 60.0, *, allow_errors: bool = False) -> None:
        """Every code cell shows "[n]:" with n = 1, 2, ... (one fresh kernel ran them all, in order).

        Unless `allow_errors`, fails at once with the traceback when a cell raised (Run All stops there)
        or a widget could not be displayed.
        """
        deadline = time.monotonic() + timeout
        while True:
            prompts = [text.strip() for text in self.prompts.all_inner_texts()]
            done = prompts == [f"[{index + 1}]:" for index in range(len(prompts))]
            errors = [] if allow_errors else self.error_texts()
            if errors and (done or "[*]:" not in prompts):
                raise CellError(f"a cell of {self.path} raised (prompts {prompts}):\n" + "\n".join(errors))
            if done:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"cells of {self.path} not done after {timeout} s: prompts {prompts}")
            self.page.wait_for_timeout(200)
        self.wait_kernel_ready(timeout)

    # -- outputs -------------------------------------------------------------------------------------------

    def outputs(self, cell: int) -> Any:
        """The output area of the `cell`-th code cell (0-based)."""
        return self.code_cells().nth(cell).locator(".jp-OutputArea-output")

    def error_texts(self) -> list[str]:
        """Tracebacks in the notebook's model (the DOM renders them like stderr) and widgets that failed to show."""
        tracebacks = self.page.evaluate(_ERRORS_JS, self.path)
        widgets = self.panel.locator(".jp-OutputArea-output", has_text="Error displaying widget").all_inner_texts()
        return [_ANSI.sub("", text) for text in tracebacks] + widgets

    def stderr_texts(self) -> list[str]:
        """Everything the cells wrote to stderr (warnings included)."""
        return self.panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']") \
            .all_inner_texts()

    def fit_viewport(self, max_height: int = 8000) -> None:
        """Grow the viewport until the notebook needs no scrolling, so screenshots show every output.

        An element screenshot of something taller than the notebook's scroller
        captures whatever lies outside the scroller instead.
        """
        for _ in range(4):  # outputs may reflow once the notebook is taller
            needed, client = self.page.evaluate(_SCROLLER_JS)
            size = self.page.viewport_size
            height = min(max_height, size["height"] + needed - client + 20)
            if needed <= client or height <= size["height"]:
                return
            self.page.set_viewport_size({"width": size["width"], "height": height})
            self.page.wait_for_function(f"() => ({_SCROLLER_JS})()[1] > {client}", timeout=10_000)


def save_failure(page: Any, folder: Path, stem: str = "failure") -> list[Path]:
    """A screenshot and the HTML of `page`, for a failed test; never raises."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    with contextlib.suppress(Exception):
        page.screenshot(path=str(folder / f"{stem}.png"))
        saved.append(folder / f"{stem}.png")
    with contextlib.suppress(Exception):
        (folder / f"{stem}.html").write_text(page.content())
        saved.append(folder / f"{stem}.html")
    return saved


FAILURE_FILES = ("failure.png", "failure.html", "browser-console.log", "jupyter-server.log")


@contextlib.contextmanager
def browser_page(browser: Any, lab: JupyterLab, artifacts: Path, *names: str) -> Iterator[Any]:
    """A fresh page; on failure it leaves FAILURE_FILES in `artifacts`. Old `names` there are removed first."""
    artifacts.mkdir(parents=True, exist_ok=True)
    for name in (*names, *FAILURE_FILES):
        (artifacts / name).unlink(missing_ok=True)
    console: list[str] = []
    page = new_page(browser, console=console)
    try:
        yield page
    except BaseException:
        save_failure(page, artifacts)
        (artifacts / "browser-console.log").write_text("\n".join(console))
        (artifacts / "jupyter-server.log").write_text(lab.log_text())
        raise
    finally:
        page.context.close()
        lab.shutdown_kernels()  # the kernel's atexit stops the notebook's ovms_notebook server
