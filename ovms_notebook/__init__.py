"""ovms_notebook: OpenVINO Model Server's MediaPipe streaming API inside a Jupyter kernel.

    import ovms_notebook
    server = ovms_notebook.serve("graphs/")      # returns at once; re-running the cell replaces it
    server.address                               # '127.0.0.1:<port>' for any KServe client
    server.trace_for(client)                     # a stream's execution trace (StreamClient(..., trace=True))
    server.stop()
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
from ovms_notebook.server.lifecycle import Server, serve, stop_all

__all__ = [
    "ClientError",
    "ConfigError",
    "GraphLoadError",
    "OvmsNotebookError",
    "Server",
    "ServerError",
    "__version__",
    "serve",
    "stop_all",
]
