"""Models in OVMS's layout: versions found on disk, read and compiled by OpenVINO on first need.

A model entry (models/config.py) names a base path; its versions are the
numeric subfolders, each holding one model file (`*.xml` + `*.bin`,
`*.onnx`, `*.tflite`, `*.pdmodel`, `saved_model.pb`); `model_version_policy`
picks the served ones (default: the latest).

Nothing is read when the config is: a version's file is read by OpenVINO
the first time its inputs/outputs are asked for (ModelReady, ModelMetadata),
and compiled the first time it runs. A read or compile failure is recorded on
the version (state FAILED, `error` says why), never raised at load, so one
bad model does not stop the others. Compilation uses `INFERENCE_PRECISION_HINT`
f32 on CPU unless the entry's `plugin_config` sets it (this CPU defaults to
bf16, which drifts from TFLite by several percent; see DESIGN.md).
"""

from __future__ import annotations

import enum
import functools
import logging
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ovms_notebook.models.config import ModelEntry, read_model_entries
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

# OpenVINO element type name -> (KServe datatype, OVMS precision name used in error texts).
_ELEMENT_TYPES: dict[str, tuple[str, str]] = {
    "f32": ("FP32", "FP32"),
    "f16": ("FP16", "FP16"),
    "f64": ("FP64", "FP64"),
    "bf16": ("BF16", "BF16"),
    "i8": ("INT8", "I8"),
    "i16": ("INT16", "I16"),
    "i32": ("INT32", "I32"),
    "i64": ("INT64", "I64"),
    "u8": ("UINT8", "U8"),
    "u16": ("UINT16", "U16"),
    "u32": ("UINT32", "U32"),
    "u64": ("UINT64", "U64"),
    "boolean": ("BOOL", "BOOL"),
    "string": ("BYTES", "STRING"),
}


@functools.cache
def openvino_core() -> Any:
    """One `openvino.Core` per process (imported on first use: openvino is slow to import; its telemetry is
    declined, see `_env.import_openvino`)."""
    from ovms_notebook._env import import_openvino

    return import_openvino().Core()


