"""Re-running a notebook cell replaces what its last run made, and only that: a real kernel, real cell ids.

JupyterLab, Notebook 7 and VS Code send the executed cell's id in the execute request's metadata
(`cellId`); these tests send the same requests to an ipykernel. A console or server made in another cell,
even for the same graph or config, stays; a re-run of the cell that made it closes it; a cell that makes
two keeps both. Without a cell id (a script, a front end that sends none), the object made last for the
same purpose is replaced, as before.
"""

from __future__ import annotations

import ast
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from tests.conftest import GRAPHS

pytestmark = pytest.mark.notebook


class Kernel:
    """An ipykernel that runs code as a given notebook cell."""

    def __init__(self) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3")

    def run(self, code: str, cell_id: str | None) -> str:
        """Execute `code` as cell `cell_id` (None: no cell id sent); its stdout, after it succeeded."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        message = self.client.session.msg("execute_request", content)
        if cell_id is not None:
            message["metadata"]["cellId"] = cell_id
        self.client.shell_channel.send(message)
        msg_id = message["header"]["msg_id"]
        reply = self.client.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=120)
        out: list[str] = []
        while True:
            try:
                published = self.client.get_iopub_msg(timeout=10)
            except queue.Empty:
                break
            if published["parent_header"].get("msg_id") != msg_id:
                continue
            kind = published["msg_type"]
            if kind == "stream" and published["content"]["name"] == "stdout":
                out.append(published["content"]["text"])
            elif kind == "status" and published["content"]["execution_state"] == "idle":
                break
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)

    def value(self, expression: str) -> Any:
        return ast.literal_eval(self.run(f"print(repr({expression}))", None).strip())

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    running = Kernel()
    running.run(f"import ovms_notebook\nfrom ovms_notebook.widgets import StreamConsole\nGRAPHS = {str(GRAPHS)!r}",
                None)
    yield running
    running.run("ovms_notebook.stop_all()", None)
    running.close()


def test_a_console_in_another_cell_keeps_the_first_and_a_rerun_replaces_only_its_own(kernel: Kernel) -> None:
    kernel.run("server = ovms_notebook.serve(GRAPHS)\nfirst = StreamConsole(server, 'passthrough')", "cell-a")
    kernel.run("second = StreamConsole(server, 'passthrough')", "cell-b")
    assert kernel.value("(first.closed, second.closed)") == (False, False)
    kernel.run("import numpy as np\nfirst.send({'in': np.float32([1.5])})\nfirst.wait_for(1)", "cell-c")
    assert kernel.value("first.close_stream().text") == "OK"  # the first console's stream was never cancelled
    kernel.run("old_second = second\nsecond = StreamConsole(server, 'passthrough')", "cell-b")  # re-run of cell-b
    assert kernel.value("(first.closed, old_second.closed, second.closed)") == (False, True, False)
    assert kernel.value("repr(old_second)").startswith("<StreamConsole")
    bundle = kernel.value("old_second._repr_mimebundle_()")  # shown again after it closed: says so, no TypeError
    assert "closed" in bundle["text/plain"] and set(bundle) == {"text/plain"}


def test_one_cell_that_makes_two_consoles_keeps_both_until_it_runs_again(kernel: Kernel) -> None:
    cell = "server = ovms_notebook.serve(GRAPHS)\na = StreamConsole(server, 'passthrough')\n" \
           "b = StreamConsole(server, 'passthrough')"
    kernel.run(cell, "cell-a")
    assert kernel.value("(a.closed, b.closed)") == (False, False)
    kernel.run("old = (server, a, b)\n" + cell, "cell-a")
    assert kernel.value("(old[1].closed, old[2].closed, old[0].state, a.closed, b.closed, server.state)") == (
        True, True, "stopped", False, False, "running")


def test_serve_in_another_cell_starts_a_second_server_and_a_rerun_replaces_its_own(kernel: Kernel) -> None:
    kernel.run("server = ovms_notebook.serve(GRAPHS)", "cell-a")
    kernel.run("other = ovms_notebook.serve(GRAPHS)", "cell-b")
    assert kernel.value("(server.state, other.state, server.address != other.address)") == (
        "running", "running", True)
    kernel.run("other.stop()", "cell-c")
    assert kernel.value("server.state") == "running"  # stopping the other one leaves the first alone
    kernel.run("before = server\nserver = ovms_notebook.serve(GRAPHS)", "cell-a")
    assert kernel.value("(before.state, server.state)") == ("stopped", "running")


def test_without_a_cell_id_the_last_one_for_the_same_purpose_is_replaced(kernel: Kernel) -> None:
    kernel.run("server = ovms_notebook.serve(GRAPHS)\nfirst = StreamConsole(server, 'passthrough')", None)
    kernel.run("again = ovms_notebook.serve(GRAPHS)", None)
    assert kernel.value("(server.state, again.state)") == ("stopped", "running")
