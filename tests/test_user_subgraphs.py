"""A graph folder brings its own subgraphs: `.pbtxt` files whose `type:` names the subgraph.

They expand like the package's own (nested ones too), over a real server;
`check` says OVMS needs them compiled in; a reload sees an edited subgraph.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.subgraphs import folder_subgraphs
from ovms_notebook.portability import check
from tests.conftest import request, stream

MIRROR = """
type: "MirrorCpu"
input_stream: "IMAGE:image"
output_stream: "IMAGE:0:mirrored"
node { calculator: "ImageTransformationCalculator" input_stream: "IMAGE:image" output_stream: "IMAGE:mirrored"
       options { [mediapipe.ImageTransformationCalculatorOptions.ext] { flip_horizontally: true } } }
"""
MIRROR_TWICE = """
type: "MirrorTwiceCpu"
input_stream: "IMAGE:image"
output_stream: "IMAGE:back"
node { calculator: "MirrorCpu" input_stream: "IMAGE:image" output_stream: "IMAGE:once" }
node { calculator: "MirrorCpu" input_stream: "IMAGE:once" output_stream: "IMAGE:back" }
"""
GRAPH = """
input_stream: "IMAGE:in"
output_stream: "IMAGE:0:mirrored"
output_stream: "IMAGE:1:same"
node { calculator: "MirrorCpu" input_stream: "IMAGE:in" output_stream: "IMAGE:mirrored" }
node { calculator: "MirrorTwiceCpu" input_stream: "IMAGE:in" output_stream: "IMAGE:same" }
"""
FRAME = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def folder(root: Path, files: dict[str, str]) -> Path:
    """A config.json serving `root/mirror/graph.pbtxt`, with the other `files` written beside it."""
    (root / "mirror").mkdir(parents=True, exist_ok=True)
    (root / "mirror" / "graph.pbtxt").write_text(GRAPH)
    for name, text in files.items():
        (root / "mirror" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "mirror" / name).write_text(text)
    (root / "config.json").write_text(json.dumps({"mediapipe_config_list": [{"name": "mirror"}]}))
    return root / "config.json"


def outputs(server: ovms_notebook.Server) -> dict[str, np.ndarray]:
    result = stream(server.address, [request("mirror", {"in": FRAME})])
    assert result.errors == [] and result.code is not None and result.code.name == "OK"
    return {
        r.outputs[0].name: np.frombuffer(r.raw_output_contents[0], np.uint8).reshape(list(r.outputs[0].shape))
        for r in result.outputs
    }


def test_subgraph_files_beside_the_graph_and_in_subgraphs_expand_like_the_package_own(tmp_path: Path) -> None:
    config = folder(tmp_path, {"mirror.pbtxt": MIRROR, "subgraphs/mirror_twice.pbtxt": MIRROR_TWICE})
    server = ovms_notebook.serve(config)
    try:
        [definition] = server.graphs
        assert definition.available, definition.error
        assert sorted(definition.spec.subgraphs) == ["MirrorCpu", "MirrorTwiceCpu"]
        assert [n.calculator for n in definition.spec.config.node] == ["ImageTransformationCalculator"] * 3
        got = outputs(server)
        assert np.array_equal(got["mirrored"], FRAME[:, ::-1]) and np.array_equal(got["same"], FRAME)
    finally:
        server.stop()


def test_without_the_subgraph_file_the_graph_fails_naming_the_calculator(tmp_path: Path) -> None:
    server = ovms_notebook.serve(folder(tmp_path, {"subgraphs/mirror_twice.pbtxt": MIRROR_TWICE}))
    try:
        [definition] = server.graphs
        assert not definition.available and 'Unable to find Calculator "MirrorCpu"' in definition.error
    finally:
        server.stop()


def test_a_reload_sees_an_edited_subgraph_file(tmp_path: Path) -> None:
    config = folder(tmp_path, {"mirror.pbtxt": MIRROR, "subgraphs/mirror_twice.pbtxt": MIRROR_TWICE})
    server = ovms_notebook.serve(config)
    try:
        assert np.array_equal(outputs(server)["mirrored"], FRAME[:, ::-1])
        flipped = MIRROR.replace("flip_horizontally", "flip_vertically")
        (tmp_path / "mirror" / "mirror.pbtxt").write_text(flipped)
        server.reload()
        assert np.array_equal(outputs(server)["mirrored"], FRAME[::-1])
    finally:
        server.stop()


def test_check_says_ovms_needs_the_folder_subgraphs_compiled_in(tmp_path: Path) -> None:
    report = check(folder(tmp_path, {"mirror.pbtxt": MIRROR, "subgraphs/mirror_twice.pbtxt": MIRROR_TWICE}))
    graph = report.graph("mirror")
    errors = [(f.kind, f.subject) for f in graph.findings if f.severity == "error"]
    assert errors == [("user-subgraph", "MirrorCpu"), ("user-subgraph", "MirrorTwiceCpu")]
    assert graph.findings[0].reason.startswith(
        "a subgraph from a .pbtxt file in the graph folder; ovms_notebook expands it, but OVMS's MediaPipe knows "
        'only the subgraphs compiled into its build and fails with Unable to find Calculator "MirrorCpu": OVMS '
        "needs it compiled in"
    )
    assert not graph.portable


def test_two_files_declaring_one_type_fail_the_load_and_a_symlink_out_is_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.pbtxt"
    outside.write_text(MIRROR.replace("MirrorCpu", "OutsideCpu"))
    base = tmp_path / "repo"
    folder(base, {"mirror.pbtxt": MIRROR})
    (base / "mirror" / "link.pbtxt").symlink_to(outside)
    assert sorted(folder_subgraphs(base / "mirror", base / "mirror" / "graph.pbtxt")) == ["MirrorCpu"]
    (base / "mirror" / "subgraphs").mkdir()
    (base / "mirror" / "subgraphs" / "again.pbtxt").write_text(MIRROR)
    with pytest.raises(
        GraphLoadError,
        match=r"subgraph type 'MirrorCpu' is declared twice in the graph folder: "
        r"mirror.pbtxt and subgraphs/again.pbtxt",
    ):
        folder_subgraphs(base / "mirror")
