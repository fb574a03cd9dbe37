"""alfine-train: learning, exact resume, killed runs, locks, reproducible batches, config errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from funlib.geometry import Roi

from alfine.errors import UserError
from alfine.runs import RunDirectory
from alfine.synthetic import SyntheticParams, generate_block
from alfine.training.config import run_from_dict
from alfine.training.samples import SampleMaker
from alfine.training.trainer import train
from alfine.volumes import prepare_volume

SHAPE = (40, 64, 64)
NO_AUGMENT = {"mirror": 0, "transpose": 0, "rotate": 0, "elastic": 0, "intensity_scale": 0, "intensity_shift": 0,
              "gamma": 0, "noise": 0, "blur": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    arrays = generate_block(SHAPE, (8, 8, 8), (0, 0, 0), (0, 0, 0), SHAPE, SyntheticParams(seed=3, cell_size=160.0))
    roi = Roi((0, 0, 0), tuple(s * 8 for s in SHAPE))
    for name in ("raw", "labels", "mask"):
        prepare_volume(f"{root}/d.zarr/{name}", roi, (8, 8, 8), arrays[name].dtype, (16, 16, 16)).write(
            roi, arrays[name])
    return root


def _run(data, **changes):
    config = {
        "name": "tiny",
        "datasplit": {"train": [{"raw": f"{data}/d.zarr/raw", "labels": f"{data}/d.zarr/labels"}]},
        "architecture": {"kind": "unet", "input_shape": [28, 28, 28], "num_fmaps": 3, "fmap_inc_factor": 2,
                         "downsample_factors": [[2, 2, 2]]},
        "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
        "trainer": {"batch_size": 2, "learning_rate": 0.003, "num_workers": 0, "seed": 1, "augment": NO_AUGMENT},
        "iterations": 6,
        "checkpoint_interval": 3,
    }
    for key, value in changes.items():
        config[key] = {**config[key], **value} if key == "trainer" else value  # trainer settings merge
    return run_from_dict(config, "run.json")


def test_a_few_iterations_lower_the_loss(tmp_path):
    """A volume just as large as one crop: every batch is the same, and 40 steps must fit it."""
    shape = (32, 32, 32)
    arrays = generate_block(shape, (8, 8, 8), (0, 0, 0), (0, 0, 0), shape, SyntheticParams(seed=3, cell_size=160.0))
    roi = Roi((0, 0, 0), tuple(s * 8 for s in shape))
    for name in ("raw", "labels"):
        prepare_volume(f"{tmp_path}/d.zarr/{name}", roi, (8, 8, 8), arrays[name].dtype, (16, 16, 16)).write(
            roi, arrays[name])
    run = _run(tmp_path, iterations=40, checkpoint_interval=40, trainer={"learning_rate": 0.01})
    summary = train(run, str(tmp_path / "run"), device="cpu")
    losses = [s["loss"] for s in RunDirectory(str(tmp_path / "run")).read_stats()]
    assert summary["iterations"] == 40 and len(losses) == 40
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    files = os.listdir(tmp_path / "run")
    assert {"run.json", "stats.jsonl", "loss.png", "checkpoints"} <= set(files)
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_gives_the_weights_of_an_uninterrupted_run(data, tmp_path):
    straight = str(tmp_path / "straight")
    train(_run(data), straight, device="cpu")
    resumed = str(tmp_path / "resumed")
    assert train(_run(data), resumed, device="cpu", iterations=3)["iterations"] == 3
    summary = train(_run(data), resumed, device="cpu")
    assert summary["started_at"] == 3 and summary["trained"] == 3
    a = torch.load(f"{straight}/checkpoints/6.pt", weights_only=True)
    b = torch.load(f"{resumed}/checkpoints/6.pt", weights_only=True)
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=1e-6, msg=name)
    assert [s["iteration"] for s in RunDirectory(resumed).read_stats()] == list(range(1, 7))
    np.testing.assert_allclose([s["loss"] for s in RunDirectory(resumed).read_stats()],
                               [s["loss"] for s in RunDirectory(straight).read_stats()], rtol=1e-5)


def test_the_same_run_twice_gives_the_same_weights_bit_for_bit(data, tmp_path):
    """With loader workers (their own processes and threads) and the same torch threads: identical checkpoints."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    summaries = [train(_run(data, trainer={"num_workers": 2}), url, device="cpu") for url in (first, second)]
    assert all(s["torch_threads"] == torch.get_num_threads() for s in summaries)
    a = torch.load(f"{first}/checkpoints/6.pt", weights_only=True)["model"]
    b = torch.load(f"{second}/checkpoints/6.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_batches_do_not_depend_on_loader_workers(data):
    maker = SampleMaker(_run(data, trainer={"augment": {"rotate": 1.0, "elastic": 1.0, "mirror": 0.5}}))
    first = maker(5)
    again = SampleMaker(_run(data, trainer={"augment": {"rotate": 1.0, "elastic": 1.0, "mirror": 0.5}}))(5)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["raw"], maker(6)["raw"])
    assert first["raw"].shape == (1, 28, 28, 28) and first["target"].shape == (3, 12, 12, 12)
    assert first["weights"].shape == first["target"].shape and first["labels"].shape == (12, 12, 12)


