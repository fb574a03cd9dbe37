#!/usr/bin/env bash
# The demo's pipeline (examples/local.sh, steps 5-10) on a Slurm cluster: training as one job
# (resubmitting resumes it from its last checkpoint), prediction and post-processing as job arrays
# (one block per array element), relabelling as a job that starts when the post-processing
# array has succeeded (--dependency=afterok) and starts its 2 workers as job steps with srun
# (--launcher), and the final outputs' pyramids as a last job. Every step is resumable: running the script again skips what is finished.
#
#   bash examples/slurm.sh
#   ALFINE="apptainer run --nv --bind /nrs,/groups alfine.sif" RELABEL_LAUNCHER= bash examples/slurm.sh
#
# (In a container srun is not at hand: RELABEL_LAUNCHER= makes relabel's workers local processes of its
# job. From a login node, any blockwise command starts its workers as jobs of their own the same way:
# alfine predict-block ... --workers 16 --launcher 'srun -N1 -n1 -c2 -p cpu -t 60'.)
#
# Settings (environment): ALFINE (how to run alfine: "alfine", or the container as above), WORK (where
# everything goes; default slurm-demo; on a filesystem the compute nodes share), PARTITION (all jobs;
# default: the cluster's default partition), TRAIN_OPTIONS (more sbatch options for training; default
# "--gres=gpu:1 -c 4"), DEVICE (cuda), CPU_OPTIONS (more sbatch options for every other job),
# RELABEL_LAUNCHER (default "srun -N1 -n1 -c1 --exact"; empty: local workers), and
# examples/local.sh's SHAPE, VALIDATE_SHAPE, ARCHITECTURE, DEMO_ITERATIONS, INTERVAL, INPUT_SHAPE: with the same
# settings the two scripts compute the same segmentation and scores.
# sbatch --wait returns when its job (array) has ended, with the job's exit status; -o puts every
# job's log under $WORK/logs/. A job stopped at its time limit (-t) says so in its log, and running the
# script again resumes it.
set -euo pipefail
cd "$(dirname "$0")/.."
ALFINE=${ALFINE:-alfine}
WORK=${WORK:-slurm-demo}
PARTITION=${PARTITION:-}
TRAIN_OPTIONS=${TRAIN_OPTIONS:---gres=gpu:1 -c 4}
CPU_OPTIONS=${CPU_OPTIONS:-}
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-96,128,128}
VALIDATE_SHAPE=${VALIDATE_SHAPE:-96,160,160}
RELABEL_LAUNCHER=${RELABEL_LAUNCHER-srun -N1 -n1 -c1 --exact}
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)  # jobs start in this folder; absolute paths read the same on every node

if [ -n "$PARTITION" ] && [ -z "$(sinfo -h -p "$PARTITION" -o %P)" ]; then
    echo "error: PARTITION=$PARTITION: no such partition here; sinfo lists: $(sinfo -h -o %P | tr '\n' ' ')" >&2
    exit 2
fi
# word-split on purpose: options as one would type them
# shellcheck disable=SC2206
SBATCH=(sbatch --parsable ${PARTITION:+-p "$PARTITION"} -D "$WORK")
# shellcheck disable=SC2206
CPU=($CPU_OPTIONS)
# shellcheck disable=SC2206
TRAIN=($TRAIN_OPTIONS)
job() {  # job ARGS...: "$ALFINE ARGS" as one command line for sbatch --wrap, each word quoted
    printf '%s ' "$ALFINE"
    printf '%q ' "$@"
}

# data: the demo's synthetic volumes, training, validation and held-out (replace with your own)
$ALFINE synthesize --output "$WORK/data.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 1 > /dev/null
$ALFINE synthesize --output "$WORK/validate.zarr" --shape "$VALIDATE_SHAPE" --voxel-size 8,8,8 --seed 2 > /dev/null
$ALFINE synthesize --output "$WORK/heldout.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 3 > /dev/null
python3 examples/demo_run_config.py > "$WORK/run.json"  # examples/configs/run.json on these volumes
RUN="$WORK/runs/demo-affinities"

