"""The client-side log of a stream: `LogEntry`, one request, response, in-band error or end, in arrival order.

Entries are plain frozen records, made by `StreamClient` (client/stream.py)
and read by everything downstream of it — the console's log and live outputs,
the timeline, recordings and replays — so they live apart from the gRPC
machinery that produces them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Callback", "EntryKind", "LogEntry"]

EntryKind = Literal["request", "response", "error", "end"]
Callback = Callable[["LogEntry"], None]


@dataclass(frozen=True)
class LogEntry:
    """One item of a stream's client-side log, in the order the client saw it.

    request: `timestamp` is the manual one sent, or the predicted automatic one (`manual=False`; None
    when it cannot be predicted); `names`/`values` are the inputs as given; `parameters` the request's
    parameters as sent (OVMS_MP_TIMESTAMP among them when manual) and `datatypes` the overrides given,
    so the request can be rebuilt byte for byte (what `client.recording` does).
    response: `timestamp` is the response's OVMS_MP_TIMESTAMP; `values` maps each output name to its
    decoded value (a ValueError instance when it could not be decoded).
    error: `text` is the in-band error_message; `request_seq` the request it answers (client/attribution.py
    says how that is found: exact for the timestamp errors it predicts, a best guess for others; None: rejects none).
    end: `text` is "OK" or "[StatusCode.X] details", `code` the status code name.
    """

    kind: EntryKind
    seq: int
    time: float
    timestamp: int | None = None
    manual: bool = False
    names: tuple[str, ...] = ()
    values: dict[str, object] = field(default_factory=dict)
    text: str = ""
    code: str | None = None
    request_seq: int | None = None
    parameters: dict[str, bool | int | str] = field(default_factory=dict)
    datatypes: dict[str, str] = field(default_factory=dict)
