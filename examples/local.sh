#!/usr/bin/env bash
# The alfine pipeline on the embedded default: a synthetic volume, local files, no server.
# Everything is written under $DEMO (default: demo/); re-running reuses what is there.
# (Later steps arrive with their issues: targets, training, validation, export, prediction,
# post-processing, relabelling and evaluation.)
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
