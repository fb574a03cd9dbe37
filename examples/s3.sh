#!/usr/bin/env bash
# The alfine pipeline with every volume, the run directory and the model on S3 (or any fsspec URL):
# synthesize -> train (validating) -> export the best model to ONNX -> predict blockwise with
# onnxruntime -> post-process with validation's best parameters -> relabel -> evaluate.
#
#   ROOT=s3://my-bucket/alfine bash examples/s3.sh
#   AWS_ENDPOINT_URL=http://127.0.0.1:5000 ROOT=s3://test/alfine bash examples/s3.sh   # a local endpoint
#
# Credentials and the endpoint come from the environment as s3fs reads them (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_PROFILE, ...); alfine never logs them.
# Training and export need torch (the full image); every later step runs with ONNX and no torch
# (the slim image): set ALFINE_SLIM to run those there, e.g.
#   ALFINE_SLIM="docker run --rm -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY alfine-slim"
# Settings: ROOT, ALFINE, ALFINE_SLIM, OUT (local folder for the summaries; default s3-demo),
# SHAPE, ITERATIONS, INTERVAL, ARCHITECTURE (a JSON architecture config), WORKERS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-s3://alfine-demo/demo}
ALFINE=${ALFINE:-alfine}
ALFINE_SLIM=${ALFINE_SLIM:-$ALFINE}
OUT=${OUT:-s3-demo}
SHAPE=${SHAPE:-64,128,128}
ITERATIONS=${ITERATIONS:-400}
INTERVAL=${INTERVAL:-$(( ITERATIONS / 2 ))}  # iterations between checkpoints and validations
WORKERS=${WORKERS:-2}
ARCHITECTURE=${ARCHITECTURE:-'{"kind": "unet", "input_shape": [68, 68, 68], "num_fmaps": 6, "fmap_inc_factor": 2,
                 "downsample_factors": [[2, 2, 2], [2, 2, 2]]}'}
mkdir -p "$OUT"
case $ROOT in *://*) ;; *) mkdir -p "$ROOT" && ROOT=$(cd "$ROOT" && pwd) ;; esac  # run.json (in $OUT) names it

echo "== synthesize a training and a validation volume into $ROOT" >&2
$ALFINE synthesize --output "$ROOT/data.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 1 > "$OUT/synthesize.json"
$ALFINE synthesize --output "$ROOT/validate.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 2 > /dev/null

echo "== train, validating every $INTERVAL iterations; the run directory is $ROOT/runs/affinities" >&2
cat > "$OUT/run.json" <<JSON
{
  "name": "s3-affinities",
  "datasplit": {"train": [{"raw": "$ROOT/data.zarr/raw", "labels": "$ROOT/data.zarr/labels",
                           "mask": "$ROOT/data.zarr/mask"}],
                "validate": [{"raw": "$ROOT/validate.zarr/raw", "labels": "$ROOT/validate.zarr/labels",
                              "mask": "$ROOT/validate.zarr/mask"}]},
  "architecture": $ARCHITECTURE,
  "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
  "trainer": {"batch_size": 2, "learning_rate": 0.003, "num_workers": 2, "seed": 1},
  "iterations": $ITERATIONS,
  "checkpoint_interval": $INTERVAL,
  "validation_interval": $INTERVAL
}
JSON
$ALFINE train --run-config "$OUT/run.json" --run "$ROOT/runs/affinities" --device cpu > "$OUT/train.json"

echo "== export the best iteration by VOI to $ROOT/model.onnx (+ model.json)" >&2
$ALFINE export-model --run "$ROOT/runs/affinities" --iteration best --criterion voi \
    --output "$ROOT/model.onnx" > "$OUT/export.json"

echo "== predict with onnxruntime, post-process, relabel, evaluate (no torch needed)" >&2
$ALFINE_SLIM predict-block --model "$ROOT/model.onnx" --input "$ROOT/data.zarr/raw" \
    --output "$ROOT/predictions.zarr/affinities" --workers "$WORKERS" > "$OUT/predict.json"
$ALFINE_SLIM postprocess-block --input "$ROOT/predictions.zarr/affinities" --params-from "$ROOT/model.json" \
    --output "$ROOT/segmentation.zarr/fragments" --workers "$WORKERS" > "$OUT/postprocess.json"
$ALFINE_SLIM relabel --input "$ROOT/segmentation.zarr/fragments" --output "$ROOT/segmentation.zarr/objects" \
    --workers "$WORKERS" > "$OUT/relabel.json"
$ALFINE_SLIM evaluate --truth "$ROOT/data.zarr/labels" --mask "$ROOT/data.zarr/mask" \
    --prediction "$ROOT/segmentation.zarr/objects" > "$OUT/evaluation.json"
python3 - "$OUT" <<'PY' >&2
import json, sys
out = sys.argv[1]
e, x = json.load(open(f"{out}/evaluation.json")), json.load(open(f"{out}/export.json"))
print(f"model: iteration {x.get('iteration')}; segmentation {e['prediction']} against {e['truth']}:")
for key in ("voi", "adapted_rand_error", "match_f1"):
    print(f"  {key:<20} {e['scores'][key]:.4f}")
PY
