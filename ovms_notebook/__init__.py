"""ovms_notebook: OpenVINO Model Server's MediaPipe streaming API inside a Jupyter kernel.

    import ovms_notebook
    server = ovms_notebook.serve("graphs/")      # returns at once; re-running the cell replaces it
    server.address                               # '127.0.0.1:<port>' for any KServe client
    server.trace_for(client)                     # a stream's execution trace (StreamClient(..., trace=True))
    server.stop()
    ovms_notebook.check("graphs/")               # can a stock OVMS serve them? if not, why
    ovms_notebook.export("graphs/", "out/")      # an OVMS-ready folder, docker and KServe lines
"""

from ovms_notebook import _env  # noqa: F401  (must run before grpc is imported)

__version__ = "0.1.0"

from ovms_notebook.errors import (
    ClientError,
    ConfigError,
    GraphLoadError,
    OvmsNotebookError,
    ServerError,
)
from ovms_notebook.portability import check, export
from ovms_notebook.server.lifecycle import Server, serve, stop_all

__all__ = [
    "ClientError",
    "ConfigError",
    "GraphLoadError",
    "OvmsNotebookError",
    "Server",
    "ServerError",
    "__version__",
    "check",
    "export",
    "serve",
    "stop_all",
]
