"""The notebook views of the lower layers' data classes, registered with `ovms_notebook.display`.

Imported by `ovms_notebook.widgets`; the classes themselves (`Server`, `Trace`, `StreamClient`) do not
import the UI, they ask `ovms_notebook.display.mimebundle` for their bundle.
"""

from __future__ import annotations

from typing import Any

from ovms_notebook import display
from ovms_notebook.client.stream import StreamClient
from ovms_notebook.framework.trace import Trace
from ovms_notebook.server.lifecycle import Server
from ovms_notebook.widgets.server_panel import server_mimebundle
from ovms_notebook.widgets.timeline import records_from_log, timeline_png
from ovms_notebook.widgets.trace_plot import trace_png


def trace_mimebundle(trace: Trace, **kwargs: Any) -> dict[str, Any]:
    """A trace's one-line summary plus its drawing as a PNG."""
    return {"text/plain": repr(trace), "image/png": trace_png(trace)}


def stream_mimebundle(client: StreamClient, **kwargs: Any) -> dict[str, Any]:
    """A stream client's one-line summary plus its timeline as a static PNG (once it has logged something)."""
    bundle: dict[str, Any] = {"text/plain": repr(client)}
    records = records_from_log(client.log)
    if records:
        bundle["image/png"] = timeline_png(records, title=f"{client.graph} (client log)")
    return bundle


display.register(Server, server_mimebundle)
display.register(Trace, trace_mimebundle)
display.register(StreamClient, stream_mimebundle)
