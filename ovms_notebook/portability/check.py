"""Can a stock OpenVINO Model Server serve this config.json? `check(config)` says, graph by graph, and why not.

Problems found (each a `Finding` with the reason in words):

* `config-schema`: config.json breaks OVMS's config schema (src/schema.cpp), so OVMS refuses the file.
* `ovms-lacks-calculator`: the mediapipe wheel registers the calculator, OVMS's build does not link it.
* `wheel-lacks-calculator`: OVMS links it, the wheel does not (runs on OVMS, not here) — a warning.
* `unknown-calculator`: neither has it.
* `python-calculator`: a calculator registered with ovms_notebook (a notebook cell, or our own
  nodes such as DetectionTrackerCalculator): OVMS cannot run it as it is; `export` may turn it into a
  PythonExecutorCalculator handler.
* `extension-tag`: a graph stream tagged with one of our extension tags (`INT:`, `FLOATS:`...): OVMS
  reads the tag as an untagged stream, an ov::Tensor.
* `handler-import`: a PythonExecutorCalculator handler imports ovms_notebook, which OVMS's image lacks.
* `ovms-subgraph-models`: a subgraph OVMS's MediaPipe fork redefines to infer on OpenVINO
  (subgraphs.py): an error naming the model entries config.json lacks, or a note when all are there.
* `name-occupied`: the graph is named like a model its subgraphs need; OVMS refuses it.
* `shared-state`: a Python calculator keeps per-stream state on self, which OVMS shares across
  streams (state.py) — a warning.
* `timestamps`, `timestamp-check`: where our defaults differ from the target OVMS version
  (automatic timestamps became wall-clock microseconds in OVMS v2025.1).
* `user-subgraph`: a subgraph the graph folder brings as a .pbtxt file: expanded here, but OVMS needs it
  compiled into its build.
* `untagged-image-input`, `untagged-proto-input`, `side-packet-type`, `unserializable-output`,
  `model-file-missing`: fixable shapes of the graph, each with the pbtxt to write (fixes.py).
* `graph-file`: the graph file cannot be read or parsed.

Errors make a graph not portable; warnings and notes do not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ovms_notebook.codec.streams import EXTENSION_KINDS, parse_stream
from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.subgraphs import folder_subgraphs, subgraph_config
from ovms_notebook.ovms_config import config_schema as config_schema  # re-export: its home was here
from ovms_notebook.ovms_config import schema_errors
from ovms_notebook.portability.findings import Finding
from ovms_notebook.portability.fixes import graph_shape_findings
from ovms_notebook.portability.registry import (
    OVMS_EMULATED,
    mediapipe_version,
    ovms_calculators,
    ovms_source,
    wheel_has,
)
from ovms_notebook.portability.report import GraphReport, Report
from ovms_notebook.repository.graphs import GraphEntry, find_config, read_entries

#: The OVMS release a check compares against unless told otherwise (the release whose behaviour the package follows).
DEFAULT_OVMS_VERSION = "2026.3"
_WALLCLOCK_SINCE = (2025, 1)
_PYTHON_NODES_SINCE = (2023, 3)
_IMPORTS_US = re.compile(r"^\s*(?:from|import)\s+ovms_notebook\b", re.M)


def _version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"v?(\d{4})\.(\d+)(?:\.\d+)?", text.strip())
    if match is None:
        raise ValueError(f"an OVMS version looks like 2025.1 or v2026.3, got {text!r}")
    return int(match[1]), int(match[2])


def schema_findings(document: object) -> list[Finding]:
    """Every place `document` (a parsed config.json) breaks OVMS's schema: OVMS refuses the whole file."""
    return [
        Finding("error", "config-schema", where, f"OVMS's config schema rejects it: {message}")
        for where, message in schema_errors(document)
    ]


