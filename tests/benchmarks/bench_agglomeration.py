"""Mean-affinity agglomeration (``alfine.postprocess.agglomerate``) against waterz, compiled, in the same run.

Two affinity volumes of 48×96×96 at scale 1 (nearest-neighbour channels, float32):

- **noisy**: uniform noise in [0, 0.4] (much background) with two bright balls, at threshold 0.3:
  many small fragments, the case that once took minutes;
- **cells**: the synthetic volume's labels as affinities (0.9 inside an object, 0.1 across a
  boundary or on membrane) with Gaussian noise (sigma 0.2), clipped to [0, 1], at threshold 0.5.

alfine's steps are timed apart (fragments, region graph, merging; what ``agglomerate`` runs, less its
reuse cache) and against two waterz calls with the same merge rule (``1 - mean affinity`` below
``1 - threshold``): merging alfine's own fragments (the same partition must come out: checked) and
waterz's whole pipeline (its own watershed fragments; another partition, the same job). Rows give
voxels/s as the median of ``--repeats`` runs with min–max; ratio is alfine over waterz (> 1: alfine
faster). Run: ``.venv/bin/python tests/benchmarks/bench_agglomeration.py [--scale S] [--repeats N]``;
prints one JSON object with ``rows`` (see ``run_all.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from alfine.postprocess import agglomerate  # noqa: E402
from alfine.postprocess.agglomeration import fragment  # noqa: E402
from alfine.postprocess.labels import finish_instances  # noqa: E402
from alfine.postprocess.merging import merge_by_mean_affinity, region_graph  # noqa: E402
from alfine.synthetic import SyntheticParams, generate_block  # noqa: E402

OFFSETS = np.eye(3, dtype=np.int64)


def noisy(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    affinities = rng.uniform(0, 0.4, (3, *shape)).astype(np.float32)
    grid = np.indices(shape) / np.array(shape).reshape(3, 1, 1, 1)
    for centre in ((0.3, 0.3, 0.3), (0.6, 0.7, 0.6)):
        inside = ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) < 0.04
        affinities[:, inside] = rng.uniform(0.6, 1.0, (3, int(inside.sum())))
    return affinities


def cells(shape: tuple[int, ...]) -> np.ndarray:
    labels = generate_block(shape, (8, 8, 8), (0, 0, 0), (0, 0, 0), shape, SyntheticParams(seed=0))["labels"]
    affinities = np.full((3, *shape), 0.1, np.float32)
    for axis in range(3):
        here = [slice(None)] * 3
        there = [slice(None)] * 3
        here[axis], there[axis] = slice(0, -1), slice(1, None)
        same = (labels[tuple(here)] == labels[tuple(there)]) & (labels[tuple(here)] != 0)
        affinities[axis][tuple(here)][same] = 0.9
    noise = np.random.default_rng(1).normal(0, 0.2, affinities.shape).astype(np.float32)
    return np.clip(affinities + noise, 0, 1)


def to_waterz(affinities: np.ndarray) -> np.ndarray:
    """waterz's channel ``c`` at ``v`` is the edge of ``v`` and ``v - e_c``; alfine's that of ``v`` and ``v + e_c``."""
    shifted = np.zeros_like(affinities)
    for axis in range(3):
        source = [axis] + [slice(None)] * 3
        target = [axis] + [slice(None)] * 3
        source[axis + 1], target[axis + 1] = slice(0, -1), slice(1, None)
        shifted[tuple(target)] = affinities[tuple(source)]
    return shifted


@contextlib.contextmanager
def quiet_stdout():
    """waterz prints progress on stdout from C++: send file descriptor 1 to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def alfine_steps(affinities: np.ndarray, threshold: float) -> tuple[dict, np.ndarray]:
    """Seconds of each step of ``agglomerate`` (no min_size, no tidying) and its segmentation."""
    seconds = {}
    began = time.perf_counter()
    fragments = fragment(affinities, OFFSETS, threshold)
    seconds["fragments"] = time.perf_counter() - began
    began = time.perf_counter()
    pairs, sums, counts = region_graph(fragments, affinities, OFFSETS)
    seconds["region_graph"] = time.perf_counter() - began
    began = time.perf_counter()
    segments = finish_instances(merge_by_mean_affinity(int(fragments.max()), pairs, sums, counts, threshold)
                                [fragments], 0)
    seconds["merging"] = time.perf_counter() - began
    return seconds, segments


