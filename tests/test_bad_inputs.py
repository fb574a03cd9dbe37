"""The bad-input table: each bad command exits 2 with one ``error:`` line that says what, and leaves nothing behind.

Every case runs in a directory holding only its inputs; afterwards the directory holds exactly the same files
(no output arrays, no ``.zarray``, markers, records, run directories, worker logs).
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from funlib.geometry import Roi
from inference_helpers import make_raw, make_run

from alfine.volumes import prepare_volume
from alfine_tools.dispatch import main as alfine

TASK = {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
WRAPPED = {"kind": "wrapped", "module": "mine:Net", "input_shape": [20, 20, 20]}


def volume(url, data, chunks, channels=0, voxel=(1, 1, 1)):
    spatial = data.shape[channels:]
    roi = Roi((0,) * len(spatial), tuple(s * v for s, v in zip(spatial, voxel, strict=True)))
    prepare_volume(url, roi, voxel, data.dtype, chunks, channels=data.shape[:channels]).write(roi, data)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The inputs every case may use, in one directory (the cases' working directory)."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    volume(f"{root}/d.zarr/pred", rng.random((1, 16, 16, 16)).astype(np.float32), (8, 8, 8), channels=1)
    labels = rng.integers(0, 5, (16, 16, 16)).astype(np.uint32)
    volume(f"{root}/d.zarr/labels", labels, (8, 8, 8))
    volume(f"{root}/d.zarr/flabels", labels.astype(np.float32), (8, 8, 8))
    volume(f"{root}/d.zarr/labels4d", np.stack([labels, labels]), (8, 8, 8), channels=1)
    make_run(root)
    volume(f"{root}/d.zarr/raw64", rng.integers(0, 255, (10, 9, 7)).astype(np.uint64), (5, 5, 5), voxel=(2, 1, 1))
    volume(f"{root}/d.zarr/rawf", rng.random((10, 9, 7)).astype(np.float32), (5, 5, 5), voxel=(2, 1, 1))
    make_raw(f"{root}/d.zarr/raw", (10, 9, 7), offset=(0, 0, 0))
    shutil.copytree(f"{root}/run", f"{root}/dtype")  # a model normalising raw by its dtype's range
    config = json.loads((root / "dtype" / "run.json").read_text())
    for dataset in config["datasplit"]["train"] + config["datasplit"]["validate"]:
        dataset["normalisation"] = {"kind": "dtype"}
    (root / "dtype" / "run.json").write_text(json.dumps(config))
    shutil.copytree(f"{root}/run", f"{root}/wrapped")  # a run whose run.json names a module to import
    (root / "wrapped" / "run.json").write_text(json.dumps({**config, "architecture": WRAPPED}))
    shutil.copytree(f"{root}/run", f"{root}/cut")
    with open(f"{root}/cut/checkpoints/10.pt", "r+b") as f:
        f.truncate(os.path.getsize(f"{root}/cut/checkpoints/10.pt") // 2)
    (root / "mine.py").write_text("import numpy as np\n\n\ndef segment(prediction):\n"
                                  "    return np.zeros(prediction.shape[1:], np.uint64)\n\n\n"
                                  "def wrong(prediction):\n    return np.zeros((3, 3), np.uint64)\n")
    (root / "model.json").write_text(json.dumps({"postprocessing": {"method": "mine.py:segment", "params": {}}}))
    (root / "flags.json").write_text(json.dumps({"method": "mine.py:segment"}))
    (root / "allow.json").write_text(json.dumps({"allow_code": True}))
    (root / "task.json").write_text(json.dumps(TASK))
    config = json.loads((root / "run" / "run.json").read_text())
    (root / "wrapped.json").write_text(json.dumps({**config, "name": "w", "architecture": WRAPPED}))
    missing = {**config["datasplit"], "train": [{**config["datasplit"]["train"][0], "raw": f"{root}/d.zarr/none"}]}
    (root / "missing.json").write_text(json.dumps({**config, "name": "m", "datasplit": missing}))
    return root


PRED = ["postprocess-block", "--input", "{root}/d.zarr/pred", "--output", "{root}/out.zarr/seg"]
CC = [*PRED, "--method", "connected_components"]
RELABEL = ["relabel", "--input", "{root}/d.zarr/labels", "--output", "{root}/out.zarr/seg"]
TARGETS = ["make-targets", "--labels", "{root}/d.zarr/labels", "--task", "{root}/task.json", "--output",
           "{root}/out.zarr/t"]
PREDICT = ["predict-block", "--model", "{root}/run@10", "--input", "{root}/d.zarr/raw", "--output",
           "{root}/out.zarr/p"]
EVALUATE = ["evaluate", "--truth", "{root}/d.zarr/labels", "--prediction", "{root}/d.zarr/labels"]

# command, expected fragment of the error line
CASES = {
    # 2. code named by data runs only when the command line names it or --allow-code is given
    "method from model.json": ([*PRED, "--params-from", "{root}/model.json"], "is code named by a file"),
    "method from --config": ([*PRED, "--config", "{root}/flags.json"], "is code named by a file"),
    "--allow-code from --config": ([*CC, "--config", "{root}/allow.json"], "taken from the command line only"),
    "wrapped module in a run config": (["train", "--run-config", "{root}/wrapped.json", "--run", "{root}/out"],
                                       "is code named by a file"),
    "wrapped module in run.json, predict": ([*PREDICT[:2], "{root}/wrapped@10", *PREDICT[3:]],
                                            "is code named by a file"),
    "wrapped module in run.json, export": (["export-model", "--run", "{root}/wrapped", "--iteration", "10",
                                            "--output", "{root}/out/model.onnx"], "is code named by a file"),
    # 3. errors found before the first block
    "--device cuda without a GPU": ([*PREDICT, "--device", "cuda"], "no CUDA device"),
    "float labels to make-targets": ([*TARGETS[:2], "{root}/d.zarr/flabels", *TARGETS[3:]], "integer labels"),
    # 4. every argument checked before anything is created
    "--block-id out of range": ([*CC, "--block-id", "99"], "--block-id 99 is out of range"),
    "--block-id negative": ([*CC, "--block-id", "-1"], "--block-id -1 is out of range"),
    "--workers 0": ([*CC, "--workers", "0"], "--workers must be at least 1"),
    "relabel --workers 0": ([*RELABEL, "--workers", "0"], "--workers must be at least 1"),
    "relabel --block-id negative": ([*RELABEL, "--block-id", "-3"], "--block-id -3 is out of range"),
    "predict --workers -1": ([*PREDICT, "--workers", "-1"], "--workers must be at least 1"),
    "predict --block-id out of range": ([*PREDICT, "--block-id", "1000"], "--block-id 1000 is out of range"),
    "targets --block-id out of range": ([*TARGETS, "--block-id", "8"], "--block-id 8 is out of range"),
    "misaligned --block-shape": ([*CC, "--block-shape", "6,6,6", "--chunk-shape", "4,4,4"], "not aligned"),
    "targets --weights = --output": ([*TARGETS, "--weights", "{root}/out.zarr/t"], "--weights"),
    "train on a missing raw volume": (["train", "--run-config", "{root}/missing.json", "--run", "{root}/out",
                                       "--device", "cpu"], "d.zarr/none"),
    # 5. unclean errors made clean
    "truncated checkpoint, export": (["export-model", "--run", "{root}/cut", "--iteration", "10", "--output",
                                      "{root}/out/model.onnx"], "checkpoint"),
    "truncated checkpoint, predict": ([*PREDICT[:2], "{root}/cut@10", *PREDICT[3:]], "checkpoint"),
    "4D truth": ([*EVALUATE[:2], "{root}/d.zarr/labels4d", *EVALUATE[3:]], "channel"),
    # 6. silently accepted before
    "uint64 raw": ([*PREDICT[:2], "{root}/dtype@10", "--input", "{root}/d.zarr/raw64", *PREDICT[5:]], "uint64"),
    "float32 raw": ([*PREDICT[:2], "{root}/dtype@10", "--input", "{root}/d.zarr/rawf", *PREDICT[5:]], "float32"),
    "--min-size negative": ([*RELABEL, "--min-size", "-5"], "--min-size"),
    "--memory 8XB": ([*PREDICT, "--memory", "8XB"], "--memory '8XB'"),
    "float truth": ([*EVALUATE[:2], "{root}/d.zarr/flabels", *EVALUATE[3:]], "integer labels"),
    "float mask": ([*EVALUATE, "--mask", "{root}/d.zarr/flabels"], "--mask"),
}


def files(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(name, root, capsys, monkeypatch):
    args, message = CASES[name]
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    monkeypatch.chdir(root)
    before = files(root)
    try:
        code = alfine([a.replace("{root}", str(root)) for a in [*args, "--no-progress"]])
        after = files(root)
    finally:  # the next case starts from the inputs alone
        for name in ("out.zarr", "out", "alfine-logs", "daisy_logs"):
            shutil.rmtree(root / name, ignore_errors=True)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert message in captured.err and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alfine-") and ": error: " in lines[0], captured.err
    assert after == before


def test_code_named_by_a_file_runs_with_allow_code(root, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(root)  # model.json and flags.json name mine.py, relative to here
    source = ["postprocess-block", "--input", f"{root}/d.zarr/pred", "--no-progress"]
    for name, extra in [("model", ["--params-from", f"{root}/model.json", "--allow-code"]),
                        ("config", ["--config", f"{root}/flags.json", "--allow-code"]),
                        ("named", ["--method", f"{root}/mine.py:segment"])]:
        code = alfine([*source, "--output", f"{tmp_path}/out.zarr/{name}", *extra])
        assert code == 0, capsys.readouterr().err


def test_a_deterministic_error_in_a_block_stops_the_job_at_once(root, capsys, monkeypatch, tmp_path):
    """A user function returning the wrong shape: exit 2 after the first block, not retried in every block."""
    monkeypatch.chdir(tmp_path)
    for workers in ("1", "2"):
        code = alfine([*[a.replace("{root}", str(root)) for a in PRED[:4]], f"{tmp_path}/out{workers}.zarr/seg",
                       "--method", f"{root}/mine.py:wrong", "--block-shape", "8,8,8", "--workers", workers,
                       "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "returned" in err and "shape" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_failed_train_leaves_the_run_free_for_the_corrected_command(root, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    volume(f"{tmp_path}/t.zarr/raw", rng.integers(0, 255, (32, 32, 32)).astype(np.uint8), (16, 16, 16), voxel=(8,) * 3)
    volume(f"{tmp_path}/t.zarr/labels", rng.integers(0, 3, (32, 32, 32)).astype(np.uint32), (16, 16, 16),
           voxel=(8,) * 3)
    config = json.loads((root / "run" / "run.json").read_text())
    dataset = {"raw": f"{tmp_path}/t.zarr/none", "labels": f"{tmp_path}/t.zarr/labels"}
    off = {k: 0 for k in ("mirror", "transpose", "rotate", "elastic", "intensity_scale", "intensity_shift", "gamma",
                          "noise", "blur")}
    config = {**config, "datasplit": {"train": [dataset]}, "trainer": {"num_workers": 0, "augment": off},
              "architecture": {"kind": "unet", "input_shape": [28, 28, 28], "num_fmaps": 2,
                               "downsample_factors": [[2, 2, 2]]}}
    (tmp_path / "bad.json").write_text(json.dumps(config))
    run = f"{tmp_path}/runs/r"
    code = alfine(["train", "--run-config", "bad.json", "--run", run, "--device", "cpu", "--no-progress"])
    assert code == 2 and not os.path.exists(run), capsys.readouterr().err
    dataset["raw"] = f"{tmp_path}/t.zarr/raw"
    (tmp_path / "fixed.json").write_text(json.dumps(config))
    code = alfine(["train", "--run-config", "fixed.json", "--run", run, "--device", "cpu", "--iterations", "1",
                   "--no-progress"])
    assert code == 0, capsys.readouterr().err


def test_resuming_from_a_truncated_checkpoint_is_one_clean_error(root, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(root / "cut", tmp_path / "cut")
    code = alfine(["train", "--run-config", f"{tmp_path}/cut/run.json", "--run", f"{tmp_path}/cut", "--device", "cpu",
                   "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "10.pt: not a readable checkpoint" in err and len(err.strip().splitlines()) == 1, err
