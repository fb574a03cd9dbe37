"""Blockwise threshold + connected components + relabel against cc3d of the whole volume, in the same run.

alfine: ``alfine-postprocess-block --method connected_components`` then ``alfine-relabel``, blockwise with
2 workers (64^3 blocks), on a synthetic volume's raw / 255 (a float32 "prediction"). Reference:
``cc3d.connected_components`` of the whole thresholded volume in one process (the volume read whole
first, its read time reported apart). Both results are checked to be the same partition. Each side
runs in a process of its own, which reports its wall time and peak resident memory (its workers
included). Default 256^3 (a run of about 1-2 minutes on 2 cores); ``--scale 8`` gives 512^3.
Run: ``.venv/bin/python tests/benchmarks/bench_relabel.py [--scale S] [--workers N]``; writes
``bench/relabel.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

THRESHOLD = 0.5
CONNECTIVITY = 26


def _peak_mb() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_workers_mb": round(children, 1)}


def make_volume(root: str, side: int) -> None:
    """A synthetic raw volume (side^3, 8 nm voxels) as float32 in [0, 1], chunks of 64^3, written block by block."""
    import numpy as np
    from funlib.geometry import Roi

    from alfine.synthetic import SyntheticParams, generate_block
    from alfine.volumes import prepare_volume

    shape = (side,) * 3
    roi = Roi((0, 0, 0), tuple(s * 8 for s in shape))
    volume = prepare_volume(f"{root}/d.zarr/pred", roi, (8, 8, 8), np.float32, (64, 64, 64))
    step = 128
    for z in range(0, side, step):
        for y in range(0, side, step):
            for x in range(0, side, step):
                begin = (z, y, x)
                size = tuple(min(step, side - b) for b in begin)
                raw = generate_block(shape, (8, 8, 8), (0, 0, 0), begin, size, SyntheticParams(seed=0))["raw"]
                volume.write(Roi(tuple(b * 8 for b in begin), tuple(s * 8 for s in size)),
                             raw.astype(np.float32) / 255)


def child_reference(root: str) -> dict:
    """cc3d of the whole volume in this process."""
    import cc3d
    import numpy as np

    from alfine.volumes import open_volume

    began = time.perf_counter()
    data = open_volume(f"{root}/d.zarr/pred").read()
    read = time.perf_counter() - began
    began = time.perf_counter()
    labels = cc3d.connected_components((data > THRESHOLD).view(np.uint8), connectivity=CONNECTIVITY,
                                       out_dtype=np.uint64)
    seconds = time.perf_counter() - began
    np.save(f"{root}/reference.npy", labels)
    return {"seconds": round(seconds, 3), "read_seconds": round(read, 3), "objects": int(labels.max()), **_peak_mb()}


def child_alfine(root: str, workers: int) -> dict:
    """postprocess-block + relabel through the tools' main functions, ``workers`` daisy workers."""
    from contextlib import redirect_stdout
    from io import StringIO

    from alfine_tools.postprocess_block import main as postprocess
    from alfine_tools.relabel import main as relabel

    os.chdir(root)  # daisy's worker logs
    common = ["--no-progress", "--workers", str(workers)]
    began = time.perf_counter()
    out = StringIO()
    with redirect_stdout(out):
        code = postprocess([*common, "--input", f"{root}/d.zarr/pred", "--output", f"{root}/s.zarr/fragments",
                            "--method", "connected_components", "--params",
                            json.dumps({"threshold": THRESHOLD, "connectivity": CONNECTIVITY})])
    middle = time.perf_counter()
    with redirect_stdout(out):
        code = code or relabel([*common, "--input", f"{root}/s.zarr/fragments", "--output",
                                f"{root}/s.zarr/segmentation"])
    ended = time.perf_counter()
    if code:
        raise SystemExit(f"alfine failed with exit code {code}")
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"seconds": round(ended - began, 3), "postprocess_seconds": round(middle - began, 3),
            "relabel_seconds": round(ended - middle, 3), "objects": summary["objects"], **_peak_mb()}


def same_partition(root: str) -> bool:
    """Whether alfine's result and the reference are one renumbering of each other (read slab by slab)."""
    import numpy as np

    from alfine.volumes import open_volume

    reference = np.load(f"{root}/reference.npy", mmap_mode="r")
    result = open_volume(f"{root}/s.zarr/segmentation")
    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    for z in range(0, reference.shape[0], 64):
        ours = result.array[z:z + 64].ravel()
        theirs = np.asarray(reference[z:z + 64]).ravel()
        pairs = np.unique(np.stack([ours, theirs]), axis=1)
        for a, b in pairs.T.tolist():
            if forward.setdefault(a, b) != b or backward.setdefault(b, a) != a:
                return False
    return forward.get(0, 0) == 0


def _child(kind: str, root: str, workers: int, *extra: str) -> dict:
    """Run one side in a process of its own (a process inherits its parent's peak memory on Linux)."""
    command = [sys.executable, __file__, "--workers", str(workers), "--child", kind, root, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="volume size factor: side = 256 * scale^(1/3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, root = args.child[0], args.child[1]
        if kind == "make":
            began = time.perf_counter()
            make_volume(root, int(args.child[2]))
            result = {"seconds": round(time.perf_counter() - began, 1)}
        else:
            result = child_reference(root) if kind == "reference" else child_alfine(root, args.workers)
        print(json.dumps(result))
        return result
    side = int(round(256 * args.scale ** (1 / 3)))
    with tempfile.TemporaryDirectory() as root:
        generation = _child("make", root, args.workers, str(side))["seconds"]
        reference = _child("reference", root, args.workers)
        alfine = _child("alfine", root, args.workers)
        equal = same_partition(root)
    result = {
        "benchmark": "relabel", "volume_shape": [side] * 3, "voxels": side**3, "block_shape": [64, 64, 64],
        "threshold": THRESHOLD, "connectivity": CONNECTIVITY, "workers": args.workers,
        "alfine_seconds": alfine["seconds"], "cc3d_seconds": reference["seconds"],
        "ratio_alfine_to_cc3d": round(alfine["seconds"] / reference["seconds"], 2),
        "alfine": alfine, "cc3d": reference, "same_partition": equal,
        "generation_seconds": generation,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
    }
    os.makedirs("bench", exist_ok=True)
    with open("bench/relabel.json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
