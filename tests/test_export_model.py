"""alfine-export-model: one ONNX file with metadata inside and beside it, equal to torch, whole or not at all."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from inference_helpers import ONNX_MODELS, TASK, make_run, unet

from alfine.configs import to_dict
from alfine.errors import UserError
from alfine.inference import OnnxSpec, TorchPredictor, predictor_for
from alfine.inference.metadata import ExportedArchitecture, read_metadata
from alfine.runs import RunDirectory
from alfine_tools.export_model import main

BIN = Path(sys.executable).parent


pytestmark = pytest.mark.xdist_group(ONNX_MODELS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, onnx_models):
    """The shared run exported at iteration 10 with a fixed shape by the command, and (shared with the other ONNX
    tests) at iteration 5 with dynamic axes."""
    root = tmp_path_factory.mktemp("export")
    run = onnx_models["run"]
    fixed = subprocess.run([str(BIN / "alfine-export-model"), "--run", run, "--iteration", "10", "--output",
                            str(root / "fixed" / "model.onnx"), "--input-shape", "28,20,24"],
                           capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    return root, run, json.loads(fixed.stdout), onnx_models["dynamic"]


def test_fixed_export_writes_the_metadata_inside_and_beside(exported):
    root, run, summary, _ = exported
    assert summary["iteration"] == 10 and summary["input_shape"] == [28, 20, 24] and summary["max_difference"] < 1e-5
    beside = json.loads((root / "fixed" / "model.json").read_text())
    assert read_metadata(str(root / "fixed" / "model.onnx")) == beside
    assert list(beside) == ["format", "run", "iteration", "criterion", "architecture", "task", "input_shape",
                            "output_shape", "dynamic", "context", "input_voxel_size", "output_voxel_size",
                            "channel_names", "normalisation", "postprocessing", "weights_sha256", "opset"]
    assert beside["format"] == "alfine-model/1" and beside["run"] == run and beside["criterion"] is None
    assert beside["architecture"] == to_dict(unet()) and beside["task"] == to_dict(TASK)
    assert (beside["input_shape"], beside["output_shape"], beside["context"]) == ([28, 20, 24], [12, 4, 8], [8, 8, 8])
    assert beside["dynamic"] is False and beside["opset"] >= 17
    assert beside["input_voxel_size"] == beside["output_voxel_size"] == [2, 1, 1]
    assert beside["channel_names"] == ["a", "b"]
    assert beside["normalisation"] == {"kind": "minmax", "min": -50.0, "max": 200.0}
    assert beside["postprocessing"] == {"method": "threshold", "params": None, "channels": None, "criterion": None,
                                        "scores": {}}
    import hashlib

    assert beside["weights_sha256"] == hashlib.sha256((Path(run) / "checkpoints/10.pt").read_bytes()).hexdigest()
    session = onnxruntime.InferenceSession(str(root / "fixed" / "model.onnx"))
    assert [i.shape for i in session.get_inputs()] == [[1, 1, 28, 20, 24]]  # one file, fixed shape
    assert sorted(p.name for p in (root / "fixed").iterdir()) == ["model.json", "model.onnx"]


def test_onnx_predictor_equals_torch_for_fixed_and_dynamic_graphs(exported):
    root, run, _, path = exported
    rng = np.random.default_rng(3)
    fixed = OnnxSpec.from_metadata(str(root / "fixed" / "model.onnx"),
                                   read_metadata(str(root / "fixed" / "model.onnx")), "cpu")
    torch10 = TorchPredictor(unet(), TASK, f"{run}/checkpoints/10.pt", "cpu")
    x = rng.uniform(-1, 1, (1, 28, 20, 24)).astype(np.float32)
    np.testing.assert_allclose(predictor_for(fixed)(x), torch10(x), atol=1e-5)
    with pytest.raises(UserError, match="the only valid size is 28"):
        predictor_for(fixed)(rng.uniform(-1, 1, (1, 20, 20, 20)).astype(np.float32))
    dynamic = OnnxSpec.from_metadata(path, read_metadata(path), "cpu")
    torch5 = TorchPredictor(unet(), TASK, f"{run}/checkpoints/5.pt", "cpu")
    for shape in [(20, 20, 20), (28, 36, 20)]:
        x = rng.uniform(-1, 1, (1, *shape)).astype(np.float32)
        np.testing.assert_allclose(predictor_for(dynamic)(x), torch5(x), atol=1e-5)
    assert dynamic.architecture_config().valid_sizes() == unet().valid_sizes()


def test_exported_shapes_need_no_torch_and_follow_the_architecture():
    fixed = ExportedArchitecture(to_dict(unet()), [28, 20, 20], dynamic=False)
    assert fixed.output_shape([28, 20, 20]) == unet().output_shape([28, 20, 20]) == (12, 4, 4)
    assert fixed.valid_sizes() == ((28, 20, 20), (0, 0, 0))
    dynamic = ExportedArchitecture(to_dict(unet()), [20, 20, 20], dynamic=True)
    assert dynamic.output_shape([36, 28, 20]) == unet().output_shape([36, 28, 20])
    with pytest.raises(UserError, match="nearest valid sizes are 20 and 22"):
        dynamic.output_shape([21, 20, 20])


def test_a_difference_above_the_tolerance_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    _, run, _, _ = exported
    from alfine.jobs import export

    monkeypatch.setattr(export, "max_difference", lambda *args: 0.25)
    output = tmp_path / "out" / "model.onnx"
    assert main(["--run", run, "--iteration", "10", "--output", str(output), "--tolerance", "0.01"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "differ by up to 0.25, more than --tolerance 0.01" in errors[0]
    assert not output.parent.exists() or not list(output.parent.iterdir())


def test_best_reads_validation_and_carries_its_post_processing(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["--run", run, "--output", str(tmp_path / "m.onnx")]) == 2
    assert "run alfine-validate" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
    from alfine.validation.selection import write_best

    entry = {"iteration": 5, "method": "threshold", "params": {"threshold": 0.4}, "channels": [0, 1],
             "metric": "voi", "value": 0.3, "scores": {"voi": 0.3, "rand": 0.9}}
    other = {**entry, "iteration": 10, "metric": "rand", "value": 0.95, "scores": {"voi": 0.5, "rand": 0.95}}
    write_best(RunDirectory(run), {"voi": {"average": entry, "datasets": {}},
                                   "rand": {"average": other, "datasets": {}}}, "voi")
    assert main(["--run", run, "--iteration", "best", "--output", str(tmp_path / "m.onnx")]) == 0
    summary = json.loads(capsys.readouterr().out)
    metadata = json.loads((tmp_path / "model.json").read_text())
    assert summary["iteration"] == metadata["iteration"] == 5 and metadata["criterion"] == "voi"
    assert metadata["postprocessing"] == {"method": "threshold", "params": {"threshold": 0.4}, "channels": [0, 1],
                                          "criterion": "voi", "scores": {"voi": 0.3, "rand": 0.9}}
    assert main(["--run", run, "--criterion", "rand", "--output", str(tmp_path / "r" / "m.onnx")]) == 0
    assert json.loads((tmp_path / "r" / "model.json").read_text())["iteration"] == 10
    capsys.readouterr()
    assert main(["--run", run, "--criterion", "nope", "--output", str(tmp_path / "n" / "m.onnx")]) == 2
    assert "no best iteration for criterion 'nope'" in capsys.readouterr().err


def test_bad_iterations_are_refused(tmp_path, capsys):
    run = make_run(tmp_path, iterations=(5,))
    assert main(["--run", run, "--iteration", "7", "--output", str(tmp_path / "m.onnx")]) == 2
    assert "no checkpoint 7; it has [5]" in capsys.readouterr().err
    assert main(["--run", run, "--iteration", "5", "--input-shape", "21,20,20",
                 "--output", str(tmp_path / "m.onnx")]) == 2
    assert "nearest valid sizes are 20 and 22" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "model.json").exists()
