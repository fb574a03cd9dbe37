"""The example pipelines run end to end: examples/s3.sh against a local S3 endpoint (moto) gives the
scores of the same pipeline on local files; examples/lsf.sh through a `bsub` stand-in."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMALL = {  # a tiny network and volume, so the examples run in a test
    "SHAPE": "40,64,64", "ITERATIONS": "4", "INTERVAL": "4", "WORKERS": "2",  # one checkpoint, one validation
    "ARCHITECTURE": json.dumps({"kind": "unet", "input_shape": [28, 28, 28], "num_fmaps": 2,
                                "downsample_factors": [[2, 2, 2]]}),
}


def environment(**more) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALFINE_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", ALFINE_NO_PROGRESS="1", **SMALL, **more)
    return env


def run_example(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(ROOT / "examples" / script)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_s3_pipeline_gives_the_scores_of_the_local_one(s3_bucket, tmp_path):
    remote = run_example("s3.sh", tmp_path, environment(ROOT=f"s3://{s3_bucket}/demo", OUT=str(tmp_path / "s3")))
    local = run_example("s3.sh", tmp_path, environment(ROOT=str(tmp_path / "local"), OUT=str(tmp_path / "files")))
    remote_scores = json.loads((tmp_path / "s3" / "evaluation.json").read_text())["scores"]
    local_scores = json.loads((tmp_path / "files" / "evaluation.json").read_text())["scores"]
    assert remote_scores == local_scores and remote_scores["voxels"] > 0
    export = json.loads((tmp_path / "s3" / "export.json").read_text())
    assert export["output"] == f"s3://{s3_bucket}/demo/model.onnx"
    import s3fs

    names = s3fs.S3FileSystem().ls(f"{s3_bucket}/demo")
    assert {n.rpartition("/")[2] for n in names} >= {"data.zarr", "validate.zarr", "runs", "model.onnx",
                                                      "model.json", "predictions.zarr", "segmentation.zarr"}
    for summary in (remote.stderr, local.stderr):
        assert "testing" not in summary  # the credentials never appear in logs


def test_the_lsf_pipeline_runs_through_bsub_with_job_arrays(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bsub").symlink_to(ROOT / "tests" / "bsub_standin.py")
    env = environment(WORK=str(tmp_path / "lsf"), DEVICE="cpu", BSUB_RECORD=str(tmp_path / "bsub.jsonl"),
                      INPUT_SHAPE="60,60,60")  # output 44: 1 x 2 x 2 blocks
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    run_example("lsf.sh", tmp_path, env)
    calls = [json.loads(line) for line in (tmp_path / "bsub.jsonl").read_text().splitlines()]
    names = [call[call.index("-J") + 1] for call in calls]
    assert names[:2] == ["train", "export"] and names[-1] == "relabel"
    arrays = {name.partition("[")[0]: name for name in names if "[" in name}
    work = tmp_path / "lsf"
    predicted = json.loads(subprocess.run(  # the same command again: every block is done already
        [str(BIN / "alfine-predict-block"), "--model", f"{work}/model.onnx", "--input", f"{work}/data.zarr/raw",
         "--output", f"{work}/predictions.zarr/affinities", "--no-progress"],
        capture_output=True, text=True, env=env, check=True).stdout)
    assert arrays["predict"] == f"predict[1-{predicted['blocks']}]" and predicted["skipped"] == predicted["blocks"]
    assert "post" in arrays
    logs = sorted(p.name.split(".")[0] for p in (tmp_path / "lsf" / "logs").iterdir())
    assert {"train", "export", "predict", "post", "relabel"} <= set(logs)
    evaluation = json.loads((tmp_path / "lsf" / "evaluation.json").read_text())
    assert evaluation["scores"]["voxels"] > 0
