#!/usr/bin/env bash
# The alfine pipeline on an LSF cluster: training as one GPU job, prediction and post-processing
# as job arrays (one job per block), relabelling as a final job. Every step is resumable:
# resubmitting the script skips what is finished (training resumes from its last checkpoint,
# finished blocks are skipped).
#
#   ALFINE="apptainer run --nv --bind /nrs,/groups alfine.sif" bash examples/lsf.sh
#
# Settings (environment): ALFINE (how to run alfine: "alfine", or the container as above),
# WORK (where everything goes; default lsf-demo), QUEUE_GPU, QUEUE_CPU, DEVICE (cuda), ITERATIONS, INTERVAL, SHAPE,
# ARCHITECTURE (a JSON architecture config), INPUT_SHAPE (the exported model's input, e.g. 108,108,108:
# larger than training's means fewer blocks and less context computed twice).
# bsub -K waits for each job (array) to finish before the next step starts; -o puts every job's
# log under $WORK/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ALFINE=${ALFINE:-alfine}
WORK=${WORK:-lsf-demo}
QUEUE_GPU=${QUEUE_GPU:-gpu_short}
QUEUE_CPU=${QUEUE_CPU:-local}
ITERATIONS=${ITERATIONS:-2000}
INTERVAL=${INTERVAL:-$(( ITERATIONS / 4 ))}  # iterations between checkpoints and validations
SHAPE=${SHAPE:-96,128,128}
DEVICE=${DEVICE:-cuda}
ARCHITECTURE=${ARCHITECTURE:-'{"kind": "unet", "input_shape": [68, 68, 68], "num_fmaps": 6, "fmap_inc_factor": 2,
                 "downsample_factors": [[2, 2, 2], [2, 2, 2]]}'}
mkdir -p "$WORK/logs"

# data: a synthetic volume to train on and one to validate on (replace with your own volumes)
$ALFINE synthesize --output "$WORK/data.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 1 > /dev/null
$ALFINE synthesize --output "$WORK/validate.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 2 > /dev/null
cat > "$WORK/run.json" <<JSON  # paths in a config are relative to its folder
{
  "name": "lsf-affinities",
  "datasplit": {"train": [{"raw": "data.zarr/raw", "labels": "data.zarr/labels", "mask": "data.zarr/mask"}],
                "validate": [{"raw": "validate.zarr/raw", "labels": "validate.zarr/labels",
                              "mask": "validate.zarr/mask"}]},
  "architecture": $ARCHITECTURE,
  "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
  "trainer": {"batch_size": 2, "learning_rate": 0.003, "num_workers": 4, "seed": 1},
  "iterations": $ITERATIONS,
  "checkpoint_interval": $INTERVAL,
  "validation_interval": $INTERVAL
}
JSON

echo "== training: one GPU job (validates every validation_interval; resubmit to resume)" >&2
bsub -K -J train -q "$QUEUE_GPU" -n 4 -gpu "num=1" -o "$WORK/logs/train.%J.out" \
    $ALFINE train --run-config "$WORK/run.json" --run "$WORK/runs/lsf-affinities" --device "$DEVICE"

echo "== export the best model by VOI (with its best post-processing parameters)" >&2
bsub -K -J export -q "$QUEUE_CPU" -n 2 -o "$WORK/logs/export.%J.out" \
    $ALFINE export-model --run "$WORK/runs/lsf-affinities" --iteration best --criterion voi \
    ${INPUT_SHAPE:+--input-shape "$INPUT_SHAPE"} --output "$WORK/model.onnx"

echo "== prediction: a job array, one ONNX block per job" >&2
PREDICT=(predict-block --model "$WORK/model.onnx" --input "$WORK/data.zarr/raw"
         --output "$WORK/predictions.zarr/affinities")
BLOCKS=$($ALFINE "${PREDICT[@]}" --list-blocks | grep -c '"block_id"')
# LSB_JOBINDEX runs from 1, block ids from 0; \$ keeps it for the job's own shell. --list-blocks prints
# one JSON line per block, then its summary.
bsub -K -J "predict[1-$BLOCKS]" -q "$QUEUE_CPU" -n 2 -o "$WORK/logs/predict.%J.%I.out" \
    sh -c "$ALFINE $(printf "%q " "${PREDICT[@]}") --block-id \$((LSB_JOBINDEX - 1))"

echo "== post-processing: a job array, the method and parameters validation chose" >&2
POST=(postprocess-block --input "$WORK/predictions.zarr/affinities" --params-from "$WORK/model.json"
      --output "$WORK/segmentation.zarr/fragments")
BLOCKS=$($ALFINE "${POST[@]}" --list-blocks | grep -c '"block_id"')
bsub -K -J "post[1-$BLOCKS]" -q "$QUEUE_CPU" -n 1 -o "$WORK/logs/post.%J.%I.out" \
    sh -c "$ALFINE $(printf "%q " "${POST[@]}") --block-id \$((LSB_JOBINDEX - 1))"

echo "== relabel: one job with 4 local workers" >&2
bsub -K -J relabel -q "$QUEUE_CPU" -n 4 -o "$WORK/logs/relabel.%J.out" \
    $ALFINE relabel --input "$WORK/segmentation.zarr/fragments" --output "$WORK/segmentation.zarr/objects" \
    --workers 4

echo "== evaluate against the synthetic labels" >&2
$ALFINE evaluate --truth "$WORK/data.zarr/labels" --mask "$WORK/data.zarr/mask" \
    --prediction "$WORK/segmentation.zarr/objects" | tee "$WORK/evaluation.json"
