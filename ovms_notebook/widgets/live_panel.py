"""One output stream's panel in `LiveOutputs`: a "name @timestamp" header over an image, a table or text, a sparkline.

`OutputPanel` only holds widgets and sets them in one comm message
(`show`); deciding what to draw, and when, is `LiveOutputs`'
(widgets/live.py), which makes one panel per output stream.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ovms_notebook.widgets.lifecycle import Composite, close_all

__all__ = ["OutputPanel"]

_GREY = "#6b7280"


class OutputPanel(Composite):
    """One stream's view: `header` ("name @timestamp"), `image`, `html` (table or text) and `sparkline`."""

    def __init__(self, name: str, role: str = "output") -> None:
        self.name = name
        self.role = role
        self.timestamp: int | None = None
        self.header = widgets.HTML(self._header_html(None, "no packet yet"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(display="none", max_width="100%"))
        self.html = widgets.HTML()
        self.sparkline = widgets.Image(format="png", layout=widgets.Layout(display="none", width="160px",
                                                                           height="36px", min_width="160px"))
        self.box = widgets.VBox(
            [self.header, self.image,
             widgets.HBox([self.html, self.sparkline], layout=widgets.Layout(align_items="flex-start"))],
            layout=widgets.Layout(border="1px solid #e5e7eb", padding="4px", margin="2px", min_width="14em"),
        )
        self._own(close_all, [self.box])

    @property
    def header_text(self) -> str:
        """The header as a person reads it, e.g. "previous @2"."""
        return f"{self.name} @{self.timestamp}" if self.timestamp is not None else self.name

    def _header_html(self, timestamp: int | None, note: str = "") -> str:
        stamp = f" @{timestamp}" if timestamp is not None else ""
        extra = f' <span style="color:{_GREY};font-size:11px">{html.escape(note)}</span>' if note else ""
        return f"<b>{html.escape(self.name)}{stamp}</b>{extra}"

    def show(self, timestamp: int | None, note: str, *, image: bytes | None = None, body: str | None = None,
             sparkline: bytes | None = None) -> None:
        """Set what the panel shows in one comm message."""
        with self.box.hold_sync():
            self.timestamp = timestamp
            self.header.value = self._header_html(timestamp, note)
            if image is not None:
                self.image.value = image
                self.image.layout.display = ""
            if body is not None:
                self.html.value = body
            if sparkline is not None:
                self.sparkline.value = sparkline
                self.sparkline.layout.display = ""

    @property
    def png(self) -> bytes:
        return bytes(self.image.value)
