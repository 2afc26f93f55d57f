"""Regenerate ovms_notebook/portability/ovms_calculators.json and ovms_notebook/ovms_config/ovms_config_schema.json
from OVMS sources.

    python scripts/ovms_calculators.py --model-server ~/src/model_server --mediapipe ~/src/mediapipe \
        --model-server-commit <sha> --mediapipe-commit <sha>

`--model-server` is a checkout of openvinotoolkit/model_server, `--mediapipe` a checkout of the
openvinotoolkit/mediapipe fork at the commit model_server's WORKSPACE pins (`name = "mediapipe"`).

Calculators: the Bazel BUILD files of both trees are read as Python (Starlark is close enough; every
rule and macro becomes a recorder of its `name`, `srcs`, `hdrs`, `deps` and `register_as`, and
`select()` is the union of its branches). From the `ovms` binary target (`//src:ovms`) the
dependencies are followed through `//src/...`, `@mediapipe_calculators//` (third_party/) and
`@mediapipe//...`; every source or header of a reached target is scanned for calculator and subgraph
registrations (REGISTER_CALCULATOR, MEDIAPIPE_REGISTER_NODE, REGISTER_MEDIAPIPE_GRAPH, and api2
NodeImpl/SubgraphImpl/MEDIAPIPE_NODE_IMPLEMENTATION of an interface whose name a reached file sets)
and every reached `mediapipe_simple_subgraph` contributes its `register_as`. Dependencies on other
external repositories are not followed; C++ preprocessor conditionals are not evaluated, so GPU-only
variants compiled out of OVMS's CPU build may be listed.

Schema: `MODELS_CONFIG_SCHEMA` of src/schema.cpp, assembled as the C++ concatenation does with
MediaPipe enabled. Nothing here runs at run time: the package only reads the two JSON files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "ovms_notebook" / "portability"
SCHEMA = HERE.parent / "ovms_notebook" / "ovms_config" / "ovms_config_schema.json"

_REGISTRATION = re.compile(
    r"^\s*(?:REGISTER_CALCULATOR|MEDIAPIPE_REGISTER_NODE|REGISTER_MEDIAPIPE_GRAPH)\(\s*(?:::)?(?:mediapipe::)?"
    r"(?:api2::)?([A-Za-z_][A-Za-z0-9_]*)\s*\)",
    re.M,
)
# api2: `class Impl : public NodeImpl<Intf, Impl>` / `SubgraphImpl<Intf, Impl>` registers Intf::kCalculatorName,
# which MEDIAPIPE_NODE_INTERFACE(Name, ...) or `static constexpr char kCalculatorName[] = "Name"` sets in Intf.
_IMPL_OF = re.compile(
    r"(?:\w*(?:NodeImpl|SubgraphImpl)<|MEDIAPIPE_NODE_IMPLEMENTATION\(\s*\w+<)\s*(?:\w+::)*(\w+)\s*[,>]"
)
_NAMED_BY_MACRO = re.compile(r"MEDIAPIPE_NODE_INTERFACE\(\s*(\w+)")  # the interface struct carries the same name
_NAMED_BY_CONSTANT = re.compile(r'(?:struct|class)\s+(\w+)[^;{]*\{[^{}]*?kCalculatorName\[\]\s*=\s*"(\w+)"', re.S)


class _Recorder:
    """Collects the targets one BUILD file declares."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.targets: dict[str, dict] = {}

    def rule(self, *args: object, **kwargs: object) -> object:
        name = kwargs.get("name")
        if isinstance(name, str):
            self.targets[name] = kwargs
        return None


