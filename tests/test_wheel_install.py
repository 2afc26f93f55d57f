"""The example graphs travel with the package: a wheel built from this checkout, installed (not editable) into a
fresh virtual environment, serves `ovms_notebook.examples` from an unrelated working folder.

The new environment gets the wheel alone; its dependencies come from the test's own environment through a path
entry (a .pth line), under which Python processes no further .pth files, so the test environment's editable
install of ovms_notebook stays invisible. The working folder holds an empty folder named `ovms_notebook`, which
must not shadow the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, numpy as np, ovms_notebook
from ovms_notebook.client import StreamClient
from ovms_notebook.sources import astronaut

server = ovms_notebook.serve(ovms_notebook.examples)
passthrough = StreamClient(server.address, "passthrough")
passthrough.send({"in": np.float32([4.5])})
passthrough.close()
faces = StreamClient(server.address, "face_detection_openvino")  # handler .py files and a model in the folder
faces.send({"image": astronaut()})
faces.close()
server.stop()
print(json.dumps({
    "package": ovms_notebook.__file__,
    "examples": str(ovms_notebook.examples),
    "passthrough": [[e.timestamp, e.values["out"].tolist()] for e in passthrough.log if e.kind == "response"],
    "faces": [[e.timestamp, len(e.values["detections"])] for e in faces.log if e.kind == "response"],
}))
"""


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, check=True, **kwargs)


def test_a_wheel_installed_elsewhere_serves_its_example_graphs(tmp_path: Path):
    # PYTHONPATH may name a checkout (whose egg-info the build leaves): pip would take it for the installed package
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", REPO, env=env)
    [wheel] = (tmp_path / "dist").glob("ovms_notebook-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--no-deps", "-q", wheel, env=env)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", env=env).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ovms_notebook").mkdir(parents=True)  # a folder named like the package in the working folder

    result = json.loads(run(python, "-c", SCRIPT, cwd=elsewhere, env=env).stdout.splitlines()[-1])

    assert result["package"] == str(site / "ovms_notebook" / "__init__.py")
    assert result["examples"] == str(site / "ovms_notebook" / "examples")
    assert result["passthrough"] == [[0, [4.5]]]
    assert result["faces"] == [[0, 1]]  # the astronaut's one face
