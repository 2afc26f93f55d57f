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
    #: The pbtxt to write instead (one or more lines), when the fix is a known edit; "" otherwise.
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.severity}: [{self.kind}] {self.subject}: {self.reason}"
        if self.fix:
            text += "\n  write:\n" + "\n".join(f"    {line}" for line in self.fix.splitlines())
        return text
