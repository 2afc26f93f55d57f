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

log = logging.getLogger(__name__)


@functools.cache
def import_wheel_protos() -> int:
    """Import every `*_pb2` module of the mediapipe package; returns how many loaded."""
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
    # Not imported by mediapipe itself, but named by OVMS graphs (notes/ovms-pbtxt-parsing.md).
    importlib.import_module("mediapipe.framework.stream_handler.sync_set_input_stream_handler_pb2")
    # OVMS's own calculator options (PythonExecutor, OpenVINO session/inference, converter).
    importlib.import_module("ovms_notebook.calculators.proto.ovms_calculators_pb2")
    # IrisToRenderDataCalculatorOptions (OVMS's iris demo), which the wheel does not ship.
    importlib.import_module("ovms_notebook.calculators.iris")
    return loaded


def parse_graph_config(text: str) -> object:
    """pbtxt text as a `CalculatorGraphConfig`, every option type known; raises text_format.ParseError."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2

    import_wheel_protos()
    return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())
