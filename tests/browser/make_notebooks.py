"""The notebooks the browser tests open, written with nbformat into a test's notebook dir.

Cell 0 of each one prints the kernel's interpreter and where `ovms_notebook`
came from, so a test can check that the kernel runs the checkout under test.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

KERNEL_CHECK = (
    "import sys, ovms_notebook\n"
    'print("kernel python:", sys.executable)\n'
    'print("ovms_notebook:", ovms_notebook.__file__)'
)


def write_notebook(path: Path, cells: list[str], *, title: str | None = None) -> Path:
    """A notebook of code cells (and an optional markdown title) with the python3 kernelspec."""
    notebook = new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    if title:
        notebook.cells.append(new_markdown_cell(title))
    notebook.cells.extend(new_code_cell(source) for source in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def console_cells(graphs: Path) -> list[str]:
    """Start a server, show its panel, drive a StreamConsole on "passthrough": three requests, then close."""
    return [
        KERNEL_CHECK,
        "import numpy as np, ovms_notebook\nfrom ovms_notebook.widgets import StreamConsole\n"
        f"server = ovms_notebook.serve({str(graphs)!r})",
        "server",
        'console = StreamConsole(server, "passthrough")\nconsole',
        'console.send({"in": np.float32([1.5])})                  # auto -> @0',
        'console.send({"in": np.float32([2.5])}, timestamp=10)    # manual -> @10',
        'console.send({"in": np.float32([3.5])})                  # auto -> @11',
        "console.close_stream()",
    ]


def panel_cells(graphs: Path) -> list[str]:
    """Harness check without the console: the server panel and a Timeline fed from a StreamClient's log."""
    return [
        KERNEL_CHECK,
        "import numpy as np, ovms_notebook\nfrom ovms_notebook.client.stream import StreamClient\n"
        "from ovms_notebook.widgets import Timeline, records_from_log\n"
        f"server = ovms_notebook.serve({str(graphs)!r})",
        "server",
        'client = StreamClient(server.address, "passthrough")\n'
        'client.send({"in": np.float32([1.5])})\n'
        'client.send({"in": np.float32([2.5])}, timestamp=10)\n'
        'client.send({"in": np.float32([3.5])})\n'
        "client.close()\n"
        'timeline = Timeline(records_from_log(client.log), title="passthrough")\n'
        "timeline",
        'print(" ".join(f"@{e.timestamp}={e.values[\'out\'][0]}" for e in client.responses), client.status.text)',
    ]
