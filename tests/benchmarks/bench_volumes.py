"""Volume reads and writes through ``alfine.volumes`` against zarr-python and tensorstore, in the same run.

One synthetic volume (``raw`` uint8 and ``labels`` uint64, 192³ at scale 1) is stored as alfine
creates outputs: zarr format 2, 64³ chunks, blosc zstd level 3 with byte shuffle, nested keys. The
same array is then written and read by three clients (alfine in two ways), each opened once:

- **alfine**: :meth:`Volume.write` / :meth:`Volume.read` of an open :class:`~alfine.volumes.Volume` (world
  regions, ``funlib.geometry.Roi``), by default (tensorstore, :mod:`alfine.volumes.bulk`) and with
  ``ALFINE_TENSORSTORE=0`` (zarr-python);
- **zarr-python**: ``array[...] = data`` / ``array[...]`` of ``zarr.open_array``;
- **tensorstore**: its ``zarr`` driver on the same directory, ``write(...).result()`` / ``read().result()``,
  with ``file_io_sync`` off as alfine has it (zarr-python does not ``fsync`` either; on, it slows writes).

Three access patterns: the **whole** volume in one call (3 such calls a repeat); one call per 64³
**chunk** (how a blockwise worker writes its blocks); and reads of 64³ blocks at **random** voxel
positions, off the chunk grid (each reads parts of up to 8 chunks: a blockwise worker's block with
context, a trainer's random crop), as many as there are chunks. Each measurement is repeated
``--repeats`` times on a shared machine, the clients taking turns at every call: a row gives alfine's
median MB/s (uncompressed bytes) with its min–max (and the median with ``ALFINE_TENSORSTORE=0``), the
medians of both references, and alfine (default) over the faster reference (goal ≥ 0.9). As the
load of others moves each median by tens of per cent, a row also gives the median over all calls of
the faster reference's time over alfine's at the same call ("per call"), less moved by it. Alfine's own
time per call (a world region turned into the array's index, the I/O chosen; no voxels moved) is
timed apart and shown in the rows of single chunks.
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
WHOLE_CALLS = 3  # calls of the whole volume per repeat: a single call is too short a sample on a shared machine
CLIENTS = ("alfine", "alfine-zarr", "zarr-python", "tensorstore")


def _data(edge: int) -> dict[str, np.ndarray]:
    """Synthetic EM raw (uint8) and instance labels (uint64) of ``edge``³ voxels."""
    block = generate_block((edge,) * 3, (8, 8, 8), (0, 0, 0), (0, 0, 0), (edge,) * 3, SyntheticParams(seed=0))
    return {"raw": block["raw"], "labels": block["labels"].astype(np.uint64)}


def _roi(slices: tuple[slice, ...]) -> Roi:
    """The world region of ``slices`` (voxel size 1, offset 0)."""
    return Roi(tuple(s.start for s in slices), tuple(s.stop - s.start for s in slices))


def _clients(url: str, path: str) -> dict:
    """For each client, ``(write(slices, data), read(slices))`` on the array at ``url`` (in the local container
    ``path``)."""
    volume = open_volume(url, mode="r+")
    os.environ["ALFINE_TENSORSTORE"] = "0"  # read on a volume's first I/O
    plain = open_volume(url, mode="r+")
    plain._io()
    del os.environ["ALFINE_TENSORSTORE"]
    path = f"{path}/{volume.array.path}"  # the array itself (a level of an image group)
    array = zarr.open_array(path, mode="r+")
    store = tensorstore.open({"driver": "zarr", "kvstore": {"driver": "file", "path": path + "/"},
                              "context": {"file_io_sync": False}}).result()

    def write_store(slices, data):
        store[slices].write(data).result()

    def write_array(slices, data):
        array[slices] = data

    return {
        "alfine": (lambda s, d: volume.write(_roi(s), d), lambda s: volume.read(_roi(s))),
        "alfine-zarr": (lambda s, d: plain.write(_roi(s), d), lambda s: plain.read(_roi(s))),
        "zarr-python": (write_array, lambda s: array[s]),
        "tensorstore": (write_store, lambda s: store[s].read().result()),
    }


def _run_once(clients: dict, order: tuple[str, ...], op: str, parts, data: np.ndarray) -> dict[str, list[float]]:
    """Seconds each client in ``order`` takes for each call, to ``op`` (read or write) every part, the clients
    taking turns at each part (so that the load of others on a shared machine falls on all alike); reads are
    checked against ``data``."""
    seconds: dict[str, list[float]] = {c: [] for c in order}
    for slices in parts:
        for client in order:
            write, read = clients[client]
            began = time.perf_counter()
            if op == "write":
                write(slices, data[slices])
                seconds[client].append(time.perf_counter() - began)
                continue
            result = read(slices)
            seconds[client].append(time.perf_counter() - began)
            if not np.array_equal(result, data[slices]):
                raise AssertionError(f"{client} read other voxels than were written at {slices}")
    return seconds


def _own_time(volume, parts) -> float:
    """Microseconds alfine spends on a call of its own (region to index, choosing the I/O), median of 5 runs."""
    rois = [_roi(slices) for slices in parts]
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(max(1, 1000 // len(rois))):
            for roi in rois:
                volume._index(roi)
                volume._io()
        runs.append((time.perf_counter() - began) / (max(1, 1000 // len(rois)) * len(rois)))
    return round(1e6 * statistics.median(runs), 1)


def measure(root: str, edge: int, repeats: int) -> list[dict]:
    """MB/s (uncompressed) per dtype, pattern, operation and client: ``repeats`` runs each, clients interleaved."""
    results = []
    whole = [(slice(0, edge),) * 3] * WHOLE_CALLS
    chunks = [tuple(slice(b, b + CHUNK) for b in begin) for begin in itertools.product(range(0, edge, CHUNK), repeat=3)]
    rng = np.random.default_rng(0)
    blocks = [tuple(slice(int(b), int(b) + CHUNK) for b in begin) for begin in rng.integers(0, edge - CHUNK + 1,
                                                                                             (len(chunks), 3))]
    patterns = (("whole", whole, ("write", "read")), ("chunk", chunks, ("write", "read")),
                ("random", blocks, ("read",)))
    for name, data in _data(edge).items():
        url = f"{root}/d.zarr/{name}"
        prepare_volume(url, Roi((0, 0, 0), (edge,) * 3), (1, 1, 1), data.dtype, (CHUNK,) * 3)
        clients = _clients(url, f"{root}/d.zarr")
        for pattern, parts, ops in patterns:
            for op in ops:
                calls: dict[str, list[float]] = {c: [] for c in CLIENTS}  # seconds of every call, repeats in a row
                seconds: dict[str, list[float]] = {c: [] for c in CLIENTS}
                for repeat in range(repeats):
                    order = CLIENTS[repeat % len(CLIENTS):] + CLIENTS[:repeat % len(CLIENTS)]  # no fixed order
                    for client, spent in _run_once(clients, order, op, parts, data).items():
                        seconds[client].append(sum(spent))
                        calls[client] += spent
                nbytes = sum(data[p].nbytes for p in parts)
                rates = {c: [nbytes / 1e6 / s for s in seconds[c]] for c in CLIENTS}
                median = {c: round(statistics.median(rates[c]), 1) for c in CLIENTS}
                faster = max(("zarr-python", "tensorstore"), key=lambda c: median[c])
                results.append({"dtype": str(data.dtype), "pattern": pattern, "op": op, "calls": len(parts),
                                "mb_per_s": {c: [round(r, 1) for r in rates[c]] for c in CLIENTS},
                                "median": median, "faster": faster,
                                "paired": round(statistics.median(f / a for a, f in zip(calls["alfine"], calls[faster],
                                                                                        strict=True)), 2),
                                "own_us_per_call": _own_time(open_volume(url), parts)})
    return results


def row(result: dict) -> dict:
    median, faster = result["median"], result["faster"]
    rates = result["mb_per_s"]["alfine"]
    per_call = f"; alfine's own time {result['own_us_per_call']:.0f} µs a call"
    what = {"whole": f"{result['calls']} calls of the whole volume",
            "chunk": f"{result['calls']} calls of one 64³ chunk",
            "random": f"{result['calls']} calls of a 64³ block off the chunk grid"}[result["pattern"]]
    return {"name": f"volumes: {result['op']} {result['dtype']}, {what} (MB/s, median)",
            "alfine": f"{median['alfine']:.0f} MB/s ({min(rates):.0f}–{max(rates):.0f}); ALFINE_TENSORSTORE=0: "
                      f"{median['alfine-zarr']:.0f}; per call {result['paired']:.2f}x the faster"
                      + (per_call if result["pattern"] == "chunk" else ""),
            "reference": f"zarr-python {median['zarr-python']:.0f}, tensorstore {median['tensorstore']:.0f} MB/s",
            "ratio": round(median["alfine"] / median[faster], 2)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume (voxels)")
    parser.add_argument("--repeats", type=int, default=9, help="runs of each measurement (median and spread)")
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
