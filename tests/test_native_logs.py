"""Native informational log lines stay out of a notebook; warnings and errors still reach it.

A real kernel (nbclient) runs a face-detection stream, which makes MediaPipe,
TFLite and absl write their informational lines to the kernel's fd 2; the
notebook's outputs must not hold them, while a line the filter does not know
(an error) written to fd 2 the way native code writes it does show, and
`ovms_notebook.verbose_native_logs(True)` lets the informational lines through.
"""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

from ovms_notebook import _native_logs

pytestmark = pytest.mark.notebook

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"

INFORMATIONAL = [
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"W0000 00:00:1796579171.762186   21565 inference_feedback_manager.cc:114] Feedback manager requires a model "
    b"with a single signature inference. Disabling support for feedback tensors.",
    b"I0000 00:00:1796579171.762186   21565 graph_profiler.cc:256] trace_log_path: /tmp/x/trace",
    b"I1206 17:50:01.000001 123 calculator_graph.cc:100] anything at INFO",
    b'W0000 00:00:1796591090.409406   19050 validated_graph_config.cc:702] Input Stream "output_video" for node '
    b"with sorted index 0 name FlowLimiterCalculator is marked as a back edge, but its output stream is already "
    b"available.  This means it was not necessary to mark it as a back edge.",
]
PASSED = [
    b"E0000 00:00:1796579171.762186   21565 calculator_graph.cc:887] INVALID_ARGUMENT: a real error",
    b"W0000 00:00:1796579171.762186   21565 some_calculator.cc:12] a warning we do not know",
    b"F0000 00:00:1796579171.762186   21565 packet.h:1] Check failed: type",
    b"Traceback (most recent call last):",
    b"INFO without the colon is not TFLite's",
]


@pytest.mark.parametrize("line", INFORMATIONAL)
def test_informational_native_lines_are_recognised(line: bytes):
    assert _native_logs.is_informational(line)


@pytest.mark.parametrize("line", PASSED)
def test_warnings_errors_and_other_lines_are_not(line: bytes):
    assert not _native_logs.is_informational(line)


def test_outside_a_kernel_stderr_is_left_alone():
    assert not _native_logs.in_kernel()
    assert _native_logs.install() is False


FACE_STREAM = f"""
import numpy as np, ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.sources import astronaut, pan_zoom
server = ovms_notebook.serve({str(GRAPHS)!r})
def faces():
    client = StreamClient(server.address, "face_detection")
    for frame in pan_zoom(astronaut(), 3):
        client.send({{"image": frame}})
    client.close()
    return [entry.timestamp for entry in client.log if entry.kind == "response"]
print("faces at", faces())
"""
REAL_ERROR = """
import os, time
os.write(2, b"E0000 00:00:1796579171.762186   21565 calculator_graph.cc:887] INVALID_ARGUMENT: a real error\\n")
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
time.sleep(0.5)  # the filter thread forwards the line; ipykernel then publishes it
"""
VERBOSE = """
ovms_notebook.verbose_native_logs(True)
print("faces at", faces())
import time; time.sleep(0.5)
ovms_notebook.verbose_native_logs(False)
server.stop()
"""


def _streams(cell: nbformat.NotebookNode) -> dict[str, str]:
    texts: dict[str, str] = {}
    for output in cell.outputs:
        assert output.output_type != "error", f"{output.ename}: {output.evalue}"
        if output.output_type == "stream":
            texts[output.name] = texts.get(output.name, "") + output.text
    return texts


def test_a_kernel_shows_no_native_info_lines_but_shows_errors_and_verbose_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # ipykernel forwards fd 2 to the notebook, as in JupyterLab, only when it does not believe it runs under pytest
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in (FACE_STREAM, REAL_ERROR, VERBOSE)]
    )
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    stream, error, verbose = (_streams(cell) for cell in notebook.cells)

    assert stream == {"stdout": "faces at [0, 1, 2]\n"}  # the stream ran; nothing at all on stderr
    assert error == {
        "stderr": "E0000 00:00:1796579171.762186   21565 calculator_graph.cc:887] INVALID_ARGUMENT: a real error\n"
    }
    assert verbose["stdout"] == "faces at [0, 1, 2]\n"
    # TFLite's XNNPACK line comes once per process; the feedback-manager warning with every model load
    assert "inference_feedback_manager.cc:114] Feedback manager requires a model" in verbose.get("stderr", "")


CAPTURED = f"""
import time, ovms_notebook
from ovms_notebook.client import StreamClient
server = ovms_notebook.serve({str(GRAPHS)!r})
with ovms_notebook.capture_native_logs() as native:
    for _ in range(3):
        client = StreamClient(server.address, "concat_immediate")
        client.send({{"a": [1.0], "b": [2.0]}})
        client.close()
print(len(native.lines), sorted({{line.split("] ", 1)[1][:60] for line in native.lines}}))
"""
AFTER_CAPTURE = """
import os, time
os.write(2, b"W0000 00:00:1796579171.762186   21565 some_calculator.cc:12] after the capture\\n")
time.sleep(0.5)
server.stop()
"""


def test_a_capture_takes_the_native_warnings_of_its_block_and_later_ones_show_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # concat_immediate's ConcatenateFloatVectorCalculator makes MediaPipe warn once per graph instance (stream)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (CAPTURED, AFTER_CAPTURE)])
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    captured, after = (_streams(cell) for cell in notebook.cells)

    assert captured == {
        "stdout": "3 ['Calculator node \"ConcatenateFloatVectorCalculator\" is config']\n"
    }  # three streams, three warnings, none of them on stderr
    assert after == {"stderr": "W0000 00:00:1796579171.762186   21565 some_calculator.cc:12] after the capture\n"}
