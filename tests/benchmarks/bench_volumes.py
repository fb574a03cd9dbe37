"""Volume reads and writes through ``alfine.volumes`` against zarr-python and tensorstore, in the same run.

One synthetic volume (``raw`` uint8 and ``labels`` uint64, 192³ at scale 1) is stored as alfine
creates outputs: zarr format 2, 64³ chunks, blosc zstd level 3 with byte shuffle, nested keys. The
same array is then written and read by three clients (alfine in two ways), each opened once:

- **alfine**: :meth:`Volume.write` / :meth:`Volume.read` of an open :class:`~alfine.volumes.Volume`, by
  default (zarr-python) and with ``ALFINE_TENSORSTORE=1`` (tensorstore, :mod:`alfine.volumes.bulk`);
- **zarr-python**: ``array[...] = data`` / ``array[...]`` of ``zarr.open_array``;
- **tensorstore**: its ``zarr`` driver on the same directory, ``write(...).result()`` / ``read().result()``.

Two access patterns: the **whole** volume in one call, and one call per 64³ **chunk** (how a
blockwise worker reads and writes). Each measurement is repeated ``--repeats`` times, the
clients interleaved, on a shared machine: a row gives alfine's median MB/s (uncompressed bytes) with
its min–max (and the same with ``ALFINE_TENSORSTORE=1``), the medians of both references, and alfine
(default) over the faster reference (goal ≥ 0.9).
Every read is checked to equal the data. Run: ``.venv/bin/python tests/benchmarks/bench_volumes.py
[--scale S] [--repeats N]``; prints one JSON object with ``rows`` (see ``run_all.py``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import tensorstore  # noqa: E402
import zarr  # noqa: E402
from funlib.geometry import Roi  # noqa: E402

from alfine.synthetic import SyntheticParams, generate_block  # noqa: E402
from alfine.volumes import open_volume, prepare_volume  # noqa: E402

CHUNK = 64
CLIENTS = ("alfine", "alfine-tensorstore", "zarr-python", "tensorstore")


def _data(edge: int) -> dict[str, np.ndarray]:
    """Synthetic EM raw (uint8) and instance labels (uint64) of ``edge``³ voxels."""
    block = generate_block((edge,) * 3, (8, 8, 8), (0, 0, 0), (0, 0, 0), (edge,) * 3, SyntheticParams(seed=0))
    return {"raw": block["raw"], "labels": block["labels"].astype(np.uint64)}


def _clients(url: str, path: str) -> dict:
    """For each client, ``(write(slices, data), read(slices))`` on the array at ``url`` (in the local container
    ``path``)."""
    volume = open_volume(url, mode="r+")
    os.environ["ALFINE_TENSORSTORE"] = "1"  # read on a volume's first I/O
    bulk = open_volume(url, mode="r+")
    bulk._io()
    del os.environ["ALFINE_TENSORSTORE"]
    path = f"{path}/{volume.array.path}"  # the array itself (a level of an image group)
    array = zarr.open_array(path, mode="r+")
    store = tensorstore.open({"driver": "zarr", "kvstore": {"driver": "file", "path": path + "/"}}).result()

    def roi(slices):
        return Roi(tuple(s.start for s in slices), tuple(s.stop - s.start for s in slices))

    def write_store(slices, data):
        store[slices].write(data).result()

    def write_array(slices, data):
        array[slices] = data

    return {
        "alfine": (lambda s, d: volume.write(roi(s), d), lambda s: volume.read(roi(s))),
        "alfine-tensorstore": (lambda s, d: bulk.write(roi(s), d), lambda s: bulk.read(roi(s))),
        "zarr-python": (write_array, lambda s: array[s]),
        "tensorstore": (write_store, lambda s: store[s].read().result()),
    }


def _time(operation, parts, data: np.ndarray) -> float:
    """Seconds for ``operation`` over every part (a write when it takes data); reads are checked against ``data``."""
    write, read = operation
    began = time.perf_counter()
    if write is not None:
        for slices in parts:
            write(slices, data[slices])
        return time.perf_counter() - began
    results = [read(slices) for slices in parts]
    seconds = time.perf_counter() - began
    for slices, result in zip(parts, results, strict=True):
        if not np.array_equal(result, data[slices]):
            raise AssertionError(f"a read returned other voxels than were written at {slices}")
    return seconds


def measure(root: str, edge: int, repeats: int) -> list[dict]:
    """MB/s (uncompressed) per dtype, pattern, operation and client: ``repeats`` runs each, clients interleaved."""
    results = []
    whole = [(slice(0, edge),) * 3]
    chunks = [tuple(slice(b, b + CHUNK) for b in begin) for begin in itertools.product(range(0, edge, CHUNK), repeat=3)]
    for name, data in _data(edge).items():
        url = f"{root}/d.zarr/{name}"
        prepare_volume(url, Roi((0, 0, 0), (edge,) * 3), (1, 1, 1), data.dtype, (CHUNK,) * 3)
        clients = _clients(url, f"{root}/d.zarr")
        for pattern, parts in (("whole", whole), ("chunk", chunks)):
            for op in ("write", "read"):
                seconds: dict[str, list[float]] = {c: [] for c in CLIENTS}
                for repeat in range(repeats):
                    for client in CLIENTS[repeat % len(CLIENTS):] + CLIENTS[:repeat % len(CLIENTS)]:  # no fixed order
                        write, read = clients[client]
                        operation = (write, None) if op == "write" else (None, read)
                        seconds[client].append(_time(operation, parts, data))
                rates = {c: [data.nbytes / 1e6 / s for s in seconds[c]] for c in CLIENTS}
                results.append({"dtype": str(data.dtype), "pattern": pattern, "op": op, "calls": len(parts),
                                "mb_per_s": {c: [round(r, 1) for r in rates[c]] for c in CLIENTS},
                                "median": {c: round(statistics.median(rates[c]), 1) for c in CLIENTS}})
    return results


def row(result: dict) -> dict:
    median = result["median"]
    faster = max(("zarr-python", "tensorstore"), key=lambda c: median[c])
    rates, bulk = result["mb_per_s"]["alfine"], result["mb_per_s"]["alfine-tensorstore"]
    what = "one call for the volume" if result["pattern"] == "whole" else f"{result['calls']} calls of one 64³ chunk"
    return {"name": f"volumes: {result['op']} {result['dtype']}, {what} (MB/s, median)",
            "alfine": f"{median['alfine']:.0f} MB/s ({min(rates):.0f}–{max(rates):.0f}); ALFINE_TENSORSTORE=1: "
                      f"{median['alfine-tensorstore']:.0f} ({min(bulk):.0f}–{max(bulk):.0f}), ratio "
                      f"{median['alfine-tensorstore'] / median[faster]:.2f}",
            "reference": f"zarr-python {median['zarr-python']:.0f}, tensorstore {median['tensorstore']:.0f} MB/s",
            "ratio": round(median["alfine"] / median[faster], 2)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume (voxels)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement (median and spread)")
    args = parser.parse_args()
    edge = CHUNK * max(1, round(3 * args.scale ** (1 / 3)))  # 192³ at scale 1: 27 chunks
    with tempfile.TemporaryDirectory() as root:
        results = measure(root, edge, args.repeats)
    output = {"benchmark": "volumes", "volume_shape": [edge] * 3, "chunk_shape": [CHUNK] * 3,
              "repeats": args.repeats, "results": results,
              "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "zarr": zarr.__version__, "tensorstore": importlib.metadata.version("tensorstore")},
              "rows": [row(r) for r in results]}
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main()
