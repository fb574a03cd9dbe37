"""The cluster paths through a real Slurm: a one-node cluster on this host (the ``slurm`` fixture,
tests/slurm_cluster.py), with srun as --launcher, sbatch job arrays of blocks, a killed array element and a
job stopped at its time limit re-run to the end, the errors a cluster user meets, and examples/slurm.sh
against examples/local.sh. All of them run on one xdist worker (one cluster per session)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from markers_helpers import done_ids
from slurm_cluster import HOW_TO_ENABLE, missing  # tests/ is on sys.path

from alfine.volumes import open_volume

if missing():  # one line for the whole file
    pytest.skip(f"Slurm tests skipped: {missing()}; to run them, {HOW_TO_ENABLE}", allow_module_level=True)
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.xdist_group("slurm")
BLOCK = ["--block-shape", "8,16,16"]
SLOW = '''\
import os, time
import cc3d
import numpy as np


def segment(prediction, threshold=0.5, seconds=0.0):
    """Components of the voxels above threshold; sleeps first while the file $SLOW_WHILE exists."""
    if os.path.exists(os.environ.get("SLOW_WHILE", "/nonexistent")):
        open(os.environ["SLOW_WHILE"] + ".started", "w").close()
        time.sleep(seconds)
    inside = (prediction[:3].min(axis=0) > threshold).astype(np.uint8)
    return cc3d.connected_components(inside, connectivity=6, out_dtype=np.uint64)
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory, slurm):
    """Affinities of a small synthetic volume (8 blocks of 8x16x16), a slow user method, and the
    segmentation made here without a scheduler (the reference)."""
    root = tmp_path_factory.mktemp("slurm-data")
    env = environment(slurm)
    run(env, root, "synthesize", "--output", "d.zarr", "--shape", "16,32,32", "--voxel-size", "8,8,8")
    (root / "task.json").write_text(json.dumps({"kind": "affinities"}))
    run(env, root, "make-targets", "--labels", "d.zarr/labels", "--task", "task.json", "--output", "d.zarr/affs",
        *BLOCK, "--chunk-shape", "8,16,16")
    (root / "slow.py").write_text(SLOW)
    (root / "logs").mkdir()  # sbatch -o does not create folders
    run(env, root, "postprocess-block", *post("d.zarr/here"), *BLOCK)
    run(env, root, "relabel", "--input", "d.zarr/here", "--output", "d.zarr/here-objects")
    return root


def environment(slurm, **more) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALFINE_", "SLURM_"))}
    env.update(PATH=f"{BIN}:{env['PATH']}", ALFINE_NO_PROGRESS="1", **slurm.env, **more)
    return env


def run(env, cwd, command, *args, expect=0) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / f"alfine-{command}"), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == expect, done.stderr[-3000:]
    return done


def post(output: str, seconds: float = 0) -> list[str]:
    return ["--input", "d.zarr/affs", "--output", output, "--method", "slow.py:segment",
            "--params", json.dumps({"threshold": 0.5, "seconds": seconds})]


def sbatch(env, cwd, *args) -> str:
    done = subprocess.run(["sbatch", "--parsable", "-D", str(cwd), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def wrap(*words: str) -> str:
    import shlex

    return shlex.join([str(w) for w in words])


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.2)


def in_queue(env, job: str) -> bool:
    done = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True, text=True)
    return bool(done.stdout.strip())


def same(root: Path, a: str, b: str) -> None:
    np.testing.assert_array_equal(open_volume(str(root / a)).read(), open_volume(str(root / b)).read())


def test_srun_as_launcher_with_two_workers(slurm, data):
    env = environment(slurm)
    launcher = ["--workers", "2", "--launcher", "srun -N1 -n1 -c1"]
    done = run(env, data, "postprocess-block", *post("d.zarr/srun"), *BLOCK, *launcher)
    assert json.loads(done.stdout)["processed"] == 8
    relabelled = run(env, data, "relabel", "--input", "d.zarr/srun", "--output", "d.zarr/srun-objects", *launcher)
    same(data, "d.zarr/srun", "d.zarr/here")
    same(data, "d.zarr/srun-objects", "d.zarr/here-objects")
    assert "srun -N1 -n1 -c1" in relabelled.stderr
    folders = sorted(p.name for p in (data / "alfine-logs").iterdir())
    assert any(f.startswith("relabel-write-") for f in folders)
    assert not any(c in f for f in folders for c in " ()[]")  # log folders are plain words
    logs = [p.read_text() for p in (data / "alfine-logs").glob("*/worker-*.log")]
    assert logs and all(log.startswith("$ srun -N1 -n1 -c1 env ") for log in logs)
    assert any("worker processed" in log for log in logs)  # the worker's own output came back through srun


def test_a_job_array_of_blocks(slurm, data):
    env = environment(slurm)
    command = wrap("alfine-postprocess-block", *post("d.zarr/array"), *BLOCK)
    sbatch(env, data, "--wait", "--array=0-7", "-o", "logs/array.%A.%a.out",
           "--wrap", f"{command} --block-id $SLURM_ARRAY_TASK_ID")
    same(data, "d.zarr/array", "d.zarr/here")
    assert len(list((data / "logs").glob("array.*.out"))) == 8


def test_a_killed_array_element_is_run_again_and_the_job_finishes(slurm, data):
    env = environment(slurm, SLOW_WHILE=str(data / "hang"))
    (data / "hang").touch()
    command = wrap("alfine-postprocess-block", *post("d.zarr/killed", seconds=300), *BLOCK)
    # element 5 hangs inside its block (the others do not see the file), and is cancelled there
    job = sbatch(env, data, "--array=0-7", "-o", "logs/killed.%A.%a.out", "--wrap",
                 f'[ "$SLURM_ARRAY_TASK_ID" = 5 ] || unset SLOW_WHILE; {command} --block-id $SLURM_ARRAY_TASK_ID')
    wait_until(lambda: (data / "hang.started").exists(), 60, "hanging block")
    subprocess.run(["scancel", f"{job}_5"], env=env, check=True)
    wait_until(lambda: not in_queue(env, job), 60, "end of the array")
    done = sorted(int(p.name) for p in (data / "d.zarr/.alfine-blocks/killed/done").iterdir())
    assert done == [0, 1, 2, 3, 4, 6, 7]
    (data / "hang").unlink()
    sbatch(env, data, "--wait", "--array=0-7", "-o", "logs/rerun.%A.%a.out", "--wrap",
           f"{command} --block-id $SLURM_ARRAY_TASK_ID")
    same(data, "d.zarr/killed", "d.zarr/here")
    said = " ".join(p.read_text() for p in (data / "logs").glob("rerun.*.out"))
    assert said.count("block 5 is already done") == 0 and said.count("is already done") == 7


def test_a_job_stopped_at_its_time_limit_is_resumed_by_the_next_submission(slurm, data):
    env = environment(slurm, SLOW_WHILE=str(data / "slow"))
    (data / "slow").touch()
    command = wrap("alfine-postprocess-block", *post("d.zarr/limited", seconds=6), *BLOCK)
    job = sbatch(env, data, "--time=5", "-o", "logs/limited.out", "--wrap", command)
    markers = data / "d.zarr/.alfine-blocks/limited"
    wait_until(lambda: done_ids(markers), 60, "first block")
    # a time limit is whole minutes: the test moves the running job's end to now, and slurmctld stops it at
    # its next check of time limits (every 30 s)
    subprocess.run(["scontrol", "update", f"JobId={job}", "EndTime=now"], env=env, check=True)
    wait_until(lambda: not in_queue(env, job), 90, "end of the job at its time limit")
    log = (data / "logs/limited.out").read_text()
    assert "DUE TO TIME LIMIT" in log
    assert "alfine-postprocess-block: terminated by SIGTERM (a scheduler's time limit" in log
    assert "run the same command again to resume" in log
    finished = len(done_ids(markers))
    assert 1 <= finished < 8
    (data / "slow").unlink()
    sbatch(env, data, "--wait", "-o", "logs/resumed.out", "--wrap", command)
    summary = json.loads((data / "logs/resumed.out").read_text().strip().splitlines()[-1])
    assert summary["skipped"] == finished and summary["processed"] == 8 - finished
    same(data, "d.zarr/limited", "d.zarr/here")


def test_the_errors_a_cluster_user_meets(slurm, data, tmp_path):
    env = environment(slurm)
    # sbatch returns at submission: refused before anything is written
    refused = run(env, data, "postprocess-block", *post("d.zarr/sbatch"), *BLOCK, "--workers", "2",
                  "--launcher", "sbatch -p debug", expect=2)
    assert "sbatch submits a batch script and returns at once" in refused.stderr and "use srun" in refused.stderr
    assert not (data / "d.zarr/sbatch").exists()
    # a partition that does not exist: srun's own words, in one line
    wrong = run(env, data, "postprocess-block", *post("d.zarr/nope"), *BLOCK, "--workers", "2",
                "--launcher", "srun -p nope", expect=3)
    last = wrong.stderr.strip().splitlines()[-1]
    assert last.startswith("alfine-postprocess-block: error:") and "Invalid partition name specified" in last
    # a launcher that submits and returns at once (here srun sent to the background)
    detached = run(env, data, "postprocess-block", *post("d.zarr/detached"), *BLOCK, "--workers", "2",
                   "--launcher", "sh -c 'srun -N1 -n1 \"$@\" > /dev/null 2>&1 &' submit", expect=2)
    last = detached.stderr.strip().splitlines()[-1]
    assert "returned (exit code 0) before its worker ended" in last and "must last as long as its worker" in last


def test_the_slurm_pipeline_gives_the_scores_of_the_local_one(slurm, tmp_path):
    from test_examples import SMALL

    small = {**SMALL, "VALIDATE_SHAPE": SMALL["SHAPE"], "DEMO_ITERATIONS": SMALL["ITERATIONS"],
             "INPUT_SHAPE": "60,60,60"}  # output 44: 1 x 2 x 2 blocks
    env = environment(slurm, **small)
    for script, more in (("local.sh", {"DEMO": str(tmp_path / "local")}),
                         ("slurm.sh", {"WORK": str(tmp_path / "slurm"), "TRAIN_OPTIONS": "-c 2", "DEVICE": "cpu"})):
        done = subprocess.run(["bash", str(ROOT / "examples" / script)], env={**env, **more}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{script}: {done.stderr[-3000:]}"
    local = json.loads((tmp_path / "local" / "final-evaluation.json").read_text())["scores"]
    slurm_scores = json.loads((tmp_path / "slurm" / "evaluation.json").read_text())["scores"]
    assert slurm_scores == local and local["voxels"] > 0
    logs = sorted(p.name.split(".")[0] for p in (tmp_path / "slurm" / "logs").iterdir())
    assert logs.count("predict") == 4 and {"train", "export", "post", "relabel"} <= set(logs)
    relabel = next((tmp_path / "slurm" / "logs").glob("relabel.*.out")).read_text()
    assert "srun -N1 -n1 -c1 --exact" in relabel  # its workers were job steps
