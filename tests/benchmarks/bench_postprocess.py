"""Post-processing zarr -> zarr (``alfine-postprocess-block``) against a plain zarr copy of the same arrays, same run.

The input is the synthetic volume's raw / 255 as a float32 "prediction" (192³ at scale 1, 64³ chunks,
:func:`bench_relabel.make_volume`). alfine: ``alfine-postprocess-block``'s main function with
``--method connected_components`` (threshold 0.5) and ``--method watershed`` (a distance-like map:
seeds above 0.8, mask above 0.5), with 1 worker (in this process, no scheduler) and with 2 workers
(threads of this process: their I/O and codecs overlap; cc3d's labelling does not, see the registry), each
into a new output. Two references in this process, interleaved with alfine's runs:

- **copy**: a plain copy with zarr-python: read the input array whole and write alfine's output
  (uint64, its chunks and compressor, already in memory) into a new array: the I/O floor;
- **whole**: one process reads the input whole with zarr-python, runs the same method on the whole
  volume in memory (``alfine.postprocess.run``) and writes its labels like alfine's output: the fair
  reference of a compute-bound method (watershed), whose run time is the method's, not I/O.

A row gives voxels/s as the median of ``--repeats`` runs (min–max); the ratio is alfine over the
reference (goal ≥ 0.75). ``--scale 8`` gives 384³, where fixed costs matter less. Run:
``.venv/bin/python tests/benchmarks/bench_postprocess.py [--scale S] [--repeats N] [--methods M,...]``;
prints one JSON object with ``rows`` (see ``run_all.py``).
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


def _write_like(like, data, output: str) -> None:
    """Write ``data`` with zarr-python as a new array chunked and compressed like the zarr array ``like``."""
    import zarr

    target = zarr.create_array(output, shape=like.shape, chunks=like.chunks, dtype=like.dtype,
                               compressors=like.compressors, zarr_format=like.metadata.zarr_format,
                               chunk_key_encoding={"name": "v2", "separator": "/"}, fill_value=0)
    target[...] = data


def _source(root: str):
    import zarr

    from alfine.volumes import open_volume

    return zarr.open_array(f"{root}/d.zarr/{open_volume(f'{root}/d.zarr/pred').array.path}", mode="r")


def plain_copy(root: str, result, output: str) -> float:
    """Seconds to read the prediction with zarr-python and write ``result`` (a zarr array's data) as a new array."""
    source = _source(root)
    began = time.perf_counter()
    source[...]
    _write_like(result, result.data, output)
    return time.perf_counter() - began


def whole_method(root: str, method: str, like, output: str) -> float:
    """Seconds to read the prediction with zarr-python, run ``method`` on the whole volume in memory and write its
    labels like the zarr array ``like`` (alfine's output)."""
    from alfine.postprocess import run

    source = _source(root)
    began = time.perf_counter()
    labels = run(method, source[...][None], METHODS[method])
    _write_like(like, labels, output)
    return time.perf_counter() - began


def measure(root: str, side: int, repeats: int, methods: list[str]) -> list[dict]:
    from alfine.volumes import open_volume

    results = []
    for method in methods:
        alfine, copy, whole = {1: [], 2: []}, {1: [], 2: []}, []
        for repeat in range(repeats):
            for workers in (1, 2):
                output = f"{root}/s.zarr/{method}_{workers}_{repeat}"
                alfine[workers].append(alfine_run(root, method, workers, output))
                array = open_volume(output).array
                array.data = array[...]
                copy[workers].append(plain_copy(root, array, f"{root}/c.zarr/{method}_{workers}_{repeat}"))
            whole.append(whole_method(root, method, array, f"{root}/w.zarr/{method}_{repeat}"))
        for workers in (1, 2):
            results.append({"method": method, "params": METHODS[method], "workers": workers, "voxels": side**3,
                            "alfine_seconds": [round(s, 3) for s in alfine[workers]],
                            "copy_seconds": [round(s, 3) for s in copy[workers]],
                            "whole_seconds": [round(s, 3) for s in whole]})
    return results


def rows(result: dict) -> list[dict]:
    voxels = result["voxels"]

    def rate(seconds: list[float]) -> str:
        return (f"{voxels / statistics.median(seconds) / 1e6:.1f} MVx/s "
                f"({voxels / max(seconds) / 1e6:.1f}–{voxels / min(seconds) / 1e6:.1f})")

    def ratio(reference: str) -> float:
        return round(statistics.median(result[reference]) / statistics.median(result["alfine_seconds"]), 2)

    side = round(voxels ** (1 / 3))
    name = f"postprocess: {result['method']} {side}³ float32 -> uint64 zarr, {result['workers']} worker(s) (voxels/s)"
    alfine = rate(result["alfine_seconds"])
    return [{"name": name, "alfine": alfine, "reference": f"zarr-python copy, one process: "
             f"{rate(result['copy_seconds'])}", "ratio": ratio("copy_seconds")},
            {"name": f"{name}; against the method on the whole volume", "alfine": alfine,
             "reference": f"one process, zarr read + {result['method']} of the volume in memory + zarr write: "
                          f"{rate(result['whole_seconds'])}", "ratio": ratio("whole_seconds")}]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume (voxels)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement (median and spread)")
    parser.add_argument("--methods", default=",".join(METHODS), help="the methods to measure, comma-separated")
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from bench_relabel import make_volume

    side = 64 * max(1, round(3 * args.scale ** (1 / 3)))
    with tempfile.TemporaryDirectory() as root:
        make_volume(root, side)
        cwd = os.getcwd()
        os.chdir(root)  # daisy's worker logs
        try:
            results = measure(root, side, args.repeats, args.methods.split(","))
        finally:
            os.chdir(cwd)
    output = {"benchmark": "postprocess", "volume_shape": [side] * 3, "results": results,
              "rows": [line for r in results for line in rows(r)]}
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main()
