"""Process settings that must be in place before grpc is first imported.

gRPC's C core prints INFO lines into a notebook's stderr and installs fork
handlers that hang `!cmd` in a kernel; both are switched off unless the user
chose otherwise. Imported first by the package.
"""

import os
from types import ModuleType

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GLOG_minloglevel", "2")


def import_openvino() -> ModuleType:
    """`openvino`, imported with its usage telemetry declined.

    `import openvino` also imports its model converter, which (openvino 2025.x, through the
    openvino-telemetry package) writes an id under ~/intel and sends a usage event over the network,
    from a worker that has crashed in a forked child, unless it believes it runs in CI. A server
    inside someone's kernel must do neither, so `CI=true` is set for the import alone (the telemetry
    package reads it once, while it initialises during that import) and put back afterwards.
    """
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
    finally:
        if previous is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = previous
    return openvino
