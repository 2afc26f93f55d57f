"""How to serve an exported folder with OpenVINO Model Server: the `docker run` line and a KServe manifest.

Python nodes need an image with Python packages: OVMS's docs (docs/python_support/reference.md) say the
plain `openvino/model_server` image runs Python but has no extra modules such as numpy, and the `-py`
variant carries them; so graphs with Python nodes get `<version>-py`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path


def image_for(ovms_version: str, *, python: bool, image: str | None = None) -> str:
    """The container image: `image` when given, else openvino/model_server:<version>[-py]."""
    return image or f"openvino/model_server:{ovms_version.lstrip('v')}{'-py' if python else ''}"


def docker_command(folder: Path, *, python: bool, image: str | None = None, ovms_version: str = "2026.3",
                   port: int = 9000) -> str:
    """`docker run` serving `folder` (mounted read-only at /models) over KServe gRPC on `port`."""
    return (f"docker run --rm -u $(id -u):$(id -g) -p {port}:{port} -v {shlex.quote(str(folder))}:/models:ro "
            f"{image_for(ovms_version, python=python, image=image)} --config_path /models/config.json --port {port}")


def inference_service(name: str, *, python: bool, image: str | None = None, ovms_version: str = "2026.3",
                      storage_uri: str = "pvc://ovms-models/export") -> str:
    """A minimal KServe InferenceService (custom predictor container) for the folder at `storage_uri`.

    KServe's storage initializer copies STORAGE_URI to /mnt/models; the container port named h2c
    marks gRPC (HTTP/2) for KServe's routing.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "ovms-graphs"
    return "\n".join([
        "apiVersion: serving.kserve.io/v1beta1",
        "kind: InferenceService",
        "metadata:",
        f"  name: {slug}",
        "spec:",
        "  predictor:",
        "    containers:",
        "      - name: kserve-container",
        f"        image: {image_for(ovms_version, python=python, image=image)}",
        "        args: [\"--config_path=/mnt/models/config.json\", \"--port=9000\"]",
        "        env:",
        "          - name: STORAGE_URI",
        f"            value: {storage_uri}",
        "        ports:",
        "          - containerPort: 9000",
        "            name: h2c",
        "            protocol: TCP",
    ]) + "\n"
