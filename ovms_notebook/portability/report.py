"""What `check` found, as data and for reading: `Report` (config-level findings and one `GraphReport` per graph),
its text lines for the CLI and its HTML for a notebook, and `finding_html`, the one rendering of a finding the server
panel shows too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ovms_notebook.portability.findings import Finding
from ovms_notebook.portability.registry import mediapipe_version, ovms_source

__all__ = ["GraphReport", "Report", "finding_html"]


@dataclass
class GraphReport:
    """The findings for one graph of the config."""

    name: str
    graph_path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def portable(self) -> bool:
        """True when nothing stops a stock OVMS from serving the graph as it is."""
        return not any(f.severity == "error" for f in self.findings)


@dataclass
class Report:
    """What `check` found: config-level findings, then one `GraphReport` per graph."""

    config_path: Path
    ovms_version: str
    findings: list[Finding] = field(default_factory=list)
    graphs: list[GraphReport] = field(default_factory=list)

    @property
    def portable(self) -> bool:
        """True when the config and every graph in it would load on a stock OVMS."""
        return not any(f.severity == "error" for f in self.findings) and all(g.portable for g in self.graphs)

    def graph(self, name: str) -> GraphReport:
        """The report of graph `name`; KeyError naming the graphs there are otherwise."""
        for report in self.graphs:
            if report.name == name:
                return report
        raise KeyError(f"no graph {name!r} in {self.config_path}; graphs: {[g.name for g in self.graphs]}")

    def lines(self) -> list[str]:
        """The report as text lines, one per graph and one per finding."""
        verdict = "portable" if self.portable else "NOT portable"
        out = [
            f"{self.config_path}: {verdict} to OVMS {self.ovms_version} "
            f"(OVMS calculators from {ovms_source()}; mediapipe wheel {mediapipe_version()})"
        ]
        out += [f"  {line}" for finding in self.findings for line in str(finding).splitlines()]
        for graph in self.graphs:
            out.append(f"  graph {graph.name}: {'portable' if graph.portable else 'NOT portable'}")
            out += [f"    {line}" for finding in graph.findings for line in str(finding).splitlines()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        bad = [g.name for g in self.graphs if not g.portable]
        return f"<Report {self.config_path.name}: {len(self.graphs)} graphs, not portable: {bad or 'none'}>"

    def _repr_html_(self) -> str:
        rows = []
        for graph in self.graphs:
            mark = "✔" if graph.portable else "✘"
            items = "".join(finding_html(f) for f in graph.findings)
            rows.append(f"<li><b>{mark} {html.escape(graph.name)}</b><ul>{items}</ul></li>")
        top = "".join(finding_html(f) for f in self.findings)
        title = html.escape(self.lines()[0])
        return f"<div><p>{title}</p><ul>{top}{''.join(rows)}</ul></div>"


_COLOURS = {"error": "#b00020", "warning": "#a15c00", "note": "#555"}


def finding_html(finding: Finding) -> str:
    """One finding as an HTML list item, its fix (if any) as a block of pbtxt to copy."""
    head = f"{finding.severity}: [{finding.kind}] {finding.subject}: {finding.reason}"
    fix = (
        (
            f'<pre style="margin:2px 0 4px 1em;padding:3px 6px;background:#f3f4f6;color:#111">'
            f"{html.escape(finding.fix)}</pre>"
        )
        if finding.fix
        else ""
    )
    return f'<li style="color:{_COLOURS[finding.severity]}">{html.escape(head)}{fix}</li>'
