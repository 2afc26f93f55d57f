"""ovms_config: the one config.json reader behind the graph repository, the model repository and `check`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ovms_notebook.models.config import read_model_entries
from ovms_notebook.ovms_config import read_config
from ovms_notebook.repository import read_entries

PASSTHROUGH = 'input_stream: "in" output_stream: "out"\nnode { calculator: "PassThroughCalculator" ' \
              'input_stream: "in" output_stream: "out" }\n'


def _write(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def test_a_home_relative_base_path_means_the_same_folder_to_graphs_and_models(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    (home / "g").mkdir(parents=True)
    (home / "g" / "graph.pbtxt").write_text(PASSTHROUGH)
    (home / "m" / "1").mkdir(parents=True)
    (home / "listed").mkdir()
    (home / "listed" / "graph.pbtxt").write_text(PASSTHROUGH)
    config = _write(tmp_path / "conf" / "config.json", {
        "model_config_list": [{"config": {"name": "g", "base_path": "~/g"}},
                              {"config": {"name": "m", "base_path": "~/m"}}],
        "mediapipe_config_list": [{"name": "listed", "base_path": "~/listed"}],
    })
    graphs = read_entries(config)
    assert [(e.name, e.base_path, e.graph_path) for e in graphs] == [
        ("listed", home / "listed", home / "listed" / "graph.pbtxt"),
        ("g", home / "g", home / "g" / "graph.pbtxt"),
    ]
    assert [(e.name, e.base_path) for e in read_model_entries(config)] == [("m", home / "m")]


def test_relative_base_paths_and_defaults_follow_ovms(tmp_path: Path) -> None:
    (tmp_path / "flow").mkdir()
    (tmp_path / "flow" / "graph.pbtxt").write_text(PASSTHROUGH)
    (tmp_path / "models" / "add" / "1").mkdir(parents=True)
    _write(tmp_path / "config.json", {
        "model_config_list": [{"config": {"name": "add", "base_path": "models/add"}}],
        "mediapipe_config_list": [{"name": "flow", "subconfig": "sub.json"}],
    })
    read = read_config(tmp_path)
    (flow,) = read.graphs
    assert (flow.base_path, flow.graph_path, flow.subconfig_path, flow.subconfig) == (
        tmp_path / "flow", tmp_path / "flow" / "graph.pbtxt", tmp_path / "flow" / "sub.json", "sub.json")
    assert [(m.name, m.base_path, m.settings) for m in read.models] == [
        ("add", tmp_path / "models" / "add", {"name": "add", "base_path": "models/add"})]


def test_a_file_ovms_schema_refuses_is_served_and_logged_naming_the_place(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "flow").mkdir()
    (tmp_path / "flow" / "graph.pbtxt").write_text(PASSTHROUGH)
    config = _write(tmp_path / "config.json", {"mediapipe_config_list": [{"name": "flow"}]})
    with caplog.at_level(logging.INFO, logger="ovms_notebook.ovms_config"):
        assert [e.name for e in read_entries(config)] == ["flow"]
    assert caplog.messages == [f"{config}: OVMS would refuse this file: its config schema rejects config.json: "
                               "'model_config_list' is a required property"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ovms_notebook.ovms_config"):
        read_config(config, validate=False)
    assert caplog.messages == []
