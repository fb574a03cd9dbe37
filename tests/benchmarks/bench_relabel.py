"""Blockwise threshold + connected components + relabel against one process doing it whole, in the same run.

alfine: ``alfine-postprocess-block --method connected_components`` then ``alfine-relabel``, blockwise with
``--workers`` daisy workers and the default block shape, on a synthetic volume's raw / 255 (a float32
"prediction", 64^3 chunks). Two references, each in a process of its own:

- **end-to-end** (the fair one): one process reads the prediction zarr whole, thresholds it, runs
  ``cc3d.connected_components`` and writes the segmentation zarr (uint64, alfine's output chunking and
  compression);
- **cc3d**: ``cc3d.connected_components`` of the thresholded volume already in memory (the read
  time reported apart): the floor no zarr pipeline reaches.

Both results are checked to be the same partition. Each side reports its wall time, its CPU time (all threads and
worker processes: how much work it does, where the wall time says how well it spreads it over the cores) and peak
resident memory: its main process and, for alfine, its largest worker (``getrusage``), plus the bound main +
workers x largest worker. Each side's clock starts after the same imports (libraries and alfine's modules: Python's
import time, about half a second, is the same for a script and a tool and is reported apart, ``import_seconds``);
alfine's clock covers everything the two tools do, from parsing their arguments on. The three run ``--repeats``
rounds (default 3), interleaved; rows give medians, the lowest and highest time, and the lowest and highest ratio
of one round (this machine's first touch of fresh memory alone can make the one-process reference 2-4 times slower
from one run to the next). Default 256^3 (a run of about a minute on 2 cores; the synthetic volume takes most of
it); ``--scale 8`` gives 512^3. ``--scaling`` repeats it at 1x, 2x and 4x the voxels and reports time per voxel and
peak memory per size. Each round also runs alfine and the end-to-end reference on fewer cores (``--fewer-cores``,
default 1; the process pinned to them): the ratio of their speed-ups from those cores to all of this machine's says
which side gains more from cores. alfine's extra work (its fragments written and read back, faces, maps) is paid
back only by spreading its blocks over the cores, while the one process spreads only its codecs (cc3d is
single-threaded), so on 2 cores the two are about even and the end-to-end ratio depends on the machine's cores.
Run: ``.venv/bin/python tests/benchmarks/bench_relabel.py [--scale S] [--workers N] [--repeats R] [--scaling]
[--fewer-cores C,...]``;
writes ``bench/relabel.json`` and prints one JSON object with ``rows`` (see ``run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

THRESHOLD = 0.5
CONNECTIVITY = 26
CHUNK = 64


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process's threads and of the child processes it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
    volume = prepare_volume(f"{root}/d.zarr/pred", roi, (8, 8, 8), np.float32, (CHUNK,) * 3)
    step = 128
    for z in range(0, side, step):
        for y in range(0, side, step):
            for x in range(0, side, step):
                begin = (z, y, x)
                size = tuple(min(step, side - b) for b in begin)
                raw = generate_block(shape, (8, 8, 8), (0, 0, 0), begin, size, SyntheticParams(seed=0))["raw"]
                volume.write(Roi(tuple(b * 8 for b in begin), tuple(s * 8 for s in size)),
                             raw.astype(np.float32) / 255)


def warm_imports() -> float:
    """Import what either side uses (libraries and alfine's modules, as a script or a tool does once when it
    starts) before its clock starts, so that both measure work, not Python's imports; the seconds it took."""
    began = time.perf_counter()
    import cc3d  # noqa: F401
    import fastremap  # noqa: F401
    import numpy  # noqa: F401
    import tensorstore  # noqa: F401
    import zarr  # noqa: F401

    import alfine.jobs.postprocess  # noqa: F401
    import alfine.jobs.relabel  # noqa: F401
    import alfine.volumes  # noqa: F401
    return round(time.perf_counter() - began, 3)


def child_cc3d(root: str) -> dict:
    """cc3d of the whole volume in this process (the volume read first, its read time apart)."""
    import cc3d
    import numpy as np

    from alfine.volumes import open_volume

    imports = warm_imports()
    began = time.perf_counter()
    data = open_volume(f"{root}/d.zarr/pred").read()
    read = time.perf_counter() - began
    began = time.perf_counter()
    labels = cc3d.connected_components((data > THRESHOLD).view(np.uint8), connectivity=CONNECTIVITY,
                                       out_dtype=np.uint64)
    seconds = time.perf_counter() - began
    return {"seconds": round(seconds, 3), "read_seconds": round(read, 3), "import_seconds": imports,
            "objects": int(labels.max()), **_peak_mb()}


