"""config.json entries for models: which `model_config_list` entries are models, and their settings.

An entry `{"config": {"name": ..., "base_path": ...}}` whose base path holds
no graph pbtxt is a model (OVMS's `src/modelmanager.cpp`); the models of a graph's subconfig
(`<base_path>/subconfig.json`) are ordinary models too. Relative base paths
resolve against the directory of the file that names them. Supported keys:
`name`, `base_path`, `target_device`, `plugin_config`,
`model_version_policy`; shape, batch and layout changes are logged and
ignored (models keep their own shapes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ovms_notebook.errors import ConfigError
from ovms_notebook.ovms_config import base_path, json_list, load_json, read_config

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_DEVICE", "PRECISION_HINT", "ModelEntry", "VersionPolicy", "outside_base", "read_model_entries",
           "subconfig_problem"]

DEFAULT_DEVICE = "CPU"
PRECISION_HINT = "INFERENCE_PRECISION_HINT"
_UNSUPPORTED_KEYS = ("batch_size", "shape", "layout", "stateful", "idle_sequence_cleanup", "max_sequence_number")


@dataclass(frozen=True)
class VersionPolicy:
    """OVMS's `model_version_policy`: `latest` (the newest `count`), `all`, or `specific` versions."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Sequence[int]) -> list[int]:
        """The served versions among the version folders found, ascending."""
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered[-self.count :] if self.count > 0 else []

    @classmethod
    def parse(cls, value: object, where: str) -> VersionPolicy:
        """From config.json's `{"latest": {"num_versions": N}}`, `{"all": {}}` or `{"specific": {"versions": [..]}}`."""
        if value is None:
            return cls()
        if not isinstance(value, dict) or len(value) != 1:
            raise ConfigError(f"{where}: model_version_policy must be an object with one of latest, all, specific; "
                              f"got {value!r}")
        (kind, body), = value.items()
        body = body or {}
        if kind == "all" and isinstance(body, dict):
            return cls("all")
        if kind == "latest" and isinstance(body, dict):
            count = body.get("num_versions", 1)
            if not isinstance(count, int) or count < 1:
                raise ConfigError(f"{where}: latest.num_versions must be a positive integer, got {count!r}")
            return cls("latest", count=count)
        if kind == "specific" and isinstance(body, dict):
            versions = body.get("versions")
            if not isinstance(versions, list) or not all(isinstance(v, int) and v > 0 for v in versions):
                raise ConfigError(f"{where}: specific.versions must be a list of positive integers, got {versions!r}")
            return cls("specific", versions=tuple(versions))
        raise ConfigError(f"{where}: model_version_policy must be one of latest, all, specific; got {value!r}")


@dataclass(frozen=True)
class ModelEntry:
    """One model as config.json names it, with its base path resolved."""

    name: str
    base_path: Path
    target_device: str = DEFAULT_DEVICE
    plugin_config: tuple[tuple[str, str], ...] = ()
    policy: VersionPolicy = field(default_factory=VersionPolicy)

    @property
    def compile_config(self) -> dict[str, str]:
        """The properties `compile_model` gets: plugin_config, plus f32 precision on CPU unless it says otherwise."""
        config = dict(self.plugin_config)
        if self.target_device.upper().startswith("CPU") and PRECISION_HINT not in config:
            config[PRECISION_HINT] = "f32"
        return config


def read_model_entries(config_path: str | Path, *, validate: bool = True) -> list[ModelEntry]:
    """The model entries of a config.json: `model_config_list` entries without a graph, then the models of every
    graph's subconfig (OVMS's order). Duplicate names: the first wins, with a warning, as in OVMS."""
    config = read_config(config_path, validate=validate)
    entries = [_entry(model.settings, model.base_path, model.where) for model in config.models]
    for graph in config.subconfig_graphs:
        entries.extend(_subconfig_entries(graph.base_path, graph.subconfig, config.path))
    unique: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in unique:
            if unique[entry.name] != entry:
                log.warning("%s: model name %r appears twice; the first entry wins (as in OVMS)", config.path,
                            entry.name)
            continue
        unique[entry.name] = entry
    return list(unique.values())


