"""ovms_notebook: OpenVINO Model Server's MediaPipe streaming API inside a Jupyter kernel.

import ovms_notebook
server = ovms_notebook.serve(ovms_notebook.examples)  # example graphs; re-running the cell replaces it
server.address                                # '127.0.0.1:<port>' for any KServe client
server.trace_for(client)                      # a stream's execution trace (StreamClient(..., trace=True))
server.stop()
ovms_notebook.check(ovms_notebook.examples)   # can a stock OVMS serve them? if not, why
ovms_notebook.export("my_graphs/", "out/")    # an OVMS-ready folder, docker and KServe lines
ovms_notebook.verbose_native_logs(True)       # let MediaPipe's informational log lines into the notebook
"""

from ovms_notebook import _env  # noqa: F401, I001  (must run before grpc is imported)

from pathlib import Path

from ovms_notebook import _native_logs
from ovms_notebook.errors import (
    ClientError,
    ConfigError,
    GraphLoadError,
    OvmsNotebookError,
    ServerError,
)
from ovms_notebook.portability import check, export
from ovms_notebook.server.lifecycle import Server, serve, stop_all

__version__ = "0.1.0"

#: The example graphs shipped inside the package, an OVMS config.json folder: `serve(examples)` works from
#: any working folder, in a clone or after `pip install`.
examples: Path = Path(__file__).resolve().parent / "examples"

verbose_native_logs = _native_logs.verbose_native_logs
_native_logs.install()  # in a Jupyter kernel only: native informational lines stay out of cell outputs

__all__ = [
    "ClientError",
    "ConfigError",
    "GraphLoadError",
    "OvmsNotebookError",
    "Server",
    "ServerError",
    "__version__",
    "check",
    "examples",
    "export",
    "serve",
    "stop_all",
    "verbose_native_logs",
]
