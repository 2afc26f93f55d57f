"""One portability problem or note (`Finding`) and its severity: shared by the checks in check.py, state.py
and subgraphs.py, which therefore need not import one another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    """One portability problem or note: what it is about (`subject`) and why (`reason`)."""

    severity: Severity
    kind: str
    subject: str
    reason: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.kind}] {self.subject}: {self.reason}"
