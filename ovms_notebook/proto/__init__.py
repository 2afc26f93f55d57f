"""KServe v2 protocol messages (with OVMS's ModelStreamInfer) and the service table.

The generated module lives under a renamed proto package; `service` names the
methods by their wire path so server and client never need generated stubs.
"""

from ovms_notebook.proto import grpc_predict_v2_pb2 as pb

__all__ = ["pb"]
