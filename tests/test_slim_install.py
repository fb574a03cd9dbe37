"""The slim image's dependency set, installed into a fresh virtual environment without torch, runs the
torch-free pipeline end to end (ONNX prediction, post-processing, relabelling, evaluation) and gives what
the full installation gives.

CI machines have no container engine, so this is how the slim image (containers/Dockerfile.slim, the
same requirements/slim.txt) is tested. The environment is kept at .venv/slim and rebuilt when the
requirements or pyproject.toml change.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import ONNX_MODELS

from alfine.volumes import open_volume

ROOT = Path(__file__).resolve().parent.parent
FULL = Path(sys.executable).parent
SLIM = ROOT / ".venv" / "slim"
pytestmark = pytest.mark.xdist_group(ONNX_MODELS)
INPUTS = [ROOT / "requirements" / "slim.txt", ROOT / "requirements" / "constraints.txt", ROOT / "pyproject.toml",
          ROOT / "setup.py", *sorted((ROOT / "lib" / "alfine").glob("*.[ch]"))]


@pytest.fixture(scope="module")
def slim() -> Path:
    """The bin folder of a virtual environment with requirements/slim.txt and alfine, without torch."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in INPUTS)).hexdigest()
    stamp = SLIM / "alfine-slim-installed"
    if not (stamp.exists() and stamp.read_text() == digest):
        shutil.rmtree(SLIM, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(SLIM)], check=True)
        pip = [sys.executable, "-m", "pip", "--python", str(SLIM / "bin" / "python"), "install", "-q",
               "--disable-pip-version-check"]
        subprocess.run([*pip, "-c", str(INPUTS[1]), "-r", str(INPUTS[0])], check=True, timeout=900)
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, timeout=300)
        stamp.write_text(digest)
    return SLIM / "bin"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, onnx_models):
    """An exported ONNX model (made with torch, here: the one the ONNX tests share) and a raw volume and labels
    for it."""
    from inference_helpers import make_raw

    from alfine.volumes import prepare_volume

    root = tmp_path_factory.mktemp("slim")
    for name in ("model.onnx", "model.json"):
        shutil.copy(Path(onnx_models["fixed"]).with_name(name), root / name)
    raw = make_raw(f"{root}/volume.zarr/raw", (24, 30, 28), seed=3)
    labels = (open_volume(raw).read() > 128).astype(np.uint64)
    volume = open_volume(raw)
    prepare_volume(f"{root}/volume.zarr/labels", volume.roi, volume.voxel_size, np.uint64, (8, 8, 8)).write(
        volume.roi, labels)
    return root


def pipeline(bin_folder: Path, root: Path, name: str, threshold: float | None = None) -> dict:
    """predict-block (ONNX, 2 workers) -> postprocess-block -> relabel -> evaluate, with ``bin_folder``'s alfine.
    The threshold of the connected components defaults to the 0.7 quantile of the prediction (many objects)."""
    out = f"{root}/{name}.zarr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALFINE_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(ALFINE_NO_PROGRESS="1", PATH=f"{bin_folder}:{env['PATH']}")

    def alfine(*step: str) -> dict:
        done = subprocess.run([str(bin_folder / "alfine"), *step], env=env, cwd=root, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"alfine {step[0]}: {done.stderr}"
        return json.loads(done.stdout)

    alfine("predict-block", "--model", f"{root}/model.onnx", "--input", f"{root}/volume.zarr/raw",
           "--output", f"{out}/prediction", "--workers", "2")
    prediction = open_volume(f"{out}/prediction").read()
    if threshold is None:
        threshold = round(float(np.quantile(prediction[0], 0.7)), 3)
    params = json.dumps({"threshold": threshold, "connectivity": 6})
    alfine("postprocess-block", "--input", f"{out}/prediction", "--output", f"{out}/fragments", "--method",
           "connected_components", "--params", params, "--block-shape", "8,8,8")
    alfine("relabel", "--input", f"{out}/fragments", "--output", f"{out}/objects", "--workers", "2")
    scores = alfine("evaluate", "--truth", f"{root}/volume.zarr/labels", "--prediction", f"{out}/objects")["scores"]
    assert alfine("downsample", "--input", f"{out}/objects", "--levels", "1")["method"] == "mode"  # no torch either
    return {"prediction": prediction, "objects": open_volume(f"{out}/objects").read(), "scores": scores,
            "threshold": threshold}


def test_the_slim_environment_has_no_torch_and_says_so(slim, tmp_path):
    check = subprocess.run([str(slim / "python"), "-c", "import torch"], capture_output=True, text=True)
    assert check.returncode != 0 and "No module named 'torch'" in check.stderr
    train = subprocess.run([str(slim / "alfine"), "train", "--run-config", "run.json", "--run", "r"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert train.returncode == 2 and "this needs torch, which is not installed here" in train.stderr


def test_the_torch_free_pipeline_gives_what_the_full_installation_gives(slim, exported):
    light = pipeline(slim, exported, "slim")
    full = pipeline(FULL, exported, "full", light["threshold"])
    np.testing.assert_allclose(light["prediction"], full["prediction"], atol=1e-6)
    np.testing.assert_array_equal(light["objects"], full["objects"])
    assert light["scores"] == full["scores"] and light["objects"].max() > 10
