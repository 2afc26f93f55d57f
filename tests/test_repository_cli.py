"""config.json reading (OVMS's defaults and errors) and the `ovms-notebook serve` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tritonclient.grpc as triton

from ovms_notebook.errors import ConfigError
from ovms_notebook.repository.graphs import GraphState, Repository, find_config, read_entries
from tests.conftest import PASSTHROUGH, REPO


def test_config_folder_resolves_to_its_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert find_config(tmp_path) == (tmp_path / "config.json").resolve()


def test_missing_config_says_what_was_expected(tmp_path):
    with pytest.raises(ConfigError, match=r"expected an OVMS config\.json or a folder holding one"):
        find_config(tmp_path / "nowhere")


def test_mediapipe_entry_defaults_follow_ovms(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mediapipe_config_list": [
        {"name": "a"},
        {"name": "b", "base_path": "folder_b", "graph_path": "other.pbtxt", "subconfig": "sub.json"},
        {"name": "c", "base_path": ""},
    ]}))
    entries = {e.name: e for e in read_entries(config)}
    assert entries["a"].base_path == (tmp_path / "a").resolve()
    assert entries["a"].graph_path == (tmp_path / "a" / "graph.pbtxt").resolve()
    assert entries["b"].graph_path == (tmp_path / "folder_b" / "other.pbtxt").resolve()
    assert entries["b"].subconfig_path == (tmp_path / "folder_b" / "sub.json").resolve()
    assert entries["c"].base_path == (tmp_path / "c").resolve()


def test_graph_in_model_config_list_is_served_like_recent_ovms(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "graph.pbtxt").write_text(PASSTHROUGH)
    (tmp_path / "config.json").write_text(json.dumps({"model_config_list": [
        {"config": {"name": "g", "base_path": "g"}},
        {"config": {"name": "plain_model", "base_path": "models/plain"}},
    ]}))
    repository = Repository(tmp_path)
    assert [(d.name, d.state) for d in repository.definitions] == [("g", GraphState.AVAILABLE)]


def test_duplicate_graph_names_keep_the_first_entry(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"mediapipe_config_list": [
        {"name": "g", "base_path": "one"}, {"name": "g", "base_path": "two"}]}))
    (entry,) = read_entries(tmp_path / "config.json")
    assert entry.base_path.name == "one"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "expected a JSON object at the top level, got list"),
        ('{"mediapipe_config_list": {}}', "'mediapipe_config_list' must be a list, got dict"),
        ('{"mediapipe_config_list": [{"base_path": "x"}]}', "needs a non-empty string 'name', got None"),
        ('{"mediapipe_config_list": [{"name": "x", "graph_path": 3}]}', "graph_path must be a string, got int"),
        ('{"model_config_list": [{"name": "x"}]}', "must be an object with a 'config' object"),
        ("{nope", "is not valid JSON"),
    ],
)
def test_malformed_config_is_refused_with_the_reason(tmp_path, document, message):
    (tmp_path / "config.json").write_text(document)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Repository(tmp_path)


def test_missing_graph_file_is_a_failed_graph_with_the_path(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"mediapipe_config_list": [{"name": "ghost"}]}))
    (definition,) = Repository(tmp_path).definitions
    assert definition.state is GraphState.FAILED
    assert "ghost/graph.pbtxt cannot be read" in definition.error


def test_cli_serves_until_interrupted(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "ovms_notebook.cli", "serve", str(REPO / "graphs"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        address, lines, deadline = None, [], time.monotonic() + 60
        while address is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("serving on "):
                address = line.split()[2]
        assert address, "".join(lines)
        assert "  graph face_detection: ready\n" in lines
        client = triton.InferenceServerClient(address)
        value = triton.InferInput("in", [2], "FP32")
        value.set_data_from_numpy(np.float32([1.5, 2.5]))
        assert client.infer("passthrough", [value]).as_numpy("out").tolist() == [1.5, 2.5]
        client.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_cli_reports_a_missing_config_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ovms_notebook.cli", "serve", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "expected an OVMS config.json or a folder holding one" in result.stderr
