"""Drawing a stream's timeline: `TimelineRecord`s -> an object-oriented matplotlib Figure -> PNG.

The x axis is the MediaPipe timestamp. Real streams have awkward ones —
wall-clock microseconds, PreStream/PostStream — so `_axis_for` picks a raw,
relative or rank axis and the axis label says which. Everything is built and
drawn under `RENDER_LOCK` (matplotlib is not thread-safe).
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator

from ovms_notebook.widgets.render import RENDER_LOCK, figure_to_png

if TYPE_CHECKING:
    from ovms_notebook.widgets.timeline import TimelineRecord

ERROR_LANE = "errors"
END_LANE = "end"

# MediaPipe's special timestamps (mediapipe/framework/timestamp.h), by value.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
SPECIAL_TIMESTAMPS = {
    _INT64_MIN: "Unset",
    _INT64_MIN + 1: "Unstarted",
    _INT64_MIN + 2: "PreStream",
    _INT64_MIN + 3: "Min",
    _INT64_MAX - 3: "Max",
    _INT64_MAX - 2: "PostStream",
    _INT64_MAX - 1: "OneOverPostStream",
    _INT64_MAX: "Done",
}
_SPECIAL_MAGNITUDE = 2**62  # beyond this nothing is a real packet time

_AUTO = {"color": "#2563eb", "marker": "o", "label": "request, automatic timestamp"}
_MANUAL = {"color": "#ea580c", "marker": "D", "label": "request, manual OVMS_MP_TIMESTAMP"}
_OUTPUT = {"color": "#16a34a", "marker": "s", "label": "output packet"}
_ERROR = {"color": "#dc2626", "marker": "X", "label": "error"}
_REJECTED = {"color": "#dc2626", "marker": "o", "label": "request, rejected (hollow)"}
_GUIDE = "#cbd5e1"
_MAX_NOTES = 8
_NOTE_CHARS = 48
_HEADING_SIZE = 10.5  # points
_HEADING_LINES = 2  # a long end status is cut at a word after this many lines; the widget shows it whole
_LINE_INCHES = 0.2


@dataclass(frozen=True)
class _Axis:
    """How timestamps map to x: raw, relative to the first, or by rank; and what the axis says."""

    mode: Literal["timestamp", "relative", "rank"]
    origin: int
    ranks: dict[int, int]
    label: str

    def x(self, timestamp: int) -> float:
        if self.mode == "rank":
            return float(self.ranks[timestamp])
        return float(timestamp - self.origin)


def _timestamp_text(timestamp: int) -> str:
    return SPECIAL_TIMESTAMPS.get(timestamp) or str(timestamp)


def _axis_for(timestamps: list[int]) -> _Axis:
    distinct = sorted(set(timestamps))
    if not distinct:
        return _Axis("timestamp", 0, {}, "MediaPipe timestamp")
    special = any(abs(t) >= _SPECIAL_MAGNITUDE for t in distinct)
    span = distinct[-1] - distinct[0]
    smallest_gap = min((b - a for a, b in itertools.pairwise(distinct)), default=0)
    if special or (smallest_gap and span / smallest_gap > 2000):
        why = "special timestamps" if special else "timestamps too far apart to scale"
        return _Axis("rank", 0, {t: i for i, t in enumerate(distinct)},
                     f"MediaPipe timestamp, in order ({why}: equal spacing, real values on the ticks)")
    origin = distinct[0]
    if abs(origin) >= 10_000 and abs(origin) > 10 * span:
        return _Axis("relative", origin, {}, f"MediaPipe timestamp minus the first one ({origin})")
    return _Axis("timestamp", 0, {}, "MediaPipe timestamp")


def end_status(records: Sequence[TimelineRecord]) -> str | None:
    """The label of the stream's last end record: its final status, or None while the stream is open."""
    ends = [r for r in records if r.kind == "end"]
    return ends[-1].label if ends else None


def _lanes(records: Sequence[TimelineRecord]) -> list[str]:
    inputs = [r.lane for r in records if r.kind == "request"]
    outputs = [r.lane for r in records if r.kind == "output"]
    lanes = list(dict.fromkeys(inputs)) + [lane for lane in dict.fromkeys(outputs) if lane not in inputs]
    if any(r.kind == "error" for r in records):
        lanes.append(ERROR_LANE)
    return lanes


