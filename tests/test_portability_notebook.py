"""Check and export of a calculator written in a real Jupyter kernel's cell (nbclient, fresh kernel).

A class defined in a cell has no module file, so `inspect.getsource` cannot read it on Python 3.11; `check`
and `export` read it from the cell the kernel keeps in linecache. The exported handler is then served and
answers a recorded session exactly as the notebook calculator did.
"""

from __future__ import annotations

import json
import linecache
from pathlib import Path

import nbclient
import nbformat
import pytest

from ovms_notebook.portability.source import class_source

CELL = '''\
import numpy as np
from ovms_notebook.engine.python.api import Calculator, register

GAIN = 3.0


def scaled(x):
    return x * GAIN


@register("CellScale")
class CellScale(Calculator):
    """Scales its input by GAIN and counts what it saw (state on self)."""

    inputs = (":0",)
    outputs = (":0",)

    def open(self, side_packets):
        self.count = 0

    def process(self, timestamp, inputs):
        self.count += 1
        return {":0": scaled(np.asarray(inputs[":0"].array(), np.float32)) + self.count}
'''

RUN = '''\
import json
from pathlib import Path

import ovms_notebook
from ovms_notebook.client import Recording, StreamClient, compare, replay

root = Path(FOLDER)
(root / "src" / "scale").mkdir(parents=True)
(root / "src" / "scale" / "graph.pbtxt").write_text(
    'input_stream: "x"\\noutput_stream: "y"\\nnode { calculator: "CellScale" input_stream: "x" output_stream: "y" }\\n')
(root / "src" / "config.json").write_text(json.dumps({"mediapipe_config_list": [{"name": "scale"}]}))
report = ovms_notebook.check(root / "src")
exported = ovms_notebook.export(root / "src", root / "out")
original, copy = ovms_notebook.serve(root / "src"), ovms_notebook.serve(root / "out")
with StreamClient(original.address, "scale", max_log=None) as client:
    for value in (1.0, 2.0, 5.0):
        client.send({"x": np.float32([value])})
    client.wait_for(3, timeout=30)
recording = Recording.from_client(client)
again = replay(recording, copy.address)
original.stop()
copy.stop()
print("RESULT", json.dumps({
    "findings": [[f.severity, f.kind, f.subject] for f in report.graph("scale").findings],
    "handlers": sorted(exported.handlers),
    "problems": [[p.severity, p.kind] for p in exported.problems],
    "original": [[r.timestamp, r.outputs["y"].value().tolist()] for r in recording.responses],
    "exported": [[r.timestamp, r.outputs["y"].value().tolist()] for r in again.responses],
    "same": compare(recording, again).same,
}))
'''


def test_class_source_reads_a_class_from_the_cell_it_was_defined_in() -> None:
    """As IPython does: the cell's text in linecache under a pseudo file name, the class in `__main__`."""
    filename = "/tmp/ipykernel_0/cell_portability.py"
    linecache.cache[filename] = (len(CELL), None, CELL.splitlines(keepends=True), filename)
    namespace: dict = {"__name__": "__main__"}
    try:
        exec(compile(CELL, filename, "exec"), namespace)
        source = class_source(namespace["CellScale"])
    finally:
        linecache.cache.pop(filename, None)
        from ovms_notebook.engine.python.api import unregister
        unregister("CellScale")
    assert source.startswith('@register("CellScale")\nclass CellScale(Calculator):\n')
    assert source.rstrip().endswith("+ self.count}")


def test_a_class_with_no_source_anywhere_says_so() -> None:
    made = type("Made", (), {"run": lambda self: None})
    with pytest.raises(OSError, match=r"the source of class Made is not available"):
        class_source(made)


def test_a_calculator_written_in_a_kernel_cell_is_checked_exported_and_answers_the_same(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL),
                      nbformat.v4.new_code_cell(f"FOLDER = {str(tmp_path)!r}\n" + RUN)]
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert [o for o in outputs if o.output_type == "error"] == []
    (line,) = [text for o in outputs if o.output_type == "stream"
               for text in o.text.splitlines() if text.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["findings"] == [["error", "python-calculator", "CellScale"],
                                  ["warning", "shared-state", "CellScale"]]
    assert result["handlers"] == ["scale/cellscale_0"]  # graph/node, the node named after its calculator
    assert result["problems"] == [["warning", "shared-state"]]
    # x * 3 + the number of packets the calculator has seen on this stream
    assert result["original"] == [[0, [4.0]], [1, [8.0]], [2, [18.0]]]
    assert result["exported"] == result["original"]
    assert result["same"] is True
    handler = next((tmp_path / "out" / "scale").glob("*.py"))
    assert "class CellScale" in handler.read_text() and "GAIN = 3.0" in handler.read_text()
