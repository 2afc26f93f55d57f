"""Which request an in-band error answers, and the automatic timestamp the next request will probably get.

OVMS's in-band errors carry no request id and a rejected request does not
advance the server's timestamp counter, so the client keeps a short ledger of
what it sent: an error is attributed to the most recent request sent before it
arrived that has no error yet (a "first request" error to the first request),
and the counter is replayed without the rejected request (`StreamClient`
explains the limits of this for pipelined sends).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ovms_notebook.framework.timestamps import next_allowed

__all__ = ["Sent", "SentRequests", "advance"]

_FIRST_REQUEST = "partial deserialization of first request"
#: How OVMS ends an in-band error that rejects a request (`src/mediapipe_internal/mediapipegraphexecutor.hpp`).
_REQUEST_CONTEXTS = (_FIRST_REQUEST, "partial deserialization of subsequent requests", "validate subsequent requests")


@dataclass
class Sent:
    """What error attribution and the counter replay need to know about one request."""

    seq: int
    manual: bool
    timestamp: int | None
    before: int  # the counter prediction before this request
    rejected: bool = False


class SentRequests:
    """The newest requests sent on one stream (the first one always kept apart); used under the client's lock."""

    def __init__(self, keep: int = 4096) -> None:
        self._sent: deque[Sent] = deque(maxlen=keep)
        self._first: Sent | None = None

    def add(self, sent: Sent) -> None:
        """Remember one request just queued."""
        self._sent.append(sent)
        if self._first is None:
            self._first = sent

    def attribute(self, text: str) -> tuple[Sent, int] | None:
        """The request an in-band error most likely answers, marked rejected, and the counter replayed without it;
        None when the error rejects no request."""
        if not text.endswith(_REQUEST_CONTEXTS):
            return None  # not a rejected request (OVMS always names the context of one)
        sent = list(self._sent)
        if text.endswith(_FIRST_REQUEST):
            candidates = [i for i, s in enumerate(sent) if s is self._first and not s.rejected]
        else:
            candidates = [i for i, s in enumerate(sent) if s is not self._first and not s.rejected]
        if not candidates:
            return None
        index = candidates[-1]
        sent[index].rejected = True
        counter = sent[index].before
        for other in sent[index + 1 :]:
            if not other.rejected:
                counter = advance(counter, other.manual, other.timestamp)
        return sent[index], counter


def advance(counter: int, manual: bool, timestamp: int | None) -> int:
    """OVMS's counter after a request pushed whole: manual sets the base, every request adds one."""
    if manual:
        return next_allowed(timestamp) if timestamp is not None else counter
    return next_allowed(counter)
