"""A graph folder's own subgraphs: pbtxt files beside the graph whose `type:` names the subgraph.

MediaPipe registers a subgraph under its `type:` (a graph config used as a
node's `calculator`). OVMS's MediaPipe has only the subgraphs compiled into its
build; here a graph folder can bring more: every `*.pbtxt` in the graph's
folder or its `subgraphs/` folder that sets `type:` is one, and nodes naming
that type are expanded like the package's own. Files are read only inside the
folder: a symlink out of it is skipped, as for everything a graph folder names.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ovms_notebook.errors import GraphLoadError

log = logging.getLogger(__name__)

_TYPE = re.compile(r'^\s*type\s*:\s*"([A-Za-z_][A-Za-z0-9_]*)"', re.M)
#: Where a graph folder's subgraph files may be: the folder itself and its `subgraphs/` folder.
SUBGRAPH_FOLDERS = (".", "subgraphs")


def folder_subgraphs(base_path: Path, graph_path: Path | None = None) -> dict[str, str]:
    """{subgraph type: pbtxt text} for the subgraph files of the graph folder `base_path` (not `graph_path`).

    GraphLoadError when two files declare one type (MediaPipe would refuse to
    register the second).
    """
    found: dict[str, tuple[Path, str]] = {}
    root = base_path.resolve()
    skip = graph_path.resolve() if graph_path is not None else None
    for folder in SUBGRAPH_FOLDERS:
        directory = base_path / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.pbtxt")):
            resolved = path.resolve()
            if resolved == skip:
                continue
            if not resolved.is_relative_to(root):
                log.warning("subgraph file %s leads out of the graph folder %s; skipped", path, base_path)
                continue
            try:
                text = resolved.read_text()
            except OSError as error:
                raise GraphLoadError(f"subgraph file {path} cannot be read: {error.strerror or error}") from error
            match = _TYPE.search(text)
            if match is None:
                continue  # a graph, not a subgraph
            name = match[1]
            if name in found:
                raise GraphLoadError(
                    f"subgraph type {name!r} is declared twice in the graph folder: {found[name][0].name} and "
                    f"{path.relative_to(base_path)}"
                )
            found[name] = (path.relative_to(base_path), text)
    return {name: text for name, (_, text) in found.items()}
