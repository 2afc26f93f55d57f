"""The stream console's log as HTML: one line per request, response, in-band error and end, newest last.

Formats (what a person, and a browser test, reads):

    request #2 @100 (manual) in=[1.5]
    response out @100: [1.5]
    error → request #2: Malformed packet timestamp - ...        (red; the request the client pins it to)
    stream ended: OK                                            (green; red with the status otherwise)
    not sent: input 'in': item 0 ('x') is not a FP32 value      (red; a request that never left)

Requests are numbered from 0 within a stream. With an in-kernel server, a
request's timestamp is the one the server assigned (from its event log via the
client's tag); otherwise the client's prediction, "@?" when it has none.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ovms_notebook.widgets.draw import summarize

__all__ = ["LogNote", "log_html", "log_lines", "server_request_timestamps"]

_RED, _GREEN, _GREY = "#b91c1c", "#15803d", "#6b7280"
MAX_LINES = 200


@dataclass(frozen=True)
class LogNote:
    """A line the console adds itself (a request that could not be sent), placed by time among the entries."""

    time: float
    text: str


def server_request_timestamps(events: Iterable[Any]) -> list[int | None]:
    """Per request of one stream, in order, the timestamp the server gave it (None: rejected).

    Server `StreamEvent`s log every request as accepted ("request") or rejected (an "error" naming no
    output stream), in the order the server read them, which is the order they were sent.
    """
    found: list[int | None] = []
    for event in events:
        if event.kind == "request":
            found.append(event.timestamp)
        elif event.kind == "error" and not event.streams:
            found.append(None)
    return found


def _stamp(timestamp: int | None) -> str:
    return f"@{timestamp}" if timestamp is not None else "@?"


def log_lines(entries: Sequence[Any], request_numbers: Mapping[int, int],
              server_timestamps: Sequence[int | None] = (), notes: Iterable[LogNote] = ()) -> list[tuple[str, str]]:
    """(text, colour) per line; `request_numbers` maps a request entry's `seq` to its number in the stream."""
    items: list[tuple[float, int, Any]] = [(e.time, 0, e) for e in entries]
    items += [(n.time, 1, n) for n in notes]
    items.sort(key=lambda item: (item[0], item[1]))
    lines: list[tuple[str, str]] = []
    asked: dict[int, int | None] = {}  # request number -> its timestamp
    answered: set[int | None] = set()  # timestamps with an output
    failed: set[int] = set()  # request numbers answered by an in-band error
    for _, _, item in items:
        if isinstance(item, LogNote):
            lines.append((f"not sent: {item.text}", _RED))
            continue
        kind = item.kind
        if kind == "request":
            number = request_numbers.get(item.seq)
            timestamp = item.timestamp
            if number is not None and number < len(server_timestamps) and server_timestamps[number] is not None:
                timestamp = server_timestamps[number]
            mode = "manual" if item.manual else "auto"
            values = " ".join(f"{name}={summarize(value)}" for name, value in item.values.items()) or "(no inputs)"
            label = f"#{number}" if number is not None else f"(log #{item.seq})"
            lines.append((f"request {label} {_stamp(timestamp)} ({mode}) {values}", ""))
            if number is not None:
                asked[number] = timestamp
        elif kind == "response":
            answered.add(item.timestamp)
            for name, value in item.values.items():
                lines.append((f"response {name} {_stamp(item.timestamp)}: {summarize(value)}", ""))
        elif kind == "error":
            number = request_numbers.get(item.request_seq) if item.request_seq is not None else None
            target = f" → request #{number}" if number is not None else ""
            lines.append((f"error{target}: {item.text}", _RED))
            if number is not None:
                failed.add(number)
        elif kind == "end":
            silent = [t for n, t in asked.items() if n not in failed and t not in answered]
            said = (f" · {len(silent)} of {len(asked)} requests got no output at their timestamp ("
                    + ", ".join(_stamp(t) for t in silent[:5]) + (", …" if len(silent) > 5 else "")
                    + "): a graph may answer a request with nothing, e.g. a FlowLimiterCalculator dropping frames"
                    ) if silent and item.text == "OK" else ""
            lines.append((f"stream ended: {item.text}{said}", _GREEN if item.text == "OK" else _RED))
    return lines


def log_html(lines: Sequence[tuple[str, str]], max_lines: int = MAX_LINES) -> str:
    """The lines as HTML divs (monospace, errors red), the newest `max_lines` only."""
    shown = lines[-max_lines:]
    parts = ['<div style="font-family:monospace;font-size:12px;line-height:1.35">']
    if len(lines) > len(shown):
        parts.append(f'<div style="color:{_GREY}">… {len(lines) - len(shown)} earlier lines</div>')
    if not lines:
        parts.append(f'<div style="color:{_GREY}">nothing sent yet</div>')
    for text, colour in shown:
        style = f' style="color:{colour}"' if colour else ""
        # quote=False: the exact error text (with its quotes) stays in the HTML a test or a person reads.
        parts.append(f"<div{style}>{html.escape(text, quote=False)}</div>")
    parts.append("</div>")
    return "".join(parts)