def _first_line(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= _NOTE_CHARS else line[: _NOTE_CHARS - 1] + "…"


def heading_lines(title: str | None, status: str | None, width: float, left: float) -> list[str]:
    """The figure's heading, wrapped to the width right of `left` (inches) and cut at a word.

    "title  ·  ended: status" (or "stream open"); a failed stream's status can be a paragraph, so at most
    `_HEADING_LINES` lines are kept and the last one ends in "…" when something was left out.
    """
    text = (title or "stream timeline") + (f"  ·  ended: {status}" if status is not None else "  ·  stream open")
    chars = max(20, int((width - left - 0.25) * 72 / (_HEADING_SIZE * 0.55)))  # ~0.55 em per character
    lines = textwrap.wrap(text, chars, break_long_words=True, drop_whitespace=True) or [text]
    if len(lines) <= _HEADING_LINES:
        return lines
    kept = lines[:_HEADING_LINES]
    last = kept[-1]
    if len(last) > chars - 2:
        last = last[: chars - 2].rsplit(" ", 1)[0] if " " in last[: chars - 2] else last[: chars - 2]
    kept[-1] = last.rstrip(" .,;:") + " …"
    return kept


def timeline_figure(records: Sequence[TimelineRecord], *, title: str | None = None, width: float = 9.0) -> Figure:
    """A matplotlib Figure of the records: one row per input and output stream, errors on their own row.

    The x axis is the MediaPipe timestamp; light vertical lines mark every
    request's timestamp so the outputs it produced line up under it. Huge or
    special timestamps switch the axis to "relative to the first" or "by
    rank", and the axis label says which. A rejected request is a hollow red mark
    in its input lane, its error's ✖ right under it in the errors lane.
    """
    with RENDER_LOCK:
        return _build(list(records), title, width)


def _rank_ticks(axis: _Axis) -> tuple[list[float], list[str]]:
    ordered = sorted(axis.ranks, key=axis.ranks.__getitem__)
    shown = ordered[:: max(1, -(-len(ordered) // 12))]
    return [float(axis.ranks[t]) for t in shown], [_timestamp_text(t) for t in shown]


def _build(records: list[TimelineRecord], title: str | None, width: float) -> Figure:
    lanes = _lanes(records)
    status = end_status(records)
    failed = status is not None and status != "OK"
    placed = [r.timestamp for r in records if r.timestamp is not None and r.kind != "end"]
    axis = _axis_for(placed)
    ticks, tick_labels = _rank_ticks(axis) if axis.mode == "rank" else ([], [])
    slanted = any(len(label) > 6 for label in tick_labels)

    # Fixed bands in inches: title and legend on top, the lanes, tick labels and axis label below.
    rows = max(len(lanes), 1)
    left_inches = min(1.6, 0.25 + 0.075 * max((len(lane) for lane in lanes), default=6))
    heading = heading_lines(title, status, width, left_inches)
    top_band, bottom_band = 0.62 + _LINE_INCHES * (len(heading) - 1), 0.62 + (0.4 if slanted else 0.0)
    height = top_band + bottom_band + 0.42 * rows + 0.2
    fig = Figure(figsize=(width, height), dpi=100)
    left = left_inches / width
    fig.subplots_adjust(left=left, right=1 - 0.25 / width, top=1 - top_band / height, bottom=bottom_band / height)
    ax = fig.add_subplot()
    fig.text(left, 1 - 0.08 / height, "\n".join(heading), ha="left", va="top", fontsize=_HEADING_SIZE,
             color="#b91c1c" if failed else "#111827", linespacing=1.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    if not lanes:
        ax.set_yticks([])
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no packets yet", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        return fig

    row = {lane: rows - 1 - i for i, lane in enumerate(lanes)}
    xs = [axis.x(t) for t in placed]
    low, high = (min(xs), max(xs)) if xs else (0.0, 0.0)
    step = 1.0 if axis.mode == "rank" else max((high - low) * 0.06, 1.0)

    # Guides first, under everything: one per request timestamp.
    guides = sorted({axis.x(r.timestamp) for r in records if r.kind == "request" and r.timestamp is not None})
    if guides:
        ax.vlines(guides, -0.5, rows - 0.5, colors=_GUIDE, linewidths=0.8 if len(guides) <= 60 else 0.4, zorder=0)

    shown: list[dict[str, str]] = []

    def scatter(chosen: list[TimelineRecord], style: dict[str, str], size: float) -> None:
        points = [(axis.x(r.timestamp), row[r.lane]) for r in chosen if r.timestamp is not None]
        if points:
            x, y = zip(*points, strict=True)
            ax.scatter(x, y, s=size, c=style["color"], marker=style["marker"], zorder=3, linewidths=0)
            shown.append(style)

    requests = [r for r in records if r.kind == "request" and not r.rejected]
    scatter([r for r in requests if not r.manual], _AUTO, 46)
    scatter([r for r in requests if r.manual], _MANUAL, 40)
    rejected = [r for r in records if r.kind == "request" and r.rejected and r.timestamp is not None]
    for manual in (False, True):  # hollow, in the error colour, with the marker of who chose the timestamp
        chosen = [(axis.x(r.timestamp), row[r.lane]) for r in rejected
                  if r.manual == manual and r.timestamp is not None]
        if chosen:
            hollow_x, hollow_y = zip(*chosen, strict=True)
            ax.scatter(hollow_x, hollow_y, s=46, facecolors="none", edgecolors=_REJECTED["color"],
                       marker=(_MANUAL if manual else _AUTO)["marker"], zorder=3, linewidths=1.5)
    if rejected:
        shown.append(_REJECTED)
    scatter([r for r in records if r.kind == "output"], _OUTPUT, 40)

    errors = [r for r in records if r.kind == "error"]
    if errors:
        shown.append(_ERROR)
        error_x: list[float] = []
        for error in errors:  # an error without a timestamp goes after the last point, in order
            error_x.append(axis.x(error.timestamp) if error.timestamp is not None else max([high, *error_x]) + step)
        ax.scatter(error_x, [row[ERROR_LANE]] * len(errors), s=70, c=_ERROR["color"], marker="X", zorder=4,
                   linewidths=0)
        right = max([high, *error_x])
        for number, (error, x) in enumerate(zip(errors[:_MAX_NOTES], error_x, strict=False)):
            note = _first_line(error.label)
            if error.timestamp is None:
                note = f"(no timestamp) {note}"
            ha = "right" if right > low and x >= (low + right) / 2 else "left"
            ax.annotate(note, (x, row[ERROR_LANE]), xytext=(0, 7 if number % 2 == 0 else -14),
                        textcoords="offset points", fontsize=7.5, color=_ERROR["color"], ha=ha, va="bottom",
                        annotation_clip=False)
        if len(errors) > _MAX_NOTES:
            ax.annotate(f"+{len(errors) - _MAX_NOTES} more errors", (0, row[ERROR_LANE]), xytext=(4, -14),
                        xycoords=("axes fraction", "data"), textcoords="offset points", fontsize=7.5,
                        color=_ERROR["color"])
        high = right

    ax.set_yticks(range(rows), [lanes[rows - 1 - y] for y in range(rows)], fontsize=9)
    ax.set_ylim(-0.6, rows - 0.4)
    pad = max((high - low) * 0.04, 0.5)
    ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel(axis.label, fontsize=9)
    ax.tick_params(axis="x", labelsize=8.5)
    if axis.mode == "rank":
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels(tick_labels, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)

    handles = [Line2D([], [], linestyle="", markersize=7, color=style["color"], marker=style["marker"],
                      label=style["label"], **_hollow(style)) for style in shown]
    legend_top = 1 - (0.3 + _LINE_INCHES * (len(heading) - 1)) / height  # under the heading's last line
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left - 0.01, legend_top), ncol=4,
               fontsize=8, frameon=False, handletextpad=0.3, columnspacing=1.4, borderaxespad=0, borderpad=0)
    return fig


def _hollow(style: dict[str, str]) -> dict[str, Any]:
    """Legend marker options: the rejected request's is hollow, like its marks."""
    if style is _REJECTED:
        return {"markerfacecolor": "none", "markeredgewidth": 1.5}
    return {"markeredgewidth": 0}


def timeline_png(records: Sequence[TimelineRecord], *, dpi: float = 100, **kwargs: Any) -> bytes:
    """`timeline_figure(records, **kwargs)` drawn to PNG bytes."""
    with RENDER_LOCK:
        return figure_to_png(timeline_figure(records, **kwargs), dpi=dpi)
