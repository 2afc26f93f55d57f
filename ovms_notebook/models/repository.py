"""Models in OVMS's layout: a `model_config_list` served by name, its versions found on disk.

A model entry (models/config.py) names a base path; its versions are the
numeric subfolders, each holding one model file (`*.xml` + `*.bin`,
`*.onnx`, `*.tflite`, `*.pdmodel`, `saved_model.pb`); `model_version_policy`
picks the served ones (default: the latest). `ModelRepository` keeps them by
name and reloads them as OVMS does: new versions appear, vanished ones retire.

This module only discovers and tracks versions; reading, compiling and
running one with OpenVINO is models/version.py, its tensors models/tensors.py
(both re-exported here, where they have always been importable from).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ovms_notebook.models.config import ModelEntry, read_model_entries
from ovms_notebook.models.tensors import TensorSpec
from ovms_notebook.models.version import ModelVersion, VersionState, openvino_core, openvino_error_text
from ovms_notebook.status import OvmsStatus, StatusCode

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_FILE_PATTERNS",
    "Model",
    "ModelRepository",
    "ModelVersion",
    "TensorSpec",
    "VersionState",
    "find_model_file",
    "openvino_core",
    "openvino_error_text",
    "parse_version",
]

#: What OVMS accepts as a model file inside a version folder, in the order we prefer them.
MODEL_FILE_PATTERNS: tuple[str, ...] = ("*.xml", "*.onnx", "*.pdmodel", "saved_model.pb", "*.tflite")
_VERSION_TEXT = re.compile(r"^-?[0-9]+$")


def find_model_file(folder: Path) -> Path | None:
    """The model file of a version folder (first match of MODEL_FILE_PATTERNS; an .xml needs its .bin)."""
    for pattern in MODEL_FILE_PATTERNS:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and (path.suffix != ".xml" or path.with_suffix(".bin").is_file()):
                return path
    return None


class Model:
    """A model name and its served versions; the default version is the newest one not retired."""

    def __init__(self, entry: ModelEntry, versions: Mapping[int, ModelVersion] | None = None,
                 error: str | None = None) -> None:
        self.entry = entry
        self.versions: dict[int, ModelVersion] = dict(sorted((versions or {}).items()))
        self.error = error

    def __repr__(self) -> str:
        return f"<Model {self.name} versions {sorted(self.versions)}{' ' + self.error if self.error else ''}>"

    @property
    def name(self) -> str:
        """The KServe model name."""
        return self.entry.name

    @property
    def default(self) -> ModelVersion | None:
        """The version served when a request names none: the newest not retired (OVMS), else the newest."""
        live = [v for v in self.versions.values() if v.state is not VersionState.RETIRED]
        if live:
            return live[-1]
        return list(self.versions.values())[-1] if self.versions else None

    def version(self, number: int) -> ModelVersion:
        """Version `number` (0 = default): OvmsStatus MODEL_VERSION_MISSING when there is none."""
        found = self.default if number == 0 else self.versions.get(number)
        if found is None:
            raise OvmsStatus(StatusCode.MODEL_VERSION_MISSING)
        return found

    @property
    def available_versions(self) -> list[int]:
        """Versions that can serve now (not failed, not retired), ascending."""
        return [n for n, v in self.versions.items() if v.state is VersionState.AVAILABLE]


def scan_versions(entry: ModelEntry) -> tuple[dict[int, ModelVersion], str | None]:
    """The served versions under an entry's base path, per its policy; an error text when there are none."""
    base = entry.base_path
    if not base.is_dir():
        return {}, f"base_path {base} is not a folder"
    numbers = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0]
    if not numbers:
        return {}, f"no version folder (a positive integer such as {base}/1) in {base}"
    versions: dict[int, ModelVersion] = {}
    for number in entry.policy.select(numbers):
        folder = base / str(number)
        path = find_model_file(folder)
        error = None if path else (
            f"no model file in {folder} (expected one of {', '.join(MODEL_FILE_PATTERNS)}; .xml with its .bin)")
        versions[number] = ModelVersion(entry, number, path, error)
        if error:
            log.error("model %s v%d failed: %s", entry.name, number, error)
    if not versions:
        return {}, f"model_version_policy {entry.policy} selects none of the versions {sorted(numbers)}"
    return versions, None


def parse_version(text: str) -> int:
    """A request's version string as OVMS reads it (empty = 0 = default); MODEL_VERSION_INVALID_FORMAT otherwise."""
    if not text:
        return 0
    if not _VERSION_TEXT.match(text) or abs(int(text)) >= 2**63:
        raise OvmsStatus(StatusCode.MODEL_VERSION_INVALID_FORMAT)
    return int(text)


