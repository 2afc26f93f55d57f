"""Drawing a stream's execution trace: one lane per node on a wall-clock axis.

Lanes, top to bottom: the graph input (packets added by requests), then the
graph's nodes in pbtxt order. Each Process() call is a bar labelled with its
input timestamp; a thin line on the consumer's lane shows how long each input
packet waited between its producer finishing and the call starting, and an
arrow joins the two. The x axis is milliseconds since the stream opened.
Everything is built with object-oriented matplotlib under `RENDER_LOCK`.
"""

from __future__ import annotations

from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ovms_notebook.framework.trace import INPUT, Trace
from ovms_notebook.widgets.render import RENDER_LOCK, figure_to_png

_COLOURS = {"native": "#2563eb", "python": "#ea580c", "input": "#16a34a"}
_WAIT = "#94a3b8"
_ARROW = "#475569"
_MAX_LABELS = 80  # per lane; past it bars go unlabelled
_MAX_ARROWS = 400
_LABEL_SIZE = 8.0  # points, the input timestamps over the bars
_LANE_SIZE = 8.5  # points, the lane names
_LANE_CHARS = 30  # a longer lane name ("Subgraph/Node") goes on two lines, split at its last "/"


def plot_trace(trace: Trace, ax: Axes | None = None, *, title: str | None = None, width: float = 10.0) -> Axes:
    """Draw `trace` on `ax` (a new Figure's axes when None) and return the axes.

    The y tick labels are the lanes (`trace.lanes`), top to bottom; native nodes are blue, Python nodes
    orange, graph input packets green.
    """
    with RENDER_LOCK:
        if ax is None:
            ax = _trace_figure(trace, width).add_subplot()
        _draw(trace, ax, title)
        return ax


def _trace_figure(trace: Trace, width: float) -> Figure:
    """A Figure tall enough for the trace's lanes."""
    return Figure(figsize=(width, 1.3 + 0.42 * max(len(trace.lanes), 1)), dpi=100)


def trace_png(trace: Trace, *, dpi: float = 100, **kwargs: Any) -> bytes:
    """`plot_trace(trace, **kwargs)` drawn to PNG bytes."""
    with RENDER_LOCK:
        fig = _trace_figure(trace, float(kwargs.pop("width", 10.0)))
        plot_trace(trace, fig.add_subplot(), **kwargs)
        fig.tight_layout()
        return figure_to_png(fig, dpi=dpi)


def _ms(us: float) -> float:
    return us / 1000.0


