"""Regenerate ovms_notebook/portability/ovms_subgraphs.json: the subgraphs OVMS's MediaPipe fork runs on OpenVINO.

    python scripts/ovms_subgraphs.py --model-server ~/src/model_server --mediapipe ~/src/mediapipe \
        --model-server-commit <sha> --mediapipe-commit <sha>

The checkouts are the same as scripts/ovms_calculators.py's (openvinotoolkit/model_server and the
openvinotoolkit/mediapipe fork at the commit model_server pins). OVMS's fork rewrites some stock
subgraphs (face detection, face/hand/pose/iris landmarks...) to infer through
`OpenVINOModelServerSessionCalculator` + `OpenVINOInferenceCalculator` instead of TFLite; each such
session names a model (`servable_name`) that OVMS looks up in config.json's `model_config_list`.

How: the Bazel deps of `//src:ovms` are followed as in scripts/ovms_calculators.py; every reached
`mediapipe_simple_subgraph` gives its `register_as` name and pbtxt. Each pbtxt is read without its
comments (the fork keeps the replaced TFLite nodes commented out) for the calculators it uses and
the `servable_name`s it asks for; a subgraph needs its own servables plus those of every subgraph
it uses, followed to the end. Only subgraphs that need at least one servable are written.

Model files: OVMS's demos (demos/mediapipe/*/config*.json) give each servable's model folder
(`base_path`), and the demo READMEs' download lines (`curl ... -o <folder>/1/<file>.tflite`) the
.tflite file that folder holds; `export` finds that file in the mediapipe wheel. A servable no
demo names gets no file (export then says so rather than guess).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ovms_calculators import Workspace, source_arguments  # noqa: E402

_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|#[^\n]*')
_CALCULATOR = re.compile(r'\bcalculator:\s*"([^"]+)"')
_SERVABLE = re.compile(r'\bservable_name:\s*"([^"]+)"')
_CURL_OUTPUT = re.compile(r"-o\s+(?:\./)?([\w.-]+)/1/([\w.-]+\.tflite)")


def strip_comments(text: str) -> str:
    """`text` without `#` comments (quoted strings that contain `#` are kept)."""
    return _COMMENT.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)


def subgraph_files(workspace: Workspace, reached: set[str]) -> dict[str, Path]:
    """{register_as: pbtxt path} for the simple subgraphs among `reached` (after `workspace.calculators` ran)."""
    files: dict[str, Path] = {}
    for build, targets in workspace.cache.items():
        for target in targets.values():
            name, graph = target.get("register_as"), target.get("graph")
            if isinstance(name, str) and isinstance(graph, str) and name in reached:
                files.setdefault(name, build.parent / graph)
    return files


def servables(files: dict[str, Path]) -> dict[str, dict]:
    """{subgraph: {"file", "servables", "via"}} for the subgraphs that need a servable, nested ones followed."""
    uses: dict[str, list[str]] = {}
    direct: dict[str, list[str]] = {}
    for name, path in files.items():
        text = strip_comments(path.read_text(errors="replace")) if path.is_file() else ""
        uses[name] = list(dict.fromkeys(_CALCULATOR.findall(text)))
        direct[name] = list(dict.fromkeys(_SERVABLE.findall(text)))

    def closure(name: str, seen: frozenset[str]) -> set[str]:
        found = set(direct.get(name, ()))
        for used in uses.get(name, ()):
            if used in files and used not in seen:
                found |= closure(used, seen | {used})
        return found

    out = {}
    for name in sorted(files):
        needed = closure(name, frozenset({name}))
        if needed:
            via = sorted(u for u in uses[name] if u in files and closure(u, frozenset({name, u})))
            out[name] = {"file": None, "servables": sorted(needed), "direct": sorted(direct[name]), "via": via}
    return out


def demo_models(model_server: Path) -> dict[str, dict]:
    """{servable: {"file", "from"}}: the .tflite each OVMS MediaPipe demo serves under that model name."""
    models: dict[str, dict] = {}
    for config in sorted((model_server / "demos" / "mediapipe").glob("*/config*.json")):
        readme = config.parent / "README.md"
        files = dict(_CURL_OUTPUT.findall(readme.read_text())) if readme.is_file() else {}
        for item in json.loads(config.read_text()).get("model_config_list", []):
            entry = item.get("config", {})
            name, folder = entry.get("name"), str(entry.get("base_path", "")).strip("./")
            if name and folder in files and name not in models:
                where = config.relative_to(model_server)
                models[name] = {"file": files[folder], "base_path": folder,
                                "from": f"{where} (base_path) + {readme.relative_to(model_server)} (download line)"}
    return models


def main(argv: list[str] | None = None) -> int:
    args = source_arguments(__doc__.split("\n\n")[0], argv)
    mediapipe = args.mediapipe.resolve()
    workspace = Workspace(args.model_server.resolve(), mediapipe)
    files = subgraph_files(workspace, workspace.calculators("//src:ovms"))
    subgraphs = servables(files)
    for name, entry in subgraphs.items():
        entry["file"] = str(files[name].relative_to(mediapipe))
    needed = sorted({s for entry in subgraphs.values() for s in entry["servables"]})
    demos = demo_models(args.model_server.resolve())
    source = {
        "what": "subgraphs the openvinotoolkit/mediapipe fork linked into OVMS redefines to infer through "
                "OpenVINOModelServerSessionCalculator, and the servables (config.json models) each needs",
        "how": "scripts/ovms_subgraphs.py: mediapipe_simple_subgraph targets reached from //src:ovms (as in "
               "scripts/ovms_calculators.py), servable_name options read from their pbtxt without comments, "
               "nested subgraphs followed; model files from OVMS's MediaPipe demos",
        "model_server": {"repo": "openvinotoolkit/model_server", "commit": args.model_server_commit,
                         "files": ["src/BUILD (ovms)", "demos/mediapipe/*/config*.json",
                                   "demos/mediapipe/*/README.md"]},
        "mediapipe": {"repo": "openvinotoolkit/mediapipe", "commit": args.mediapipe_commit,
                      "files": sorted({entry["file"] for entry in subgraphs.values()})},
    }
    models = {name: demos.get(name, {"file": None, "from": "no OVMS MediaPipe demo serves this servable"})
              for name in needed}
    document = {"source": source, "subgraphs": subgraphs, "models": models}
    (args.out / "ovms_subgraphs.json").write_text(json.dumps(document, indent=1) + "\n")
    sys.stdout.write(f"{len(subgraphs)} subgraphs need {len(needed)} servables: {', '.join(needed)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
