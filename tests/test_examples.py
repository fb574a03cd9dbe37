"""The example pipelines run end to end: examples/s3.sh against a local S3 endpoint (moto) gives the
results of its steps on local files; examples/lsf.sh through a `bsub` stand-in."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    """examples/s3.sh on S3 against a reference on local files: the same volumes synthesized, the same run
    trained to the same weights (without validation), and the steps after export run with the model the S3
    pipeline exported, to the same predictions, segmentation and scores."""
    import s3fs
    import torch

    from alfine.volumes import open_volume

    remote = run_example("s3.sh", tmp_path, environment(ROOT=f"s3://{s3_bucket}/demo", OUT=str(tmp_path / "s3")))
    s3, fs, local = f"s3://{s3_bucket}/demo", s3fs.S3FileSystem(), tmp_path / "local"
    local.mkdir()
    env, said = environment(), []

    def alfine(*args: str) -> dict:
        done = subprocess.run([str(BIN / "alfine"), *args], env=env, cwd=local, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        said.append(done.stderr)
        return json.loads(done.stdout)

    for name, seed in (("data", "1"), ("validate", "2")):
        alfine("synthesize", "--output", f"{name}.zarr", "--shape", SMALL["SHAPE"], "--voxel-size", "8,8,8",
               "--seed", seed)
        for array in ("raw", "labels", "mask"):
            np.testing.assert_array_equal(open_volume(f"{s3}/{name}.zarr/{array}").read(),
                                          open_volume(f"{local}/{name}.zarr/{array}").read())
    config = json.loads((tmp_path / "s3" / "run.json").read_text().replace(s3, str(local)))
    (local / "run.json").write_text(json.dumps({**config, "validation_interval": 0}))
    alfine("train", "--run-config", "run.json", "--run", "run", "--device", "cpu")
    with fs.open(f"{s3}/runs/affinities/checkpoints/4.pt", "rb") as f:
        trained = torch.load(f, weights_only=True)["model"]
    here = torch.load(local / "run" / "checkpoints" / "4.pt", weights_only=True)["model"]
    assert trained.keys() == here.keys() and all(torch.equal(trained[k], here[k]) for k in here)
    for name in ("model.onnx", "model.json"):
        fs.get(f"{s3}/{name}", str(local / name))
    alfine("predict-block", "--model", "model.onnx", "--input", "data.zarr/raw", "--output",
           "predictions.zarr/affinities", "--workers", "2")
    alfine("postprocess-block", "--input", "predictions.zarr/affinities", "--params-from", "model.json",
           "--output", "segmentation.zarr/fragments", "--workers", "2")
    alfine("relabel", "--input", "segmentation.zarr/fragments", "--output", "segmentation.zarr/objects",
           "--workers", "2")
    local_scores = alfine("evaluate", "--truth", "data.zarr/labels", "--mask", "data.zarr/mask", "--prediction",
                          "segmentation.zarr/objects")["scores"]
    for volume in ("predictions.zarr/affinities", "segmentation.zarr/objects"):
        np.testing.assert_array_equal(open_volume(f"{s3}/{volume}").read(), open_volume(f"{local}/{volume}").read())
    remote_scores = json.loads((tmp_path / "s3" / "evaluation.json").read_text())["scores"]
    assert remote_scores == local_scores and remote_scores["voxels"] > 0
    export = json.loads((tmp_path / "s3" / "export.json").read_text())
    assert export["output"] == f"s3://{s3_bucket}/demo/model.onnx"
    names = fs.ls(f"{s3_bucket}/demo")
    assert {n.rpartition("/")[2] for n in names} >= {"data.zarr", "validate.zarr", "runs", "model.onnx",
                                                      "model.json", "predictions.zarr", "segmentation.zarr"}
    for summary in (remote.stderr, *said):
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
