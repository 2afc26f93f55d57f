"""One served model version: its file read and compiled by OpenVINO on first need, then run.

Nothing is read when the config is: a version's file is read by OpenVINO
the first time its inputs/outputs are asked for (ModelReady, ModelMetadata),
and compiled the first time it runs. A read or compile failure is recorded on
the version (state FAILED, `error` says why), never raised at load, so one
bad model does not stop the others. Compilation uses `INFERENCE_PRECISION_HINT`
f32 on CPU unless the entry's `plugin_config` sets it (this CPU defaults to
bf16, which drifts from TFLite by several percent).

Which versions exist and which are served is models/repository.py's concern;
this module is the only one that calls OpenVINO for a model.
"""

from __future__ import annotations

import enum
import functools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ovms_notebook.models.config import ModelEntry
from ovms_notebook.models.tensors import TensorSpec, port_tensor_spec
from ovms_notebook.status import OvmsStatus, StatusCode

# The repository's logger: compile and failure lines have always been logged under this name.
log = logging.getLogger("ovms_notebook.models.repository")

__all__ = ["ModelVersion", "VersionState", "openvino_core", "openvino_error_text"]


@functools.cache
def openvino_core() -> Any:
    """One `openvino.Core` per process (imported on first use: openvino is slow to import; its telemetry is
    declined, see `_env.import_openvino`)."""
    from ovms_notebook._env import import_openvino

    return import_openvino().Core()


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
                self._inputs = tuple(port_tensor_spec(port) for port in model.inputs)
                self._outputs = tuple(port_tensor_spec(port) for port in model.outputs)
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
