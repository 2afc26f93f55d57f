"""ovms_notebook: OpenVINO Model Server's MediaPipe streaming API inside a Jupyter kernel."""

from ovms_notebook import _env  # noqa: F401  (must run before grpc is imported)