def timestamp_findings(ovms_version: str, timestamps: str, timestamp_check: str) -> list[Finding]:
    """Where the server options `timestamps`/`timestamp_check` behave unlike OVMS `ovms_version` (spec README)."""
    target = _version(ovms_version)
    found = []
    if timestamps == "counter" and target >= _WALLCLOCK_SINCE:
        found.append(
            Finding(
                "warning",
                "timestamps",
                "automatic timestamps",
                f"ovms_notebook numbers requests without OVMS_MP_TIMESTAMP 0, 1, 2...; OVMS "
                f"{ovms_version} (like every release since 2025.1) stamps them with wall-clock "
                "microseconds since the epoch. Send OVMS_MP_TIMESTAMP yourself, or serve with "
                "timestamps='wallclock' to see OVMS's values",
            )
        )
    elif timestamps == "wallclock" and target < _WALLCLOCK_SINCE:
        found.append(
            Finding(
                "warning",
                "timestamps",
                "automatic timestamps",
                f"served with timestamps='wallclock', but OVMS {ovms_version} (before 2025.1) numbers "
                "requests without OVMS_MP_TIMESTAMP 0, 1, 2...",
            )
        )
    if timestamp_check == "strict":
        found.append(
            Finding(
                "note",
                "timestamp-check",
                "non-increasing timestamps",
                "ovms_notebook rejects a timestamp not above the last one in-band and keeps the "
                f"stream; OVMS {ovms_version} passes it to MediaPipe, the graph fails and the stream "
                "ends (serve with timestamp_check='mediapipe' to see that)",
            )
        )
    return found


def _python_calculator(name: str, cls: type) -> Finding:
    module = getattr(cls, "__module__", "?")
    where = "a notebook cell" if module == "__main__" else f"module {module}"
    return Finding(
        "error",
        "python-calculator",
        name,
        f"a Python calculator registered with ovms_notebook ({where}, class {cls.__qualname__}); OVMS "
        "has no such calculator. `ovms-notebook export` turns it into a PythonExecutorCalculator "
        "handler where it can, and says why where it cannot",
    )


def package_stand_ins(names: Iterable[str]) -> set[str]:
    """Of `names`, what ovms_notebook itself runs in place of a calculator or subgraph OVMS's build links and the
    wheel lacks (the render calculators, the holistic render subgraph): portable as they stand, and exported
    under their own names, for OVMS's native ones."""
    from ovms_notebook.engine.graphconfig import python_registry
    from ovms_notebook.framework.subgraphs import SUBGRAPHS

    registry, ovms = python_registry(), ovms_calculators()
    return {
        name
        for name in names
        if name in ovms
        and (name in SUBGRAPHS or getattr(registry.get(name), "__module__", "").startswith("ovms_notebook."))
    }


def calculator_findings(calculators: Iterable[str]) -> list[Finding]:
    """For each calculator name: is it in OVMS's build, in the wheel, or a Python calculator of ours?"""
    from ovms_notebook.engine.graphconfig import python_registry
    from ovms_notebook.framework.subgraphs import SUBGRAPHS
    from ovms_notebook.portability.state import shared_state_finding

    names = list(dict.fromkeys(calculators))
    registry = python_registry()
    ovms = ovms_calculators()
    stand_ins = package_stand_ins(names)
    native = [n for n in names if n not in registry and n not in stand_ins]
    in_wheel = wheel_has(native) if native else {}
    wheel = f"the mediapipe {mediapipe_version()} wheel"
    found = []
    for name in names:
        if name in stand_ins:
            continue
        if name in registry and name not in OVMS_EMULATED:
            found.append(_python_calculator(name, registry[name]))
            state = shared_state_finding(name, registry[name])
            found += [state] if state else []
        elif name in registry or (name in ovms and in_wheel.get(name)):
            continue
        elif name in ovms:
            found.append(
                Finding(
                    "warning",
                    "wheel-lacks-calculator",
                    name,
                    f"OVMS's build links it but {wheel} does not register it: the graph runs on OVMS, "
                    "not in ovms_notebook",
                )
            )
        elif in_wheel.get(name):
            found.append(
                Finding(
                    "error",
                    "ovms-lacks-calculator",
                    name,
                    f"{wheel} registers it but OVMS's build does not link it ({ovms_source()}); "
                    "OVMS fails to load the graph",
                )
            )
        elif name in SUBGRAPHS:
            found.append(
                Finding(
                    "error",
                    "ovms-lacks-calculator",
                    name,
                    f"a MediaPipe subgraph ovms_notebook inlines from MediaPipe's own pbtxt "
                    f"(ovms_notebook/framework/subgraphs); neither {wheel} nor OVMS's build "
                    f"({ovms_source()}) registers it, so OVMS fails to load the graph",
                )
            )
        elif in_wheel.get(name) is None:
            found.append(
                Finding(
                    "error",
                    "unknown-calculator",
                    name,
                    f"OVMS's build does not link it, and probing {wheel} for it crashed the probe",
                )
            )
        else:
            found.append(
                Finding(
                    "error",
                    "unknown-calculator",
                    name,
                    f"neither OVMS's build nor {wheel} registers it, and no Python calculator has that name",
                )
            )
    return found


