"""Scheduling overhead: blocks per second of an empty blockwise job, alfine's block contract vs bare daisy 2.

alfine: :func:`alfine.blockwise.run_blocks` over a layout of N blocks whose function does nothing,
with done markers on local disk, on 2 daisy workers (what every ``*-block`` command pays per block).
Reference: ``daisy.run_blockwise`` of a task with the same blocks and a no-op function, same
workers, in the same run. Also alfine's one-process loop (``--workers 1``), which needs no
scheduler. Each is measured ``--repeats`` times, interleaved, each of the three first in turn (a fixed
order showed a few percent for or against whichever ran second), so that load from other processes on a
shared machine falls on all alike; the rows give the medians,
and ``spread`` the lowest and highest ratio of one round. CPU time (of this process and its workers,
which less depends on that load) is compared too: blocks per CPU-second. alfine's modules are byte-compiled
first, as ``pip install`` leaves them (the containers) and as daisy's are here: in an editable checkout with
``PYTHONDONTWRITEBYTECODE`` set (these machines) each worker process would compile them from source again,
some 15-20 ms a worker that an installed alfine does not pay.
Run: ``.venv/bin/python tests/benchmarks/bench_scheduling.py [--scale S] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time

from funlib.geometry import Coordinate, Roi


def nothing(block) -> None:
    """The block function: no work, so only scheduling is measured."""


def byte_compile_alfine() -> None:
    """Byte-compile alfine's modules into their ``__pycache__`` folders (see the module)."""
    import compileall

    import alfine

    compileall.compile_dir(os.path.dirname(alfine.__file__), quiet=1)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (daisy's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def alfine_blocks_per_second(root: str, blocks: int, workers: int) -> tuple[float, float]:
    """Blocks per second and per CPU-second."""
    from alfine.blockwise import BlockLayout, DoneMarkers, run_blocks

    os.makedirs(root, exist_ok=True)
    root = tempfile.mkdtemp(dir=root)  # new markers: every round runs every block
    layout = BlockLayout(Roi((0, 0, 0), (blocks * 8, 8, 8)), Coordinate(8, 8, 8), Coordinate(0, 0, 0))
    markers = DoneMarkers(f"{root}/markers-{workers}", layout)
    began, cpu = time.perf_counter(), cpu_seconds()
    counts = run_blocks(f"bench-{workers}", layout, nothing, markers, workers=workers)
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    assert counts["processed"] == blocks, counts
    return blocks / seconds, blocks / max(cpu, 0.01)  # os.times counts in 10 ms steps


def daisy_blocks_per_second(blocks: int, workers: int) -> tuple[float, float]:
    """Blocks per second and per CPU-second."""
    import daisy

    task = daisy.Task("bare", daisy.Roi((0, 0, 0), (blocks * 8, 8, 8)), daisy.Roi((0, 0, 0), (8, 8, 8)),
                      daisy.Roi((0, 0, 0), (8, 8, 8)), process_function=nothing, read_write_conflict=False,
                      max_workers=workers, timeout=math.inf)
    began, cpu = time.perf_counter(), cpu_seconds()
    states = daisy.run_blockwise(task, multiprocessing=True, progress=False, summary=False, return_states=True,
                                 host="127.0.0.1")
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    assert states["bare"].completed_count == blocks, states["bare"]
    return blocks / seconds, blocks / max(cpu, 0.01)  # os.times counts in 10 ms steps


def own_seconds_per_block(root: str, blocks: int, repeats: int = 5) -> float:
    """What alfine's per-block function in a worker (:class:`~alfine.blockwise.worker.DaisyBlockFunction`: the
    block's id, the stop check, the done record) adds to a block daisy hands over, in seconds: a loop over
    daisy's own blocks of the task, less the same loop calling the block function directly; the median of
    ``repeats``. This is all the per-block work alfine adds where daisy's workers run blocks, free of the
    scheduler's swings that the end-to-end rows carry."""
    import daisy

    from alfine.blockwise import BlockLayout, DoneMarkers
    from alfine.blockwise.daisy_ids import agrees, task_rois
    from alfine.blockwise.worker import DaisyBlockFunction

    layout = BlockLayout(Roi((0, 0, 0), (blocks * 8, 8, 8)), Coordinate(8, 8, 8), Coordinate(0, 0, 0))
    total, _, _ = task_rois(blocks)
    handed = [daisy.Block(total, daisy.Roi((i,), (1,)), daisy.Roi((i,), (1,))) for i in range(blocks)]
    differences = []
    for _ in range(repeats):
        markers = DoneMarkers(tempfile.mkdtemp(dir=root), layout)
        markers.start()
        function = DaisyBlockFunction(layout, nothing, markers.url, 2, agrees(blocks))
        began = time.perf_counter()
        for block in handed:
            function(block)
        middle = time.perf_counter()
        for block in handed:
            nothing(block)
        differences.append((middle - began) - (time.perf_counter() - middle))
        function._markers.close()
    return statistics.median(differences) / blocks


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the number of blocks")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9, help="rounds of the three measurements")
    args = parser.parse_args()
    blocks = int(8000 * args.scale)
    rounds = []
    byte_compile_alfine()
    with tempfile.TemporaryDirectory() as root:
        os.chdir(root)  # daisy's worker logs
        daisy_blocks_per_second(50, args.workers)  # imports and first worker starts, for both alike
        alfine_blocks_per_second(f"{root}/warm-up", 50, args.workers)
        measurements = [lambda: daisy_blocks_per_second(blocks, args.workers),
                        lambda: alfine_blocks_per_second(root, blocks, args.workers),
                        lambda: alfine_blocks_per_second(root, blocks, 1)]
        for repeat in range(args.repeats):
            first = repeat % len(measurements)  # each goes first in turn: no side always runs after another
            found = {i: measurements[i]() for i in [*range(first, len(measurements)), *range(first)]}
            rounds.append((*found[0], *found[1], found[2][0]))
        own = own_seconds_per_block(root, blocks)
    bare, bare_cpu, alfine, alfine_cpu, here = (statistics.median(r[i] for r in rounds) for i in range(5))
    per_block = args.workers / bare  # seconds of one worker per block in bare daisy

    def spread(i: int, reference: int = 0) -> list[float]:
        ratios = [r[i] / r[reference] for r in rounds]
        return [round(min(ratios), 3), round(max(ratios), 3)]

    def shown(i: int, reference: int = 0) -> str:
        return f"rounds: {'-'.join(map(str, spread(i, reference)))}x"

    result = {
        "benchmark": "scheduling", "blocks": blocks, "workers": args.workers, "repeats": args.repeats,
        "alfine_blocks_per_second": round(alfine, 1), "daisy_blocks_per_second": round(bare, 1),
        "alfine_blocks_per_cpu_second": round(alfine_cpu, 1), "daisy_blocks_per_cpu_second": round(bare_cpu, 1),
        "alfine_one_process_blocks_per_second": round(here, 1),
        "alfine_own_microseconds_per_block": round(1e6 * own, 2),
        "daisy_worker_microseconds_per_block": round(1e6 * per_block, 1),
        "rounds": [[round(x, 1) for x in r] for r in rounds],
        "rows": [{"name": f"scheduling: empty blocks, {args.workers} workers (median of {args.repeats})",
                  "alfine": f"{alfine:.0f} blocks/s ({shown(2)})", "reference": f"bare daisy 2: {bare:.0f} blocks/s",
                  "ratio": round(alfine / bare, 3), "spread": spread(2)},
                 {"name": f"scheduling: CPU time of empty blocks, {args.workers} workers, all processes",
                  "alfine": f"{alfine_cpu:.0f} blocks/CPU-s ({shown(3, 1)})",
                  "reference": f"bare daisy 2: {bare_cpu:.0f} blocks/CPU-s", "ratio": round(alfine_cpu / bare_cpu, 3),
                  "spread": spread(3, 1)},
                 {"name": "scheduling: alfine's own work per block in a daisy worker (id, stop check, done record; "
                          "us), against a worker's time per block in bare daisy",
                  "alfine": f"{1e6 * own:.2f} us a block",
                  "reference": f"bare daisy 2: {1e6 * per_block:.0f} us a block a worker",
                  "ratio": round(per_block / (per_block + own), 3)},
                 {"name": "scheduling: empty blocks, 1 process (no scheduler)",
                  "alfine": f"{here:.0f} blocks/s ({shown(4)})",
                  "reference": f"bare daisy 2, {args.workers} workers: {bare:.0f} blocks/s",
                  "ratio": round(here / bare, 3), "spread": spread(4)}],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