def child_end_to_end(root: str, chunks: str) -> dict:
    """One process: read the prediction zarr whole, threshold, cc3d, write the segmentation zarr (``chunks``)."""
    import cc3d
    import numpy as np

    from alfine.volumes import open_volume, prepare_volume

    imports = warm_imports()
    cpu = _cpu_seconds()
    began = time.perf_counter()
    source = open_volume(f"{root}/d.zarr/pred")
    data = source.read()
    read = time.perf_counter()
    labels = cc3d.connected_components((data > THRESHOLD).view(np.uint8), connectivity=CONNECTIVITY,
                                       out_dtype=np.uint64)
    del data
    labelled = time.perf_counter()
    chunk_shape = tuple(int(c) for c in chunks.split(","))
    prepare_volume(f"{root}/r.zarr/segmentation", source.roi, source.voxel_size, np.uint64, chunk_shape,
                   label=True).write(source.roi, labels)  # compressed as alfine's segmentation
    ended = time.perf_counter()
    cpu = _cpu_seconds() - cpu
    np.save(f"{root}/reference.npy", labels)
    return {"seconds": round(ended - began, 3), "cpu_seconds": round(cpu, 3), "read_seconds": round(read - began, 3),
            "cc3d_seconds": round(labelled - read, 3), "write_seconds": round(ended - labelled, 3),
            "chunk_shape": list(chunk_shape), "import_seconds": imports, "objects": int(labels.max()), **_peak_mb()}


def child_alfine(root: str, workers: int) -> dict:
    """postprocess-block + relabel through the tools' main functions, ``workers`` daisy workers."""
    from contextlib import redirect_stdout
    from io import StringIO

    from alfine.volumes import open_volume
    from alfine_tools.postprocess_block import main as postprocess
    from alfine_tools.relabel import main as relabel

    os.chdir(root)  # daisy's worker logs
    common = ["--no-progress", "--workers", str(workers)]
    imports = warm_imports()
    cpu = _cpu_seconds()
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
    cpu = _cpu_seconds() - cpu
    if code:
        raise SystemExit(f"alfine failed with exit code {code}")
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    output = open_volume(f"{root}/s.zarr/segmentation")
    blocks = open_volume(f"{root}/s.zarr/fragments").array.attrs["alfine_postprocess"]["block_shape"]
    return {"seconds": round(ended - began, 3), "postprocess_seconds": round(middle - began, 3),
            "relabel_seconds": round(ended - middle, 3), "cpu_seconds": round(cpu, 3), "import_seconds": imports,
            "objects": summary["objects"],
            "blocks": summary["blocks"],
            "block_shape": blocks, "chunk_shape": list(output.chunk_shape), **_peak_mb()}


def same_partition(root: str) -> bool:
    """Whether alfine's result and the reference are one renumbering of each other (read slab by slab)."""
    import numpy as np

    from alfine.volumes import open_volume

    reference = np.load(f"{root}/reference.npy", mmap_mode="r")
    result = open_volume(f"{root}/s.zarr/segmentation")
    found = []
    for z in range(0, reference.shape[0], 64):
        ours = np.asarray(result.array[z:z + 64], np.uint64).ravel()
        theirs = np.asarray(reference[z:z + 64], np.uint64).ravel()
        if ours.max(initial=0) >= 2**32 or theirs.max(initial=0) >= 2**32:
            raise SystemExit("more than 2^32 objects: not packed into one key")
        keys = (ours << np.uint64(32)) | theirs
        keep = np.concatenate([[True], keys[1:] != keys[:-1]])  # runs along x first: far fewer to sort
        found.append(np.unique(keys[keep]))
    keys = np.unique(np.concatenate(found))
    ours, theirs = keys >> np.uint64(32), keys & np.uint64(2**32 - 1)
    one_to_one = len(np.unique(ours)) == len(np.unique(theirs)) == len(keys)
    return bool(one_to_one and np.array_equal(ours == 0, theirs == 0))