def test_another_trainer_on_the_same_run_is_refused(data, tmp_path):
    holder = RunDirectory(str(tmp_path / "run"))
    holder.lock()
    try:
        with pytest.raises(UserError, match="two trainers on one run are refused"):
            train(_run(data), str(tmp_path / "run"), device="cpu")
    finally:
        holder.unlock()


def test_a_different_run_in_the_same_directory_is_refused(data, tmp_path):
    train(_run(data, iterations=1, checkpoint_interval=1), str(tmp_path / "run"), device="cpu")
    with pytest.raises(UserError, match="holds another run"):
        train(_run(data, trainer={"learning_rate": 0.5}), str(tmp_path / "run"), device="cpu")


def test_a_killed_trainer_loses_only_what_came_after_its_checkpoint(data, tmp_path):
    run = _run(data, iterations=400, checkpoint_interval=2)
    from alfine.configs import to_dict

    (tmp_path / "run.json").write_text(json.dumps(to_dict(run)))
    run_dir = tmp_path / "run"
    process = subprocess.Popen([str(Path(sys.executable).parent / "alfine-train"), "--run-config",
                                str(tmp_path / "run.json"), "--run", str(run_dir), "--device", "cpu", "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(RunDirectory(str(run_dir)).checkpoints()) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = RunDirectory(str(run_dir)).checkpoints()
    assert len(kept) >= 2, "no checkpoint written in time"
    last = kept[-1]
    summary = train(run, str(run_dir), device="cpu", iterations=last + 2)
    assert summary["started_at"] == last and summary["iterations"] == last + 2
    assert [s["iteration"] for s in RunDirectory(str(run_dir)).read_stats()] == list(range(1, last + 3))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"trainer": {"optimizer": "adamm"}}, r"run\.json: trainer\.optimizer: expected \"adam\""),
        ({"iterations": 0}, r"run\.json: iterations and checkpoint_interval must be at least 1"),
        ({"architecture": {"kind": "unet", "input_shape": [27, 28, 28], "num_fmaps": 2,
                           "downsample_factors": [[2, 2, 2]]}}, "27"),
        ({"task": {"kind": "affinities", "neighborhood": [[1, 0], [0, 1]]}}, "the task is 2D"),
    ],
)
def test_bad_run_configs_are_one_line_errors(data, tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        train(_run(data, **changes), str(tmp_path / "run"), device="cpu")


def test_mismatched_voxel_sizes_are_refused_before_training(data, tmp_path):
    roi = Roi((0, 0, 0), (64, 64, 64))
    prepare_volume(f"{tmp_path}/other.zarr/labels", roi, (4, 4, 4), "uint64", (16, 16, 16))
    run = _run(data, datasplit={"train": [{"raw": f"{data}/d.zarr/raw", "labels": f"{tmp_path}/other.zarr/labels"}]})
    with pytest.raises(UserError, match="voxel size"):
        train(run, str(tmp_path / "run"), device="cpu")
    assert not RunDirectory(str(tmp_path / "run")).checkpoints()


def test_loader_workers_do_not_keep_the_run_locked(data, tmp_path):
    """Forked loader workers inherit the lock's file; a finished run must leave the run free at once."""
    run = _run(data, iterations=2, checkpoint_interval=2, trainer={"num_workers": 2})
    train(run, str(tmp_path / "run"), device="cpu")
    assert train(run, str(tmp_path / "run"), device="cpu", iterations=4)["started_at"] == 2


def test_loader_workers_forked_after_tensorstore_train_as_the_process_alone(data, tmp_path):
    """Workers forked from a process that used tensorstore (which would abort them) read through zarr-python:
    the same batches, so the same losses, as without workers."""
    from alfine.volumes import bulk, open_volume

    open_volume(f"{data}/d.zarr/raw").read()
    assert bulk.started and bulk.enabled()  # tensorstore's threads run in this process: workers inherit them
    losses = {}
    for workers in (0, 2):
        run = _run(data, iterations=3, checkpoint_interval=3, trainer={"num_workers": workers})
        train(run, str(tmp_path / f"run{workers}"), device="cpu")
        losses[workers] = [s["loss"] for s in RunDirectory(str(tmp_path / f"run{workers}")).read_stats()]
    assert len(losses[0]) == 3
    np.testing.assert_allclose(losses[2], losses[0], rtol=1e-6)


def test_crops_reach_past_the_volume_as_inference_reads_it(data):
    """By default a crop may reach past the data as far as lets its output touch the faces (without
    augmentation the input then reaches the network's context, 8 voxels, past them): raw there is the
    volume mirrored across its faces, as inference reads it, and the output stays on the labels; with
    border_padding 0 every input lies inside the data."""
    from alfine.datasplits import normalise
    from alfine.volumes import open_volume

    run = _run(data)
    maker = SampleMaker(run)
    context = np.asarray(run.architecture.context()) * 8
    assert tuple(context) == (64, 64, 64)
    margin = 40
    mirrored = normalise(np.pad(open_volume(f"{data}/d.zarr/raw").read(), margin, mode="reflect"),
                         run.datasplit.train[0].normalisation)
    extent = np.asarray(SHAPE) * 8
    begins, ends, padded, touches = [], [], 0, []
    for index in range(50):
        sample = maker(index)
        begin = sample["raw_begin"]
        begins.append(begin)
        ends.append(begin + 28 * 8)
        output = sample["output_begin"]
        assert np.all(output >= 0) and np.all(output + 12 * 8 <= extent)
        touches.append(np.any(output == 0) or np.any(output + 12 * 8 == extent))
        if np.any(begin < 0) or np.any(begin + 28 * 8 > extent):
            padded += 1
            where = tuple(slice(b // 8 + margin, b // 8 + margin + 28) for b in begin)
            np.testing.assert_array_equal(sample["raw"][0], mirrored[where])
    begins, ends = np.array(begins), np.array(ends)
    assert padded > 0 and begins.min() >= -context.max() and (ends - extent).max() <= context.max()
    assert begins.min() < 0 and (ends - extent).max() > 0 and any(touches)
    inside = SampleMaker(_run(data, trainer={"border_padding": 0}))
    for index in range(20):
        begin = inside(index)["raw_begin"]
        assert np.all(begin >= 0) and np.all(begin + 28 * 8 <= extent)


def test_stats_reach_the_file_between_checkpoints_and_a_resume_drops_a_killed_runs_extra_lines(
        data, tmp_path, monkeypatch):
    from alfine.training import trainer

    monkeypatch.setattr(trainer, "STATS_EVERY", 2)
    monkeypatch.setattr(trainer, "STATS_SECONDS", 0.0)
    seen = []
    append = RunDirectory.append_stats

    def spy(self, stats, new):
        append(self, stats, new)
        seen.append([s["iteration"] for s in self.read_stats()])

    monkeypatch.setattr(RunDirectory, "append_stats", spy)
    url = str(tmp_path / "run")
    train(_run(data, checkpoint_interval=6), url, device="cpu", iterations=5)
    assert seen[:2] == [[1, 2], [1, 2, 3, 4]]  # written before the first checkpoint (at 5, the last iteration)
    RunDirectory(url).append_stats([{"iteration": 6, "loss": 1.0}, {"iteration": 7, "loss": 1.0}], 2)
    train(_run(data, checkpoint_interval=6), url, device="cpu")  # as after a kill: lines beyond the checkpoint
    assert [s["iteration"] for s in RunDirectory(url).read_stats()] == [1, 2, 3, 4, 5, 6]
    assert RunDirectory(url).read_stats()[-1]["loss"] != 1.0
