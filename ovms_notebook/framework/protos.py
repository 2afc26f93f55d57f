"""Make every options proto of the mediapipe wheel known to Python's protobuf pool.

A pbtxt names calculator options by their full proto name (`[mediapipe.X.ext]`
or `node_options { [type.googleapis.com/mediapipe.X] }`); Python can only parse
it once the module defining X was imported. The wheel ships ~270 `_pb2`
modules and importing them all takes a few hundredths of a second, so it is
done once, on first use.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
import threading
from collections.abc import Callable
from typing import Any, TypeAlias

log = logging.getLogger(__name__)


def import_wheel_protos() -> int:
    """Import every `*_pb2` module of the mediapipe package and the options added by `add_option_protos`;
    returns how many wheel modules loaded."""
    loaded = _import_wheel_modules()
    with _option_lock:
        while _option_loaders:
            _option_loaders[0]()  # a failing loader stays queued: the next parse raises its error again
            _option_loaders.pop(0)
    return loaded


@functools.cache
def _import_wheel_modules() -> int:
    import mediapipe

    loaded = 0
    for info in pkgutil.walk_packages(mediapipe.__path__, prefix="mediapipe.", onerror=lambda _name: None):
        if not info.name.endswith("_pb2") or ".tasks." in info.name:
            continue
        try:
            importlib.import_module(info.name)
            loaded += 1
        except Exception as error:  # a module with a missing dependency is simply not usable
            log.debug("skipped %s: %s", info.name, error)
    # Not imported by mediapipe itself, but named by OVMS graphs (OVMS's demos use SyncSetInputStreamHandler).
    importlib.import_module("mediapipe.framework.stream_handler.sync_set_input_stream_handler_pb2")
    return loaded


_option_loaders: list[Callable[[], object]] = []
_option_lock = threading.Lock()


def add_option_protos(loader: Callable[[], object]) -> None:
    """Run `loader` before the next pbtxt is parsed: it makes more options protos known (it imports them).

    The calculator library's own options (OVMS's PythonExecutor and OpenVINO calculators, the iris demo's
    IrisToRenderDataCalculatorOptions) are added this way by the package top, so this layer never imports
    the calculators above it.
    """
    with _option_lock:
        _option_loaders.append(loader)


#: mediapipe's `CalculatorGraphConfig` message: the wheel ships no type information, so it is `Any` to mypy.
GraphConfig: TypeAlias = Any


def parse_graph_config(text: str) -> GraphConfig:
    """pbtxt text as a `CalculatorGraphConfig`, every option type known; raises text_format.ParseError."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2

    import_wheel_protos()
    return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
