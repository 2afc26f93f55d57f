"""Models served on their own (OVMS's `model_config_list` entries that are not graphs), compiled by OpenVINO.

    from ovms_notebook.models import ModelRepository, wheel_model_repository
    models = ModelRepository(wheel_model_repository(tmp_dir))   # the mediapipe wheel's .tflite models
    models.resolve("face_detection_short_range").infer({"input": x})

Module map: `config` (config.json entries), `repository` (models by name,
version folders, reload), `version` (one version: lazy OpenVINO read/compile,
inference), `tensors` (input/output specs), `serving` (KServe ModelReady /
ModelMetadata / ModelInfer with OVMS's validation texts), `wheel` (the
wheel's models as an OVMS repository). OpenVINO is imported on first use.
"""

from ovms_notebook.models.config import ModelEntry, VersionPolicy, read_model_entries
from ovms_notebook.models.repository import (
    Model,
    ModelRepository,
    ModelVersion,
    TensorSpec,
    VersionState,
    parse_version,
)
from ovms_notebook.models.serving import metadata_dict, model_infer, model_metadata, model_ready
from ovms_notebook.models.wheel import UNCONVERTIBLE, WheelModel, wheel_model_repository, wheel_models

__all__ = [
    "UNCONVERTIBLE",
    "Model",
    "ModelEntry",
    "ModelRepository",
    "ModelVersion",
    "TensorSpec",
    "VersionPolicy",
    "VersionState",
    "WheelModel",
    "metadata_dict",
    "model_infer",
    "model_metadata",
    "model_ready",
    "parse_version",
    "read_model_entries",
    "wheel_model_repository",
    "wheel_models",
]
