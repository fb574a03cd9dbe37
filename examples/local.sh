#!/usr/bin/env bash
# The alfine pipeline on the embedded default: a synthetic volume, local files, no server.
# Everything is written under $DEMO (default: demo/); re-running reuses what is there.
# (Later steps arrive with their issues: training, validation, export, prediction,
# post-processing and relabelling.)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-demo}
mkdir -p "$DEMO"

echo "== 1. synthesize an EM-like volume with instance labels" >&2
alfine-synthesize --output "$DEMO/data.zarr" --shape 96,128,128 --voxel-size 8,8,8 --seed 1 \
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
  neuroglancer, napari or any OME-NGFF / funlib viewer opens {demo}/data.zarr as it is
  python: import zarr; zarr.open_array("{demo}/data.zarr/raw")[48]""")
PY

echo "== 2. the targets of an affinities task (short and long range, with LSDs), blockwise" >&2
alfine-make-targets --labels "$DEMO/data.zarr/labels" --task examples/configs/affinities.json \
    --output "$DEMO/data.zarr/affinities" --weights "$DEMO/data.zarr/affinities_known" \
    --mask "$DEMO/data.zarr/mask" --workers 2 > "$DEMO/targets.json"

echo "== 3. a trivial segmentation: connected components where all nearest-neighbour affinities are 1" >&2
# (alfine-postprocess-block does this blockwise once issue #7 lands; here the library does it at once)
python3 - "$DEMO" <<'PY' >&2
import sys
from alfine.postprocess import connected_components
from alfine.volumes import open_volume, prepare_volume
demo = sys.argv[1]
affinities = open_volume(f"{demo}/data.zarr/affinities")
inside = affinities.read()[:3].min(axis=0, keepdims=True)
segmentation = connected_components(inside, threshold=0.5)
out = prepare_volume(f"{demo}/segmentation.zarr/trivial", affinities.roi, affinities.voxel_size, "uint64",
                     (64, 64, 64))
out.write(affinities.roi, segmentation)
print(f"wrote {demo}/segmentation.zarr/trivial: {int(segmentation.max())} objects")
PY

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
