"""Drawing DOT text with Graphviz's `dot`: SVG or PNG bytes, sized to read in a notebook.

`render_graph` runs the `dot` binary (Debian's graphviz) with a timeout and
returns the bytes, or None when there is no `dot` on PATH; `fitted_svg` adds
the notebook sizing of `drawing_size` (and tries a too-wide drawing left to
right).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from ovms_notebook.errors import GraphRenderError
from ovms_notebook.widgets.drawing_size import DrawingSize, fit_svg


def dot_available() -> bool:
    """True when Graphviz's `dot` binary is on PATH."""
    return shutil.which("dot") is not None


def render_graph(
    dot_source: str, fmt: Literal["svg", "png"] = "svg", timeout: float = 10.0, dpi: float | None = None
) -> bytes | None:
    """Run `dot -T<fmt>` on the source: the drawing's bytes, or None when `dot` is not installed.

    Raises GraphRenderError when dot rejects the source or runs past `timeout` seconds.
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    binary = shutil.which("dot")
    if binary is None:
        return None
    command = [binary, f"-T{fmt}"] + ([f"-Gdpi={dpi:g}"] if dpi else [])
    try:
        done = subprocess.run(command, input=dot_source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise GraphRenderError(f"dot took longer than {timeout} s to draw the graph") from error
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GraphRenderError(f"dot could not draw the graph: {message}")
    return done.stdout


def fitted_svg(dot_source: str) -> tuple[bytes, DrawingSize] | None:
    """The drawing as SVG sized to read in a notebook (see `drawing_size`), or None without Graphviz.

    A top-to-bottom drawing too wide for the page (many nodes side by side) is
    also drawn left-to-right, and whichever is shown larger is kept.
    """
    fitted = _fitted(dot_source)
    return None if fitted is None else (fitted[1], fitted[2])


def _fitted(dot_source: str) -> tuple[str, bytes, DrawingSize] | None:
    """(the DOT drawn, its fitted SVG, the size shown) as `fitted_svg` chooses them."""
    svg = render_graph(dot_source, "svg")
    if svg is None:
        return None
    fitted, size = fit_svg(svg)
    if size.scale < 1.0 and "rankdir=TB" in dot_source:
        across_dot = dot_source.replace("rankdir=TB", "rankdir=LR", 1)
        across = render_graph(across_dot, "svg")
        if across is not None:
            across_svg, across_size = fit_svg(across)
            if across_size.scale > size.scale:
                return across_dot, across_svg, across_size
    return dot_source, fitted, size


def _svg_element(svg: bytes) -> str:
    """The `<svg>` element of an SVG document, for inlining in HTML at its own size."""
    text = svg.decode()
    # JupyterLab's rendered-HTML CSS caps an inline <svg> at the output's width: keep the fitted size, scroll
    return '<svg style="max-width:none"' + text[text.index("<svg") + 4 :]
