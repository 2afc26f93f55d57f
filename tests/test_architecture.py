"""The package's structure, checked: one-way layers (import-linter's contract in pyproject.toml), mypy clean,
a light client, every exception in errors.py, and built-in calculators that fail loudly when they cannot load."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ovms_notebook"
BIN = Path(sys.executable).parent



def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _python(code: str) -> str:
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.slow
def test_layers_import_only_downwards() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "one-way layers KEPT" in result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.slow
def test_the_package_type_checks() -> None:
    result = _run(sys.executable, "-m", "mypy", "ovms_notebook")  # settings: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout[-6000:]
    assert result.stdout.startswith("Success: no issues found"), result.stdout[-2000:]


def test_the_client_does_not_load_mediapipe_the_server_or_the_ui() -> None:
    loaded = _python(
        "import sys, ovms_notebook.client\n"
        "heavy = ('mediapipe', 'cv2', 'matplotlib', 'ipywidgets', 'openvino', 'ovms_notebook.server.servicer',"
        " 'ovms_notebook.widgets', 'ovms_notebook.engine.native', 'ovms_notebook.calculators')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert loaded == "[]"


def test_a_trace_shows_its_plot_without_importing_the_widgets() -> None:
    out = _python(
        "import sys\n"
        "from ovms_notebook.framework.trace import Trace, TraceEvent\n"
        "assert 'ovms_notebook.widgets' not in sys.modules\n"
        "event = TraceEvent('a', 'python', 'PROCESS', 0, 0, 5)\n"
        "bundle = Trace(events=(event,), nodes=('a',), streams=())._repr_mimebundle_()\n"
        "print(sorted(bundle), bundle['image/png'][:4] == b'\\x89PNG', 'ovms_notebook.widgets' in sys.modules)"
    )
    assert out == "['image/png', 'text/plain'] True True"


def test_a_builtin_calculator_module_that_fails_to_import_surfaces_its_import_error() -> None:
    result = _run(sys.executable, "-c",
                  "import sys\n"
                  "sys.modules['ovms_notebook.calculators.tracking'] = None  # importing it raises ImportError\n"
                  "from ovms_notebook.engine.graphconfig import python_registry\n"
                  "python_registry()['DetectionTrackerCalculator']\n")
    assert result.returncode == 1
    assert "ModuleNotFoundError: import of ovms_notebook.calculators.tracking halted" in result.stderr


def test_the_builtin_calculators_register_on_first_lookup() -> None:
    out = _python(
        "import sys\n"
        "from ovms_notebook.engine.python.api import default_registry\n"
        "before = 'ovms_notebook.calculators.builtin' in sys.modules\n"
        "names = sorted(default_registry)\n"
        "print(before, len(names), 'DetectionTrackerCalculator' in names, 'PythonExecutorCalculator' in names)"
    )
    assert out == "False 42 True True"


def test_a_notebook_class_replaces_a_builtin_of_the_same_name() -> None:
    out = _python(
        "import ovms_notebook\n"
        "@ovms_notebook.register('DetectionTrackerCalculator')\n"
        "class Mine(ovms_notebook.Calculator):\n"
        "    pass\n"
        "from ovms_notebook.engine.python.api import registered\n"
        "print(registered('DetectionTrackerCalculator').__name__)"
    )
    assert out == "Mine"


def _exception_classes() -> dict[str, list[str]]:
    """Module -> names of the classes it defines that derive from an exception (by base name)."""
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "_pb2" in path.name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "OvmsStatus", "PythonGraphError")) for b in bases):
                    found.setdefault(str(path.relative_to(ROOT)), []).append(node.name)
    return found


def test_every_public_exception_class_lives_in_errors_py_under_the_root() -> None:
    import ovms_notebook.errors as errors

    assert list(_exception_classes()) == ["ovms_notebook/errors.py"]
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.OvmsNotebookError), name


def test_old_exception_homes_still_export_them() -> None:
    from ovms_notebook import errors
    from ovms_notebook.calculators.openvino import InferenceError, SessionLoadError
    from ovms_notebook.engine.python.scheduler import GraphConfigError, PythonGraphError
    from ovms_notebook.portability.handler import NotExportable
    from ovms_notebook.status import OvmsStatus
    from ovms_notebook.widgets.graphview import GraphRenderError

    assert (NotExportable, OvmsStatus, GraphConfigError, PythonGraphError, SessionLoadError, InferenceError,
            GraphRenderError) == (errors.NotExportable, errors.OvmsStatus, errors.GraphConfigError,
                                  errors.PythonGraphError, errors.SessionLoadError, errors.InferenceError,
                                  errors.GraphRenderError)
    assert str(NotExportable(["a", "b"])) == "a; b"


def test_the_calculator_api_is_public_at_the_top() -> None:
    import ovms_notebook
    from ovms_notebook.engine.python import api, scheduler

    assert ovms_notebook.Calculator is api.Calculator
    assert ovms_notebook.register is api.register
    assert ovms_notebook.PythonGraph is scheduler.PythonGraph
