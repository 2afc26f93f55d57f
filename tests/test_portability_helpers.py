"""Export of a calculator that uses ovms_notebook's own helpers: it talks about the user's code, never about the
package's internals; a self-contained helper is copied, one that needs the package is imported and said so."""

from __future__ import annotations

import re
from pathlib import Path

import tests.portability_helper_calcs  # noqa: F401  (registers SelfOverlap and BoxCount)
from ovms_notebook.portability import export
from tests.conftest import write_graphs


def one_node(calculator: str) -> str:
    return (f'input_stream: "x"\noutput_stream: "out"\n'
            f'node {{ name: "n" calculator: "{calculator}" input_stream: "x" output_stream: "out" }}\n')


def test_a_self_contained_package_helper_is_copied_into_the_handler(tmp_path: Path) -> None:
    result = export(write_graphs(tmp_path / "src", {"overlap": one_node("SelfOverlap")}), tmp_path / "out")
    handler = (tmp_path / "out" / "overlap" / "n.py").read_text()
    assert "def iou(a, b):" in handler  # copied without its annotations, which would need their imports
    assert not re.search(r"^\s*(from|import)\s+ovms_notebook", handler, re.M)  # OVMS's image has no ovms_notebook
    assert result.problems == [] and result.portable
    namespace: dict[str, object] = {}
    exec(compile(handler.split("\nimport numpy as np\nfrom pyovms")[0], "n.py", "exec"), namespace)  # its imports run


def test_a_helper_that_needs_the_package_is_imported_and_the_report_says_the_package_is_needed(
        tmp_path: Path) -> None:
    result = export(write_graphs(tmp_path / "src", {"count": one_node("BoxCount")}), tmp_path / "out")
    handler = (tmp_path / "out" / "count" / "n.py").read_text()
    assert "from ovms_notebook.calculators.tracking import boxes_of" in handler
    assert not re.search(r"(?<!_)DATATYPES|_LENGTH", handler)  # the package's internals stay in the package
    assert [(p.severity, p.kind, p.subject) for p in result.problems] == [
        ("warning", "needs-package", "graph count, node 'n'")]
    (problem,) = result.problems
    assert problem.reason == (
        "the handler imports boxes_of (ovms_notebook.calculators.tracking) from the ovms_notebook package instead of "
        "copying it: OVMS's Python image needs ovms_notebook installed (pip install ovms-notebook) to load this node")
    assert not any("global" in str(p) for p in result.problems)
    assert (tmp_path / "out").resolve().is_dir() and str((tmp_path / "out").resolve()) in result.docker
