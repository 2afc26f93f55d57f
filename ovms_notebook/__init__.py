"""ovms_notebook: OpenVINO Model Server's MediaPipe streaming API inside a Jupyter kernel.

    import ovms_notebook
    server = ovms_notebook.serve(ovms_notebook.examples)  # the example graphs; re-running the cell replaces it
    server.address                               # '127.0.0.1:<port>' for any KServe client
    server.trace_for(client)                     # a stream's execution trace (StreamClient(..., trace=True))
    server.stop()
    ovms_notebook.check(ovms_notebook.examples)  # can a stock OVMS serve them? if not, why
    ovms_notebook.export("my_graphs/", "out/")   # an OVMS-ready folder, docker and KServe lines
    ovms_notebook.verbose_native_logs(True)      # let MediaPipe's informational log lines into the notebook

    @ovms_notebook.register()                    # a calculator written in Python, usable in any served graph
    class Scale(ovms_notebook.Calculator): ...
    ovms_notebook.PythonGraph(pbtxt)             # runs a graph of Python calculators alone, without a server

This is the top of the package: it may import every layer, and does so lazily (on first attribute access),
so that `import ovms_notebook.client` does not load the server, MediaPipe or the widgets.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovms_notebook import (
    _env,  # noqa: F401  (must run before grpc is imported)
    _native_logs,
    display,
)
from ovms_notebook._version import __version__
from ovms_notebook.engine.python.api import Calculator, default_registry, register
from ovms_notebook.errors import (
    ClientError,
    ConfigError,
    GraphLoadError,
    OvmsNotebookError,
    ServerError,
)
from ovms_notebook.framework import protos

if TYPE_CHECKING:
    from ovms_notebook.engine.python.api import Registry
    from ovms_notebook.engine.python.scheduler import PythonGraph
    from ovms_notebook.portability.check import check
    from ovms_notebook.portability.export import export
    from ovms_notebook.server.lifecycle import Server, serve, stop_all

__all__ = [
    "Calculator",
    "ClientError",
    "ConfigError",
    "GraphLoadError",
    "OvmsNotebookError",
    "PythonGraph",
    "Server",
    "ServerError",
    "__version__",
    "check",
    "examples",
    "export",
    "register",
    "serve",
    "stop_all",
    "verbose_native_logs",
]

#: The example graphs shipped inside the package, an OVMS config.json folder: `serve(examples)` works from
#: any working folder, in a clone or after `pip install`.
examples: Path = Path(__file__).resolve().parent / "examples"
verbose_native_logs = _native_logs.verbose_native_logs

#: Names loaded on first access, and the module each comes from.
_LAZY = {
    "PythonGraph": "ovms_notebook.engine.python.scheduler",
    "Server": "ovms_notebook.server.lifecycle",
    "serve": "ovms_notebook.server.lifecycle",
    "stop_all": "ovms_notebook.server.lifecycle",
    "check": "ovms_notebook.portability",
    "export": "ovms_notebook.portability",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ovms_notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _load_views() -> None:
    """Import the widgets, which register the notebook views of Server, Trace and StreamClient."""
    import ovms_notebook.widgets  # noqa: F401


def _register_builtin(registry: Registry) -> None:
    """Fill the default registry with the calculator library, on its first use."""
    from ovms_notebook.calculators.builtin import register_builtin

    register_builtin(registry)


def _calculator_option_protos() -> None:
    """Make the calculator library's options protos known before the first pbtxt is parsed."""
    import ovms_notebook.calculators.iris
    import ovms_notebook.calculators.proto.ovms_calculators_pb2  # noqa: F401  (OVMS's calculators' options)


_native_logs.install()  # in a Jupyter kernel only: native informational lines stay out of cell outputs
display.set_loader(_load_views)
protos.add_option_protos(_calculator_option_protos)
default_registry.set_loader(_register_builtin)