echo "== training: one job (validates at its validation interval; submit again to resume)" >&2
"${SBATCH[@]}" --wait -J train "${TRAIN[@]}" -o "$WORK/logs/train.%j.out" \
    --wrap "$(job train --run-config "$WORK/run.json" --run "$RUN" --device "$DEVICE" --no-progress)" > /dev/null

echo "== validation of every checkpoint, and export of the best model by VOI" >&2
"${SBATCH[@]}" --wait -J export "${CPU[@]}" -o "$WORK/logs/export.%j.out" \
    --wrap "$(job validate --run "$RUN" --all --no-progress) > /dev/null && \
            $(job export-model --run "$RUN" --iteration best --criterion voi ${INPUT_SHAPE:+--input-shape "$INPUT_SHAPE"} \
                  --output "$WORK/model.onnx")" > /dev/null

echo "== prediction: a job array, one ONNX block per element" >&2
PREDICT=(predict-block --model "$WORK/model.onnx" --input "$WORK/heldout.zarr/raw"
         --output "$WORK/predictions.zarr/affinities" --no-progress)
BLOCKS=$($ALFINE "${PREDICT[@]}" --list-blocks | grep -c '"block_id"')
# --list-blocks prints one JSON line per block (ids 0..N-1), then its summary; \$ keeps
# SLURM_ARRAY_TASK_ID for the job's own shell
"${SBATCH[@]}" --wait -J predict --array "0-$(( BLOCKS - 1 ))" "${CPU[@]}" -o "$WORK/logs/predict.%A.%a.out" \
    --wrap "$(job "${PREDICT[@]}") --block-id \$SLURM_ARRAY_TASK_ID" > /dev/null

echo "== post-processing: a job array, the method and parameters validation chose" >&2
POST=(postprocess-block --input "$WORK/predictions.zarr/affinities" --params-from "$WORK/model.json"
      --output "$WORK/segmentation.zarr/fragments" --no-progress)
BLOCKS=$($ALFINE "${POST[@]}" --list-blocks | grep -c '"block_id"')
POST_JOB=$("${SBATCH[@]}" -J post --array "0-$(( BLOCKS - 1 ))" "${CPU[@]}" -o "$WORK/logs/post.%A.%a.out" \
    --wrap "$(job "${POST[@]}") --block-id \$SLURM_ARRAY_TASK_ID")

echo "== relabel: a job that starts when every post-processing element succeeded; 2 workers as srun steps" >&2
"${SBATCH[@]}" --wait -J relabel --dependency "afterok:$POST_JOB" --kill-on-invalid-dep=yes -n 2 -c 1 "${CPU[@]}" \
    -o "$WORK/logs/relabel.%j.out" \
    --wrap "$(job relabel --input "$WORK/segmentation.zarr/fragments" --output "$WORK/segmentation.zarr/objects" \
              --workers 2 ${RELABEL_LAUNCHER:+--launcher "$RELABEL_LAUNCHER"} --no-progress)" > /dev/null

echo "== pyramids of the final outputs: one job, 2 local workers each (segmentation.zarr opens on the objects)" >&2
"${SBATCH[@]}" --wait -J pyramids -c 2 "${CPU[@]}" -o "$WORK/logs/pyramids.%j.out" \
    --wrap "$(job downsample --input "$WORK/segmentation.zarr/objects" --root --workers 2 --no-progress) && \
            $(job downsample --input "$WORK/predictions.zarr/affinities" --workers 2 --no-progress) && \
            $(job downsample --input "$WORK/heldout.zarr/raw" --workers 2 --no-progress)" > /dev/null

echo "== evaluate the held-out volume's segmentation against its synthetic labels" >&2
$ALFINE evaluate --truth "$WORK/heldout.zarr/labels" --mask "$WORK/heldout.zarr/mask" \
    --prediction "$WORK/segmentation.zarr/objects" | tee "$WORK/evaluation.json"
