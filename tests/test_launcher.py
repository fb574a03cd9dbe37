"""--launcher: workers started through a command prefix (a `bsub` stand-in that runs the job here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Roi

from alfine.blockwise.launch import worker_command
from alfine.synthetic import SyntheticParams, generate_block
from alfine.volumes import open_volume, prepare_volume

BIN = Path(sys.executable).parent


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A `bsub` on PATH, a labels volume and a task config, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bsub").symlink_to(Path(__file__).resolve().parent / "bsub_standin.py")
    shape, voxel = (16, 32, 32), (8, 8, 8)
    labels = generate_block(shape, voxel, (0, 0, 0), (0, 0, 0), shape, SyntheticParams(seed=2))["labels"]
    roi = Roi((0, 0, 0), (128, 256, 256))
    prepare_volume(f"{tmp_path}/d.zarr/labels", roi, voxel, labels.dtype, (8, 16, 16)).write(roi, labels)
    (tmp_path / "task.json").write_text(json.dumps({"kind": "affinities"}))
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{BIN}:{os.environ['PATH']}",
           "BSUB_RECORD": str(tmp_path / "bsub.jsonl"), "ALFINE_NO_PROGRESS": "1"}
    return tmp_path, env


def targets(env, output, *extra):
    return subprocess.run([str(BIN / "alfine-make-targets"), "--labels", "d.zarr/labels", "--task", "task.json",
                           "--output", output, "--block-shape", "8,16,16", "--chunk-shape", "8,16,16", *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def test_launched_workers_compute_what_local_ones_do(cluster):
    root, env = cluster
    local = targets(env, "out.zarr/local", "--workers", "1")
    assert local.returncode == 0, local.stderr
    launched = targets(env, "out.zarr/launched", "--workers", "2", "--launcher", "bsub -K -q short -n 2 -o lsf.out")
    assert launched.returncode == 0, launched.stderr
    assert json.loads(launched.stdout)["processed"] == 2 * 2 * 2
    np.testing.assert_array_equal(open_volume("out.zarr/launched").read(), open_volume("out.zarr/local").read())
    calls = [json.loads(line) for line in (root / "bsub.jsonl").read_text().splitlines()]
    assert 1 <= len(calls) <= 2  # one per worker (a worker that finds no block left may not start)
    for call in calls:
        assert call[:6] == ["-K", "-q", "short", "-n", "2", "-o"] and call[7] == "env"
        assert call[8].startswith("DAISY_CONTEXT=") and "ALFINE_BLOCK_WORKER=1" in call
        assert "ALFINE_NO_PROGRESS=1" in call  # flag defaults from the environment travel with the worker
        command = call.index("alfine-make-targets")
        assert call[command + 1:command + 3] == ["--labels", "d.zarr/labels"]
    logs = list((root / "alfine-logs").glob("make-targets-*/worker-*.log"))
    assert logs and all(log.read_text().startswith("$ bsub -K") for log in logs)


def test_a_failing_launcher_is_reported_with_its_log(cluster):
    root, env = cluster
    result = targets(env, "out.zarr/failed", "--workers", "1", "--launcher", "false")
    assert result.returncode == 3, result.stderr
    assert "alfine-logs/make-targets-" in result.stderr and "worker-" in result.stderr
    assert not any(open_volume("out.zarr/failed").read().ravel())  # nothing was computed


def test_the_worker_command_is_quoted_as_words():
    words = worker_command("bsub -q 'gpu short' -R \"rusage[mem=8000]\"", ["alfine-x", "--roi", "0,0:1,1"], "ctx")
    assert words[:6] == ["bsub", "-q", "gpu short", "-R", "rusage[mem=8000]", "env"]
    assert words[-3:] == ["alfine-x", "--roi", "0,0:1,1"] and "DAISY_CONTEXT=ctx" in words


def test_a_launcher_that_returns_at_submission_is_refused_or_stops_the_job(cluster):
    root, env = cluster
    refused = targets(env, "out.zarr/nok", "--workers", "2", "--launcher", "bsub -q short -n 2")
    assert refused.returncode == 2 and "add -K" in refused.stderr, refused.stderr
    assert not (root / "out.zarr" / "nok").exists()  # refused before anything was written
    detached = targets(env, "out.zarr/detached", "--workers", "2", "--launcher", "sh -c '\"$@\" > /dev/null 2>&1 &' x")
    assert detached.returncode == 2, detached.stderr
    assert "before its worker ended: a launcher must last as long as its worker" in detached.stderr.splitlines()[-1]