def outside_base(what: str, path: Path, base: Path) -> str | None:
    """Why `path` may not be used (it resolves outside the graph's base path `base`: `..`, an absolute path
    elsewhere, a symlink out), or None when it is inside.

    config.json itself is trusted (its base paths may be absolute or lead anywhere, as in OVMS), but what a
    graph folder names - its graph file, subconfig, subconfig models, Python handlers - stays in that folder.
    """
    resolved, root = path.resolve(), base.resolve()
    if resolved.is_relative_to(root):
        return None
    return (f"{what} resolves to {resolved.as_posix()}, outside the graph's base path {root.as_posix()}; "
            "a graph's files must be inside its folder")


def _subconfig_path(base: Path, subconfig: object, main_config: Path | None) -> Path | None:
    """A graph's subconfig file: `<base>/<subconfig>`, default `<base>/subconfig.json`, else `<base>/config.json`."""
    if isinstance(subconfig, str) and subconfig:
        candidates = [base / subconfig]
    else:
        candidates = [base / "subconfig.json", base / "config.json"]
    for path in candidates:
        if path.is_file() and path.resolve() != main_config:
            return path
    return None


def subconfig_problem(base: Path, subconfig: object, main_config: Path | None) -> str | None:
    """Why a graph's subconfig may not be used - it, or a model base path in it, leads outside the graph's
    base path - or None. A refused subconfig loads no model and fails its graph with this reason."""
    path = _subconfig_path(base, subconfig, main_config)
    if path is None:
        return None
    problem = outside_base(f"subconfig {path.name!r}", path, base)
    if problem is not None:
        return problem
    try:
        document = load_json(path.resolve())
    except ConfigError:
        return None  # reported when its models are read
    for item in document.get("model_config_list", []) if isinstance(document.get("model_config_list"), list) else []:
        config = item.get("config") if isinstance(item, dict) else None
        if isinstance(config, dict) and isinstance(config.get("base_path") or config.get("name"), str):
            model_base = path.resolve().parent / Path(str(config.get("base_path") or config.get("name")))
            problem = outside_base(f"subconfig model {config.get('name')!r} base_path", model_base, base)
            if problem is not None:
                return problem
    return None


def _subconfig_entries(base: Path, subconfig: object, main_config: Path) -> list[ModelEntry]:
    """A graph's subconfig models (none when `subconfig_problem` refuses the subconfig)."""
    problem = subconfig_problem(base, subconfig, main_config)
    if problem is not None:
        log.error("%s: %s; its models are not loaded", main_config, problem)
        return []
    path = _subconfig_path(base, subconfig, main_config)
    if path is None:
        return []
    path = path.resolve()
    document = load_json(path)
    entries = []
    for index, item in enumerate(json_list(document, "model_config_list", path)):
        where = f"{path}: model_config_list[{index}].config"
        if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
            raise ConfigError(f"{path}: model_config_list[{index}] must be an object with a 'config' object")
        entries.append(_entry(item["config"], base_path(item["config"], path.parent, where), where))
    return entries


def _entry(config: dict, base: Path, where: str) -> ModelEntry:
    device = config.get("target_device", DEFAULT_DEVICE)
    if not isinstance(device, str) or not device:
        raise ConfigError(f"{where}.target_device must be a non-empty string, got {device!r}")
    plugin = config.get("plugin_config", {})
    if isinstance(plugin, str):  # the CLI form: a JSON string
        try:
            plugin = json.loads(plugin)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}.plugin_config is a string but not JSON: {error}") from error
    if not isinstance(plugin, dict):
        raise ConfigError(f"{where}.plugin_config must be an object, got {type(plugin).__name__}")
    for key in _UNSUPPORTED_KEYS:
        if key in config:
            log.warning("%s.%s is not supported here and is ignored (the model keeps its own shapes)", where, key)
    return ModelEntry(
        name=config["name"],
        base_path=base,
        target_device=device,
        plugin_config=tuple(sorted((str(k), _property_text(v)) for k, v in plugin.items())),
        policy=VersionPolicy.parse(config.get("model_version_policy"), where),
    )


def _property_text(value: object) -> str:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)