def _draw(trace: Trace, ax: Axes, title: str | None) -> None:
    lanes = list(trace.lanes)
    rows = len(lanes)
    row = {lane: rows - 1 - i for i, lane in enumerate(lanes)}
    calls = sum(1 for e in trace.events if e.event_type == "PROCESS" and e.kind != "input")
    ax.set_title(title or f"execution trace: {len(trace.nodes)} nodes, {calls} Process() calls", fontsize=10,
                 loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not lanes:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no trace events", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        return

    spans = [e for e in trace.events if e.event_type == "PROCESS" and e.node in row]
    times = [t for e in spans for t in (e.start_us, e.finish_us) if t is not None]
    low, high = (min(times), max(times)) if times else (0, 1)
    least = max((high - low) * 0.002, 1.0)  # a 3 µs call stays visible on a 2 s axis
    labelled: dict[str, list[tuple[float, int]]] = {}  # per lane, (x in ms, input timestamp) of each call

    # Queue waits first (under the bars), then the bars, then arrows on top.
    for wait in trace.queue_waits():
        if wait.consumer in row and wait.wait_us > 0:
            y = row[wait.consumer]
            ax.hlines(y, _ms(wait.producer_finish_us), _ms(wait.consumer_start_us), colors=_WAIT, linewidths=1.2,
                      zorder=1)
    for event in spans:
        y = row[event.node]
        colour = _COLOURS.get(trace.kinds.get(event.node, event.kind), _COLOURS["native"])
        if event.node == INPUT or event.start_us is None:
            at = event.finish_us if event.finish_us is not None else event.time_us
            ax.plot([_ms(at)], [y], marker="|", markersize=14, color=colour, zorder=3)
            x = _ms(at)
        else:
            finish = event.finish_us if event.finish_us is not None else event.start_us
            length = max(finish - event.start_us, least)
            ax.broken_barh([(_ms(event.start_us), _ms(length))], (y - 0.3, 0.6), facecolors=colour, zorder=2)
            x = _ms(event.start_us + length / 2)
        count = len(labelled.setdefault(event.node, []))
        if event.input_timestamp is not None and count < _MAX_LABELS:
            labelled[event.node].append((x, event.input_timestamp))
    points_per_ms = _points_per_ms(ax, _ms(high - low) + 2 * _ms(max((high - low) * 0.03, 1.0)), lanes)
    for node, marks in labelled.items():
        for x, text in _label_groups(marks, points_per_ms):
            ax.annotate(text, (x, row[node] + 0.32), ha="center", va="bottom", fontsize=_LABEL_SIZE,
                        color="#111827", annotation_clip=False)
    arrows = 0
    for wait in trace.queue_waits():
        producer = wait.producer
        if producer not in row or wait.consumer not in row or arrows >= _MAX_ARROWS:
            continue
        arrows += 1
        ax.annotate("", xy=(_ms(wait.consumer_start_us), row[wait.consumer] + 0.3),
                    xytext=(_ms(wait.producer_finish_us), row[producer] - 0.3),
                    arrowprops={"arrowstyle": "->", "color": _ARROW, "lw": 0.6, "shrinkA": 0, "shrinkB": 0},
                    zorder=4)

    ax.set_yticks(range(rows), [_lane_text(lanes[rows - 1 - y]) for y in range(rows)], fontsize=_LANE_SIZE)
    ax.set_ylim(-0.6, rows - 0.2)
    pad = max((high - low) * 0.03, 1.0)
    ax.set_xlim(_ms(low - pad), _ms(high + pad))
    ax.set_xlabel("time since the stream opened (ms)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6, zorder=0)


def _lane_text(lane: str) -> str:
    """A lane's name as its tick label: a long "Subgraph/Node" name on two lines, so the lanes keep the width."""
    if len(lane) <= _LANE_CHARS or "/" not in lane:
        return lane
    prefix, name = lane.rsplit("/", 1)
    return f"{prefix}/\n{name}"


def _points_per_ms(ax: Axes, span_ms: float, lanes: list[str]) -> float:
    """About how many points one millisecond of the x axis is wide (the lane names take their share first)."""
    longest = max((len(line) for lane in lanes for line in _lane_text(lane).splitlines()), default=0)
    figure = ax.get_figure(root=True)
    figure_inches = float(figure.get_size_inches()[0]) if figure is not None else 10.0
    width_inches = min(figure_inches * ax.get_position().width, figure_inches - 0.6 - longest * 0.6 * _LANE_SIZE / 72)
    return width_inches * 72 / max(span_ms, 1e-9)


def _label_groups(marks: list[tuple[float, int]], points_per_ms: float) -> list[tuple[float, str]]:
    """The input timestamps of one lane's calls as labels that do not overlap: calls closer than their labels are
    wide share one label, "2..4" for a run of consecutive timestamps, else "1,5", centred over the calls."""
    groups: list[list[tuple[float, int]]] = []
    for mark in sorted(marks):
        if groups:
            last = groups[-1]
            half_widths = (len(_group_text(last)) + len(str(mark[1]))) * 0.31 * _LABEL_SIZE + 3
            if (mark[0] - last[-1][0]) * points_per_ms < half_widths:
                last.append(mark)
                continue
        groups.append([mark])
    return [((group[0][0] + group[-1][0]) / 2, _group_text(group)) for group in groups]


def _group_text(group: list[tuple[float, int]]) -> str:
    stamps = sorted({timestamp for _, timestamp in group})
    if len(stamps) > 2 and stamps == list(range(stamps[0], stamps[-1] + 1)):
        return f"{stamps[0]}..{stamps[-1]}"
    return ",".join(str(timestamp) for timestamp in stamps)