def stream_findings(config: GraphConfig) -> list[Finding]:
    """Graph input/output streams whose tag is one of our extensions (spec README, "Extensions")."""
    found = []
    for side, streams in (("input_stream", config.input_stream), ("output_stream", config.output_stream)):
        for text in streams:
            spec = parse_stream(text)
            if spec.kind in EXTENSION_KINDS:
                found.append(
                    Finding(
                        "error",
                        "extension-tag",
                        f"{side} {text!r}",
                        f"{spec.tag}: is an ovms_notebook extension tag; OVMS matches tags by prefix "
                        "(REQUEST, RESPONSE, TFTENSOR, TFLITE_TENSOR, OVTENSOR, OVMS_PY_TENSOR, TENSOR, "
                        "IMAGE) and treats any other tag as an ov::Tensor stream",
                    )
                )
    return found


def handler_findings(config: GraphConfig, base_path: Path) -> list[Finding]:
    """PythonExecutorCalculator handlers that import ovms_notebook (absent from OVMS's image)."""
    from ovms_notebook.calculators.proto.ovms_calculators_pb2 import PythonExecutorCalculatorOptions
    from ovms_notebook.framework.options import node_options

    found = []
    for node in config.node:
        if node.calculator != "PythonExecutorCalculator":
            continue
        options = node_options(node, PythonExecutorCalculatorOptions)
        if not options.handler_path:
            continue
        try:
            text = (base_path / options.handler_path).read_text()
        except OSError:
            continue  # a missing handler is a load error the graph's own status reports
        if _IMPORTS_US.search(text):
            found.append(
                Finding(
                    "error",
                    "handler-import",
                    f"node {node.name!r} ({options.handler_path})",
                    "the handler imports ovms_notebook, which OVMS's Python image does not have",
                )
            )
    return found


def check_graph(
    entry: GraphEntry, ovms_version: str = DEFAULT_OVMS_VERSION, models: frozenset[str] | set[str] = frozenset()
) -> GraphReport:
    """The portability findings of one graph entry; `models` are the model names config.json serves."""
    from google.protobuf import text_format

    from ovms_notebook.framework.protos import parse_graph_config
    from ovms_notebook.portability.subgraphs import subgraph_findings

    report = GraphReport(entry.name, entry.graph_path)
    try:
        text = entry.graph_path.read_text()
        config: Any = parse_graph_config(text)
    except (OSError, text_format.ParseError) as error:
        report.findings.append(Finding("error", "graph-file", str(entry.graph_path), f"cannot be read: {error}"))
        return report
    try:
        own = folder_subgraphs(entry.base_path, entry.graph_path)
    except GraphLoadError as error:
        report.findings.append(Finding("error", "graph-file", str(entry.base_path), str(error)))
        own = {}
    used = used_subgraphs(config, own)
    report.findings += [user_subgraph_finding(name, own) for name in used]
    calculators = [n.calculator for n in config.node if n.calculator not in own]
    for name in used:
        inner: Any = subgraph_config(name, own)
        calculators += [n.calculator for n in inner.node if n.calculator not in own]
    report.findings += calculator_findings(calculators)
    report.findings += stream_findings(config)
    report.findings += handler_findings(config, entry.base_path)
    report.findings += subgraph_findings(entry.name, calculators, set(models))
    report.findings += graph_shape_findings(config, entry.base_path, own)
    # the graph's own load error first: nothing else matters until it loads
    report.findings[:0] = load_findings(text, own, models)
    has_python = any(n.calculator == "PythonExecutorCalculator" for n in config.node)
    if has_python and _version(ovms_version) < _PYTHON_NODES_SINCE:
        report.findings.append(
            Finding(
                "error",
                "python-nodes",
                "PythonExecutorCalculator",
                f"Python nodes arrived in OVMS 2023.3; {ovms_version} has none",
            )
        )
    return report


