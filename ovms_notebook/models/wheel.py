"""The .tflite models shipped inside the mediapipe wheel, as an OVMS model repository: real models, no download.

    config = wheel_model_repository(tmp_path)   # <tmp>/<name>/1/model.tflite + <tmp>/config.json
    models = ModelRepository(config)

Models that OpenVINO's TFLite frontend cannot convert (they use MediaPipe's
own custom ops) are left out and listed with the reason, in the log and in
`<dest>/skipped.json` (config.json stays in OVMS's schema). The generated
config pins `INFERENCE_PRECISION_HINT` f32, so a real OVMS given the same
folder computes what we do on a bf16-capable CPU.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["UNCONVERTIBLE", "WheelModel", "wheel_model_repository", "wheel_models", "wheel_modules_dir"]

_CUSTOM_OP = "uses MediaPipe's custom TFLite op {op}, which OpenVINO's TFLite frontend cannot convert"
#: Wheel models OpenVINO 2026.4 cannot read, and why (probed on the mediapipe 0.10.21 wheel).
UNCONVERTIBLE: dict[str, str] = {
    "face_landmark_with_attention": _CUSTOM_OP.format(op="Landmarks2TransformMatrix"),
    "selfie_segmentation": _CUSTOM_OP.format(op="Convolution2DTransposeBias"),
    "selfie_segmentation_landscape": _CUSTOM_OP.format(op="Convolution2DTransposeBias"),
}
SKIPPED_FILE = "skipped.json"
_PLUGIN_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


@dataclass(frozen=True)
class WheelModel:
    """One .tflite file of the wheel: its model name (the file stem), path, and why it is skipped (or None)."""

    name: str
    path: Path
    skip_reason: str | None = None


def wheel_modules_dir() -> Path:
    """`site-packages/mediapipe/modules`, where the wheel keeps its graphs' models."""
    import mediapipe

    return Path(mediapipe.__file__).resolve().parent / "modules"


def wheel_models() -> list[WheelModel]:
    """Every .tflite model in the wheel, sorted by name, each with its skip reason when OpenVINO cannot read it."""
    found = {path.stem: path for path in sorted(wheel_modules_dir().rglob("*.tflite"))}
    return [WheelModel(name, path, UNCONVERTIBLE.get(name)) for name, path in sorted(found.items())]


def wheel_model_repository(dest_dir: str | Path, names: Iterable[str] | None = None, *, verify: bool = False) -> Path:
    """Lay the wheel's models out as `<dest>/<name>/1/model.tflite` with a config.json; returns its path.

    `names` picks models (default: all). Files are hard-linked when the
    filesystem allows, else copied; running again refreshes the folder.
    Models OpenVINO cannot convert are skipped and listed in
    `<dest>/skipped.json`; with `verify=True` every other model is also read
    by OpenVINO first (~30 ms each) and skipped if that fails.
    ValueError for a name the wheel does not have.
    """
    available = {model.name: model for model in wheel_models()}
    wanted = list(available) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ValueError(
            f"the mediapipe wheel has no model named {', '.join(map(repr, unknown))}; "
            f"it has {', '.join(sorted(available))}"
        )
    dest = Path(dest_dir).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        model = available[name]
        reason = model.skip_reason or (_read_error(model.path) if verify else None)
        if reason:
            skipped[name] = reason
            log.warning("wheel model %s skipped: %s", name, reason)
            continue
        _place(model.path, dest / name / "1" / "model.tflite")
        entries.append({"config": {"name": name, "base_path": name, "plugin_config": dict(_PLUGIN_CONFIG)}})
    config = dest / "config.json"
    config.write_text(json.dumps({"model_config_list": entries}, indent=2) + "\n")
    (dest / SKIPPED_FILE).write_text(json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    log.info("wheel model repository at %s: %d models, %d skipped", dest, len(entries), len(skipped))
    return config


def _place(source: Path, target: Path) -> None:
    """Hard-link `source` at `target` (copy across filesystems); an identical file already there is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        if os.path.samefile(source, target) or filecmp.cmp(source, target, shallow=False):
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _read_error(path: Path) -> str | None:
    """Why OpenVINO cannot read `path`, or None when it can."""
    from ovms_notebook.models.version import openvino_core, openvino_error_text

    try:
        openvino_core().read_model(str(path))
    except Exception as error:
        return f"OpenVINO cannot read it: {openvino_error_text(error)}"
    return None
