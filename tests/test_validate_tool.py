"""alfine-validate on runs with checkpoints: rows, re-validation, best.json, kept outputs, equal to alfine-evaluate,
the scored region, degenerate segmentations."""

import json

import numpy as np
import pytest
import torch
import zarr
from funlib.geometry import Coordinate, Roi
from ngff_helpers import validate_container

from alfine.architectures import ArchitectureConfig
from alfine.configs import from_dict
from alfine.datasplits import Dataset, Datasplit
from alfine.errors import UserError
from alfine.geometry import format_roi
from alfine.postprocess import grid
from alfine.runs import RunDirectory
from alfine.synthetic import SyntheticParams, generate_block
from alfine.tasks import AffinitiesTask, TaskConfig
from alfine.training.config import RunConfig
from alfine.validation import best_for, read_best
from alfine.volumes import prepare_volume
from alfine_tools.evaluate import main as evaluate_main
from alfine_tools.export_model import main as export_main
from alfine_tools.validate import main as validate_main

VOXEL = (8, 8, 8)


def write_dataset(tmp_path, name, shape, seed, offset=(0, 0, 0), mask=False, raw_margin=0) -> Dataset:
    """A synthetic dataset whose labels and mask cover ``shape`` at ``offset``, and its raw ``raw_margin``
    voxels more on every side."""
    roi = Roi(offset, tuple(s * v for s, v in zip(shape, VOXEL, strict=True)))
    margin = tuple(raw_margin * v for v in VOXEL)
    raw_roi = roi.grow(margin, margin)
    raw_shape = tuple(s + 2 * raw_margin for s in shape)
    arrays = generate_block(raw_shape, VOXEL, raw_roi.begin, (0, 0, 0), raw_shape,
                            SyntheticParams(seed=seed, cell_size=120.0))
    inner = tuple(slice(raw_margin, raw_margin + s) for s in shape)
    for key in ("raw", "labels", "mask"):
        data, region = (arrays[key], raw_roi) if key == "raw" else (arrays[key][inner], roi)
        prepare_volume(f"{tmp_path}/{name}.zarr/{key}", region, VOXEL, data.dtype, (8, 8, 8)).write(region, data)
    return Dataset(raw=f"{tmp_path}/{name}.zarr/raw", labels=f"{tmp_path}/{name}.zarr/labels",
                   mask=f"{tmp_path}/{name}.zarr/mask" if mask else None)


def make_run(tmp_path, task: dict, validate: list[Dataset], iterations=(5, 10)) -> str:
    architecture = from_dict(ArchitectureConfig, {"kind": "unet", "num_fmaps": 2, "input_shape": [20, 20, 20],
                                                  "downsample_factors": [[2, 2, 2]], "activation": "leaky_relu"}, "a")
    task_config = from_dict(TaskConfig, task, "task")
    split = Datasplit(train=[write_dataset(tmp_path, "train", (16, 16, 16), 1)], validate=validate)
    run_dir = RunDirectory(str(tmp_path / "run"))
    run_dir.write_config(RunConfig(name="r", datasplit=split, architecture=architecture, task=task_config))
    (tmp_path / "run" / "checkpoints").mkdir()
    for seed, iteration in enumerate(iterations):
        torch.manual_seed(seed)
        model = architecture.build(task_config.num_channels)
        for parameter in model.parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        torch.save({"model": model.state_dict(), "iteration": iteration},
                   tmp_path / "run" / "checkpoints" / f"{iteration}.pt")
    return run_dir.url


