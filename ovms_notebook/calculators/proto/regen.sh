#!/usr/bin/env bash
# Regenerate ovms_calculators_pb2.py. The wheel ships no .proto files, so the
# imports (calculator_options.proto) come from a descriptor set dumped from the
# wheel's own Python descriptors; grpcio-tools 1.62.x emits protobuf-4 code.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
python - "$tmp/wheel.pb" <<'PY'
import sys
from google.protobuf import descriptor_pb2
from mediapipe.framework import calculator_options_pb2
files, seen = descriptor_pb2.FileDescriptorSet(), set()
def add(fd):
    if fd.name in seen:
        return
    for dep in fd.dependencies:
        add(dep)
    seen.add(fd.name)
    fd.CopyToProto(files.file.add())
add(calculator_options_pb2.DESCRIPTOR)
open(sys.argv[1], "wb").write(files.SerializeToString())
PY
cd "$root"
python -m grpc_tools.protoc --descriptor_set_in="$tmp/wheel.pb" -I . --python_out=. --pyi_out=. \
  ovms_notebook/calculators/proto/ovms_calculators.proto
echo "regenerated ovms_notebook/calculators/proto/ovms_calculators_pb2.py{,i}"
