#!/usr/bin/env bash
# The alfine pipeline on the embedded default: a synthetic volume, local files, no server.
# Everything is written under $DEMO (default: demo/); re-running reuses what is there.
# Settings (environment; examples/slurm.sh takes the same ones, and gives the same scores with them):
# DEMO, SHAPE (the training and held-out volumes), VALIDATE_SHAPE, and for the run config
# (examples/demo_run_config.py over examples/configs/run.json) ARCHITECTURE (a JSON architecture
# config), DEMO_ITERATIONS, INTERVAL (iterations between checkpoints and validations); INPUT_SHAPE (the
# exported model's input, e.g. 108,108,108: larger than training's means fewer blocks and less context
# computed twice).
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-demo}
SHAPE=${SHAPE:-96,128,128}
VALIDATE_SHAPE=${VALIDATE_SHAPE:-96,160,160}
mkdir -p "$DEMO"

echo "== 1. synthesize an EM-like volume with instance labels" >&2
alfine-synthesize --output "$DEMO/data.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 1 \
    --preview "$DEMO/preview.png" > "$DEMO/synthesize.json"

python3 - "$DEMO" <<'PY' >&2
import json, sys
demo = sys.argv[1]
s = json.load(open(f"{demo}/synthesize.json"))
print(f"\nwrote {s['container']} ({'reused' if s['reused'] else 'new'}, {s['voxels']:,} voxels, "
      f"voxel size {s['voxel_size']} nm, seed {s['seed']}) in {s['seconds']} s:")
for name, a in s["arrays"].items():
    print(f"  {a['url']:<28} {a['dtype']:<7} shape {a['shape']}")
print(f"""
how to look at it:
  {demo}/preview.png                  central slice: raw | labels | classes | mask
  neuroglancer, napari or any OME-NGFF / funlib viewer opens {demo}/data.zarr/raw (and labels, ...) as it is
  python: import zarr; zarr.open_array("{demo}/data.zarr/raw/s0")[48]""")
PY

echo "== 2. the targets of an affinities task (short and long range, with LSDs), blockwise" >&2
alfine-make-targets --labels "$DEMO/data.zarr/labels" --task examples/configs/tasks/affinities-lsds.json \
    --output "$DEMO/data.zarr/affinities" --weights "$DEMO/data.zarr/affinities_known" \
    --mask "$DEMO/data.zarr/mask" --workers 2 > "$DEMO/targets.json"

echo "== 3. a baseline: your own function (examples/segment_min_affinity.py) on the true affinities, blockwise" >&2
alfine-postprocess-block --input "$DEMO/data.zarr/affinities" --method examples/segment_min_affinity.py:segment \
    --params '{"threshold": 0.5}' --block-shape 64,64,64 --output "$DEMO/segmentation.zarr/trivial-fragments" \
    --workers 2 > /dev/null
alfine-relabel --input "$DEMO/segmentation.zarr/trivial-fragments" --output "$DEMO/segmentation.zarr/trivial" \
    --workers 2 > /dev/null

echo "== 4. evaluate it against the synthetic labels, inside the mask" >&2
alfine-evaluate --truth "$DEMO/data.zarr/labels" --prediction "$DEMO/segmentation.zarr/trivial" \
    --mask "$DEMO/data.zarr/mask" > "$DEMO/evaluation.json"
python3 - "$DEMO" <<'PY' >&2
import json, sys
demo = sys.argv[1]
t = json.load(open(f"{demo}/targets.json"))
print(f"\ntargets: {t['output']} ({len(t['channel_names'])} channels: {', '.join(t['channel_names'][:6])}, ...), "
      f"{t['blocks']} blocks ({t['processed']} computed now, {t['skipped']} reused) in {t['seconds']} s")
e = json.load(open(f"{demo}/evaluation.json"))
s = e["scores"]
print(f"evaluation of {e['prediction']} against {e['truth']} ({s['voxels']:,} labelled voxels in the mask):")
for key in ("voi_split", "voi_merge", "adapted_rand_error", "match_f1", "false_splits", "false_merges"):
    arrow = "higher is better" if e["higher_is_better"][key] else "lower is better"
    print(f"  {key:<20} {s[key]:.4f}  ({arrow})" if isinstance(s[key], float) else f"  {key:<20} {s[key]}  ({arrow})")
PY

echo "== 5. train a small UNet to predict affinities, validating on a second volume (another seed)" >&2
echo "   (a few minutes on 2 CPU cores; resumes if re-run; the model and trainer: examples/configs/run.json)" >&2
alfine-synthesize --output "$DEMO/validate.zarr" --shape "$VALIDATE_SHAPE" --voxel-size 8,8,8 --seed 2 \
    > "$DEMO/synthesize-validate.json"
python3 examples/demo_run_config.py > "$DEMO/run.json"
alfine-train --run-config "$DEMO/run.json" --run "$DEMO/runs/demo-affinities" > "$DEMO/train.json"
python3 - "$DEMO" <<'PY' >&2
import json, sys
import numpy as np
from alfine.volumes import open_volume
demo = sys.argv[1]
t = json.load(open(f"{demo}/train.json"))
run = f"{demo}/runs/demo-affinities"
stats = [json.loads(line) for line in open(f"{run}/stats.jsonl")]
first, last = np.mean([s["loss"] for s in stats[:20]]), np.mean([s["loss"] for s in stats[-20:]])
print(f"\ntrained {t['name']} to iteration {t['iterations']} ({t['trained']} now, "
      f"{t['iterations_per_second'] or 0:.2f} it/s, data wait {t.get('data_wait_share', 0):.0%} of the time)")
