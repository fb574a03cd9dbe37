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


def test_a_run_file_names_its_parts_by_path_relative_to_its_folder(store, capsys, tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "split.csv").write_text("role,raw,labels\ntrain,../d.zarr/raw,../d.zarr/labels\n")
    (configs / "run.json").write_text(json.dumps({
        "name": "by-path", "datasplit": "split.csv", "architecture": "../store/architectures/tiny.json",
        "task": "../store/tasks/fg.json", "trainer": "../store/trainers/quick.json", "iterations": 1}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the paths mean the same from any working directory
    code, captured = _train(capsys, "--run-config", "../configs/run.json", "--run", str(tmp_path / "by-path"))
    assert code == 0, captured.err
    recorded = json.loads((tmp_path / "by-path" / "run.json").read_text())
    (dataset,) = recorded["datasplit"]["train"]
    assert (dataset["raw"], dataset["labels"]) == (f"{tmp_path}/d.zarr/raw", f"{tmp_path}/d.zarr/labels")
    assert recorded["architecture"]["input_shape"] == [28, 28, 28] and recorded["task"]["kind"] == "binary"


def test_a_stored_csv_datasplit_is_a_part_like_a_json_one(store, capsys):
    (store / "datasplits" / "table.csv").write_text("role,raw,labels\ntrain,../../d.zarr/raw,../../d.zarr/labels\n")
    assert ConfigStore(str(store)).list("datasplits") == ["synth", "table"]
    code, captured = _train(capsys, "--store", str(store), "--datasplit", "table", "--architecture", "tiny",
                            "--task", "fg", "--trainer", "quick", "--iterations", "1")
    assert code == 0, captured.err
    (dataset,) = load_run(str(store), "table-tiny-fg-quick-r0").datasplit.train
    assert (dataset.raw, dataset.labels) == (f"{store.parent}/d.zarr/raw", f"{store.parent}/d.zarr/labels")


def test_a_missing_part_file_is_a_one_line_error_and_nothing_is_created(store, capsys, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({
        "name": "x", "datasplit": "nowhere.csv", "architecture": "../store/architectures/tiny.json",
        "task": {"kind": "binary", "from_instances": True}, "trainer": {}}))
    code, captured = _train(capsys, "--run-config", str(tmp_path / "run.json"), "--run", str(tmp_path / "x"))
    assert code == 2 and captured.out == "" and f"{tmp_path}/nowhere.csv: no such file" in captured.err
    assert not (tmp_path / "x").exists()


def test_the_repository_config_store_and_run_file_describe_one_run(tmp_path):
    import shutil
    from pathlib import Path

    from alfine.training.config import assemble_run, run_from_file

    examples = Path(__file__).resolve().parent.parent / "examples" / "configs"
    copy = tmp_path / "examples" / "configs"
    shutil.copytree(examples, copy)  # assembling writes runs/ into the store
    from_file = run_from_file(str(copy / "run.json"))
    named = json.loads((copy / "run.json").read_text())
    parts = {p: Path(named[p]).stem for p in ("datasplit", "architecture", "task", "trainer")}
    assembled = assemble_run(str(copy), parts)
    assert (from_file.datasplit, from_file.architecture, from_file.task, from_file.trainer) == (
        assembled.datasplit, assembled.architecture, assembled.task, assembled.trainer)
    assert from_file.datasplit.train[0].raw == f"{tmp_path}/tour/train.zarr/raw"  # beside the repository root
