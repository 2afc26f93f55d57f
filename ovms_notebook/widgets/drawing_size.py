"""Graph drawings sized to read in a notebook: natural size for small graphs, never wider than the page.

Graphviz writes an SVG's size in points (`width="176pt"`); a browser shows
1 pt as 4/3 CSS px, and an `<img>` in a widget box stretched to the box's
width blows a three-node drawing up to the page width and its text to twice
its size. `fit_svg` rewrites the size in CSS pixels at the natural scale,
shrunk only when the drawing is wider than `MAX_WIDTH_PX`, and never below
`MIN_SCALE` (node labels stay at least `MIN_FONT_PX`): past that, the drawing
keeps its width and its box scrolls sideways instead of shrinking the text
out of reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Width a notebook's output area gives a drawing (JupyterLab and Notebook 7 at a 1280 px window).
MAX_WIDTH_PX = 860
#: Graphviz font size of node labels (points) in `graph_dot`; edge labels use `EDGE_FONT_PT`.
NODE_FONT_PT = 11.0
EDGE_FONT_PT = 9.0
#: Smallest node-label text a shrunk drawing may show, in CSS pixels.
MIN_FONT_PX = 10.0
PX_PER_PT = 4.0 / 3.0
MIN_SCALE = MIN_FONT_PX / (NODE_FONT_PT * PX_PER_PT)

_SIZE = re.compile(rb'<svg width="([0-9.]+)pt" height="([0-9.]+)pt"')


@dataclass(frozen=True)
class DrawingSize:
    """How a drawing is shown: its CSS size in pixels and the scale from its natural size (1 pt = 4/3 px)."""

    width_px: int
    height_px: int
    scale: float

    @property
    def node_font_px(self) -> float:
        """The CSS pixel size of node labels as shown."""
        return NODE_FONT_PT * PX_PER_PT * self.scale

    @property
    def scrolls(self) -> bool:
        """True when the drawing is wider than the page even at the smallest readable scale."""
        return self.width_px > MAX_WIDTH_PX


def natural_size(svg: bytes) -> tuple[float, float]:
    """(width, height) in points that Graphviz wrote on an SVG; ValueError when it wrote none."""
    match = _SIZE.search(svg)
    if match is None:
        raise ValueError("the SVG has no width/height in points (not drawn by Graphviz's dot?)")
    return float(match[1]), float(match[2])


def fitted_size(width_pt: float, height_pt: float, max_width_px: int = MAX_WIDTH_PX) -> DrawingSize:
    """The size to show a drawing of `width_pt` x `height_pt` points at, per the rules above."""
    width_px, height_px = width_pt * PX_PER_PT, height_pt * PX_PER_PT
    scale = 1.0 if width_px <= max_width_px else max(max_width_px / width_px, MIN_SCALE)
    return DrawingSize(round(width_px * scale), round(height_px * scale), scale)


def fit_svg(svg: bytes, max_width_px: int = MAX_WIDTH_PX) -> tuple[bytes, DrawingSize]:
    """The SVG with its width and height in CSS pixels (fitted), and that size.

    The `viewBox` Graphviz writes stays, so the browser scales the drawing to
    the new size; nothing else changes.
    """
    size = fitted_size(*natural_size(svg), max_width_px=max_width_px)
    fitted = _SIZE.sub(f'<svg width="{size.width_px}px" height="{size.height_px}px"'.encode(), svg, count=1)
    return fitted, size


def png_dpi(scale: float) -> float:
    """The dpi at which Graphviz draws a PNG at `scale` times its natural size (96 dpi: 1 pt is 4/3 px, as a
    browser shows the SVG)."""
    return 96.0 * scale