def measure(name: str, affinities: np.ndarray, threshold: float, repeats: int) -> dict:
    import waterz

    shifted = to_waterz(affinities)
    steps, merge_only, whole = [], [], []
    for _ in range(repeats):
        seconds, segments = alfine_steps(affinities, threshold)
        steps.append(seconds)
        fragments = fragment(affinities, OFFSETS, threshold)
        with quiet_stdout():
            began = time.perf_counter()
            theirs = next(waterz.agglomerate(shifted, [1 - threshold], fragments=fragments.copy()))
            merge_only.append(time.perf_counter() - began)
            began = time.perf_counter()
            own = next(waterz.agglomerate(shifted, [1 - threshold]))
            whole.append(time.perf_counter() - began)
        if not np.array_equal(finish_instances(theirs.astype(np.uint64), 0), segments):
            raise AssertionError(f"{name}: waterz merged alfine's fragments into another partition")
    if not np.array_equal(agglomerate(affinities, OFFSETS, threshold=threshold), segments):
        raise AssertionError(f"{name}: agglomerate differs from its steps")
    voxels = int(np.prod(affinities.shape[1:]))
    totals = [sum(s.values()) for s in steps]
    merging = [s["region_graph"] + s["merging"] for s in steps]
    return {"case": name, "shape": list(affinities.shape[1:]), "threshold": threshold,
            "fragments": int(fragments.max()), "segments": int(segments.max()), "waterz_own_fragments":
                int(own.max()),
            "alfine_seconds": {k: round(statistics.median(s[k] for s in steps), 3) for k in steps[0]},
            "alfine_total_seconds": [round(t, 3) for t in totals],
            "waterz_merge_seconds": [round(t, 3) for t in merge_only],
            "waterz_whole_seconds": [round(t, 3) for t in whole],
            "voxels": voxels, "alfine_merging_seconds": [round(t, 3) for t in merging]}


def rows(result: dict) -> list[dict]:
    voxels, case = result["voxels"], f"{result['case']} {'x'.join(map(str, result['shape']))} at {result['threshold']}"

    def rate(seconds: list[float]) -> str:
        return (f"{voxels / statistics.median(seconds) / 1e6:.2f} MVx/s "
                f"({voxels / max(seconds) / 1e6:.2f}–{voxels / min(seconds) / 1e6:.2f})")

    where = ", ".join(f"{k} {v:.2f} s" for k, v in result["alfine_seconds"].items())
    return [
        {"name": f"agglomeration: {case}, whole method ({result['fragments']} fragments; voxels/s)",
         "alfine": f"{rate(result['alfine_total_seconds'])}: {where}",
         "reference": f"waterz, own fragments ({result['waterz_own_fragments']}): "
                      f"{rate(result['waterz_whole_seconds'])}",
         "ratio": round(statistics.median(result["waterz_whole_seconds"])
                        / statistics.median(result["alfine_total_seconds"]), 2)},
        {"name": f"agglomeration: {case}, merging the same fragments (same partition; voxels/s)",
         "alfine": rate(result["alfine_merging_seconds"]),
         "reference": f"waterz: {rate(result['waterz_merge_seconds'])}",
         "ratio": round(statistics.median(result["waterz_merge_seconds"])
                        / statistics.median(result["alfine_merging_seconds"]), 2)},
    ]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volumes (voxels)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median and spread)")
    args = parser.parse_args()
    grow = max(1, round(args.scale ** (1 / 3)))
    shape = (48 * grow, 96 * grow, 96 * grow)
    results = [measure("noisy", noisy(shape), 0.3, args.repeats), measure("cells", cells(shape), 0.5, args.repeats)]
    output = {"benchmark": "agglomeration", "waterz": importlib.metadata.version("waterz"), "results": results,
              "rows": [r for result in results for r in rows(result)]}
    print(json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main()
