"""alfine-train from named parts of a config store: assembled runs, repetitions, stored runs, errors."""

import json

import pytest
from funlib.geometry import Roi

from alfine.configs import ConfigStore
from alfine.synthetic import SyntheticParams, generate_block
from alfine.training.config import load_run
from alfine.volumes import prepare_volume
from alfine_tools.train import main

OFF = {k: 0 for k in ("mirror", "transpose", "rotate", "elastic", "intensity_scale", "intensity_shift", "gamma",
                      "noise", "blur")}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shape = (32, 32, 32)
    arrays = generate_block(shape, (8, 8, 8), (0, 0, 0), (0, 0, 0), shape, SyntheticParams(seed=1, cell_size=160.0))
    roi = Roi((0, 0, 0), (256, 256, 256))
    for name in ("raw", "labels"):
        prepare_volume(f"{tmp_path}/d.zarr/{name}", roi, (8, 8, 8), arrays[name].dtype, (16, 16, 16)).write(
            roi, arrays[name])
    configs = ConfigStore(str(tmp_path / "store"))
    configs.save("datasplits", "synth", {"train": [{"raw": f"{tmp_path}/d.zarr/raw",
                                                    "labels": f"{tmp_path}/d.zarr/labels"}]})
    configs.save("architectures", "tiny", {"kind": "unet", "input_shape": [28, 28, 28], "num_fmaps": 2,
                                           "downsample_factors": [[2, 2, 2]]})
    configs.save("tasks", "fg", {"kind": "binary", "from_instances": True})
    configs.save("trainers", "quick", {"num_workers": 0, "augment": OFF})
    return tmp_path / "store"


def _train(capsys, *args):
    code = main(["--no-progress", "--device", "cpu", *args])
    captured = capsys.readouterr()
    return code, captured


def test_assembled_runs_and_repetitions(store, capsys):
    parts = ["--store", str(store), "--datasplit", "synth", "--architecture", "tiny", "--task", "fg",
             "--trainer", "quick", "--iterations", "1"]
    code, captured = _train(capsys, *parts, "--repetition", "1")
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["name"] == "synth-tiny-fg-quick-r1" and summary["iterations"] == 1
    assert (store / "runs" / "synth-tiny-fg-quick-r1" / "checkpoints" / "1.pt").exists()
    assert _train(capsys, *parts)[0] == 0
    first, second = load_run(str(store), "synth-tiny-fg-quick-r0"), load_run(str(store), "synth-tiny-fg-quick-r1")
    assert first.seed != second.seed and first.task == second.task and first.trainer == second.trainer
    code, captured = _train(capsys, "--store", str(store), "--name", "synth-tiny-fg-quick-r1", "--iterations", "2")
    assert code == 0 and json.loads(captured.out)["started_at"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "x", "--run-config", "r.json"], "give exactly one of --run-config"),
        (["--datasplit", "synth", "--task", "fg"], "missing --architecture, --trainer"),
        (["--name", "nope"], "no runs config named 'nope'"),
        (["--datasplit", "synth", "--architecture", "huge", "--task", "fg", "--trainer", "quick"],
         "no architectures config named 'huge' (stored: tiny)"),
    ],
)
def test_unclear_requests_are_one_line_errors(store, capsys, args, message):
    code, captured = _train(capsys, "--store", str(store), *args)
    assert code == 2 and message in captured.err and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_run_directory_alone_resumes_its_recorded_run(store, capsys, tmp_path):
    run = tmp_path / "resumed"
    parts = ["--store", str(store), "--datasplit", "synth", "--architecture", "tiny", "--task", "fg",
             "--trainer", "quick", "--iterations", "1", "--run", str(run)]
    assert _train(capsys, *parts)[0] == 0
    code, captured = _train(capsys, "--run", str(run), "--iterations", "2")
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["started_at"] == 1 and summary["iterations"] == 2
    assert (run / "checkpoints" / "2.pt").exists()


def test_run_directory_alone_without_run_json_is_refused_and_nothing_is_created(store, capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for directory in (tmp_path / "missing", empty):
        code, captured = _train(capsys, "--run", str(directory))
        assert code == 2 and captured.out == ""
        assert captured.err.strip().splitlines() == [captured.err.strip()]
        assert "error: " in captured.err and f"{directory} has no run.json" in captured.err
    assert not (tmp_path / "missing").exists() and list(empty.iterdir()) == []
