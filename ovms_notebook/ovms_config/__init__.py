"""OVMS's config.json, read once: the one reader the graph repository, the model repository, `check` and
`export` share.

`read_config` parses the file, checks it against OVMS's own schema (`ovms_config_schema.json`, vendored from
OVMS's `src/schema.cpp`, MODELS_CONFIG_SCHEMA; a violation is logged, since OVMS would refuse the file) and
returns typed entries with OVMS's path defaults applied: `base_path` defaults to `<dir of config.json>/<name>`,
is taken relative to that directory, and a leading `~` is expanded the same way for graphs and models. A
`model_config_list` entry whose base path holds its graph file is a graph (as OVMS's modelmanager.cpp decides);
graph entries also come from `mediapipe_config_list`; the other `model_config_list` entries are models, whose
settings `ovms_notebook.models.config` reads from `ModelConfig.settings`.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ovms_notebook.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "GraphEntry",
    "ModelConfig",
    "OvmsConfig",
    "base_path",
    "config_schema",
    "find_config",
    "json_list",
    "load_json",
    "read_config",
    "schema_errors",
]

DEFAULT_GRAPH_FILE = "graph.pbtxt"


@dataclass(frozen=True)
class GraphEntry:
    """One graph as config.json names it, with OVMS's defaults resolved to absolute paths; `subconfig` is the
    entry's `subconfig` value as written (None when absent)."""

    name: str
    base_path: Path
    graph_path: Path
    subconfig_path: Path | None
    subconfig: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ModelConfig:
    """One `model_config_list` entry that is a model: its name, resolved base path, the `config` object as
    written and where it sits in the file (for error texts)."""

    name: str
    base_path: Path
    settings: dict[str, Any]
    where: str


@dataclass(frozen=True)
class OvmsConfig:
    """A read config.json: the graphs (first of a name wins, as in OVMS), the models, and the graphs in the
    order OVMS reads their subconfigs (`model_config_list` first, every entry)."""

    path: Path
    document: dict[str, Any]
    graphs: list[GraphEntry]
    models: list[ModelConfig]
    subconfig_graphs: list[GraphEntry]


def find_config(path: str | Path) -> Path:
    """Resolve CONFIG: a config.json file, or a folder that holds one."""
    given = Path(path).expanduser()
    path = given / "config.json" if given.is_dir() else given
    if not path.is_file():
        # The absolute path: a relative one is read from the working folder, which in a notebook is the
        # notebook's folder, not necessarily the one the user thinks of.
        searched = f"no config.json in {given.absolute()}" if given.is_dir() else f"{given.absolute()} does not exist"
        raise ConfigError(f"expected an OVMS config.json or a folder holding one, got {str(path)!r} ({searched})")
    return path.resolve()


@functools.cache
def config_schema() -> dict[str, Any]:
    """OVMS's config.json schema (MODELS_CONFIG_SCHEMA of src/schema.cpp, vendored)."""
    text = resources.files(__name__).joinpath("ovms_config_schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(document: object) -> list[tuple[str, str]]:
    """Every place `document` (a parsed config.json) breaks OVMS's schema, as (where, message), in file order.

    OVMS refuses the whole file when there is any."""
    import jsonschema

    validator = jsonschema.Draft4Validator(config_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [("config.json" + "".join(f"[{p!r}]" for p in error.absolute_path), error.message) for error in errors]


def load_json(path: Path) -> dict[str, Any]:
    """A config file's top-level object; ConfigError when it cannot be read or is not a JSON object."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path} cannot be read: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, got {type(document).__name__}")
    return document


def json_list(document: dict[str, Any], key: str, path: Path) -> list[Any]:
    """`document[key]`, a list ([] when absent); ConfigError when it is something else."""
    value = document.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{path}: '{key}' must be a list, got {type(value).__name__}")
    return value


def base_path(config: dict[str, Any], root: Path, where: str) -> Path:
    """An entry's base path: `base_path` (default: its name) relative to `root`, `~` expanded, resolved."""
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a non-empty string 'name', got {name!r}")
    base = config.get("base_path") or name
    if not isinstance(base, str):
        raise ConfigError(f"{where}.base_path must be a string, got {type(base).__name__}")
    return (root / Path(base).expanduser()).resolve()


def _graph_entry(item: object, root: Path, where: str) -> GraphEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {type(item).__name__}")
    for key in ("name", "base_path", "graph_path", "subconfig"):
        if key in item and not isinstance(item[key], str):
            raise ConfigError(f"{where}.{key} must be a string, got {type(item[key]).__name__}")
    base = base_path(item, root, where)
    graph_path = (base / (item.get("graph_path") or DEFAULT_GRAPH_FILE)).resolve()
    sub = item.get("subconfig") or None
    subconfig_path = base / sub if sub else None  # as named: a symlink out is refused at load
    return GraphEntry(name=item["name"], base_path=base, graph_path=graph_path, subconfig_path=subconfig_path,
                      subconfig=sub)


def read_config(config_path: str | Path, *, validate: bool = True) -> OvmsConfig:
    """Read config.json (a file, or a folder holding one): ConfigError when it is not JSON or misses what an
    entry needs. With `validate`, a file OVMS's schema rejects is logged (INFO) naming the first place
    (OVMS would refuse to start; here it is served); `check` reads with `validate=False` and reports every
    place itself."""
    path = find_config(config_path)
    document = load_json(path)
    root = path.parent
    listed: list[GraphEntry] = []
    for index, item in enumerate(json_list(document, "mediapipe_config_list", path)):
        listed.append(_graph_entry(item, root, f"{path}: mediapipe_config_list[{index}]"))
    in_models: list[GraphEntry] = []
    models: list[ModelConfig] = []
    for index, item in enumerate(json_list(document, "model_config_list", path)):
        if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
            raise ConfigError(f"{path}: model_config_list[{index}] must be an object with a 'config' object")
        where = f"{path}: model_config_list[{index}].config"
        entry = _graph_entry(item["config"], root, where)
        if entry.graph_path.is_file():
            in_models.append(entry)
        else:  # without a graph file the entry is a model
            models.append(ModelConfig(entry.name, entry.base_path, item["config"], where))
    problems = schema_errors(document) if validate else []
    if problems:  # served here all the same (lessons write partial configs); OVMS would not start, `check` says so
        where, message = problems[0]
        more = f" (and {len(problems) - 1} more; `ovms_notebook.check` lists them)" if len(problems) > 1 else ""
        log.info("%s: OVMS would refuse this file: its config schema rejects %s: %s%s", path, where, message, more)
    unique: dict[str, GraphEntry] = {}
    for entry in [*listed, *in_models]:
        if entry.name in unique:
            log.warning("%s: graph name %r appears twice; the first entry wins (as in OVMS)", path, entry.name)
            continue
        unique[entry.name] = entry
    return OvmsConfig(path, document, list(unique.values()), models, [*in_models, *listed])
