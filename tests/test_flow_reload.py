"""Config reload as OVMS does it: the CLI watches config.json (every second by default, an OVMS flag changes
it, 0 turns it off), SIGHUP reloads instead of killing, and the in-kernel server can watch too."""

from __future__ import annotations

import json
import signal
import time

import grpc
import numpy as np

import ovms_notebook
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from tests.conftest import PASSTHROUGH, request, unary, write_graphs
from tests.flow import CliServer

DOUBLE = """
input_stream: "in"
output_stream: "out"
output_stream: "other"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "other" }
"""


def ready(address: str, name: str) -> bool | None:
    """ModelReady of `name`, None when the server does not know it."""
    try:
        return unary(address, "ModelReady", pb.ModelReadyRequest(name=name)).ready
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        return None


def wait_for(check, deadline: float = 30.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


def edit(config, graphs: dict[str, str]) -> None:
    """Rewrite the folder's config.json to list exactly `graphs` (writing their graph files)."""
    folder = config.parent
    for name, text in graphs.items():
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "graph.pbtxt").write_text(text)
    document = {"model_config_list": [], "mediapipe_config_list": [{"name": n, "base_path": n} for n in graphs]}
    config.write_text(json.dumps(document, indent=2))


def test_the_cli_picks_up_a_config_edit_adds_retires_and_keeps_open_streams(tmp_path):
    config = write_graphs(tmp_path, {"a": PASSTHROUGH})
    server = CliServer(config)  # OVMS's default: config.json checked every second
    try:
        assert ready(server.address, "a") is True and ready(server.address, "b") is None
        edit(config, {"b": DOUBLE})
        assert wait_for(lambda: ready(server.address, "b") is True), "".join(server.lines)
        assert ready(server.address, "a") is False  # retired, as OVMS retires a graph the config dropped
        answer = unary(server.address, "ModelInfer", request("b", {"in": np.float32([4])}))
        assert sorted(output.name for output in answer.outputs) == ["other", "out"]
        assert any("config.json changed" in line for line in server.lines), "".join(server.lines)
    finally:
        assert server.stop() == 0


def test_sighup_reloads_the_cli_instead_of_killing_it_and_polling_can_be_turned_off(tmp_path):
    config = write_graphs(tmp_path, {"a": PASSTHROUGH})
    server = CliServer(config, "--file_system_poll_wait_seconds", "0")
    try:
        edit(config, {"a": PASSTHROUGH, "b": PASSTHROUGH})
        time.sleep(2.5)  # more than two default poll periods: with polling off nothing happens
        assert ready(server.address, "b") is None
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: ready(server.address, "b") is True), "".join(server.lines)
        assert server.process.poll() is None
        assert ready(server.address, "a") is True
    finally:
        assert server.stop() == 0


def test_the_in_kernel_server_watches_its_config_when_asked(tmp_path):
    config = write_graphs(tmp_path, {"a": PASSTHROUGH})
    server = ovms_notebook.serve(config, file_system_poll_wait_seconds=0.2)
    try:
        edit(config, {"a": DOUBLE})  # the graph file changes, config.json does not: as OVMS, no reload
        time.sleep(1.0)
        assert sorted(server.repository.get("a").spec.outputs) == ["out"]
        edit(config, {"a": DOUBLE, "b": PASSTHROUGH})  # config.json changes: a's new graph is read with it
        assert wait_for(lambda: sorted(server.repository.get("a").spec.outputs) == ["other", "out"])
        assert ready(server.address, "b") is True
        answer = unary(server.address, "ModelInfer", request("a", {"in": np.float32([1])}))
        assert sorted(output.name for output in answer.outputs) == ["other", "out"]
    finally:
        server.stop()
    assert not [t for t in __import__("threading").enumerate() if t.name.startswith("ovms-config-watch")]
