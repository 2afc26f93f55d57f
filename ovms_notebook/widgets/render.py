"""One lock for every matplotlib render, and the Figure -> PNG step the widgets share.

matplotlib is not thread-safe and widget callbacks, timer threads and cells can
all draw at once (ipykernel 7 subshells). Everything here builds object-oriented
`Figure`s (never pyplot) and turns them into PNG bytes on an Agg canvas while
holding `RENDER_LOCK`; the bytes go to `widgets.Image.value`, which any thread
may set.
"""

from __future__ import annotations

import io
import threading

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RENDER_LOCK = threading.RLock()
"""Held while a figure is built or drawn; re-entrant so a builder may call `figure_to_png` inside it."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THREAD_PREFIX = "ovms-widget-"
"""Every thread the widgets start is named with this prefix, so a leak is easy to find."""


def figure_to_png(fig: Figure, dpi: float = 100) -> bytes:
    """Draw `fig` on an Agg canvas and return the PNG bytes (under the render lock)."""
    with RENDER_LOCK:
        canvas = FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        canvas.print_figure(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