# ---------------------------------------------------------------- tensors


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as KServe shows it: name, datatype, shape (-1 for a dynamic dimension).

    `bounds` keeps each dimension's (min, max) (max -1 = unbounded) for validation; `precision` is
    OVMS's name for the element type ("FP32", "U8"), the one its error texts print.
    """

    name: str
    datatype: str
    precision: str
    shape: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]
    dynamic_rank: bool = False

    @property
    def dtype(self) -> np.dtype | None:
        """The numpy dtype of the tensor's elements (little-endian), None when numpy has none."""
        from ovms_notebook.codec.datatypes import DATATYPES, wire_dtype

        return wire_dtype(self.datatype) if self.datatype in DATATYPES and self.datatype != "BYTES" else None

    def shape_text(self) -> str:
        """The shape as OVMS prints it (`Shape::toString`): "(1,128,128,3)", -1 dynamic, "[1~8]" a range."""
        if self.dynamic_rank:
            return "..."
        return "(" + ",".join(self.dimension_text(i) for i in range(len(self.bounds))) + ")"

    def dimension_text(self, index: int) -> str:
        """One dimension as OVMS prints it (`Dimension::toString`)."""
        low, high = self.bounds[index]
        if low == high:
            return str(low)
        if low == 0 and high < 0:
            return "-1"
        return f"[{low}~{high}]"

    def dimension_matches(self, index: int, value: int) -> bool:
        """OVMS's `Dimension::match`: equal to a static dimension, within a range, anything for -1."""
        low, high = self.bounds[index]
        return low <= value and (high < 0 or value <= high)

    def accepts(self, shape: Sequence[int]) -> bool:
        """True when a tensor of `shape` fits (same rank, every dimension matching)."""
        if self.dynamic_rank:
            return True
        return len(shape) == len(self.bounds) and all(self.dimension_matches(i, d) for i, d in enumerate(shape))

    def as_dict(self) -> dict[str, object]:
        """The KServe `TensorMetadata` of this tensor as a dict."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _tensor_spec(port: Any) -> TensorSpec:
    type_name = port.get_element_type().get_type_name()
    datatype, precision = _ELEMENT_TYPES.get(type_name, ("INVALID", type_name.upper()))
    partial = port.get_partial_shape()
    if partial.rank.is_dynamic:
        return TensorSpec(port.get_any_name(), datatype, precision, (), (), dynamic_rank=True)
    bounds = []
    for dim in partial:
        if dim.is_static:
            bounds.append((dim.get_length(), dim.get_length()))
        else:
            bounds.append((max(dim.get_min_length(), 0), dim.get_max_length()))
    shape = tuple(low if low == high else -1 for low, high in bounds)
    return TensorSpec(port.get_any_name(), datatype, precision, shape, tuple(bounds))


# ---------------------------------------------------------------- versions


class VersionState(enum.Enum):
    """Where a model version is in its life (OVMS: AVAILABLE, LOADING_PRECONDITION_FAILED, END)."""

    AVAILABLE = "AVAILABLE"
    FAILED = "LOADING_PRECONDITION_FAILED"
    RETIRED = "RETIRED"


class ModelVersion:
    """One served version of a model: its file, read and compiled on first need, run from a pool of requests.

    Thread-safe: the first caller reads/compiles under the version's lock, the
    others wait for it; `infer` takes an idle OpenVINO infer request (or makes
    one) so concurrent calls never share a request.
    """

    def __init__(self, entry: ModelEntry, version: int, path: Path | None, error: str | None = None) -> None:
        self.entry = entry
        self.version = version
        self.path = path
        self._error = error
        self._retired = False
        self._lock = threading.Lock()
        self._model: Any = None
        self._compiled: Any = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.compile_ms: float | None = None

    def __repr__(self) -> str:
        status = self.state.value + (f": {self._error}" if self._error else "")
        return f"<ModelVersion {self.name} v{self.version} {self.path.name if self.path else '-'} {status}>"

    @property
    def name(self) -> str:
        """The KServe model name."""
        return self.entry.name

    @property
    def state(self) -> VersionState:
        """RETIRED once a reload dropped it, FAILED once reading or compiling failed, else AVAILABLE."""
        if self._retired:
            return VersionState.RETIRED
        return VersionState.FAILED if self._error else VersionState.AVAILABLE

    @property
    def error(self) -> str | None:
        """Why the version failed, or None."""
        return self._error

    @property
    def compiled(self) -> bool:
        """True once the model is compiled."""
        return self._compiled is not None

    def retire(self) -> None:
        """Mark the version retired; running users keep their compiled model."""
        self._retired = True

    def ready(self) -> bool:
        """ModelReady: the file is found and OpenVINO can read it (read now if it was not yet); nothing failed."""
        if self.state is not VersionState.AVAILABLE:
            return False
        try:
            self._read()
        except OvmsStatus:
            return False
        return True

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs in model order (reads the file on first use; OvmsStatus if that fails)."""
        self._read()
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The model's outputs in model order (reads the file on first use)."""
        self._read()
        return self._outputs

    def require(self) -> ModelVersion:
        """This version if it can serve: OVMS's not-loaded statuses otherwise."""
        if self._retired:
            raise OvmsStatus(StatusCode.MODEL_VERSION_NOT_LOADED_ANYMORE)
        if self._error:
            raise OvmsStatus(StatusCode.MODEL_VERSION_NOT_LOADED_YET)
        return self

    def _read(self) -> Any:
        self.require()
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self.require()
                try:
                    model = openvino_core().read_model(str(self.path))
                except Exception as error:
                    self._fail(f"OpenVINO cannot read {self.path}: {openvino_error_text(error)}")
                self._inputs = tuple(_tensor_spec(port) for port in model.inputs)
                self._outputs = tuple(_tensor_spec(port) for port in model.outputs)
                self._model = model
        return self._model

    def compile(self) -> Any:
        """The `openvino.CompiledModel`, compiled on first use (once, whoever asks first); OvmsStatus if it fails."""
        if self._compiled is not None:
            return self._compiled
        model = self._read()
        with self._lock:
            if self._compiled is None:
                self.require()
                device, config = self.entry.target_device, self.entry.compile_config
                log.info("compiling %s v%d (%s) ...", self.name, self.version, self.path.name if self.path else "-")
                start = time.perf_counter()
                try:
                    compiled = openvino_core().compile_model(model, device, config)
                except Exception as error:
                    self._fail(f"OpenVINO cannot compile {self.path} for {device} with {config}: "
                               f"{openvino_error_text(error)}")
                self.compile_ms = (time.perf_counter() - start) * 1000
                log.info("... %s v%d compiled in %.0f ms (%s, %s)", self.name, self.version, self.compile_ms,
                         device, ", ".join(f"{k}={v}" for k, v in config.items()))
                self._compiled = compiled
        return self._compiled

    def _fail(self, reason: str) -> NoReturn:
        self._error = reason
        log.error("model %s v%d failed: %s", self.name, self.version, reason)
        raise OvmsStatus(StatusCode.MODEL_VERSION_NOT_LOADED_YET)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on numpy inputs keyed by input name; outputs by name, as arrays the caller owns.

        Inputs must already have the model's dtypes and acceptable shapes (the
        KServe and node layers validate with OVMS's texts); an OpenVINO failure
        is OvmsStatus OV_INTERNAL_INFERENCE_ERROR.
        """
        compiled = self.compile()
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = compiled.create_infer_request()
        try:
            result = request.infer(dict(inputs), share_inputs=True, share_outputs=True)
            outputs = {spec.name: np.array(result[index], copy=True) for index, spec in enumerate(self._outputs)}
        except Exception as error:
            raise OvmsStatus(StatusCode.OV_INTERNAL_INFERENCE_ERROR, openvino_error_text(error)) from error
        finally:
            self._idle.put(request)
        return outputs


def openvino_error_text(error: BaseException) -> str:
    """The telling part of an OpenVINO exception (its messages start with a C++ source location)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful[-1] if useful else (lines[-1] if lines else type(error).__name__))


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
            merged = {}
            for number, fresh in versions.items():
                kept = old.versions.get(number)
                keep = kept is not None and kept.state is VersionState.AVAILABLE and kept.path == fresh.path
                merged[number] = kept if keep else fresh
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
