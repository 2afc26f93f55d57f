"""Regenerate the README's lesson pictures from real runs of the notebooks.

Each lesson marks one code cell with the tag `readme-picture`. This script runs the notebook top to bottom in a
fresh kernel (as tests/test_notebooks.py does) and writes that cell's image output to
`docs/images/<notebook>.png` (or `.svg` for a graph drawing). Lesson 02's picture is a JupyterLab screenshot
that the browser test takes.

    .venv/bin/python scripts/lesson_pictures.py [01_explore_graphs ...]
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IMAGES = ROOT / "docs" / "images"
LESSONS = ("01_explore_graphs", "03_tracking_prototype", "04_openvino_models")
TAG = "readme-picture"


def picture(notebook: nbformat.NotebookNode) -> tuple[str, bytes]:
    """(suffix, bytes) of the last image the tagged cell displayed (a run notebook); ValueError when none."""
    tagged = [cell for cell in notebook.cells if TAG in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged {TAG!r}, found {len(tagged)}")
    images = []
    for output in tagged[0].get("outputs", []):
        data = output.get("data", {})
        if "image/png" in data:
            images.append((".png", base64.b64decode(data["image/png"])))
        elif "image/svg+xml" in data:
            images.append((".svg", data["image/svg+xml"].encode()))
    if not images:
        raise ValueError(f"the cell tagged {TAG!r} displayed no PNG or SVG image")
    return images[-1]


def main(names: list[str]) -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in names or LESSONS:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        suffix, image = picture(notebook)
        target = IMAGES / f"{name}{suffix}"
        target.write_bytes(image)
        print(f"{name}: {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