def validate(capsys, *args):
    code = validate_main(["--no-progress", "--device", "cpu", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


AFFINITIES = {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}


@pytest.fixture
def affinities_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    datasets = [write_dataset(tmp_path, "val", (12, 10, 9), 2, offset=(16, 8, -24), mask=True),
                write_dataset(tmp_path, "tiny", (5, 6, 7), 3)]  # smaller than the network's input
    return make_run(tmp_path, AFFINITIES, datasets), tmp_path


def test_validation_rows_best_and_outputs(affinities_run, capsys):
    run, tmp_path = affinities_run
    sweep = sum(len(grid(post.method, post.grid)) for post in AffinitiesTask().postprocessing())
    assert sweep == 12 + 12  # mutex watershed and agglomeration: 3 levels x 2 fragment sizes x 2 fills each
    rows_per_iteration = 2 * sweep  # two datasets
    summary = validate(capsys, "--run", run, "--iteration", "5")
    assert summary["validated"] == [5] and summary["main_metric"] == "voi"
    lines = (tmp_path / "run" / "validation.jsonl").read_text().splitlines()
    assert len(lines) == rows_per_iteration
    summary = validate(capsys, "--run", run, "--all")  # only 10 is not validated yet
    assert summary["validated"] == [10]
    summary = validate(capsys, "--run", run, "--iteration", "5")  # again: replaces, never duplicates
    rows = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * rows_per_iteration
    assert sorted({(r["iteration"], r["dataset"]) for r in rows}) == [(i, d) for i in (5, 10)
                                                                       for d in ("tiny/raw", "val/raw")]
    # the summary's best voi is the lowest average voi of any (iteration, method, params) over both datasets
    averages = {}
    for r in rows:
        averages.setdefault((r["iteration"], r["method"], json.dumps(r["params"])), []).append(r["scores"]["voi"])
    lowest = min(np.mean(v) for v in averages.values())
    assert summary["best"]["voi"]["value"] == pytest.approx(lowest)
    assert read_best(run)["metrics"]["voi"]["average"]["value"] == pytest.approx(lowest)
    assert (tmp_path / "run" / "validation.png").read_bytes()[:4] == b"\x89PNG"
    # outputs of iterations neither best nor latest are removed
    kept = {p.name for p in (tmp_path / "run" / "validation").iterdir()}
    best_iterations = {e["iteration"] for m in read_best(run)["metrics"].values()
                       for e in [m["average"], *m["datasets"].values()]}
    assert kept == {f"{i}.zarr" for i in best_iterations | {10}}


def test_written_segmentation_scores_equal_alfine_evaluate(affinities_run, capsys):
    run, tmp_path = affinities_run
    validate(capsys, "--run", run, "--latest")
    rows = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    for method in ("mutex_watershed", "agglomerate"):
        segmentation = f"{tmp_path}/run/validation/10.zarr/val_raw/{method}"

        params = zarr.open_array(f"{tmp_path}/run/validation/10.zarr/val_raw/{method}/s0").attrs["alfine_validation"]
        [written] = [r for r in rows if r["method"] == method and r["dataset"] == "val/raw"
                     and r["params"] == params["params"]]
        assert evaluate_main(["--truth", f"{tmp_path}/val.zarr/labels", "--mask", f"{tmp_path}/val.zarr/mask",
                              "--prediction", segmentation, "--roi", written["scored_roi"]]) == 0
        scores = json.loads(capsys.readouterr().out)["scores"]
        for metric, value in written["scores"].items():
            assert scores[metric] == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    kinds = {p: type(m).__name__ for p, m in validate_container(f"{tmp_path}/run/validation/10.zarr").items()}
    assert kinds == {f"{d}/{name}": kind for d in ("val_raw", "tiny_raw") for name, kind in
                     (("prediction", "Image"), ("mutex_watershed", "ImageLabel"), ("agglomerate", "ImageLabel"))}


def test_a_semantic_task_is_scored_per_class(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path, {"kind": "binary", "from_instances": True},
                   [write_dataset(tmp_path, "val", (9, 9, 9), 2)], iterations=(3,))
    summary = validate(capsys, "--run", run)
    assert summary["main_metric"] == "f1" and summary["best"]["f1"]["iteration"] == 3
    rows = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"threshold", "connected_components"}
    assert all(set(r["scores"]) == {"1"} for r in rows)
    # the f1 of a threshold equals the Dice of the thresholded prediction, computed here independently

    prediction = zarr.open_array(f"{tmp_path}/run/validation/3.zarr/val_raw/prediction/s0")[:]
    truth = zarr.open_array(f"{tmp_path}/val.zarr/labels/s0")[:] > 0
    for r in rows:
        if r["method"] == "threshold":
            predicted = prediction[0] > r["params"]["threshold"]
            dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
            assert r["scores"]["1"]["f1"] == pytest.approx(dice)


def test_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert validate_main(["--run", str(tmp_path / "nothing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    run = make_run(tmp_path, AFFINITIES, [], iterations=(5,))
    assert validate_main(["--run", run]) == 2
    said = capsys.readouterr().err
    assert "has no validate datasets" in said and f"alfine-export-model --run {run} --iteration N" in said
    assert validate_main(["--run", run, "--iteration", "5", "--all"]) == 2
    assert "at most one of" in capsys.readouterr().err
    # export of the best checkpoint from a run that cannot be validated says what to do instead
    assert export_main(["--run", run, "--iteration", "best", "--output", f"{tmp_path}/m.onnx"]) == 2
    said = capsys.readouterr().err.strip()
    assert said.count("\n") == 0 and "no validate datasets" in said and "--iteration N; it has [5]" in said
    assert not (tmp_path / "m.onnx").exists()
    # and a run that can be validated, but was not yet
    validated = make_run(tmp_path / "v", AFFINITIES, [write_dataset(tmp_path, "val", (6, 6, 6), 2)], iterations=(5,))
    assert export_main(["--run", validated, "--iteration", "best", "--output", f"{tmp_path}/m.onnx"]) == 2
    said = capsys.readouterr().err
    assert f"run alfine-validate --run {validated} first, or choose a checkpoint by number" in said


def test_training_validates_every_validation_interval(tmp_path, monkeypatch, capsys):
    from alfine_tools.train import main as train_main

    monkeypatch.chdir(tmp_path)
    train, val = write_dataset(tmp_path, "train", (24, 24, 24), 1), write_dataset(tmp_path, "val", (6, 6, 6), 2)
    off = {k: 0 for k in ("mirror", "transpose", "rotate", "elastic", "intensity_scale", "intensity_shift",
                          "gamma", "noise", "blur")}
    config = {"name": "validated", "iterations": 4, "checkpoint_interval": 3, "validation_interval": 2,
              "datasplit": {"train": [{"raw": train.raw, "labels": train.labels}],
                            "validate": [{"raw": val.raw, "labels": val.labels}]},
              "architecture": {"kind": "unet", "num_fmaps": 2, "input_shape": [20, 20, 20],
                               "downsample_factors": [[2, 2, 2]]},
              "task": {"kind": "binary", "from_instances": True},
              "trainer": {"num_workers": 0, "augment": off}}
    (tmp_path / "run.json").write_text(json.dumps(config))
    assert train_main(["--no-progress", "--device", "cpu", "--run-config", str(tmp_path / "run.json"),
                       "--run", str(tmp_path / "trained")]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "trained" / "validation.jsonl").read_text().splitlines()]
    assert sorted({r["iteration"] for r in rows}) == [2, 4]  # validated at 2 and 4 (checkpointed for it)
    assert sorted(int(p.stem) for p in (tmp_path / "trained" / "checkpoints").iterdir()) == [2, 3, 4]
    assert read_best(str(tmp_path / "trained"))["main_metric"] == "f1"


def test_validation_predicts_with_few_large_inputs_within_a_memory_budget():
    from alfine.validation.run import covering_input_shape

    architecture = from_dict(ArchitectureConfig, {"kind": "unet", "num_fmaps": 2, "input_shape": [20, 20, 20],
                                                  "downsample_factors": [[2, 2, 2]]}, "a")
    shape = covering_input_shape(architecture, (5, 30, 61), 3)
    architecture.check_input_shape(shape)
    output = architecture.output_shape(shape)
    assert all(o >= r for o, r in zip(output, (5, 30, 61), strict=True))
    smaller = [s - 2 for s in shape]  # one step less on an axis no longer covers it
    assert any(o < r for o, r in zip(architecture.output_shape(smaller), (5, 30, 61), strict=True))
    capped = covering_input_shape(architecture, (500, 500, 500), 3, memory_bytes=architecture.activation_bytes(
        (40, 40, 40), 3))
    assert architecture.activation_bytes(capped, 3) <= architecture.activation_bytes((40, 40, 40), 3)


def rows_of(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]


def test_the_border_predicted_from_padding_is_not_scored(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    context = 8  # the test network's context, voxels per side
    shape = (20, 20, 20)
    datasets = [write_dataset(tmp_path, "flush", shape, 2),  # raw == labels: a band of 8 voxels is left out
                write_dataset(tmp_path, "wide", shape, 3, raw_margin=context),  # raw beyond by the context: none
                write_dataset(tmp_path, "tiny", (5, 6, 7), 4)]  # nothing would be left: all of it, with a warning
    run = make_run(tmp_path, AFFINITIES, datasets, iterations=(5,))
    assert validate_main(["--no-progress", "--device", "cpu", "--run", run]) == 0
    captured = capsys.readouterr()
    whole = Roi((0, 0, 0), tuple(s * v for s, v in zip(shape, VOXEL, strict=True)))
    inner = whole.grow(-Coordinate(VOXEL) * context, -Coordinate(VOXEL) * context)
    tiny = Roi((0, 0, 0), (40, 48, 56))
    regions = {"flush/raw": inner, "wide/raw": whole, "tiny/raw": tiny}
    assert json.loads(captured.out)["scored_regions"] == {name: format_roi(roi) for name, roi in regions.items()}
    assert "tiny/raw: the labels' region 0,0,0:40,48,56 leaves nothing to score" in captured.err
    rows = rows_of(tmp_path)
    assert {r["dataset"] for r in rows} == set(regions)
    for r in rows:
        roi = regions[r["dataset"]]
        labels = zarr.open_array(f"{tmp_path}/{r['dataset'].split('/')[0]}.zarr/labels/s0")[:]
        scored = labels[tuple(slice(b // v, e // v) for b, e, v in zip(roi.begin, roi.end, VOXEL, strict=True))]
        assert r["scored_roi"] == format_roi(roi)
        assert r["scores"]["voxels"] == np.count_nonzero(scored), r["dataset"]
        assert r["scores"]["truth_objects"] == len(np.unique(scored[scored != 0]))
        assert isinstance(r["degenerate"], bool)
    # the written segmentation of the best parameters scores the same with alfine-evaluate on the scored region
    attrs = zarr.open_array(f"{tmp_path}/run/validation/5.zarr/flush_raw/agglomerate/s0").attrs["alfine_validation"]
    [written] = [r for r in rows if r["dataset"] == "flush/raw" and r["method"] == "agglomerate"
                 and r["params"] == attrs["params"]]
    assert attrs["scored_roi"] == format_roi(inner)
    assert evaluate_main(["--truth", f"{tmp_path}/flush.zarr/labels", "--roi", format_roi(inner), "--prediction",
                          f"{tmp_path}/run/validation/5.zarr/flush_raw/agglomerate"]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores["voi"] == pytest.approx(written["scores"]["voi"], rel=1e-9, abs=1e-12)


def test_when_every_segmentation_is_degenerate_nothing_is_best(affinities_run, capsys, monkeypatch):
    run, tmp_path = affinities_run
    monkeypatch.setattr("alfine.validation.run.is_degenerate", lambda scores: True)  # as if all collapsed
    assert validate_main(["--no-progress", "--device", "cpu", "--run", run]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    rows = rows_of(tmp_path)
    assert all(r["degenerate"] for r in rows) and summary["degenerate_rows"] == len(rows)
    assert summary["best"] == {} and "every validated segmentation is degenerate" in summary["no_best"]["voi"]
    assert "no best voi: every validated segmentation is degenerate" in captured.err
    assert read_best(run)["metrics"]["voi"]["average"] is None
    with pytest.raises(UserError, match="every validated segmentation is degenerate"):
        best_for(run)
    assert export_main(["--run", run, "--iteration", "best", "--output", str(tmp_path / "m.onnx")]) == 2
    assert "no best iteration for criterion 'voi'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
