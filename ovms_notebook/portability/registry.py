"""Which calculators each side has: OVMS's build (vendored list) and the mediapipe wheel (probed).

OVMS's list is `ovms_calculators.json`, derived from OVMS's Bazel build files by
scripts/ovms_calculators.py (its `source` says which commits); nothing is fetched
at run time. The wheel's registry is probed: one-node graphs are built in a child
process, because validating a graph goes through native code that may abort on
misuse (probed on the mediapipe 0.10.21 wheel), and a calculator is missing exactly when
MediaPipe answers `Unable to find Calculator "<name>"`. Answers are cached in the
process and on disk per mediapipe version.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: OVMS's own calculators that ovms_notebook runs on the Python side (calculators/ovms_python.py, openvino.py).
OVMS_EMULATED = frozenset({
    "PythonExecutorCalculator",
    "PyTensorOvTensorConverterCalculator",
    "OpenVINOInferenceCalculator",
    "OpenVINOModelServerSessionCalculator",
})

_PROBE = r"""
import json, sys
import mediapipe as mp
from mediapipe.framework import calculator_pb2
for name in sys.argv[1:]:
    config = calculator_pb2.CalculatorGraphConfig()
    config.node.add(calculator=name)
    try:
        mp.CalculatorGraph(graph_config=config)
        found = True
    except Exception as error:
        found = f'Unable to find Calculator "{name}"' not in str(error)
    sys.stdout.write(json.dumps([name, found]) + "\n")
    sys.stdout.flush()
"""

_probed: dict[str, bool | None] = {}


@functools.cache
def ovms_data() -> Mapping[str, Any]:
    """The vendored list: {"source": {...}, "calculators": [...]}."""
    text = resources.files("ovms_notebook.portability").joinpath("ovms_calculators.json").read_text()
    return json.loads(text)


def ovms_calculators() -> frozenset[str]:
    """Calculator and subgraph names OVMS's `ovms` binary registers."""
    return frozenset(ovms_data()["calculators"])


def ovms_source() -> str:
    """Where the OVMS list comes from, in one line (repository and commit)."""
    source = ovms_data()["source"]
    return (f"{source['model_server']['repo']}@{source['model_server']['commit'][:8]} + "
            f"{source['mediapipe']['repo']}@{source['mediapipe']['commit'][:8]}")


def mediapipe_version() -> str:
    """The installed mediapipe wheel's version."""
    try:
        return version("mediapipe")
    except PackageNotFoundError:
        return "unknown"


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "ovms_notebook" / f"wheel-calculators-{mediapipe_version()}.json"


def _load_disk_cache() -> None:
    if _probed:
        return
    try:
        _probed.update(json.loads(_cache_file().read_text()))
    except FileNotFoundError:
        pass  # no probe ran on this machine yet
    except (OSError, ValueError) as error:
        log.info("calculator probe cache %s not read (%s); probing again", _cache_file(), error)


def _save_disk_cache() -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: v for k, v in _probed.items() if v is not None}, indent=0, sort_keys=True))
    except OSError:
        pass  # a read-only home only costs a re-probe


def wheel_has(names: Iterable[str], *, timeout: float = 120.0) -> dict[str, bool | None]:
    """{name: True/False} for whether the mediapipe wheel registers each calculator or subgraph name.

    None when the probe process died on that name (it is then reported as unknown, never guessed).
    """
    _load_disk_cache()
    wanted = [name for name in dict.fromkeys(names) if name not in _probed]
    while wanted:
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE, *wanted], capture_output=True, text=True,
                                  timeout=timeout, env={**os.environ, "GLOG_minloglevel": "2"})
            lines = done.stdout.splitlines()
        except subprocess.TimeoutExpired as error:
            lines = (error.stdout or b"").decode(errors="replace").splitlines() if error.stdout else []
        answered = [json.loads(line) for line in lines if line.startswith("[")]
        for name, found in answered:
            _probed[name] = bool(found)
        wanted = wanted[len(answered):]
        if wanted:  # the child died on wanted[0]: record it as unknown and go on with the rest
            _probed[wanted.pop(0)] = None
    _save_disk_cache()
    return {name: _probed.get(name) for name in names}
