"""Post-processing zarr -> zarr (``alfine-postprocess-block``) against a plain zarr copy of the same arrays, same run.

The input is the synthetic volume's raw / 255 as a float32 "prediction" (192³ at scale 1, 64³ chunks,
:func:`bench_relabel.make_volume`). alfine: ``alfine-postprocess-block``'s main function with
``--method connected_components`` (threshold 0.5) and ``--method watershed`` (a distance-like map:
seeds above 0.8, mask above 0.5), with 1 worker (in this process, no scheduler) and with 2 daisy
workers, each into a new output. Reference: a plain copy with zarr-python in this process: read the
input array whole and write alfine's output (uint64, its chunks and compressor, already in memory)
into a new array. A row gives voxels/s as the median of ``--repeats`` runs (min–max), the copies
interleaved with alfine's runs; the ratio is alfine over the copy (goal ≥ 0.75). Run:
``.venv/bin/python tests/benchmarks/bench_postprocess.py [--scale S] [--repeats N]``; prints one JSON
object with ``rows`` (see ``run_all.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {"connected_components": {"threshold": 0.5},
           "watershed": {"seed_threshold": 0.8, "mask_threshold": 0.5}}


def alfine_run(root: str, method: str, workers: int, output: str) -> float:
    """Seconds of one ``alfine-postprocess-block`` run over the whole prediction."""
    from alfine_tools.postprocess_block import main as postprocess

    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = postprocess(["--no-progress", "--workers", str(workers), "--input", f"{root}/d.zarr/pred",
                            "--output", output, "--method", method, "--params", json.dumps(METHODS[method])])
    if code:
        raise SystemExit(f"alfine-postprocess-block --method {method} failed with exit code {code}")
    return time.perf_counter() - began


def plain_copy(root: str, result, output: str) -> float:
    """Seconds to read the prediction with zarr-python and write ``result`` (a zarr array's data) as a new array."""
    import zarr

    from alfine.volumes import open_volume

    source = zarr.open_array(f"{root}/d.zarr/{open_volume(f'{root}/d.zarr/pred').array.path}", mode="r")
    began = time.perf_counter()
    source[...]
    target = zarr.create_array(output, shape=result.shape, chunks=result.chunks, dtype=result.dtype,
                               compressors=result.compressors, zarr_format=result.metadata.zarr_format,
                               chunk_key_encoding={"name": "v2", "separator": "/"}, fill_value=0)
    target[...] = result.data
    return time.perf_counter() - began


def measure(root: str, side: int, repeats: int) -> list[dict]:
    from alfine.volumes import open_volume

    results = []
    for method in METHODS:
        for workers in (1, 2):
            alfine, copy = [], []
            for repeat in range(repeats):
                output = f"{root}/s.zarr/{method}_{workers}_{repeat}"
                alfine.append(alfine_run(root, method, workers, output))
                array = open_volume(output).array
                array.data = array[...]
                copy.append(plain_copy(root, array, f"{root}/c.zarr/{method}_{workers}_{repeat}"))
            results.append({"method": method, "params": METHODS[method], "workers": workers, "voxels": side**3,
                            "alfine_seconds": [round(s, 3) for s in alfine],
                            "copy_seconds": [round(s, 3) for s in copy]})
    return results


def row(result: dict) -> dict:
    voxels = result["voxels"]

    def rate(seconds: list[float]) -> str:
        return (f"{voxels / statistics.median(seconds) / 1e6:.1f} MVx/s "
                f"({voxels / max(seconds) / 1e6:.1f}–{voxels / min(seconds) / 1e6:.1f})")

    side = round(voxels ** (1 / 3))
    return {"name": f"postprocess: {result['method']} {side}³ float32 -> uint64 zarr, {result['workers']} worker(s) "
                    "(voxels/s)",
            "alfine": rate(result["alfine_seconds"]),
            "reference": f"zarr-python copy, one process: {rate(result['copy_seconds'])}",
            "ratio": round(statistics.median(result["copy_seconds"]) / statistics.median(result["alfine_seconds"]),
                           2)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume (voxels)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median and spread)")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from bench_relabel import make_volume

    side = 64 * max(1, round(3 * args.scale ** (1 / 3)))
    with tempfile.TemporaryDirectory() as root:
        make_volume(root, side)
        cwd = os.getcwd()
        os.chdir(root)  # daisy's worker logs
        try:
            results = measure(root, side, args.repeats)
        finally:
            os.chdir(cwd)
    output = {"benchmark": "postprocess", "volume_shape": [side] * 3, "results": results,
              "rows": [row(r) for r in results]}
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main()