# ---------------------------------------------------------------- repository


class ModelRepository:
    """The models of one config.json (or of entries given directly), by name. Thread-safe.

    `resolve(name, version)` is what inference uses; `get(name)` answers
    "is this a model?"; `reload()` re-reads the config: new models and
    versions appear, vanished ones are retired, unchanged versions keep their
    compiled model.
    """

    def __init__(self, config: str | Path | None = None, entries: Sequence[ModelEntry] = ()) -> None:
        self.config_path = Path(config).expanduser().resolve() if config is not None else None
        if self.config_path is not None and self.config_path.is_dir():
            self.config_path = self.config_path / "config.json"
        self._extra = list(entries)
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._models: dict[str, Model] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<ModelRepository {len(self._models)} models: {', '.join(self._models) or 'none'}>"

    def _entries(self) -> list[ModelEntry]:
        entries = read_model_entries(self.config_path) if self.config_path is not None else []
        names = {entry.name for entry in entries}
        return entries + [entry for entry in self._extra if entry.name not in names]

    def add(self, entry: ModelEntry) -> Model:
        """Serve one more model (kept across reloads); replaces a model of the same name."""
        self._extra = [e for e in self._extra if e.name != entry.name] + [entry]
        self.reload()
        return self._models[entry.name]

    def reload(self) -> dict[str, str]:
        """Re-read the config and version folders; returns what happened per name (loaded, reloaded, retired,
        unchanged, and "versions changed"). Failed versions are tried again."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> dict[str, str]:
        entries = self._entries()
        with self._lock:
            current = dict(self._models)
        updated: dict[str, Model] = {}
        changes: dict[str, str] = {}
        for entry in entries:
            old = current.get(entry.name)
            versions, error = scan_versions(entry)
            if error:
                log.error("model %s failed to load: %s", entry.name, error)
            if old is None or old.entry != entry:
                updated[entry.name] = Model(entry, versions, error)
                changes[entry.name] = "loaded" if old is None else "reloaded"
                if old is not None:
                    _retire(old.versions.values())
                continue
            vanished = [v for n, v in old.versions.items()
                        if n not in versions and v.state is not VersionState.RETIRED]
            merged: dict[int, ModelVersion] = {}
            for number, fresh in versions.items():
                kept = old.versions.get(number)
                keep = kept is not None and kept.state is VersionState.AVAILABLE and kept.path == fresh.path
                merged[number] = kept if kept is not None and keep else fresh
            _retire(vanished)
            for number, version in old.versions.items():
                if number not in merged:
                    merged[number] = version  # retired, still listed (OVMS keeps END versions)
            updated[entry.name] = Model(entry, merged, error)
            same = merged.keys() == old.versions.keys() and all(v is old.versions[n] for n, v in merged.items())
            unchanged = same and not vanished and error == old.error
            changes[entry.name] = "unchanged" if unchanged else "versions changed"
        names = {entry.name for entry in entries}
        for name, old in current.items():
            if name not in names:
                if any(v.state is not VersionState.RETIRED for v in old.versions.values()):
                    changes[name] = "retired"
                _retire(old.versions.values())
                updated[name] = old  # still known: requests get "retired", not "not found" (as in OVMS)
        with self._lock:
            self._models = updated
        return changes

    def get(self, name: str) -> Model | None:
        """The model named `name` (in whatever state), or None when it is not a model."""
        with self._lock:
            return self._models.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    @property
    def models(self) -> list[Model]:
        """Every model, in config order."""
        with self._lock:
            return list(self._models.values())

    @property
    def names(self) -> list[str]:
        """Every model name, in config order."""
        return [model.name for model in self.models]

    def resolve(self, name: str, version: int = 0) -> ModelVersion:
        """The version a request runs on (0 = default), with OVMS's statuses: MODEL_NAME_MISSING,
        MODEL_VERSION_MISSING, MODEL_VERSION_NOT_LOADED_ANYMORE (retired), MODEL_VERSION_NOT_LOADED_YET (failed)."""
        model = self.get(name)
        if model is None:
            raise OvmsStatus(StatusCode.MODEL_NAME_MISSING)
        return model.version(version).require()


def _retire(versions: Iterable[ModelVersion]) -> None:
    for version in versions:
        if version.state is not VersionState.RETIRED:
            log.info("model %s v%d retired", version.name, version.version)
            version.retire()
