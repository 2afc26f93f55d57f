"""Which request an in-band error answers, and the automatic timestamp the next request will probably get.

OVMS's in-band errors carry no request id (only `error_message`), and a
rejected request does not advance the server's timestamp counter. What the
client does know: OVMS's reader handles one stream's requests in order, so
rejections come back in the order the requests were sent (interleaved with
outputs of graph work), and it can predict, as it sends, the timestamp each
request will get and which ones OVMS must reject for their timestamp. The
ledger here keeps that prediction per request and applies this rule to an
error that rejects a request (`SentRequests.attribute`):

1. only requests sent after the one the previous error answered are candidates
   (errors arrive in request order); a "first request" error answers the first;
2. a timestamp error ("Malformed packet timestamp", "Invalid timestamp format")
   answers the earliest candidate predicted bad (timestamp not greater than the
   last one on an input stream it feeds, outside MediaPipe's range, not an
   int64) — exact whenever the predictions are, pipelined or not;
3. any other rejection (a wrong input name, a bad tensor...) answers the
   earliest candidate neither predicted bad nor already seen accepted (a
   response at its timestamp came back); failing that, the earliest candidate.

A request predicted bad does not move the counter or the per-stream last
timestamps; an error pinned to a request predicted good replays both without it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ovms_notebook.framework.timestamps import is_range_value, next_allowed

__all__ = ["Sent", "SentRequests", "advance", "why_rejected"]

_FIRST_REQUEST = "partial deserialization of first request"
#: How OVMS ends an in-band error that rejects a request (`src/mediapipe_internal/mediapipegraphexecutor.hpp`).
_REQUEST_CONTEXTS = (_FIRST_REQUEST, "partial deserialization of subsequent requests", "validate subsequent requests")
_TIMESTAMP_ERRORS = ("Malformed packet timestamp", "Invalid timestamp format")
_SCAN = 64  # requests not yet seen answered that a response is matched against, oldest first


@dataclass
class Sent:
    """What error attribution and the counter replay need to know about one request."""

    seq: int
    manual: bool
    timestamp: int | None  # the manual one, or the predicted automatic one (None: unknown)
    names: tuple[str, ...] = ()
    before: int = 0  # the counter prediction before this request
    lasts: dict[str, int | None] = field(default_factory=dict)  # per input stream, its last timestamp before
    bad: str = ""  # why OVMS must reject it ("" when it should accept it)
    rejected: bool = False  # an error was pinned to it
    accepted: bool = False  # an output at its timestamp came back


def why_rejected(manual: bool, timestamp: int | None, names: tuple[str, ...], lasts: dict[str, int | None]) -> str:
    """Why OVMS must reject a request with this timestamp feeding `names` ("" when nothing says it will)."""
    if manual and timestamp is None:
        return "OVMS_MP_TIMESTAMP is not an int64"
    if timestamp is None:
        return ""
    if not is_range_value(timestamp):
        return f"timestamp {timestamp} is outside MediaPipe's range"
    for name in names:
        last = lasts.get(name)
        if last is not None and timestamp <= last:
            return f'input stream "{name}" needs a timestamp greater than {last}; got {timestamp}'
    return ""


class SentRequests:
    """The newest requests sent on one stream (the first one always kept apart), with the counter prediction.

    Used under the client's lock. `counter` False: automatic timestamps come from the server's clock and
    cannot be predicted (`next` is then meaningless).
    """

    def __init__(self, keep: int = 4096, *, counter: bool = True) -> None:
        self._sent: deque[Sent] = deque(maxlen=keep)
        self._pending: deque[Sent] = deque(maxlen=keep)  # predicted good, timestamp known, not yet seen answered
        self._first: Sent | None = None
        self._counter = counter
        self._lasts: dict[str, int | None] = {}
        self._answered = -1  # seq of the request the newest error was pinned to
        self.next = 0  # the timestamp the next automatic request will get (counter mode)

    def add(self, seq: int, manual: bool, timestamp: int | None, names: tuple[str, ...]) -> Sent:
        """Remember one request just queued: `timestamp` is its manual one (None for an automatic request,
        or a manual value that is not an int64); returns it with its predicted timestamp and verdict."""
        sent = Sent(seq, manual, timestamp if manual else None, names)
        self._predict(sent)
        self._sent.append(sent)
        if not sent.bad and sent.timestamp is not None:
            self._pending.append(sent)
        if self._first is None:
            self._first = sent
        return sent

    def _predict(self, sent: Sent) -> None:
        """Predict `sent`'s timestamp and verdict from the current state, then apply it unless bad."""
        if not sent.manual:
            sent.timestamp = self.next if self._counter else None
        sent.before, sent.lasts = self.next, dict(self._lasts)
        sent.bad = why_rejected(sent.manual, sent.timestamp, sent.names, self._lasts)
        if sent.bad:
            return
        if sent.manual or self._counter:
            self.next = advance(self.next, sent.manual, sent.timestamp)
        for name in sent.names:
            self._lasts[name] = sent.timestamp  # None: a server-clock stamp, unknown here

    def accepted(self, timestamp: int | None) -> None:
        """An output stamped `timestamp` came back: the earliest request predicted good at that timestamp was
        read by the server, and so was every request sent before it (their errors would have come first).

        Looks at the oldest `_SCAN` requests not yet seen answered only, so a long stream costs each response
        little; an output it cannot place (a graph stamping outputs its own way) only leaves rule 3 less to go on.
        """
        if timestamp is None:
            return
        pending = self._pending
        for index, sent in enumerate(pending):
            if index >= _SCAN:
                return
            if sent.timestamp == timestamp:
                for _ in range(index + 1):
                    pending.popleft().accepted = True
                return

    def attribute(self, text: str) -> Sent | None:
        """The request an in-band error answers (see the module's rule), marked rejected; None when the error
        rejects no request. Replays the counter prediction when the request was predicted good."""
        if not text.endswith(_REQUEST_CONTEXTS):
            return None  # not a rejected request (OVMS always names the context of one)
        sent = list(self._sent)
        if text.endswith(_FIRST_REQUEST):
            chosen = next((s for s in sent if s is self._first and not s.rejected), None)
        else:
            candidates = [s for s in sent if s.seq > self._answered and s is not self._first and not s.rejected]
            if text.startswith(_TIMESTAMP_ERRORS):
                chosen = next((s for s in candidates if s.bad), None)
            else:
                chosen = next((s for s in candidates if not s.bad and not s.accepted), None)
            if chosen is None:
                chosen = next((s for s in candidates if not s.accepted), candidates[0] if candidates else None)
        if chosen is None:
            return None
        chosen.rejected = True
        self._answered = max(self._answered, chosen.seq)
        if not chosen.bad:
            self._replay(sent, chosen)
        self._pending = deque((s for s in sent if not s.bad and not s.rejected and not s.accepted
                               and s.timestamp is not None), maxlen=self._sent.maxlen)
        return chosen

    def _replay(self, sent: list[Sent], rejected: Sent) -> None:
        """Predict again every request after `rejected` as if it had never been sent."""
        self.next, self._lasts = rejected.before, dict(rejected.lasts)
        for other in sent[sent.index(rejected) + 1 :]:
            if not other.rejected:
                self._predict(other)


def advance(counter: int, manual: bool, timestamp: int | None) -> int:
    """OVMS's counter after a request pushed whole: manual sets the base, every request adds one."""
    if manual:
        return next_allowed(timestamp) if timestamp is not None else counter
    return next_allowed(counter)
