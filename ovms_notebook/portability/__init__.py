"""From notebook to a real OpenVINO Model Server: `check` what a stock OVMS would refuse, `export` a folder it serves.

    report = ovms_notebook.check("graphs/")        # readable in a notebook; report.portable
    result = ovms_notebook.export("graphs/", "out/")
"""

from ovms_notebook.portability.check import Finding, check
from ovms_notebook.portability.export import Exported, export
from ovms_notebook.portability.report import GraphReport, Report

__all__ = ["Exported", "Finding", "GraphReport", "Report", "check", "export"]
