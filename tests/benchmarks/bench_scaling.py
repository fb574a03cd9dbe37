"""Scaling: time per voxel and peak memory of the relabel pipeline and of inference at 1x, 2x and 4x a base volume.

Blockwise work should cost the same per voxel whatever the volume, and its peak memory should not
grow with the volume (it is bounded by the block). Relabel: :func:`bench_relabel.measure`
(threshold + connected components + relabel, 2 workers, with its one-process reference, whose
memory does grow; medians of 3 interleaved rounds). Inference: ``alfine-predict-block``'s library call
with an exported ONNX UNet, each size in a fresh process (its peak RSS is the process's). The ratio of a
row is the 4x figure over the 1x one. Run: ``.venv/bin/python tests/benchmarks/bench_scaling.py [--scale S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FACTORS = (1, 2, 4)


def inference_child(shape: tuple[int, ...]) -> dict:
    """Predict a raw volume of ``shape`` with a fresh exported model, in this process; seconds and peak RSS."""
    sys.path.insert(0, HERE)
    from bench_inference import _predict, _raw, _run

    from alfine.jobs.export import export_model

    with tempfile.TemporaryDirectory() as root:
        raw = _raw(root, shape)
        run = _run(root, raw, 84)
        export_model(run, 1, f"{root}/model.onnx")
        seconds, summary = _predict(f"{root}/model.onnx", raw, f"{root}/out.zarr/pred", 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    voxels = int(shape[0] * shape[1] * shape[2])
    return {"shape": list(shape), "voxels": voxels, "seconds": round(seconds, 3), "blocks": summary["blocks"],
            "ns_per_voxel": round(1e9 * seconds / voxels, 1), "peak_rss_mb": round(peak, 1)}


def inference(shape: tuple[int, ...]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--inference-child", ",".join(map(str, shape))],
                          stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the base volumes")
    parser.add_argument("--inference-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inference_child:
        print(json.dumps(inference_child(tuple(int(v) for v in args.inference_child.split(",")))))
        return {}
    sys.path.insert(0, HERE)
    from bench_relabel import measure

    relabel_side = 160 * args.scale ** (1 / 3)
    # whole 44^3 output blocks (the network's), so no size computes cut-off blocks the others do not
    edge = 44 * max(1, round(2 * args.scale ** (1 / 3)))
    inference_shapes = {1: (edge, edge, edge), 2: (edge, edge, 2 * edge), 4: (edge, 2 * edge, 2 * edge)}
    relabel, predicted = [], []
    for factor in FACTORS:
        began = time.perf_counter()
        relabel.append(measure(round(relabel_side * factor ** (1 / 3)), 2))
        predicted.append(inference(inference_shapes[factor]))
        print(f"scaling x{factor}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    first, last = relabel[0], relabel[-1]
    rows = [
        {"name": f"scaling: relabel pipeline time per voxel, {last['volume_shape'][0]}³ over "
                 f"{first['volume_shape'][0]}³ (4x the voxels; medians of 3)",
         "alfine": " / ".join(f"{r['alfine_ns_per_voxel']:.0f}" for r in relabel) + " ns/voxel at 1x/2x/4x",
         "reference": " / ".join(f"{r['end_to_end_ns_per_voxel']:.0f}" for r in relabel) + " ns/voxel (one process)",
         "ratio": round(last["alfine_ns_per_voxel"] / first["alfine_ns_per_voxel"], 2)},
        {"name": "scaling: relabel peak memory of the largest process, 4x over 1x",
         "alfine": " / ".join(f"{max(r['alfine']['peak_rss_mb'], r['alfine']['peak_rss_workers_mb']):.0f}"
                              for r in relabel) + " MB at 1x/2x/4x ("
                   + " / ".join(str(r["alfine"]["blocks"]) for r in relabel) + " blocks)",
         "reference": " / ".join(f"{r['end_to_end']['peak_rss_mb']:.0f}" for r in relabel) + " MB (one process)",
         "ratio": round(max(last["alfine"]["peak_rss_mb"], last["alfine"]["peak_rss_workers_mb"])
                        / max(first["alfine"]["peak_rss_mb"], first["alfine"]["peak_rss_workers_mb"]), 2)},
        {"name": f"scaling: ONNX inference time per output voxel, {'x'.join(map(str, predicted[-1]['shape']))} "
                 f"over {'x'.join(map(str, predicted[0]['shape']))}",
         "alfine": " / ".join(f"{p['ns_per_voxel']:.0f}" for p in predicted) + " ns/voxel at 1x/2x/4x",
         "reference": f"the 1x run: {predicted[0]['ns_per_voxel']:.0f} ns/voxel",
         "ratio": round(predicted[-1]["ns_per_voxel"] / predicted[0]["ns_per_voxel"], 2)},
        {"name": "scaling: ONNX inference peak memory, 4x over 1x",
         "alfine": " / ".join(f"{p['peak_rss_mb']:.0f}" for p in predicted) + " MB at 1x/2x/4x",
         "reference": f"the 1x run: {predicted[0]['peak_rss_mb']:.0f} MB",
         "ratio": round(predicted[-1]["peak_rss_mb"] / predicted[0]["peak_rss_mb"], 2)},
    ]
    result = {"benchmark": "scaling", "relabel": relabel, "inference": predicted, "rows": rows}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
