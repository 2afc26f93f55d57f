#!/usr/bin/env bash
# Regenerate the committed protobuf modules from grpc_predict_v2.proto.
# grpcio-tools 1.62.3 is the last release whose protoc emits code for
# protobuf 4.x, the line mediapipe 0.10.21 requires. Only messages are
# generated: the service is registered by hand (service.py) under its wire
# name, so no *_pb2_grpc.py is needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python -c 'import grpc_tools, importlib.metadata as m; v=m.version("grpcio-tools"); assert v.startswith("1.62."), f"need grpcio-tools 1.62.x, got {v}"'
cd "$root"
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. ovms_notebook/proto/grpc_predict_v2.proto
echo "regenerated ovms_notebook/proto/grpc_predict_v2_pb2.py{,i}"
