"""alfine-predict-block: ONNX or checkpoint models, blocks equal one whole prediction, resume, refusals, no torch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Roi
from inference_helpers import ONNX_MODELS, make_raw, unet, whole_prediction
from markers_helpers import done_ids
from ngff_helpers import validate_container

from alfine.volumes import open_volume, prepare_volume
from alfine_tools.predict_block import main

BIN = Path(sys.executable).parent


pytestmark = pytest.mark.xdist_group(ONNX_MODELS)


@pytest.fixture(scope="module")
def models(tmp_path_factory, onnx_models):
    """The shared run, its data and its exports (checkpoint 10 with a fixed 20³ input, checkpoint 5 with dynamic
    axes), and a raw volume whose size is no multiple of the 4³ output blocks and whose offset is not 0."""
    root = tmp_path_factory.mktemp("predict")
    raw = make_raw(f"{root}/in.zarr/raw", (13, 10, 9), offset=(6, -4, 3), seed=2)
    run = onnx_models["run"]
    return {"root": root, "run": run, "fixed": onnx_models["fixed"], "dynamic": onnx_models["dynamic"], "raw": raw,
            "weights": f"{run}/checkpoints/10.pt", "dynamic_weights": f"{run}/checkpoints/5.pt",
            "data": f"{onnx_models['root']}/data.zarr"}


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # daisy's worker logs


def predict(capsys, *args) -> tuple[int, dict | None, str]:
    """Run the command in this process: exit code, JSON summary (or None), stderr."""
    code = main(["--no-progress", *args])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if code == 0 and lines else None), captured.err


def test_onnx_blocks_on_two_workers_equal_one_whole_prediction(models, tmp_path, capsys):
    out = f"{tmp_path}/out.zarr/pred"
    code, summary, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output", out,
                                 "--workers", "2")
    assert code == 0, err
    assert summary["blocks"] == summary["processed"] == 4 * 3 * 3 and summary["block_shape_voxels"] == [4, 4, 4]
    prediction = open_volume(out)
    assert prediction.roi == open_volume(models["raw"]).roi and tuple(prediction.voxel_size) == (2, 1, 1)
    assert prediction.array.attrs["channel_names"] == ["a", "b"] and prediction.dtype == np.float32
    assert tuple(prediction.chunk_shape) == (4, 4, 4)
    expected = whole_prediction(unet(), models["weights"], models["raw"], prediction.roi)
    np.testing.assert_allclose(prediction.read(), expected, atol=1e-5)
    roi = Roi((8, -3, 4), (18, 7, 6))  # a part not starting at the volume's corner
    part = f"{tmp_path}/out.zarr/part"
    code, summary, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output", part,
                                 "--workers", "2", "--roi", "8,-3,4:26,4,10")
    assert code == 0, err
    np.testing.assert_allclose(open_volume(part).read(), whole_prediction(unet(), models["weights"], models["raw"],
                                                                           roi), atol=1e-5)


def test_onnx_and_torch_agree(models, tmp_path, capsys):
    outputs = {}
    for name, model in (("onnx", models["fixed"]), ("torch", models["run"] + "@10")):
        outputs[name] = f"{tmp_path}/{name}.zarr/pred"
        code, summary, err = predict(capsys, "--model", model, "--input", models["raw"], "--output", outputs[name])
        assert code == 0, err
        assert summary["predictor"]["kind"] == name and summary["processed"] == 36
    np.testing.assert_allclose(open_volume(outputs["onnx"]).read(), open_volume(outputs["torch"]).read(), atol=1e-5)


def test_dynamic_models_take_a_block_shape_or_a_memory_budget(models, tmp_path, capsys):
    out = f"{tmp_path}/out.zarr/pred"
    code, summary, err = predict(capsys, "--model", models["dynamic"], "--input", models["raw"], "--output", out,
                                 "--block-shape", "12,8,8")
    assert code == 0, err
    assert summary["block_shape_voxels"] == [12, 8, 8] and summary["input_shape"] == [28, 24, 24]
    assert summary["blocks"] == 8
    expected = whole_prediction(unet(), models["dynamic_weights"], models["raw"], open_volume(out).roi)
    np.testing.assert_allclose(open_volume(out).read(), expected, atol=1e-5)
    assert type(validate_container(f"{tmp_path}/out.zarr")["pred"]).__name__ == "Image"  # OME-NGFF 0.4
    code, summary, err = predict(capsys, "--model", models["dynamic"], "--input", models["raw"], "--output",
                                 f"{tmp_path}/out.zarr/memory", "--memory", "2MB", "--list-blocks")
    assert code == 0, err
    assert summary["blocks"] < 36
    code, _, err = predict(capsys, "--model", models["dynamic"], "--input", models["raw"], "--output",
                           f"{tmp_path}/out.zarr/bad", "--block-shape", "5,4,4")
    assert code == 2 and "needs a network input of (21, 20, 20)" in err and "nearest valid sizes are 20 and 22" in err
    code, _, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output",
                           f"{tmp_path}/out.zarr/bad", "--block-shape", "8,8,8")
    assert code == 2 and "graph is fixed" in err
    assert not os.path.exists(f"{tmp_path}/out.zarr/bad")


def test_one_block_then_the_rest_and_listing(models, tmp_path, capsys):
    out = f"{tmp_path}/out.zarr/pred"
    main(["--model", models["fixed"], "--input", models["raw"], "--output", out, "--list-blocks"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 37 and json.loads(lines[5])["block_id"] == 5 and json.loads(lines[-1])["blocks"] == 36
    assert not os.path.exists(f"{tmp_path}/out.zarr")
    code, summary, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output", out,
                                 "--block-id", "5")
    assert code == 0 and (summary["processed"], summary["skipped"]) == (1, 0), err
    code, summary, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output", out)
    assert code == 0 and (summary["processed"], summary["skipped"]) == (35, 1), err
    expected = whole_prediction(unet(), models["weights"], models["raw"], open_volume(out).roi)
    np.testing.assert_allclose(open_volume(out).read(), expected, atol=1e-5)


def test_a_killed_run_resumes_without_recomputing_finished_blocks(models, tmp_path):
    raw = make_raw(f"{tmp_path}/big.zarr/raw", (32, 24, 24), offset=(0, 0, 0), seed=4, chunk=32)  # 288 blocks
    out = f"{tmp_path}/out.zarr/pred"
    command = [str(BIN / "alfine-predict-block"), "--model", models["fixed"], "--input", raw, "--output", out,
               "--workers", "2", "--no-progress"]
    driver = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    markers = tmp_path / "out.zarr" / ".alfine-blocks" / "pred"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None and len(done_ids(markers)) < 10:
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished = len(done_ids(markers))
    assert 10 <= finished < 288, "the run must be killed half way"
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["skipped"] == finished and summary["processed"] == 288 - finished
    reference = f"{tmp_path}/reference.zarr/pred"
    subprocess.run([*command[:6], reference, "--no-progress"], cwd=tmp_path, check=True, capture_output=True)
    np.testing.assert_array_equal(open_volume(out).read(), open_volume(reference).read())


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(models, tmp_path, capsys):
    other = make_raw(f"{tmp_path}/other.zarr/raw", (13, 10, 9), voxel_size=(1, 1, 1), offset=(0, 0, 0))
    out = f"{tmp_path}/out.zarr/pred"
    cases = [(other, out, "has voxel size (1, 1, 1), the model"),
             (f"{tmp_path}/missing.zarr/raw", out, "missing.zarr/raw"),
             (models["raw"], f"{models['data']}/raw", "exists with")]
    for raw, output, message in cases:
        code, _, err = predict(capsys, "--model", models["fixed"], "--input", raw, "--output", output)
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not os.path.exists(f"{tmp_path}/out.zarr")
    assert not os.path.exists(f"{models['data']}/.alfine-blocks")
    code, _, err = predict(capsys, "--model", str(tmp_path / "nothing.onnx"), "--input", models["raw"], "--output", out)
    assert code == 2 and "no such model file" in err and not os.path.exists(f"{tmp_path}/out.zarr")


def test_quantised_outputs_read_back_as_values(models, tmp_path, capsys):
    out = f"{tmp_path}/out.zarr/pred"
    code, summary, err = predict(capsys, "--model", models["fixed"], "--input", models["raw"], "--output", out,
                                 "--output-dtype", "uint8", "--workers", "2")
    assert code == 0 and summary["dtype"] == "uint8", err
    volume = open_volume(out)
    assert volume.dtype == np.uint8 and volume.array.attrs["alfine_scale"] == pytest.approx(1 / 255)
    expected = whole_prediction(unet(), models["weights"], models["raw"], volume.roi)
    values = volume.read()
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, expected, atol=0.5 / 255 + 1e-6)


def test_volume_read_undoes_the_scale(tmp_path):
    roi = Roi((0, 0), (4, 6))
    volume = prepare_volume(f"{tmp_path}/q.zarr/v", roi, (1, 1), np.uint16, (4, 6), scale=(2 / 65535, -1.0))
    values = np.linspace(-1.2, 1.2, 24, dtype=np.float32).reshape(4, 6)
    volume.write(roi, values)
    again = open_volume(f"{tmp_path}/q.zarr/v")
    assert again.scale == pytest.approx((2 / 65535, -1.0)) and again.dtype == np.uint16
    stored = np.asarray(again.array[:])
    assert stored.min() == 0 and stored.max() == 65535  # clipped to the dtype's range
    np.testing.assert_allclose(again.read(), np.clip(values, -1, 1), atol=1 / 65535 + 1e-6)
    outside = again.read(Roi((-1, 0), (2, 6)), fill_value=0.5)
    assert outside.dtype == np.float32 and np.all(outside[0] == 0.5)
    np.testing.assert_allclose(outside[1], again.read()[0])
    with pytest.raises(Exception, match="scale"):
        prepare_volume(f"{tmp_path}/q.zarr/v", roi, (1, 1), np.uint16, (4, 6))


def test_onnx_prediction_runs_where_torch_is_not_installed(models, tmp_path):
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # import torch fails\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "torch" in check.stderr
    out = f"{tmp_path}/out.zarr/pred"
    result = subprocess.run([str(BIN / "alfine-predict-block"), "--model", models["fixed"], "--input", models["raw"],
                             "--output", out, "--workers", "2", "--no-progress"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["processed"] == 36
    expected = whole_prediction(unet(), models["weights"], models["raw"], open_volume(out).roi)
    np.testing.assert_allclose(open_volume(out).read(), expected, atol=1e-5)


def test_run_arguments_name_a_checkpoint_or_validations_best(models, tmp_path, capsys):
    from alfine.inference.resolve import resolve_model, split_run_argument
    from alfine.jobs.predict import parse_memory
    from alfine.runs import RunDirectory
    from alfine.validation.selection import write_best

    assert split_run_argument("s3://b/runs/a@best") == ("s3://b/runs/a", "best")
    assert split_run_argument("runs/a@12") == ("runs/a", 12) and split_run_argument("x@y/run") == ("x@y/run", None)
    assert parse_memory("8GB") == 8 * 10**9 and parse_memory("512MiB") == 512 * 2**20 and parse_memory("100") == 100
    assert resolve_model(models["run"]).spec.weights.endswith("checkpoints/10.pt")
    assert resolve_model(models["run"] + "@5").spec.weights.endswith("checkpoints/5.pt")
    code, _, err = predict(capsys, "--model", models["run"] + "@best", "--input", models["raw"], "--output",
                           f"{tmp_path}/out.zarr/pred")
    assert code == 2 and "run alfine-validate" in err and not os.path.exists(f"{tmp_path}/out.zarr")
    entry = {"iteration": 5, "method": "threshold", "params": {"threshold": 0.5}, "channels": None, "metric": "voi",
             "value": 0.3, "scores": {"voi": 0.3}}
    write_best(RunDirectory(models["run"]), {"voi": {"average": entry, "datasets": {}}}, "voi")
    resolved = resolve_model(models["run"] + "@best", "cpu", threads=1)
    assert resolved.spec.weights.endswith("checkpoints/5.pt") and resolved.spec.threads == 1
    assert resolved.input_voxel_size == (2, 1, 1) and resolved.normalisation.min == -50


def test_a_2d_model_predicts_a_3d_volume_slice_by_slice(tmp_path, capsys):
    import torch
    from inference_helpers import NORM, TASK, save_weights

    from alfine.datasplits import Dataset, Datasplit, normalise
    from alfine.jobs.export import export_model
    from alfine.runs import RunDirectory
    from alfine.training.config import RunConfig

    architecture = unet(input_shape=[20, 20], downsample_factors=[[2, 2]])
    train = make_raw(f"{tmp_path}/d2.zarr/raw", (12, 11), voxel_size=(1, 1), offset=(0, 0))
    split = Datasplit(train=[Dataset(raw=train, labels=f"{tmp_path}/d2.zarr/labels", normalisation=NORM)])
    RunDirectory(f"{tmp_path}/run").write_config(RunConfig(name="r2", datasplit=split, architecture=architecture,
                                                           task=TASK))
    (tmp_path / "run" / "checkpoints").mkdir()
    weights = save_weights(tmp_path / "run" / "checkpoints" / "3.pt", architecture)
    export_model(f"{tmp_path}/run", 3, str(tmp_path / "m2d" / "model.onnx"))
    raw = make_raw(f"{tmp_path}/in.zarr/raw", (5, 13, 11), voxel_size=(3, 1, 1), offset=(6, 2, -1))
    out = f"{tmp_path}/out.zarr/pred"
    code, summary, err = predict(capsys, "--model", str(tmp_path / "m2d" / "model.onnx"), "--input", raw,
                                 "--output", out, "--workers", "2")
    assert code == 0, err
    assert summary["block_shape_voxels"] == [4, 4, 4] and summary["predictor"]["kind"] == "slices"
    prediction = open_volume(out)
    assert prediction.shape == (2, 5, 13, 11) and tuple(prediction.voxel_size) == (3, 1, 1)
    model = architecture.build(2)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    volume = np.asarray(open_volume(raw).read())
    context = architecture.context()[0]
    for z in range(5):  # every slice predicted whole: the 13×11 slice mirrored across its edges by the context
        padded = np.pad(volume[z], ((context, context + 1), (context, context + 1)), mode="reflect")  # (30, 28)
        x = torch.from_numpy(normalise(padded, NORM))[None, None]
        with torch.no_grad():
            expected = torch.sigmoid(model.eval()(x))[0].numpy()[:, :13, :11]
        np.testing.assert_allclose(prediction.read()[:, z], expected, atol=1e-5)
