"""One pyramid level by ``alfine-downsample`` against one process doing it whole with the field's tools, same run.

alfine: ``alfine-downsample --levels 1`` (blockwise, done markers, ``--workers``) on a synthetic volume's
``raw`` (uint8, mean) and ``labels`` (uint64, most frequent id), 64^3 chunks. Reference: one process reads
the level-0 zarr array whole, reduces it with ``skimage.measure.block_reduce`` (mean, rounded) or
``scipy.stats.mode`` (the smallest of equally frequent ids, as alfine) and writes a zarr array of the same
chunks. Both results are checked to be equal. Default 256^3 (``--scale 8``: 512^3).
Run: ``.venv/bin/python tests/benchmarks/bench_downsample.py [--scale S] [--workers N]``; prints one JSON
object with ``rows`` (see ``run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def reference(url: str, out: str, label: bool) -> float:
    """Seconds to read ``url`` (an array) whole, reduce it by 2 on every axis and write it to ``out``."""
    import numpy as np
    import zarr
    from scipy import stats
    from skimage.measure import block_reduce

    began = time.perf_counter()
    source = zarr.open_array(url, mode="r")
    data = source[:]
    if label:
        shape = tuple(s // 2 for s in data.shape)
        blocks = data.reshape(shape[0], 2, shape[1], 2, shape[2], 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
        reduced = stats.mode(blocks, axis=1, keepdims=False).mode.reshape(shape).astype(data.dtype)
    else:
        reduced = np.rint(block_reduce(data, (2, 2, 2), np.mean)).astype(data.dtype)
    target = zarr.create_array(out, shape=reduced.shape, chunks=source.chunks, dtype=reduced.dtype,
                               compressors=source.compressors, zarr_format=source.metadata.zarr_format)
    target[:] = reduced
    return time.perf_counter() - began


def alfine(url: str, workers: int) -> float:
    from alfine_tools.downsample import main

    began = time.perf_counter()
    with redirect_stdout(StringIO()):
        code = main(["--no-progress", "--input", url, "--levels", "1", "--workers", str(workers)])
    if code:
        raise SystemExit(f"alfine-downsample failed with exit code {code}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="voxels relative to 256^3")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    import numpy as np
    import zarr

    from alfine.blockwise.contract import BlockRequest
    from alfine.synthetic import SyntheticParams
    from alfine.synthetic.writer import synthesize

    side = int(round(256 * args.scale ** (1 / 3) / 64)) * 64
    rows, details = [], {}
    with tempfile.TemporaryDirectory() as root:
        os.chdir(root)  # daisy's worker logs
        synthesize(f"{root}/d.zarr", (side,) * 3, (8, 8, 8), (0, 0, 0), SyntheticParams(seed=0),
                   {"chunk_shape": (64,) * 3}, BlockRequest(block_shape=(64,) * 3, workers=args.workers))
        for name, label in (("raw", False), ("labels", True)):
            ours = alfine(f"{root}/d.zarr/{name}", args.workers)
            theirs = reference(f"{root}/d.zarr/{name}/s0", f"{root}/r.zarr/{name}", label)
            equal = bool(np.array_equal(zarr.open_array(f"{root}/d.zarr/{name}/s1")[:],
                                        zarr.open_array(f"{root}/r.zarr/{name}")[:]))
            details[name] = {"alfine_seconds": round(ours, 3), "reference_seconds": round(theirs, 3), "equal": equal}
            rows.append({"name": f"downsample {name} {side}^3 by 2 ({'mode' if label else 'mean'}), seconds "
                                 f"(< 1 is better)", "alfine": round(ours, 2), "reference": round(theirs, 2),
                         "ratio": round(ours / theirs, 2)})
    print(json.dumps({"benchmark": "downsample", "side": side, "workers": args.workers, "rows": rows,
                      "details": details}))


if __name__ == "__main__":
    main()
