"""TLS and remote use: an in-kernel server with TLS and mutual TLS, then `ovms-notebook serve` in a second
process, reached only by its address by the client, tritonclient, the console, its timeline and live view,
and the remote panel. Certificates are made at test time (ovms_notebook.tls.make_certificates)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from ovms_notebook import tls
from ovms_notebook.client import StreamClient, describe_remote, infer, server_metadata
from ovms_notebook.errors import ClientError, ServerError
from ovms_notebook.server.lifecycle import Server
from ovms_notebook.widgets import (
    LiveOutputs,
    RemotePanel,
    ServerPanel,
    StreamConsole,
    Timeline,
    records_from_log,
)
from tests.conftest import GRAPHS, PASSTHROUGH, triton_stream, write_graphs

PREVIOUS_VALUE = (GRAPHS / "previous_value" / "graph.pbtxt").read_text()
NO_DRAWING = ("no drawing: {address} is reached over KServe, which carries no graph topology; "
              "open the graph's pbtxt with GraphView to see it drawn")


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.CertificateFiles:
    return tls.make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> tls.CertificateFiles:
    """A second CA with its own server and client certificates: trusted by nobody here."""
    return tls.make_certificates(tmp_path_factory.mktemp("tls-other"))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_graphs(tmp_path_factory.mktemp("graphs"), {"passthrough": PASSTHROUGH,
                                                           "previous_value": PREVIOUS_VALUE})


@pytest.fixture(scope="module")
def tls_server(config: Path, certs: tls.CertificateFiles) -> Iterator[Server]:
    with Server(config, tls_cert=certs.server_cert, tls_key=certs.server_key) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(config: Path, certs: tls.CertificateFiles) -> Iterator[Server]:
    with Server(config, tls_cert=certs.server_cert.read_bytes(), tls_key=certs.server_key.read_bytes(),
                tls_client_ca=certs.ca) as server:
        yield server


def previous_value_stream(address: str, credentials: object) -> list[tuple[str, int | None, object]]:
    """Send 5, 6 (automatic timestamps) and 7 at timestamp 10; the log as (kind, timestamp, values)."""
    with StreamClient(address, "previous_value", credentials=credentials, timeout=30) as client:  # type: ignore[arg-type]
        client.send({"in": 5})
        client.send({"in": 6})
        client.send({"in": 7}, timestamp=10)
        client.close()
        entries = client.log
    return [(e.kind, e.timestamp, {k: np.asarray(v).tolist() for k, v in e.values.items()} if e.kind == "response"
             else e.code) for e in entries if e.kind != "request"]


EXPECTED_PREVIOUS = [("response", 0, {"current": [5]}), ("response", 1, {"current": [6], "previous": [5]}),
                     ("response", 10, {"current": [7], "previous": [6]}), ("end", None, "OK")]


def normalised(log: list[tuple[str, int | None, object]]) -> list[tuple[str, int | None, object]]:
    """Responses merged per timestamp, in timestamp order ("current" and "previous" come as separate
    responses, in either order), then everything else in arrival order."""
    merged: dict[int | None, dict] = {}
    for kind, timestamp, values in log:
        if kind == "response":
            merged.setdefault(timestamp, {}).update(values)  # type: ignore[arg-type]
    responses = [("response", timestamp, merged[timestamp]) for timestamp in sorted(merged)]  # type: ignore[type-var]
    return [*responses, *(item for item in log if item[0] != "response")]


# -- in-kernel server with TLS -------------------------------------------------------------------------------


def test_a_tls_server_answers_a_client_that_trusts_its_ca_with_values_and_timestamps(
        tls_server: Server, certs: tls.CertificateFiles) -> None:
    credentials = tls.client_credentials(certs.ca)
    assert tls_server.tls == "TLS" and "(TLS)" in repr(tls_server)
    assert normalised(previous_value_stream(tls_server.address, credentials)) == EXPECTED_PREVIOUS
    out = infer(tls_server.address, "passthrough", {"in": np.float32([1.5, 2])}, credentials=credentials)
    assert out["out"].tolist() == [1.5, 2.0]  # type: ignore[union-attr]
    assert server_metadata(tls_server.address, credentials=credentials)["name"] == "OpenVINO Model Server"


def test_a_plain_client_and_one_trusting_another_ca_are_refused_with_unavailable_and_the_server_lives_on(
        tls_server: Server, certs: tls.CertificateFiles, other_certs: tls.CertificateFiles) -> None:
    for credentials in (None, tls.client_credentials(other_certs.ca)):
        with pytest.raises(ClientError) as refused:
            server_metadata(tls_server.address, credentials=credentials, timeout=10)
        assert refused.value.code == "UNAVAILABLE"
    with StreamClient(tls_server.address, "passthrough", timeout=10) as plain:
        plain.send({"in": np.float32([1])})
        end = plain.close()
    assert end.code == "UNAVAILABLE"
    assert normalised(previous_value_stream(tls_server.address, tls.client_credentials(certs.ca))) == EXPECTED_PREVIOUS


def test_tritonclient_talks_to_the_tls_server_with_the_ca_and_is_refused_without_it(
        tls_server: Server, certs: tls.CertificateFiles) -> None:
    options = tls.client_credentials(certs.ca).tritonclient_options()
    assert options == {"ssl": True, "root_certificates": str(certs.ca)}
    client = triton.InferenceServerClient(tls_server.address, **options)  # type: ignore[arg-type]
    try:
        assert client.is_model_ready("previous_value")
        value = triton.InferInput("in", [1], "INT32")
        value.set_data_from_numpy(np.int32([41]))
        items = triton_stream(client, "previous_value", [([value], None), ([value], {"OVMS_MP_TIMESTAMP": 7})])
    finally:
        client.close()
    assert [error for _, error in items] == [None] * len(items)
    stamped = sorted((r.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param, o.name,
                      r.as_numpy(o.name).tolist()) for r, _ in items for o in r.get_response().outputs)
    assert stamped == [(0, "current", [41]), (7, "current", [41]), (7, "previous", [41])]
    plain = triton.InferenceServerClient(tls_server.address)
    try:
        with pytest.raises(InferenceServerException) as refused:
            plain.is_server_live(client_timeout=10)
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
    finally:
        plain.close()


def test_a_certificate_for_another_name_needs_the_server_name_override(
        config: Path, tmp_path: Path) -> None:
    named = tls.make_certificates(tmp_path, hosts=("ovms.test",))
    with Server(config, tls_cert=named.server_cert, tls_key=named.server_key) as server:
        with pytest.raises(ClientError) as refused:
            server_metadata(server.address, credentials=tls.client_credentials(named.ca), timeout=10)
        assert refused.value.code == "UNAVAILABLE"
        credentials = tls.client_credentials(named.ca, server_name="ovms.test")
        assert normalised(previous_value_stream(server.address, credentials)) == EXPECTED_PREVIOUS
        client = triton.InferenceServerClient(server.address, **credentials.tritonclient_options())  # type: ignore[arg-type]
        try:
            assert client.is_server_ready()
        finally:
            client.close()


def test_mutual_tls_refuses_clients_without_a_certificate_of_its_ca(
        mtls_server: Server, certs: tls.CertificateFiles, other_certs: tls.CertificateFiles) -> None:
    assert mtls_server.tls == "mutual TLS"
    for credentials in (tls.client_credentials(certs.ca),
                        tls.client_credentials(certs.ca, other_certs.client_cert, other_certs.client_key)):
        with pytest.raises(ClientError) as refused:
            server_metadata(mtls_server.address, credentials=credentials, timeout=10)
        assert refused.value.code == "UNAVAILABLE"
    good = tls.client_credentials(certs.ca, certs.client_cert, certs.client_key)
    assert normalised(previous_value_stream(mtls_server.address, good)) == EXPECTED_PREVIOUS
    client = triton.InferenceServerClient(mtls_server.address, **good.tritonclient_options())  # type: ignore[arg-type]
    try:
        value = triton.InferInput("in", [2], "FP32")
        value.set_data_from_numpy(np.float32([3, 4]))
        assert client.infer("passthrough", [value]).as_numpy("out").tolist() == [3.0, 4.0]
    finally:
        client.close()


def test_bad_tls_material_is_named_before_anything_binds(
        config: Path, certs: tls.CertificateFiles, other_certs: tls.CertificateFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError) as error:
        Server(config, tls_cert=missing, tls_key=certs.server_key)
    assert str(error.value) == (f"tls_cert: expected a readable PEM file, cannot read {missing}: No such file or "
                                "directory")
    with pytest.raises(ValueError) as error:
        Server(config, tls_cert=certs.server_key, tls_key=certs.server_key)
    assert str(error.value) == (f"tls_cert: expected a PEM certificate (-----BEGIN CERTIFICATE-----) in "
                                f"{certs.server_key}, found '-----BEGIN PRIVATE KEY-----'")
    with pytest.raises(ValueError) as error:
        Server(config, tls_cert=certs.server_cert, tls_key=b"")
    assert str(error.value) == ("tls_key: expected a PEM private key (-----BEGIN PRIVATE KEY-----) in the bytes "
                                "given, found 'an empty file'")
    with pytest.raises(ValueError, match=r"^TLS needs both tls_cert and tls_key; got only tls_cert$"):
        Server(config, tls_cert=certs.server_cert)
    with pytest.raises(ValueError, match=r"^tls_client_ca \(mutual TLS\) needs tls_cert and tls_key too"):
        Server(config, tls_client_ca=certs.ca)
    with pytest.raises(ValueError, match=r"^client TLS: expected both cert and key for mutual TLS, or neither; "
                                         r"got cert only$"):
        tls.client_credentials(certs.ca, cert=certs.client_cert)
    mismatched = Server(config, tls_cert=certs.server_cert, tls_key=other_certs.server_key)
    with pytest.raises(ServerError) as refused:
        mismatched.start()
    assert str(refused.value) == ("cannot listen on 127.0.0.1:0 with TLS: gRPC refused the certificate and key "
                                  "(does tls_key belong to tls_cert?)")


def test_the_cli_reports_a_bad_tls_file_and_exits_2(config: Path, certs: tls.CertificateFiles, capsys) -> None:
    from ovms_notebook.cli import main

    code = main(["serve", str(config), "--port", "0", "--tls-cert", str(certs.ca), "--tls-key", str(certs.ca)])
    assert code == 2
    assert capsys.readouterr().err == (f"ovms-notebook: tls_key: expected a PEM private key (-----BEGIN PRIVATE "
                                       f"KEY-----) in {certs.ca}, found '-----BEGIN CERTIFICATE-----'\n")


# -- a second process: `ovms-notebook serve` reached by its address ------------------------------------------


class ServeProcess:
    """`python -m ovms_notebook.cli serve ...` with its stdout read on a thread; `address` from its last line."""

    def __init__(self, args: list[str], log: Path) -> None:
        self._stderr = log.open("wb")
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "ovms_notebook.cli", "serve", *args],
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.address = self._wait_for_address(timeout=120)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no address line within {timeout} s; stderr: {self.log.read_text()}") from None
            self.stdout.append(line)
            found = re.fullmatch(r"serving on (127\.0\.0\.1:\d+)(?: with .*)? \(Ctrl-C to stop\)", line)
            if found:
                return found.group(1)

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 30 s: the test then fails on the code)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._stderr.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def remote_mtls(certs: tls.CertificateFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    process = ServeProcess([str(GRAPHS), "--port", "0", "--tls-cert", str(certs.server_cert), "--tls-key",
                            str(certs.server_key), "--tls-client-ca", str(certs.ca)], log)
    yield process
    assert process.stop() == 0, log.read_text()[-2000:]  # SIGTERM ends it cleanly


@pytest.fixture(scope="module")
def remote_plain(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    log = tmp_path_factory.mktemp("serve-plain") / "stderr.txt"
    process = ServeProcess([str(config), "--port", "0"], log)
    yield process
    process.stop()


@pytest.fixture
def mtls(certs: tls.CertificateFiles) -> tls.TlsChannelCredentials:
    return tls.client_credentials(certs.ca, certs.client_cert, certs.client_key)


def test_the_served_process_says_its_graphs_and_tls_mode_on_stdout(remote_mtls: ServeProcess) -> None:
    assert remote_mtls.stdout[0] == "  graph passthrough: ready"
    assert remote_mtls.stdout[-1] == f"serving on {remote_mtls.address} with mutual TLS (Ctrl-C to stop)"
    assert "(mutual TLS)" in remote_mtls.log.read_text()


def test_a_stream_client_and_tritonclient_work_against_the_remote_over_mutual_tls(
        remote_mtls: ServeProcess, mtls: tls.TlsChannelCredentials) -> None:
    assert normalised(previous_value_stream(remote_mtls.address, mtls)) == EXPECTED_PREVIOUS
    client = triton.InferenceServerClient(remote_mtls.address, **mtls.tritonclient_options())  # type: ignore[arg-type]
    try:
        assert client.get_server_metadata().name == "OpenVINO Model Server"
        value = triton.InferInput("in", [2], "FP32")
        value.set_data_from_numpy(np.float32([1, 2]))
        assert client.infer("passthrough", [value]).as_numpy("out").tolist() == [1.0, 2.0]
    finally:
        client.close()
    with pytest.raises(ClientError) as refused:  # the CA alone is not enough: mutual TLS wants a certificate
        server_metadata(remote_mtls.address, credentials=tls.client_credentials(mtls.root_ca), timeout=10)
    assert refused.value.code == "UNAVAILABLE"


def test_the_remote_panel_lists_graphs_from_metadata_and_says_there_is_no_drawing(
        remote_mtls: ServeProcess, mtls: tls.TlsChannelCredentials) -> None:
    panel = RemotePanel(remote_mtls.address, config=GRAPHS, credentials=mtls)
    try:
        assert panel.problem == ""
        assert panel.names[:4] == ["passthrough", "concat_default", "concat_immediate", "previous_value"]
        assert {g.name: g.state for g in panel.graphs_info}["holisticTracking"] == "ready"
        previous = next(g for g in panel.graphs_info if g.name == "previous_value")
        assert [t["name"] for t in previous.inputs] == ["in"]
        assert [t["name"] for t in previous.outputs] == ["current", "previous"]
        assert "mutual TLS" in panel.header.value and "OpenVINO Model Server" in panel.header.value
        assert f"{len(panel.names)} of {len(panel.names)} graphs named ready" in panel.header.value
        assert panel.graph_picker.value == "passthrough"
        assert panel.note_text == "passthrough: " + NO_DRAWING.format(address=remote_mtls.address)
        panel.graph_picker.value = "previous_value"
        assert panel.note_text.startswith("previous_value: no drawing: ")
    finally:
        panel.close()
    named = describe_remote(remote_mtls.address, ["passthrough", "no_such_graph"], credentials=mtls)
    assert [(g.name, g.state) for g in named] == [("passthrough", "ready"), ("no_such_graph", "unknown to the server")]
    with pytest.raises(TypeError, match=r"^ServerPanel shows an in-kernel Server, got the address '127\.0\.0\.1:"):
        ServerPanel(remote_mtls.address)
    refused = RemotePanel(remote_mtls.address, ["passthrough"])  # no TLS at all: shown, not raised
    try:
        assert refused.problem.startswith("[UNAVAILABLE] ")
        assert "cannot be reached" in refused.header.value and refused.graph_picker.options == ()
        assert refused.note_text == f"nothing to show: {refused.problem}"
    finally:
        refused.close()


def test_the_console_its_timeline_and_live_view_work_against_the_remote_over_mutual_tls(
        remote_mtls: ServeProcess, mtls: tls.TlsChannelCredentials) -> None:
    console = StreamConsole(remote_mtls.address, "previous_value", credentials=mtls)
    try:
        assert console.graph_picker.options == (("previous_value", "previous_value"),)  # ModelReady said ready
        assert list(console.editors) == ["in"]
        console.send({"in": np.int32([3])})
        console.send({"in": np.int32([4])}, timestamp=20)
        console.wait_for(3)
        end = console.close_stream()
        assert end.code == "OK"
        assert console.outputs.panels["current"].header_text == "current @20"
        assert console.outputs.latest["previous"][1].tolist() == [3]
        eventually(lambda: any(r.kind == "end" for r in console.timeline.records))
        requests = [(r.lane, r.timestamp, r.manual) for r in console.timeline.records if r.kind == "request"]
        assert requests == [("in: in", 0, False), ("in: in", 20, True)]
    finally:
        console.close()


def test_a_live_view_and_timeline_fed_by_a_remote_stream_client(
        remote_mtls: ServeProcess, mtls: tls.TlsChannelCredentials) -> None:
    live, timeline = LiveOutputs(["out"], min_interval=0.01), Timeline(min_interval=0.01)
    try:
        with StreamClient(remote_mtls.address, "passthrough", credentials=mtls, timeout=30) as client:
            client.on_response(lambda _entry: live.update(client.log))
            for timestamp in (5, 6, 9):
                client.send({"in": np.float32([timestamp])}, timestamp=timestamp)
            client.wait_for(3)
            client.close()
            timeline.update(records_from_log(client.log))
        assert live.wait_drawn(9, timeout=10)
        assert live.panels["out"].header_text == "out @9"
        outputs = [(r.timestamp, r.label) for r in timeline.records if r.kind == "output"]
        assert outputs == [(5, "out at 5"), (6, "out at 6"), (9, "out at 9")]
    finally:
        live.close()
        timeline.close()


def test_the_plain_remote_path_still_works_and_the_process_exits_cleanly_on_sigterm(
        remote_plain: ServeProcess) -> None:
    assert remote_plain.stdout[-1] == f"serving on {remote_plain.address} (Ctrl-C to stop)"
    assert normalised(previous_value_stream(remote_plain.address, None)) == EXPECTED_PREVIOUS
    panel = RemotePanel(remote_plain.address, ["passthrough", "previous_value", "no_such_graph"])
    console = StreamConsole(remote_plain.address, "passthrough")
    try:
        assert [(g.name, g.state) for g in panel.graphs_info] == [
            ("passthrough", "ready"), ("previous_value", "ready"), ("no_such_graph", "unknown to the server")]
        assert "plain" in panel.header.value and "2 of 3 graphs named ready" in panel.header.value
        console.send({"in": np.float32([7, 8])})
        console.wait_for(1)
        assert console.outputs.latest["out"][1].tolist() == [7.0, 8.0]
        assert console.close_stream().code == "OK"
    finally:
        panel.close()
        console.close()
    assert remote_plain.stop() == 0
    assert "stopped" in remote_plain.log.read_text()
