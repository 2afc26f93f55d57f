"""Safe defaults: loopback bind, message size limits, graph folders that cannot reach out, no stray writes.

config.json is the user's own file and is trusted as in OVMS (a base path may be absolute or lead
anywhere); what a graph folder names - graph_path, subconfig, the subconfig's model base paths,
handler_path - must stay inside that graph's base path (`..`, absolute paths and symlinks out refused).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS
from tests.conftest import GRAPHS, PASSTHROUGH, REPO, request, stream, unary
from tests.ovms_python_graphs import ECHO, PYTHON_NODE

STREAM = METHODS["ModelStreamInfer"]


def listening_addresses(port: int) -> list[str]:
    """The local addresses of LISTEN sockets on `port`, from /proc/self/net/tcp{,6}."""
    found = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                # /proc prints the address as 32-bit words in host (little-endian) order
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, len(address), 8))
                ip = ipaddress.ip_address(raw)
                mapped = getattr(ip, "ipv4_mapped", None)  # gRPC binds IPv4 on a dual-stack socket
                found.append(str(mapped or ip))
    return found


# -- bind ---------------------------------------------------------------------------------------------------------

def test_the_default_bind_is_loopback_only(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH})
    assert server.host == "127.0.0.1"
    assert listening_addresses(server.port) == ["127.0.0.1"]


def test_loopback_names_bind_without_a_warning(serve_graphs, caplog):
    with caplog.at_level(logging.WARNING, logger="ovms_notebook.server.lifecycle"):
        server = serve_graphs({"g": PASSTHROUGH}, host="127.0.0.2")
    assert listening_addresses(server.port) == ["127.0.0.2"]
    assert caplog.records == []


def test_binding_all_interfaces_warns_that_other_machines_can_connect(serve_graphs, caplog):
    with caplog.at_level(logging.WARNING, logger="ovms_notebook.server.lifecycle"):
        server = serve_graphs({"g": PASSTHROUGH}, host="0.0.0.0")
    assert listening_addresses(server.port) in (["0.0.0.0"], ["::"])  # gRPC may bind a dual-stack "::"
    assert [r.getMessage() for r in caplog.records] == [
        f"listening on 0.0.0.0:{server.port}, reachable from other machines: there is no client authentication "
        "and no encryption"]
    server.stop()


# -- message size -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1, 2**31, 1.5, True])
def test_max_message_bytes_must_be_a_positive_int32(tmp_path, value):
    config = tmp_path / "config.json"
    config.write_text('{"mediapipe_config_list": []}')
    with pytest.raises(ValueError, match=re.escape(f"max_message_bytes must be an integer from 1 to 2147483647 "
                                                   f"(gRPC's limit), got {value!r}")):
        ovms_notebook.Server(config, max_message_bytes=value)


def big_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 1 << 26),
                                                   ("grpc.max_receive_message_length", 1 << 26)])


def test_a_unary_request_over_the_limit_is_resource_exhausted_naming_both_sizes(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH}, max_message_bytes=64 * 1024)
    message = request("g", {"in": np.zeros(20_000, np.float32)})  # 80 KB of raw contents
    size = message.ByteSize()
    method = METHODS["ModelInfer"]
    with big_channel(server.address) as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                            response_deserializer=method.response.FromString)(message, timeout=30)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.value.details() == f"SERVER: Received message larger than max ({size} vs. 65536)"
    small = unary(server.address, "ModelInfer", request("g", {"in": np.float32([1])}))
    assert np.frombuffer(small.raw_output_contents[0], np.float32).tolist() == [1.0]


def test_a_stream_request_over_the_limit_ends_that_stream_and_the_server_serves_on(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH}, max_message_bytes=64 * 1024)
    big = request("g", {"in": np.zeros(20_000, np.float32)})
    messages = [request("g", {"in": np.float32([1])}), big]
    with big_channel(server.address) as channel:
        call = channel.stream_stream(STREAM.path, request_serializer=STREAM.request.SerializeToString,
                                     response_deserializer=STREAM.response.FromString)(iter(messages), timeout=30)
        seen = []
        with pytest.raises(grpc.RpcError) as error:
            for response in call:
                seen.append(response.infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.value.details() == f"SERVER: Received message larger than max ({big.ByteSize()} vs. 65536)"
    assert seen in ([], [0])  # the first answer may or may not beat the refusal
    assert stream(server.address, [request("g", {"in": np.float32([2])})]).stamped() == [("out", 0)]


# -- graph folders stay inside their base path ---------------------------------------------------------------------

def folder_with(tmp_path: Path, entry: dict, files: dict[str, str]) -> Path:
    """A config with a good graph "ok" and the graph `entry` (base path "bad"), plus `files` under tmp_path."""
    root = tmp_path / "repo"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "graph.pbtxt").write_text(PASSTHROUGH)
    (root / "bad").mkdir()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    entries = [{"name": "ok", "base_path": "ok"}, {"name": "bad", "base_path": "bad", **entry}]
    (root / "config.json").write_text(json.dumps({"mediapipe_config_list": entries}))
    return root / "config.json"


OUTSIDE = {"outside/graph.pbtxt": PASSTHROUGH}


@pytest.mark.parametrize("graph_path", ["../../outside/graph.pbtxt", "{tmp}/outside/graph.pbtxt", "link.pbtxt"],
                         ids=["dotdot", "absolute", "symlink"])
def test_a_graph_path_outside_the_base_path_fails_that_graph_only(tmp_path, graph_path):
    config = folder_with(tmp_path, {"graph_path": graph_path.format(tmp=tmp_path)}, OUTSIDE)
    (tmp_path / "repo" / "bad" / "link.pbtxt").symlink_to(tmp_path / "outside" / "graph.pbtxt")
    with ovms_notebook.serve(config) as server:
        errors = {d.name: d.error for d in server.graphs}
        assert errors == {"ok": None, "bad": f"graph_path resolves to {tmp_path}/outside/graph.pbtxt, outside the "
                          f"graph's base path {tmp_path}/repo/bad; a graph's files must be inside its folder"}
        assert stream(server.address, [request("ok", {"in": np.float32([1])})]).stamped() == [("out", 0)]
        refused = stream(server.address, [request("bad", {"in": np.float32([1])})])
        assert (refused.code, refused.details) == (grpc.StatusCode.UNAVAILABLE, "Mediapipe is not loaded yet")


@pytest.mark.parametrize("subconfig", ["../../outside/sub.json", "{tmp}/outside/sub.json", "link.json"],
                         ids=["dotdot", "absolute", "symlink"])
def test_a_subconfig_outside_the_base_path_fails_that_graph_and_loads_none_of_its_models(tmp_path, subconfig):
    sub = json.dumps({"model_config_list": [{"config": {"name": "m", "base_path": "m"}}]})
    config = folder_with(tmp_path, {"subconfig": subconfig.format(tmp=tmp_path)},
                         {"repo/bad/graph.pbtxt": PASSTHROUGH, "outside/sub.json": sub})
    (tmp_path / "repo" / "bad" / "link.json").symlink_to(tmp_path / "outside" / "sub.json")
    with ovms_notebook.serve(config) as server:
        errors = {d.name: d.error for d in server.graphs}
        assert errors == {"ok": None, "bad": f"subconfig {Path(subconfig).name!r} resolves to {tmp_path}/outside/"
                          f"sub.json, outside the graph's base path {tmp_path}/repo/bad; a graph's files must be "
                          "inside its folder"}
        assert "m" not in server.repository.models
        assert stream(server.address, [request("ok", {"in": np.float32([1])})]).stamped() == [("out", 0)]


@pytest.mark.parametrize("model_base", ["../../outside/models/m", "{tmp}/outside/models/m"], ids=["dotdot", "absolute"])
def test_a_subconfig_model_outside_the_base_path_fails_the_graph(tmp_path, model_base):
    sub = json.dumps({"model_config_list": [{"config": {"name": "m", "base_path": model_base.format(tmp=tmp_path)}}]})
    config = folder_with(tmp_path, {}, {"repo/bad/graph.pbtxt": PASSTHROUGH, "repo/bad/subconfig.json": sub})
    with ovms_notebook.serve(config) as server:
        errors = {d.name: d.error for d in server.graphs}
        assert errors == {"ok": None, "bad": f"subconfig model 'm' base_path resolves to {tmp_path}/outside/models/m, "
                          f"outside the graph's base path {tmp_path}/repo/bad; a graph's files must be inside its "
                          "folder"}
        assert "m" not in server.repository.models


@pytest.mark.parametrize("handler_path", ["../../outside/echo.py", "{tmp}/outside/echo.py", "link.py"],
                         ids=["dotdot", "absolute", "symlink"])
def test_a_handler_path_outside_the_base_path_fails_that_graph_only(tmp_path, handler_path):
    text = PYTHON_NODE.replace("scripts/%s", handler_path.format(tmp=tmp_path))
    config = folder_with(tmp_path, {}, {"repo/bad/graph.pbtxt": text, "outside/echo.py": ECHO})
    (tmp_path / "repo" / "bad" / "link.py").symlink_to(tmp_path / "outside" / "echo.py")
    with ovms_notebook.serve(config) as server:
        errors = {d.name: d.error for d in server.graphs}
        shown = handler_path.format(tmp=tmp_path)
        assert errors["ok"] is None
        assert errors["bad"] == (
            f"PYTHON_NODE_FILE_STATE_INITIALIZATION_FAILED: Python node handler_path: {shown} resolves to "
            f"{tmp_path}/outside/echo.py, outside the graph's base path {tmp_path}/repo/bad; handler files must be "
            "inside the graph's folder.")
        assert stream(server.address, [request("ok", {"in": np.float32([1])})]).stamped() == [("out", 0)]


def test_config_json_base_paths_may_lead_anywhere_as_in_ovms(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "graph.pbtxt").write_text(PASSTHROUGH)
    (tmp_path / "repo").mkdir()
    entries = [{"name": "rel", "base_path": "../elsewhere"}, {"name": "abs", "base_path": str(tmp_path / "elsewhere")}]
    (tmp_path / "repo" / "config.json").write_text(json.dumps({"mediapipe_config_list": entries}))
    with ovms_notebook.serve(tmp_path / "repo") as server:
        assert {d.name: d.error for d in server.graphs} == {"rel": None, "abs": None}


# -- environment and files ----------------------------------------------------------------------------------------

# CI: set around `import openvino` only, so that OpenVINO's usage telemetry stays off (`_env.import_openvino`).
ALLOWED_ENVIRONMENT = {"GRPC_VERBOSITY", "GRPC_ENABLE_FORK_SUPPORT", "GLOG_minloglevel", "XDG_CACHE_HOME", "CI"}


def test_the_package_reads_only_named_non_secret_environment_variables():
    found = {}
    for path in (REPO / "ovms_notebook").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "environ" in line or "getenv" in line:
                names = set(re.findall(r"""(?:environ(?:\.get|\.setdefault|\.pop)?\s*[\[(]|getenv\()\s*["']([^"']+)""",
                                       line))
                passes_on = "**os.environ" in line  # a subprocess gets our environment as it is
                if not names and not passes_on:
                    found[f"{path.relative_to(REPO)}:{number}"] = line.strip()
                for name in names - ALLOWED_ENVIRONMENT:
                    found[f"{path.relative_to(REPO)}:{number}"] = name
    assert found == {}


SESSION = textwrap.dedent("""
    import sys, numpy as np, tritonclient.grpc as triton
    import ovms_notebook
    server = ovms_notebook.serve(sys.argv[1], trace=True)
    client = triton.InferenceServerClient(server.address)
    results = []
    client.start_stream(lambda result, error: results.append(error or result.as_numpy("out").tolist()))
    for value in (1.0, 2.0):
        tensor = triton.InferInput("in", [1], "FP32")
        tensor.set_data_from_numpy(np.float32([value]))
        client.async_stream_infer("passthrough", [tensor])
    client.stop_stream()
    model = client.get_model_metadata("face_detection_short_range")  # imports OpenVINO and reads the model
    client.close()
    trace = server.trace_for()
    server.stop()
    import time; time.sleep(1.5)  # traced graphs are released (and their trace folder removed) after ~0.7 s
    print(results, trace is not None and len(trace.events) > 0, model.inputs[0].shape)
""")


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_traced_session_with_an_empty_environment_writes_only_to_its_temp_folder_and_cleans_it(tmp_path):
    home, work, temp, graphs = (tmp_path / name for name in ("home", "work", "tmp", "graphs"))
    for folder in (home, work, temp):
        folder.mkdir()
    shutil.copytree(GRAPHS, graphs)
    before = tree(graphs)
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(temp),
                   "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SESSION, str(graphs)], cwd=work, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[[1.0], [2.0]] True [1, 128, 128, 3]"
    # `import mediapipe` imports matplotlib, which keeps its font cache and config folder in HOME: not ours.
    # OpenVINO's usage telemetry would write `intel/openvino_ga_cid` here: declined (`_env.import_openvino`).
    ours = [path for path in tree(home) if "matplotlib" not in path and path not in (".cache", ".config")]
    assert (ours, tree(work), tree(temp)) == ([], [], [])
    assert tree(graphs) == before


def test_graph_state_messages_name_no_secret(serve_graphs):
    """ServerMetadata says what the server is, nothing about the machine or the process."""
    server = serve_graphs({"g": PASSTHROUGH})
    metadata = unary(server.address, "ServerMetadata", pb.ServerMetadataRequest())
    assert (metadata.name, metadata.version, list(metadata.extensions)) == (
        "OpenVINO Model Server", ovms_notebook.__version__, [])