def _child(kind: str, root: str, workers: int, *extra: str, cores: int | None = None) -> dict:
    """Run one side in a process of its own (on its first ``cores`` cores only, when given). Linux keeps a
    process's peak memory across exec, so a child reports at least this process's size: this one stays small (the
    comparison runs in a child too)."""
    pinned = ["--cores", str(cores)] if cores else []
    command = [sys.executable, __file__, "--workers", str(workers), *pinned, "--child", kind, root, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fresh(root: str) -> None:
    """Remove what a round made, so that the next run starts afresh (alfine's markers are in s.zarr)."""
    for made in ("s.zarr", "r.zarr", "alfine-logs"):
        shutil.rmtree(f"{root}/{made}", ignore_errors=True)


def measure(side: int, workers: int, data: str | None = None, repeats: int = 3, fewer_cores: tuple = ()) -> dict:
    """alfine and both references on one side^3 volume (kept in ``data``/SIDE when given, made once), ``repeats``
    rounds of the three interleaved (so that load from elsewhere falls on all alike); times are the medians, with
    each round's figures kept. The partitions are compared once, after the first round. For each number of cores
    in ``fewer_cores`` (fewer than this process may use), each round also runs alfine (``min(workers, cores)``
    workers) and the end-to-end reference on that many cores only: how much each gains from the cores."""
    available = len(os.sched_getaffinity(0))
    fewer_cores = tuple(c for c in fewer_cores if 0 < c < available)
    pinned = {c: [] for c in fewer_cores}
    rounds = []
    with tempfile.TemporaryDirectory() as root:
        generation = None
        kept = f"{data}/{side}" if data else None
        if kept and not os.path.exists(f"{kept}/d.zarr/pred"):
            generation = _child("make", kept, workers, str(side))["seconds"]
        if kept:
            os.symlink(f"{os.path.abspath(kept)}/d.zarr", f"{root}/d.zarr")
        else:
            generation = _child("make", root, workers, str(side))["seconds"]
        for repeat in range(repeats):
            _fresh(root)
            alfine = _child("alfine", root, workers)
            chunks = ",".join(map(str, alfine["chunk_shape"]))
            end_to_end = _child("end-to-end", root, workers, chunks)
            rounds.append((alfine, end_to_end, _child("cc3d", root, workers)))
            if repeat == 0:
                equal = _child("check", root, workers)["same_partition"]
            for cores in fewer_cores:
                _fresh(root)
                pinned[cores].append((_child("alfine", root, min(workers, cores), cores=cores),
                                      _child("end-to-end", root, workers, chunks, cores=cores)))
    alfine, end_to_end, in_memory = (_median_run([r[i] for r in rounds]) for i in range(3))
    alfine["peak_rss_bound_mb"] = round(alfine["peak_rss_mb"] + workers * alfine["peak_rss_workers_mb"], 1)
    return {
        "volume_shape": [side] * 3, "voxels": side**3, "workers": workers, "repeats": repeats,
        "alfine_seconds": alfine["seconds"], "end_to_end_seconds": end_to_end["seconds"],
        "cc3d_seconds": in_memory["seconds"],
        "ratio_alfine_to_end_to_end": round(alfine["seconds"] / end_to_end["seconds"], 2),
        "ratio_alfine_to_cc3d": round(alfine["seconds"] / in_memory["seconds"], 2),
        "round_ratios_to_end_to_end": [round(a["seconds"] / e["seconds"], 2) for a, e, _ in rounds],
        "alfine_ns_per_voxel": round(1e9 * alfine["seconds"] / side**3, 1),
        "end_to_end_ns_per_voxel": round(1e9 * end_to_end["seconds"] / side**3, 1),
        "alfine": alfine, "end_to_end": end_to_end, "cc3d": in_memory, "same_partition": equal,
        "rounds": [{"alfine": a, "end_to_end": e, "cc3d": c} for a, e, c in rounds], "generation_seconds": generation,
        "cores": available,
        "fewer_cores": [{"cores": cores, "alfine_workers": min(workers, cores),
                         "alfine": _median_run([a for a, _ in runs]), "end_to_end": _median_run([e for _, e in runs])}
                        for cores, runs in pinned.items()],
    }


def _median_run(runs: list[dict]) -> dict:
    """One side's figures over its rounds: the median of each number, and ``seconds_range`` (lowest, highest)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and len(set(values)) > 1:
            merged[key] = round(statistics.median(values), 3)
    merged["seconds_range"] = [min(run["seconds"] for run in runs), max(run["seconds"] for run in runs)]
    return merged


def _seconds(side: dict) -> str:
    low, high = side["seconds_range"]
    return f"{side['seconds']:.2f} s ({low:.2f}–{high:.2f})"


def rows(runs: list[dict]) -> list[dict]:
    out = []
    for run in runs:
        a, e, c = run["alfine"], run["end_to_end"], run["cc3d"]
        size = f"{run['volume_shape'][0]}³"
        name = (f"relabel: threshold + cc (26) + relabel of {size}, {a['blocks']} blocks of "
                f"{'x'.join(map(str, a['block_shape']))}, {run['workers']} workers (s; median of {run['repeats']})")
        spread = run["round_ratios_to_end_to_end"]
        out.append({"name": name, "alfine": f"{_seconds(a)}; rounds {min(spread)}-{max(spread)}x",
                    "reference": f"one process, zarr read + cc3d + zarr write: {_seconds(e)}",
                    "ratio": run["ratio_alfine_to_end_to_end"]})
        out.append({"name": f"relabel: CPU time of all threads and processes, {size} (s; median)",
                    "alfine": f"{a['cpu_seconds']:.2f} s in {a['seconds']:.2f} s",
                    "reference": f"one process: {e['cpu_seconds']:.2f} s in {e['seconds']:.2f} s",
                    "ratio": round(a["cpu_seconds"] / e["cpu_seconds"], 2)})
        out.append({"name": f"relabel: same, against cc3d of the volume in memory ({size}, s)",
                    "alfine": _seconds(a), "reference": f"cc3d in memory: {_seconds(c)}",
                    "ratio": run["ratio_alfine_to_cc3d"]})
        out.append({"name": f"relabel: peak memory, {size} (MB, median; alfine: main + workers x largest worker)",
                    "alfine": f"{a['peak_rss_bound_mb']:.0f} MB (main {a['peak_rss_mb']:.0f}, worker "
                              f"{a['peak_rss_workers_mb']:.0f})",
                    "reference": f"one process: {e['peak_rss_mb']:.0f} MB",
                    "ratio": round(a["peak_rss_bound_mb"] / e["peak_rss_mb"], 2)})
        out.extend(_cores_rows(run, size))
    return out


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number > 1 else ''}"


def _cores_rows(run: dict, size: str) -> list[dict]:
    """Rows of how much each side gains from all cores against fewer (``measure``'s ``fewer_cores``)."""
    out = []
    a, e = run["alfine"], run["end_to_end"]
    for fewer in run.get("fewer_cores", []):
        fa, fe = fewer["alfine"], fewer["end_to_end"]
        gain, reference_gain = fa["seconds"] / a["seconds"], fe["seconds"] / e["seconds"]
        cores, workers = _count(fewer["cores"], "core"), _count(fewer["alfine_workers"], "worker")
        out.append({"name": f"relabel: speed-up from {cores} to {run['cores']}, {size} (median of {run['repeats']}; "
                            f"> 1: alfine gains more from the cores)",
                    "alfine": f"{fa['seconds']:.2f} s ({workers}) -> {a['seconds']:.2f} s: {gain:.2f}x",
                    "reference": f"one process: {fe['seconds']:.2f} s -> {e['seconds']:.2f} s: {reference_gain:.2f}x",
                    "ratio": round(gain / reference_gain, 2)})
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="volume size factor: side = 256 * scale^(1/3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scaling", action="store_true", help="also 2x and 4x the voxels: time per voxel, memory")
    parser.add_argument("--data", help="keep the synthetic volumes in this folder and reuse them (default: made anew)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three measurements, interleaved")
    parser.add_argument("--fewer-cores", default="1",
                        help="comma-separated numbers of cores (fewer than this machine's) on which alfine and the "
                             "end-to-end reference also run each round, to show how much each gains from the cores "
                             "(default 1; none: '')")
    parser.add_argument("--cores", type=int, help=argparse.SUPPRESS)  # a child: run on this many cores only
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        fewer_cores = tuple(int(c) for c in args.fewer_cores.split(",") if c.strip())
    except ValueError:
        parser.error(f"--fewer-cores must be comma-separated integers, got {args.fewer_cores!r}")
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    if args.child:
        kind, root = args.child[0], args.child[1]
        if kind == "make":
            began = time.perf_counter()
            make_volume(root, int(args.child[2]))
            result = {"seconds": round(time.perf_counter() - began, 1)}
        elif kind == "alfine":
            result = child_alfine(root, args.workers)
        elif kind == "end-to-end":
            result = child_end_to_end(root, args.child[2])
        elif kind == "check":
            result = {"same_partition": same_partition(root)}
        else:
            result = child_cc3d(root)
        print(json.dumps(result))
        return result
    factors = (1, 2, 4) if args.scaling else (1,)
    runs = []
    for factor in factors:
        side = int(round(256 * (args.scale * factor) ** (1 / 3)))
        print(f"== {side}^3, {args.workers} workers", file=sys.stderr, flush=True)
        runs.append(measure(side, args.workers, args.data, args.repeats, fewer_cores))
    result = {
        "benchmark": "relabel", "threshold": THRESHOLD, "connectivity": CONNECTIVITY, "input_chunks": [CHUNK] * 3,
        **runs[0], "rows": rows(runs),
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
    }
    if args.scaling:
        keys = ("volume_shape", "voxels", "alfine_seconds", "alfine_ns_per_voxel", "end_to_end_seconds",
                "end_to_end_ns_per_voxel")
        result["scaling"] = [{key: run[key] for key in keys}
                             | {"alfine_peak_rss_worker_mb": run["alfine"]["peak_rss_workers_mb"],
                                "alfine_peak_rss_main_mb": run["alfine"]["peak_rss_mb"],
                                "end_to_end_peak_rss_mb": run["end_to_end"]["peak_rss_mb"]} for run in runs]
    os.makedirs("bench", exist_ok=True)
    with open("bench/relabel.json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
