"""Notebook views of a server and its streams: graph drawings, stream timelines, execution traces, the server panel
(and its remote counterpart for a server known only by its address).

Each widget owns the ipywidgets it shows (`widget.box`) instead of subclassing one (widgets/lifecycle.py), ends
its threads and streams at `close()` (or when it is garbage-collected), and a console, player or following
timeline made again for the same server and graph (a re-run cell) closes the one made before.

Everything that draws goes through `render.RENDER_LOCK` (matplotlib is not
thread-safe); background threads only set widget traits or call
`Output.append_*`, never `print`, `display()` or `with output:`.
"""

from ovms_notebook.widgets import display_hooks as _display_hooks  # noqa: F401  (registers the views)
from ovms_notebook.widgets.console import SentRequest, StreamConsole, StreamEnd
from ovms_notebook.widgets.editors import InputEditor
from ovms_notebook.widgets.graph_render import GraphRenderError, dot_available, render_graph
from ovms_notebook.widgets.graphview import GraphView, graph_dot
from ovms_notebook.widgets.live import LiveOutputs, OutputPanel
from ovms_notebook.widgets.player import FramePlayer
from ovms_notebook.widgets.remote_panel import RemotePanel
from ovms_notebook.widgets.render import PNG_SIGNATURE, RENDER_LOCK, THREAD_PREFIX, figure_to_png
from ovms_notebook.widgets.server_panel import ServerPanel, panel_for, server_mimebundle
from ovms_notebook.widgets.server_tables import graphs_table_html, header_html
from ovms_notebook.widgets.timeline import (
    SPECIAL_TIMESTAMPS,
    Timeline,
    TimelineRecord,
    latest_stream_events,
    records_from_events,
    records_from_log,
    timeline_figure,
    timeline_png,
)
from ovms_notebook.widgets.trace_plot import plot_trace, trace_png

__all__ = [
    "PNG_SIGNATURE",
    "RENDER_LOCK",
    "SPECIAL_TIMESTAMPS",
    "THREAD_PREFIX",
    "FramePlayer",
    "GraphRenderError",
    "GraphView",
    "InputEditor",
    "LiveOutputs",
    "OutputPanel",
    "RemotePanel",
    "SentRequest",
    "ServerPanel",
    "StreamConsole",
    "StreamEnd",
    "Timeline",
    "TimelineRecord",
    "dot_available",
    "figure_to_png",
    "graph_dot",
    "graphs_table_html",
    "header_html",
    "latest_stream_events",
    "panel_for",
    "plot_trace",
    "records_from_events",
    "records_from_log",
    "render_graph",
    "server_mimebundle",
    "timeline_figure",
    "timeline_png",
    "trace_png",
]


def __getattr__(name: str) -> object:
    """`LiveCamera` and `CameraWidget` import anywidget (the `notebook` extra) only when asked for."""
    if name == "LiveCamera":
        from ovms_notebook.widgets.camera import LiveCamera

        return LiveCamera
    if name == "CameraWidget":
        from ovms_notebook.widgets.camera_widget import CameraWidget

        return CameraWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
