"""Shared fixtures: graph folders written from inline pbtxt, a real server on port 0, raw stream calls."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

import ovms_notebook
from ovms_notebook._env import import_openvino
from ovms_notebook.codec import encode_input
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS

# Test modules that import openvino themselves get the module imported here, with its usage telemetry declined.
import_openvino()

REPO = Path(__file__).resolve().parents[1]
GRAPHS = REPO / "graphs"

PASSTHROUGH = """
input_stream: "in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""


def write_graphs(folder: Path, graphs: dict[str, str]) -> Path:
    """Write one folder per graph (graph.pbtxt) and a config.json listing them; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, text in graphs.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "graph.pbtxt").write_text(text)
        entries.append({"name": name, "base_path": name})
    config = folder / "config.json"
    config.write_text(json.dumps({"model_config_list": [], "mediapipe_config_list": entries}, indent=2))
    return config


@pytest.fixture
def serve_graphs(tmp_path: Path) -> Iterator[Callable[..., ovms_notebook.Server]]:
    """Start a real server on 127.0.0.1:0 for inline graphs; stopped after the test."""
    servers: list[ovms_notebook.Server] = []

    def start(graphs: dict[str, str], **options: object) -> ovms_notebook.Server:
        config = write_graphs(tmp_path / f"repo{len(servers)}", graphs)
        server = ovms_notebook.serve(config, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def request(
    model: str,
    inputs: dict[str, object] | None = None,
    timestamp: int | None = None,
    parameters: dict[str, object] | None = None,
    version: str = "",
    datatype: str | None = None,
) -> pb.ModelInferRequest:
    """A ModelInferRequest with raw contents, like tritonclient builds them."""
    message = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, value in (inputs or {}).items():
        tensor, raw = encode_input(name, value, datatype)
        message.inputs.append(tensor)
        message.raw_input_contents.append(raw)
    params = dict(parameters or {})
    if timestamp is not None:
        params["OVMS_MP_TIMESTAMP"] = timestamp
    for key, value in params.items():
        parameter = message.parameters[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            parameter.int64_param = value
        elif isinstance(value, str):
            parameter.string_param = value
        elif value is None:
            parameter.Clear()
        else:
            raise TypeError(f"no InferParameter for {value!r}")
    return message


@dataclass
class StreamResult:
    """Everything a raw stream call saw: responses in order, final code and details."""

    responses: list[pb.ModelStreamInferResponse] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str = ""

    @property
    def errors(self) -> list[str]:
        return [r.error_message for r in self.responses if r.error_message]

    @property
    def outputs(self) -> list[pb.ModelInferResponse]:
        return [r.infer_response for r in self.responses if not r.error_message]

    def stamped(self) -> list[tuple[str, int]]:
        """(output name, OVMS_MP_TIMESTAMP) for every data response."""
        return [(r.outputs[0].name, r.parameters["OVMS_MP_TIMESTAMP"].int64_param) for r in self.outputs]


def stream(address: str, requests: Sequence[pb.ModelInferRequest], *, pause: float = 0.0,
           timeout: float = 30.0) -> StreamResult:
    """Send `requests` on one ModelStreamInfer call, half-close, and collect everything until the end."""
    method = METHODS["ModelStreamInfer"]
    result = StreamResult()
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )

        def send() -> Iterator[pb.ModelInferRequest]:
            for item in requests:
                yield item
                if pause:
                    time.sleep(pause)

        responses = call(send(), timeout=timeout)
        try:
            for response in responses:
                result.responses.append(response)
            result.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            result.code, result.details = error.code(), error.details()
    return result


def unary(address: str, method_name: str, message: object, timeout: float = 30.0) -> object:
    """Call one unary RPC by name with our message classes."""
    method = METHODS[method_name]
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        return call(message, timeout=timeout)


def live_threads(prefixes: tuple[str, ...] = ("ovms-",)) -> list[str]:
    """Names of live threads that belong to our server."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(prefixes))


def triton_stream(client: object, model: str, requests: Sequence[tuple[list, dict | None]]) -> list[tuple]:
    """Send (inputs, parameters) requests on one tritonclient stream, half-close, and return every
    (result, error) its callback got, in order (stop_stream waits for the stream's end)."""
    items: list[tuple] = []
    client.start_stream(lambda result, error: items.append((result, error)))  # type: ignore[attr-defined]
    for inputs, parameters in requests:
        client.async_stream_infer(model, inputs, parameters=parameters)  # type: ignore[attr-defined]
    client.stop_stream()  # type: ignore[attr-defined]
    return items


def demo_frame_input(frame: object) -> object:
    """The input OVMS's MediaPipe demo clients send: the frame as UINT8 `first_input_video` (tritonclient)."""
    import tritonclient.grpc as triton

    tensor = triton.InferInput("first_input_video", list(frame.shape), "UINT8")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(frame)
    return tensor


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's content: what pins a vendored file to the commit it was copied from."""
    blob = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()