class _Scope(dict):
    """BUILD file globals: any unknown name is a rule/macro/constant recorder."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __missing__(self, key: str) -> object:
        return _Anything(self.recorder)


class _Anything:
    """Stands for any symbol a BUILD file loads from a .bzl: callable (records a rule), indexable, iterable."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.recorder.rule(*args, **kwargs)
        return _Anything(self.recorder)

    def __getattr__(self, name: str) -> _Anything:
        return _Anything(self.recorder)

    def __getitem__(self, key: object) -> _Anything:
        return _Anything(self.recorder)

    def __iter__(self):
        return iter(())

    def __add__(self, other: object) -> object:
        return other

    __radd__ = __add__


def _select(branches: dict, **_: object) -> list:
    union: list = []
    for value in branches.values():
        if isinstance(value, list):
            union.extend(value)
    return union


def _glob(package: Path):
    def glob(include: list[str], exclude: list[str] = (), **_: object) -> list[str]:
        found: set[str] = set()
        for pattern in include:
            found.update(str(p.relative_to(package)) for p in package.glob(pattern) if p.is_file())
        for pattern in exclude:
            found.difference_update(str(p.relative_to(package)) for p in package.glob(pattern))
        return sorted(found)

    return glob


def read_build(path: Path) -> dict[str, dict]:
    """The targets of one BUILD file (by name); files that do not execute as Python give what they reached."""
    recorder = _Recorder(path.parent)
    scope = _Scope(recorder)
    scope.update(
        load=lambda *a, **k: None, select=_select, glob=_glob(path.parent), package=lambda **k: None,
        licenses=lambda *a: None, exports_files=lambda *a, **k: None, True_=True, len=len, struct=dict,
        package_name=lambda: str(path.parent), Label=lambda s: s, depset=list, sorted=sorted, dict=dict,
        list=list, str=str, range=range, enumerate=enumerate, zip=zip, any=any, all=all, int=int,
        native=_Anything(recorder), fail=lambda *a, **k: None, print=lambda *a, **k: None,
    )
    source = path.read_text(errors="replace")
    try:
        exec(compile(source, str(path), "exec"), {"__builtins__": {}}, scope)
    except Exception as error:  # a Starlark feature Python lacks: keep the targets read so far
        sys.stderr.write(f"warning: {path}: {type(error).__name__}: {error}\n")
    return recorder.targets


class Workspace:
    """Bazel labels resolved to targets across the model_server and mediapipe trees."""

    def __init__(self, model_server: Path, mediapipe: Path) -> None:
        self.roots = {"": model_server, "ovms": model_server, "mediapipe": mediapipe,
                      "mediapipe_calculators": model_server / "third_party" / "mediapipe_calculators"}
        self.cache: dict[Path, dict[str, dict]] = {}

    def resolve(self, label: str, repo: str, package: str) -> tuple[str, str, str] | None:
        """(repo, package, name) of `label` written in `repo`'s `package`; None for other repositories."""
        if label.startswith("@"):
            repo, _, label = label[1:].partition("//")
            label = "//" + label
            if repo not in self.roots:
                return None
        if label.startswith("//"):
            package, _, name = label[2:].partition(":")
            name = name or package.rsplit("/", 1)[-1]
        else:
            name = label.lstrip(":")
        return repo, package, name

    def targets(self, repo: str, package: str) -> dict[str, dict]:
        root = self.roots[repo]
        path = root / package / "BUILD"
        if not path.is_file():
            path = root / package / "BUILD.bazel"
        if path not in self.cache:
            self.cache[path] = read_build(path) if path.is_file() else {}
        return self.cache[path]

    def calculators(self, start: str) -> set[str]:
        """Every calculator and subgraph name registered by targets reachable from `start`."""
        found: set[str] = set()
        implemented: set[str] = set()
        interface_names: dict[str, str] = {}
        seen: set[tuple[str, str, str]] = set()
        todo = [self.resolve(start, "", "")]
        while todo:
            key = todo.pop()
            if key is None or key in seen:
                continue
            seen.add(key)
            repo, package, name = key
            target = self.targets(repo, package).get(name)
            if target is None:
                continue
            if isinstance(target.get("register_as"), str):
                found.add(target["register_as"])
            folder = self.roots[repo] / package
            for field in ("srcs", "hdrs", "textual_hdrs"):
                for src in target.get(field) or ():
                    if isinstance(src, str) and not src.startswith((":", "//", "@")):
                        found.update(_registered(folder / src, implemented, interface_names))
            local = self.targets(repo, package)
            for field in ("deps", "srcs", "data"):
                for dep in target.get(field) or ():
                    if isinstance(dep, str) and (field == "deps" or dep.startswith((":", "//", "@")) or dep in local):
                        todo.append(self.resolve(dep, repo, package))
        return found | {interface_names[name] for name in implemented if name in interface_names}


