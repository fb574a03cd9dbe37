"""Scheduling overhead: blocks per second of an empty blockwise job, alfine's block contract vs bare daisy 2.

alfine: :func:`alfine.blockwise.run_blocks` over a layout of N blocks whose function does nothing,
with done markers on local disk, on 2 daisy workers (what every ``*-block`` command pays per block).
Reference: ``daisy.run_blockwise`` of a task with the same blocks and a no-op function, same
workers, in the same run. Also alfine's one-process loop (``--workers 1``), which needs no
scheduler. Run: ``.venv/bin/python tests/benchmarks/bench_scheduling.py [--scale S]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

from funlib.geometry import Coordinate, Roi


def nothing(block) -> None:
    """The block function: no work, so only scheduling is measured."""


def alfine_blocks_per_second(root: str, blocks: int, workers: int) -> float:
    from alfine.blockwise import BlockLayout, DoneMarkers, run_blocks

    layout = BlockLayout(Roi((0, 0, 0), (blocks * 8, 8, 8)), Coordinate(8, 8, 8), Coordinate(0, 0, 0))
    markers = DoneMarkers(f"{root}/markers-{workers}", layout)
    began = time.perf_counter()
    counts = run_blocks(f"bench-{workers}", layout, nothing, markers, workers=workers)
    seconds = time.perf_counter() - began
    assert counts["processed"] == blocks, counts
    return blocks / seconds


def daisy_blocks_per_second(blocks: int, workers: int) -> float:
    import daisy

    task = daisy.Task("bare", daisy.Roi((0, 0, 0), (blocks * 8, 8, 8)), daisy.Roi((0, 0, 0), (8, 8, 8)),
                      daisy.Roi((0, 0, 0), (8, 8, 8)), process_function=nothing, read_write_conflict=False,
                      max_workers=workers, timeout=math.inf)
    began = time.perf_counter()
    states = daisy.run_blockwise(task, multiprocessing=True, progress=False, summary=False, return_states=True,
                                 host="127.0.0.1")
    seconds = time.perf_counter() - began
    assert states["bare"].completed_count == blocks, states["bare"]
    return blocks / seconds


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the number of blocks")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    blocks = int(2000 * args.scale)
    with tempfile.TemporaryDirectory() as root:
        os.chdir(root)  # daisy's worker logs
        bare = daisy_blocks_per_second(blocks, args.workers)
        alfine = alfine_blocks_per_second(root, blocks, args.workers)
        here = alfine_blocks_per_second(root, blocks, 1)
    result = {
        "benchmark": "scheduling", "blocks": blocks, "workers": args.workers,
        "alfine_blocks_per_second": round(alfine, 1), "daisy_blocks_per_second": round(bare, 1),
        "alfine_one_process_blocks_per_second": round(here, 1),
        "rows": [{"name": f"scheduling: empty blocks, {args.workers} workers",
                  "alfine": f"{alfine:.0f} blocks/s", "reference": f"bare daisy 2: {bare:.0f} blocks/s",
                  "ratio": round(alfine / bare, 3)},
                 {"name": "scheduling: empty blocks, 1 process (no scheduler)",
                  "alfine": f"{here:.0f} blocks/s", "reference": f"bare daisy 2, {args.workers} workers: "
                  f"{bare:.0f} blocks/s", "ratio": round(here / bare, 3)}],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