#: Load errors other findings already tell: a calculator neither the wheel nor this package has
#: (unknown-calculator), face landmarks with attention on a model entry (ovms-fork-attention).
_TOLD_ELSEWHERE = ("Unable to find Calculator", "No registered object with name",
                   "OVMS's MediaPipe fork infers face landmarks with one set of outputs")


def load_findings(text: str, own: Mapping[str, str], models: frozenset[str] | set[str]) -> list[Finding]:
    """The graph's own load error here, when it has one the other findings do not tell: MediaPipe validates
    graphs the same way in OVMS (a stream produced twice, a name used twice...), and the type checks above
    need a graph MediaPipe accepts, so without this a graph that cannot load could look portable."""
    from ovms_notebook.engine.graphconfig import parse_graph

    try:
        parse_graph(text, own, models=models)
    except GraphLoadError as error:
        if any(known in str(error) for known in _TOLD_ELSEWHERE):
            return []
        return [Finding("error", "graph-load", "the graph", f"does not load: {error}")]
    return []


def used_subgraphs(config: object, own: Mapping[str, str]) -> list[str]:
    """The graph folder's own subgraphs (`own`, type -> pbtxt) the graph uses, nested uses followed, in first-use
    order."""
    used: list[str] = []
    pending = [n.calculator for n in config.node]  # type: ignore[attr-defined]
    while pending:
        name = pending.pop(0)
        if name in own and name not in used:
            used.append(name)
            pending += [n.calculator for n in subgraph_config(name, own).node]  # type: ignore[attr-defined]
    return used


def user_subgraph_finding(name: str, own: Mapping[str, str]) -> Finding:
    """The error for a subgraph the graph folder brings: OVMS reads no subgraph files, it needs them built in."""
    return Finding(
        "error",
        "user-subgraph",
        name,
        "a subgraph from a .pbtxt file in the graph folder; ovms_notebook expands it, but OVMS's "
        "MediaPipe knows only the subgraphs compiled into its build and fails with Unable to find "
        f'Calculator "{name}": OVMS needs it compiled in (a mediapipe_simple_subgraph rule in its '
        "build), or copy its nodes into the graph",
    )


def check(
    config: str | Path,
    *,
    ovms_version: str = DEFAULT_OVMS_VERSION,
    timestamps: str = "counter",
    timestamp_check: str = "strict",
) -> Report:
    """Whether a stock OVMS `ovms_version` can serve the graphs of `config` (a config.json or its folder).

    `timestamps`/`timestamp_check` are the server options the graphs were tried with here, so the report
    can say where OVMS will stamp or fail differently.
    """
    path = find_config(config)
    report = Report(path, ovms_version)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        report.findings.append(Finding("error", "config-schema", "config.json", f"is not JSON: {error}"))
        return report
    report.findings += schema_findings(document)
    report.findings += timestamp_findings(ovms_version, timestamps, timestamp_check)
    from ovms_notebook.portability.subgraphs import configured_models

    models = configured_models(path)
    for entry in read_entries(path, validate=False):
        report.graphs.append(check_graph(entry, ovms_version, models))
    return report
