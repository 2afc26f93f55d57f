"""`export(source, out_dir)`: an OVMS-ready folder from a config.json (or one graph pbtxt).

The folder holds config.json (OVMS's layout and schema), one folder per graph (graph.pbtxt and every
file that sat beside it: handlers, subconfig), and the models of `model_config_list` under
`models/<name>/<version>/`, plus the models OVMS's MediaPipe fork needs for the subgraphs it
redefines (subgraphs.py: `models/<name>/1/model.tflite` from the mediapipe wheel; a graph named like
one of them is renamed `<name>_graph`, since OVMS refuses the clash). A Python calculator registered
in a notebook becomes a `PythonExecutorCalculator` node with a generated handler (`OvmsPythonModel`
around the same code, `handler.py`) where it can; the graph-level streams that feed or leave it are re-tagged
`OVMS_PY_TENSOR` so OVMS hands it pyovms Tensors. What cannot be exported stays as it was and is
listed with its reason, and the exported folder is `check`ed, so `problems` says what a stock
OVMS would still refuse (and, as warnings, what runs differently there: shared calculator state).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovms_notebook.codec.streams import TENSOR_KINDS, StreamKind, parse_stream
from ovms_notebook.engine.python.api import Calculator
from ovms_notebook.errors import ConfigError
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.portability.check import DEFAULT_OVMS_VERSION, Finding, check, package_stand_ins
from ovms_notebook.portability.handler import NotExportable, handler_source
from ovms_notebook.portability.registry import OVMS_EMULATED
from ovms_notebook.portability.report import Report
from ovms_notebook.portability.serving import docker_command, inference_service
from ovms_notebook.portability.state import shared_state_finding
from ovms_notebook.portability.subgraphs import configured_models, export_models, needed_models
from ovms_notebook.repository.graphs import GraphEntry, find_config, read_entries

_PYTHON_SIDE = ("PythonExecutorCalculator",)
_PY_OUTPUT_TAG = "OVMS_PY_TENSOR"
_FORK_ASKS = " (OVMS's MediaPipe fork asks for it in the subgraphs this graph uses)"


@dataclass
class Exported:
    """What `export` wrote and what it could not carry over."""

    out_dir: Path
    graphs: list[str]
    handlers: dict[str, Path] = field(default_factory=dict)  # "graph/node" -> handler file
    problems: list[Finding] = field(default_factory=list)  # errors: left behind; warnings: differs on OVMS
    report: Report | None = None
    docker: str = ""
    manifest: str = ""

    @property
    def config_path(self) -> Path:
        return self.out_dir / "config.json"

    @property
    def portable(self) -> bool:
        """True when nothing was left behind and a stock OVMS would serve every graph."""
        return not any(p.severity == "error" for p in self.problems) and bool(self.report and self.report.portable)

    def __str__(self) -> str:
        lines = [f"exported {len(self.graphs)} graph(s) to {self.out_dir}"]
        lines += [f"  handler {key}: {path}" for key, path in self.handlers.items()]
        lines += [f"  {problem}" for problem in self.problems]
        if self.report is not None:
            lines += [f"  check: {line}" for line in self.report.lines()]
        lines += ["", "serve it with OVMS's container image:", f"  {self.docker}", "",
                  "or on KServe (InferenceService):", self.manifest]
        return "\n".join(lines)

    def __repr__(self) -> str:
        left = sum(p.severity == "error" for p in self.problems)
        return (f"<Exported {len(self.graphs)} graph(s) to {self.out_dir}: {len(self.handlers)} handler(s), "
                f"{left} left behind, {'portable' if self.portable else 'NOT portable'}>")

    def _repr_html_(self) -> str:
        """In a notebook: what was written, what was left behind, the check of the result, how to serve it."""
        import html

        from ovms_notebook.portability.report import finding_html

        handlers = "".join(f"<li>handler <code>{html.escape(key)}</code>: <code>{html.escape(str(path))}</code></li>"
                           for key, path in self.handlers.items())
        problems = "".join(finding_html(p) for p in self.problems)
        check = self.report._repr_html_() if self.report is not None else ""
        return (f"<div><p><b>exported {len(self.graphs)} graph(s)</b> to <code>{html.escape(str(self.out_dir))}"
                f"</code></p><ul>{handlers}{problems}</ul>{check}<p>serve it with OVMS's container image:</p>"
                f"<pre>{html.escape(self.docker)}</pre><details><summary>or on KServe (InferenceService)</summary>"
                f"<pre>{html.escape(self.manifest)}</pre></details></div>")


def _entries(source: Path) -> tuple[list[GraphEntry], dict]:
    """Graph entries and the config document of a config.json/folder, or of a single graph pbtxt."""
    if source.suffix == ".pbtxt" and source.is_file():
        base = source.resolve().parent
        return [GraphEntry(base.name, base, source.resolve(), None)], {"model_config_list": []}
    path = find_config(source)
    return read_entries(path, validate=False), json.loads(path.read_text())


def _graph_names(names: list[str], models: set[str]) -> dict[str, str]:
    """{graph name: exported name}: a graph named like a model becomes `<name>_graph` (OVMS refuses the clash)."""
    taken = set(models) | set(names)
    renamed = {}
    for name in names:
        new = name
        if name in models:
            new, number = f"{name}_graph", 2
            while new in taken:
                new, number = f"{name}_graph{number}", number + 1
            taken.add(new)
        renamed[name] = new
    return renamed


def _copy_models(document: dict, root: Path, out_dir: Path, graph_names: set[str]) -> list[dict]:
    models = []
    for item in document.get("model_config_list", []):
        config = dict(item.get("config", {}))
        name = config.get("name")
        if not name or name in graph_names:
            continue
        source = (root / (config.get("base_path") or name)).resolve()
        if source.is_dir():
            shutil.copytree(source, out_dir / "models" / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        config["base_path"] = f"models/{name}"
        models.append({"config": config})
    return models


def _graph_config(text: str) -> GraphConfig:
    """The pbtxt parsed as a `CalculatorGraphConfig`."""
    from ovms_notebook.framework.protos import parse_graph_config

    return parse_graph_config(text)


def _convert(graph: str, config: GraphConfig, folder: Path, exported: Exported) -> bool:
    """Turn each notebook calculator node of `config` into a PythonExecutorCalculator; True when any changed."""
    from ovms_notebook.calculators.proto.ovms_calculators_pb2 import PythonExecutorCalculatorOptions
    from ovms_notebook.engine.graphconfig import python_registry

    registry = python_registry()
    native_on_ovms = OVMS_EMULATED | package_stand_ins(node.calculator for node in config.node)
    python_nodes = {i for i, n in enumerate(config.node) if n.calculator in _PYTHON_SIDE
                    or (n.calculator in registry and n.calculator not in native_on_ovms)}
    producers: dict[str, str] = {parse_stream(s).name: "graph input" for s in config.input_stream}
    consumers: dict[str, list[str]] = {}
    for i, node in enumerate(config.node):
        for text in node.output_stream:
            tag = text.split(":")[0] if ":" in text else ""
            py = i in python_nodes or tag.startswith(_PY_OUTPUT_TAG)
            producers[parse_stream(text).name] = "python" if py else f"native node {node.calculator}"
        for text in node.input_stream:
            tag = text.split(":")[0] if ":" in text else ""
            py = i in python_nodes or tag.startswith(_PY_OUTPUT_TAG)
            side = "python" if py else f"native node {node.calculator}"
            consumers.setdefault(parse_stream(text).name, []).append(side)
    changed = False
    for index, node in enumerate(config.node):
        if node.calculator not in registry or node.calculator in native_on_ovms:
            continue  # OVMS runs it natively: it stays as it is
        subject = f"graph {graph}, node {node.name or node.calculator!r}"
        reasons = []
        if node.input_side_packet:
            reasons.append(f"takes input side packets {list(node.input_side_packet)}")
        inputs, outs = {}, {}
        for text in node.input_stream:
            name = parse_stream(text).name
            inputs[name] = _key(text)
            if producers.get(name) not in ("python", "graph input"):
                reasons.append(f"input {text!r} comes from {producers.get(name)}, not a pyovms Tensor")
        for text in node.output_stream:
            name = parse_stream(text).name
            outs[_key(text)] = name
            bad = [c for c in consumers.get(name, []) if c != "python"]
            if bad:
                reasons.append(f"output {text!r} feeds {bad[0]}, which cannot take a pyovms Tensor")
        handler_code = None
        calculator = registry[node.calculator]
        if not (isinstance(calculator, type) and issubclass(calculator, Calculator)):
            reasons.append(f"{node.calculator} is registered as {calculator!r}, not a Calculator class")
        else:
            try:
                handler_code = handler_source(calculator, node.calculator, inputs, outs)
            except NotExportable as error:
                reasons += error.reasons
        if reasons or handler_code is None or not isinstance(calculator, type):
            exported.problems += [Finding("error", "not-exported", subject, reason) for reason in reasons]
            continue
        name = node.name or f"{node.calculator.lower()}_{index}"
        handler = folder / f"{name}.py"
        handler.write_text(handler_code.text)
        if handler_code.package_imports:
            exported.problems.append(Finding(
                "warning", "needs-package", subject,
                f"the handler imports {', '.join(handler_code.package_imports)} from the ovms_notebook package "
                "instead of copying it: OVMS's Python image needs ovms_notebook installed (pip install "
                "ovms-notebook) to load this node"))
        state = shared_state_finding(subject, calculator)
        exported.problems += [state] if state else []
        exported.handlers[f"{graph}/{name}"] = handler
        _rewrite(node, name, PythonExecutorCalculatorOptions(handler_path=handler.name))
        changed = True
    if changed:
        _retag_graph_streams(config, consumers, producers)
    return changed


def _key(text: str) -> str:
    from ovms_notebook.engine.python.api import tag_key

    spec = parse_stream(text)
    return tag_key(spec.tag, spec.index or 0)


def _rewrite(node: Any, name: str, options: object) -> None:
    """The node becomes an OVMS Python node: name, `py` resources, handler options, one tag per stream."""
    node.calculator = "PythonExecutorCalculator"
    node.name = name
    node.input_side_packet.append("PYTHON_NODE_RESOURCES:py")
    for streams, stem in ((node.input_stream, "INPUT"), (node.output_stream, "OUTPUT")):
        retagged = [f"{stem}_{i}:{parse_stream(text).name}" for i, text in enumerate(streams)]
        del streams[:]
        streams.extend(retagged)
    node.node_options.add().Pack(options)


def _retag_graph_streams(config: GraphConfig, consumers: dict, producers: dict) -> None:
    """Graph inputs read only by Python nodes and outputs they produce carry pyovms Tensors: tag OVMS_PY_TENSOR."""
    for field_name in ("input_stream", "output_stream"):
        streams = getattr(config, field_name)
        retagged = []
        for text in streams:
            spec = parse_stream(text)
            python_only = (all(c == "python" for c in consumers.get(spec.name, [])) if field_name == "input_stream"
                           else producers.get(spec.name) == "python")
            if python_only and spec.kind in TENSOR_KINDS and spec.kind is not StreamKind.OVMS_PY_TENSOR:
                text = f"{_PY_OUTPUT_TAG}:{spec.name}"
            retagged.append(text)
        del streams[:]
        streams.extend(retagged)


#: The file export leaves in a folder it wrote, so that exporting there again replaces it.
_MARKER = ".ovms_notebook_export"


def export(source: str | Path, out_dir: str | Path, *, image: str | None = None,
           ovms_version: str = DEFAULT_OVMS_VERSION) -> Exported:
    """Write an OVMS-ready folder for `source` (config.json, its folder, or a graph .pbtxt) into `out_dir`.

    `out_dir` must be empty, absent, or a folder an earlier export wrote (re-running the cell replaces it;
    export leaves `_MARKER` there to know). Returns what was written, what could not be exported (with
    reasons), the check of the written folder, the `docker run` line and a KServe manifest.
    """
    from google.protobuf import text_format

    source, out_dir = Path(source), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / _MARKER).is_file():
            raise ConfigError(f"export needs an empty or new output folder, or one an earlier export wrote, got "
                              f"{str(out_dir)!r} (not empty, and no {_MARKER} in it)")
        if source.resolve() == out_dir.resolve() or out_dir.resolve() in source.resolve().parents:
            raise ConfigError(f"export would replace its own source: {str(out_dir)!r} holds {str(source)!r}")
        shutil.rmtree(out_dir)
    entries, document = _entries(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text(f"written by ovms_notebook.export from {source.resolve()}\n")
    root = find_config(source).parent if source.suffix != ".pbtxt" else source.parent
    models = _copy_models(document, root, out_dir, {e.name for e in entries})
    present = {m["config"]["name"] for m in models}
    if source.suffix != ".pbtxt":
        present |= configured_models(find_config(source))  # subconfig models travel with their graph folder
    texts = {entry.name: entry.graph_path.read_text() for entry in entries}
    needed = {servable for text in texts.values()
              for servables in needed_models(n.calculator for n in _graph_config(text).node).values()
              for servable in servables}
    added, missing = export_models(needed, present, out_dir)
    models += added
    names = _graph_names([e.name for e in entries], present | {m["config"]["name"] for m in models})
    exported = Exported(out_dir.resolve(), list(names.values()), problems=missing)
    exported.problems += [Finding("warning", "renamed-graph", f"graph {old!r}",
                                  f"exported as {new!r}: a model of the exported config.json is named {old!r}"
                                  f"{_FORK_ASKS if old in needed else ''}, and OVMS refuses a graph whose name a "
                                  f"model has; clients must ask for {new!r}")
                          for old, new in names.items() if old != new]
    graphs = []
    for entry in entries:
        name = names[entry.name]
        folder = out_dir / name
        shutil.copytree(entry.base_path, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        text = texts[entry.name]
        (folder / "graph.pbtxt").write_text(text)
        config = _graph_config(text)
        if _convert(name, config, folder, exported):
            (folder / "graph.pbtxt").write_text("# exported by ovms-notebook export\n" +
                                                text_format.MessageToString(config))
        graph = {"name": name, "base_path": name, "graph_path": "graph.pbtxt"}
        if entry.subconfig_path is not None:
            graph["subconfig"] = entry.subconfig_path.name
        graphs.append(graph)
    (out_dir / "config.json").write_text(json.dumps({"model_config_list": models,
                                                     "mediapipe_config_list": graphs}, indent=2) + "\n")
    exported.report = check(out_dir, ovms_version=ovms_version)
    python = bool(exported.handlers) or any("PythonExecutorCalculator" in (out_dir / g["name"] / "graph.pbtxt")
                                            .read_text() for g in graphs)
    exported.docker = docker_command(exported.out_dir, python=python, image=image, ovms_version=ovms_version)
    exported.manifest = inference_service(exported.out_dir.name, python=python, image=image,
                                          ovms_version=ovms_version)
    return exported
