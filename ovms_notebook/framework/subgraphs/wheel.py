"""The mediapipe wheel's own graph modules: the `.binarypb` files it ships under `mediapipe/modules/`.

The wheel registers these subgraphs natively (`FaceDetectionShortRangeCpu`,
`HolisticLandmarkCpu` ...) and also ships each one's config as a binary
`CalculatorGraphConfig`. `wheel_modules` indexes them by subgraph type and by
file stem, so a drawing or a check can open a module by the name a graph uses.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def wheel_modules() -> dict[str, Path]:
    """{name: .binarypb path} for every module the wheel ships, under its `type:` and its file stem."""
    import mediapipe as mp
    from mediapipe.framework import calculator_pb2

    found: dict[str, Path] = {}
    for path in sorted((Path(mp.__file__).parent / "modules").rglob("*.binarypb")):
        config = calculator_pb2.CalculatorGraphConfig.FromString(path.read_bytes())
        for name in (config.type, path.stem):
            if name:
                found.setdefault(name, path)
    return found


def wheel_module_config(name: str) -> object:
    """A fresh CalculatorGraphConfig of the wheel module `name` (its type or file stem); KeyError listing the
    modules there are otherwise."""
    from mediapipe.framework import calculator_pb2

    modules = wheel_modules()
    if name not in modules:
        types = sorted(n for n in modules if not n.islower())
        raise KeyError(f"the mediapipe wheel ships no module {name!r}; it has {', '.join(types)}")
    return calculator_pb2.CalculatorGraphConfig.FromString(modules[name].read_bytes())


def wheel_module_text(name: str) -> str:
    """The wheel module `name` as pbtxt text (what subgraph expansion reads)."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(wheel_module_config(name)))