def _registered(path: Path, implemented: set[str], interface_names: dict[str, str]) -> set[str]:
    """Names `path` registers directly; api2 implementations and interface names are collected on the side."""
    if path.suffix not in (".cc", ".cpp", ".h", ".hpp") or not path.is_file():
        return set()
    text = path.read_text(errors="replace")
    implemented.update(_IMPL_OF.findall(text))
    interface_names.update((name, name) for name in _NAMED_BY_MACRO.findall(text))
    interface_names.update(_NAMED_BY_CONSTANT.findall(text))
    return set(_REGISTRATION.findall(text))


def config_schema(schema_cpp: Path) -> dict:
    """MODELS_CONFIG_SCHEMA of src/schema.cpp as JSON (MediaPipe enabled)."""
    text = schema_cpp.read_text()
    raw = {m.group(1): m.group(2) for m in re.finditer(r'const std::string (\w+) = R"\((.*?)\)";', text, re.S)}
    start = text.index("const std::string MODELS_CONFIG_SCHEMA =")
    body = text[start:text.index(')";', text.index('"additionalProperties": false\n})";', start)) + 3]
    body = re.sub(r"^#.*$", "", body, flags=re.M)
    parts = re.findall(r'R"\((.*?)\)"|\b([A-Z_]{6,})\b', body.split("=", 1)[1], re.S)
    assembled = "".join(literal or raw.get(name, "") for literal, name in parts if literal or name in raw)
    return json.loads(assembled)


def source_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every regeneration script takes: the two checked-out trees, their commits, the output folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model-server", type=Path, required=True)
    parser.add_argument("--mediapipe", type=Path, required=True)
    parser.add_argument("--model-server-commit", default="unknown")
    parser.add_argument("--mediapipe-commit", default="unknown")
    parser.add_argument("--out", type=Path, default=OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = source_arguments(__doc__.split("\n\n")[0], argv)
    workspace = Workspace(args.model_server.resolve(), args.mediapipe.resolve())
    names = sorted(workspace.calculators("//src:ovms"))
    source = {
        "what": "calculator and subgraph names registered in the `ovms` binary of OpenVINO Model Server",
        "how": "scripts/ovms_calculators.py: Bazel deps of //src:ovms followed through model_server and the "
               "openvinotoolkit/mediapipe fork, registrations scanned in each reached target's sources",
        "model_server": {"repo": "openvinotoolkit/model_server", "commit": args.model_server_commit,
                         "files": ["src/BUILD (ovms, ovms_lib)", "third_party/mediapipe_calculators/BUILD"]},
        "mediapipe": {"repo": "openvinotoolkit/mediapipe", "commit": args.mediapipe_commit},
    }
    (args.out / "ovms_calculators.json").write_text(json.dumps({"source": source, "calculators": names}, indent=1))
    schema = config_schema(args.model_server / "src" / "schema.cpp")
    schema["$comment"] = (f"MODELS_CONFIG_SCHEMA of openvinotoolkit/model_server src/schema.cpp at "
                          f"{args.model_server_commit} (MediaPipe enabled), regenerated by scripts/ovms_calculators.py")
    SCHEMA.write_text(json.dumps(schema, indent=1))
    sys.stdout.write(f"{len(names)} calculators; schema with {len(schema['properties'])} top-level keys\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