print(f"loss: {first:.4f} over the first 20 iterations -> {last:.4f} over the last 20 ({run}/loss.png)")
print("prediction error on each snapshot's batch (mean |prediction - target| where the weights are > 0):")
import os
for it in sorted(int(n) for n in os.listdir(f"{run}/snapshots.zarr") if n.isdigit()):
    snap = f"{run}/snapshots.zarr/{it}"
    p, y, w = (open_volume(f"{snap}/{n}").read() for n in ("prediction", "target", "weights"))
    print(f"  iteration {it:>5}: {np.abs(p - y)[w > 0].mean():.3f}")
print(f"open {run}/snapshots.zarr in neuroglancer to see raw, labels, target and prediction side by side")
PY

echo "== 6. the best iteration and post-processing by validation (alfine-validate validates what is missing)" >&2
alfine-validate --run "$DEMO/runs/demo-affinities" --all > "$DEMO/validate.json"
python3 - "$DEMO" <<'PY' >&2
import json, sys
demo = sys.argv[1]
v = json.load(open(f"{demo}/validate.json"))
run = v["run"]
print(f"\nvalidation scores of every checkpoint: {run}/validation.jsonl, plotted in {run}/validation.png")
print("best on the validation volume, per criterion (RUN/best.json; '--iteration best --criterion NAME'):")
for metric in ("voi", "adapted_rand_error", "match_f1"):
    b = v["best"].get(metric)
    if b is None:
        print(f"  {metric:<20} none: {v['no_best'].get(metric, 'not scored')}")
        continue
    params = ", ".join(f"{k}={x}" for k, x in b["params"].items())
    print(f"  {metric:<20} {b['value']:.4f} at iteration {b['iteration']}, {b['method']} ({params})")
PY

echo "== 7. export the best model by VOI to ONNX, with validation's best post-processing in model.json" >&2
alfine-export-model --run "$DEMO/runs/demo-affinities" --iteration best --criterion voi \
    ${INPUT_SHAPE:+--input-shape "$INPUT_SHAPE"} --output "$DEMO/model.onnx" > "$DEMO/export.json"

echo "== 8. a held-out volume (a third seed, never trained or validated on), predicted blockwise with onnxruntime" >&2
alfine-synthesize --output "$DEMO/heldout.zarr" --shape "$SHAPE" --voxel-size 8,8,8 --seed 3 \
    > "$DEMO/synthesize-heldout.json"
alfine-predict-block --model "$DEMO/model.onnx" --input "$DEMO/heldout.zarr/raw" \
    --output "$DEMO/predictions.zarr/affinities" --workers 2 > "$DEMO/predict.json"

echo "== 9. post-process blockwise with the chosen method and parameters, then relabel across blocks" >&2
alfine-postprocess-block --input "$DEMO/predictions.zarr/affinities" --params-from "$DEMO/model.json" \
    --output "$DEMO/segmentation.zarr/fragments" --workers 2 > "$DEMO/postprocess.json"
alfine-relabel --input "$DEMO/segmentation.zarr/fragments" --output "$DEMO/segmentation.zarr/objects" \
    --workers 2 > "$DEMO/relabel.json"

echo "== 10. pyramids of the final outputs, so viewers open them at any zoom (segmentation.zarr opens on the objects)" >&2
alfine-downsample --input "$DEMO/segmentation.zarr/objects" --root --workers 2 > "$DEMO/downsample-objects.json"
alfine-downsample --input "$DEMO/predictions.zarr/affinities" --workers 2 > "$DEMO/downsample-predictions.json"
alfine-downsample --input "$DEMO/heldout.zarr/raw" --workers 2 > "$DEMO/downsample-raw.json"

echo "== 11. evaluate the final segmentation of the held-out volume against its synthetic labels, inside its mask" >&2
alfine-evaluate --truth "$DEMO/heldout.zarr/labels" --prediction "$DEMO/segmentation.zarr/objects" \
    --mask "$DEMO/heldout.zarr/mask" > "$DEMO/final-evaluation.json"
python3 - "$DEMO" <<'PY' >&2
import json, sys
demo = sys.argv[1]
x, p, q, r = (json.load(open(f"{demo}/{n}.json")) for n in ("export", "predict", "postprocess", "relabel"))
e = json.load(open(f"{demo}/final-evaluation.json"))
post = ", ".join(f"{k}={v}" for k, v in q["params"].items())
print(f"\nmodel: {demo}/model.onnx, iteration {x['iteration']} ({x['criterion']}); "
      f"prediction: {p['blocks']} blocks of {p['block_shape_voxels']} voxels")
print(f"post-processing: {q['method']} ({post}) in {q['blocks']} block{'s' * (q['blocks'] != 1)}; relabel: {r['objects']} objects")
s = e["scores"]
print(f"final segmentation {e['prediction']} of the held-out volume, against {e['truth']} "
      f"({s['voxels']:,} labelled voxels in the mask):")
for key in ("voi", "voi_split", "voi_merge", "adapted_rand_error", "match_f1", "false_splits", "false_merges"):
    arrow = "higher is better" if e["higher_is_better"][key] else "lower is better"
    print(f"  {key:<20} {s[key]:.4f}  ({arrow})" if isinstance(s[key], float) else f"  {key:<20} {s[key]}  ({arrow})")
goals = {"voi": 0.6, "adapted_rand_error": 0.10, "match_f1": 0.8}
met = [s[k] > g if e["higher_is_better"][k] else s[k] < g for k, g in goals.items()]
print(f"the demo's goals on held-out data (VOI < 0.6, adapted Rand error < 0.10, match F1 > 0.8): "
      f"{'met' if all(met) else 'NOT met'} ({demo}/final-evaluation.json)")
PY
