"""Running a block function over a layout: one block, or all of them on daisy.

The block function receives a :class:`~alfine.blockwise.layout.Block` and writes its
output; it knows nothing about daisy, workers or markers. Finished blocks are recorded
(:class:`~alfine.blockwise.markers.DoneMarkers`) and skipped by a re-run. A block that raises
:class:`~alfine.errors.UserError` (bad input: the same in every block) stops the job at once with
that error (exit 2): it is not retried, and workers leave the remaining blocks undone. Other
errors are retried, then reported as :class:`~alfine.errors.BlocksFailed` (exit 3). A whole-volume
run holds its output (:meth:`DoneMarkers.exclusive`): a second one at once is refused. Local
workers' logs go to alfine's log folder (``$ALFINE_LOG_DIR`` or ``alfine-logs``), as launched
workers' do. Worker processes stay alive for many blocks, so a function can cache expensive setup
(a model) per process.

A block function whose class says ``threads = True`` (it is safe to call from several threads at once and
spends its time in code that releases the GIL: zarr's codecs, numpy) runs local multi-worker runs in threads of
this process instead: no worker processes to start (about a second each, more on a loaded machine), which
costs more than small jobs take. Where such a function's work holds Python's lock all the same (``holds_gil``:
cc3d's labelling, relabel's faces) and a run has enough blocks a worker (on Linux, unless ``ALFINE_FORK=0``),
its workers are processes forked from this one instead (:mod:`~alfine.blockwise.forked`: a few milliseconds
each, everything already imported), so that work runs on all of them at once: relabelling 512³ on 2 cores,
1.90 -> 1.68-1.77 s. A run of such a function with fewer blocks runs them in this thread, one after another
(reading the next while one is processed, writing behind): threads would only take turns holding the lock, and
each would hold a block. Measured on 2 cores, postprocess-block with connected components in 2 threads against
one worker: 160³ 59-60 against 49-57 ms, 202³ 101-108 against 93-101 ms, 254³ 166-172 against 146-167 ms.
With a launcher it runs on daisy like any other.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .. import progress
from ..errors import BlocksFailed, UserError
from . import launch
from .daisy_ids import agrees, task_rois
from .forked import forks, run_forked
from .in_turn import attempts, blocks_failed, in_turn
from .layout import Block, BlockLayout
from .markers import DoneMarkers
from .worker import DaisyBlockFunction

log = logging.getLogger(__name__)


def check_request(layout: BlockLayout, block_id: int | None, workers: int) -> None:
    """A :class:`UserError` for a ``block_id`` outside the layout or fewer than one worker: call it before
    creating any output, so a refused request leaves nothing behind (:func:`run_blocks` checks again)."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if block_id is not None:
        layout.block(block_id)  # refuses an id out of range


def run_blocks(
    name: str,
    layout: BlockLayout,
    process: Callable[[Block], None],
    markers: DoneMarkers,
    workers: int = 1,
    block_id: int | None = None,
    launcher: str | None = None,
    max_retries: int = 2,
) -> dict:
    """Process ``block_id`` alone, or every block not yet done with ``workers`` processes.

    Returns counts of blocks (``blocks``, ``processed``, ``skipped``); raises
    :class:`~alfine.errors.BlocksFailed` when blocks still fail after ``max_retries``
    (finished blocks are kept, so the same command finishes the job).
    """
    check_request(layout, block_id, workers)
    markers.start()
    if launch.serving(name):  # a worker a launcher started: serve the scheduler's blocks, then end
        served = launch.serve(DaisyBlockFunction(layout, process, markers.url, max_retries, agrees(len(layout))))
        launch.record_end()  # the launcher that started this worker may return now
        log.info("worker processed %d block(s) of %s", served, name)
        raise SystemExit(0)
    if block_id is not None:
        block = layout.block(block_id)
        if markers.is_done(block.id):
            log.info("block %d is already done", block.id)
            return {"blocks": 1, "processed": 0, "skipped": 1}
        process(block)
        markers.mark(block.id)
        return {"blocks": 1, "processed": 1, "skipped": 0}
    with markers.exclusive():
        done = markers.done_ids()
        total = len(layout)
        if len(done) >= total:
            log.info("all %d blocks are already done", total)
            return {"blocks": total, "processed": 0, "skipped": total}
        if done:
            log.info("resuming: %d of %d blocks are already done", len(done), total)
        if workers == 1 and not launcher:
            return _run_here(name, layout, process, markers, done, max_retries)
        if not launcher and forks(process, total - len(done), workers):
            return run_forked(name, layout, process, markers, done, workers, max_retries)
        if not launcher and getattr(process, "threads", False):
            if getattr(process, "holds_gil", False):  # threads would take turns: one worker overlaps its I/O as well
                return _run_here(name, layout, process, markers, done, max_retries)
            return _run_threads(name, layout, process, markers, done, workers, max_retries)
        return _run_daisy(name, layout, process, markers, done, workers, max_retries, launcher)


def read_first_block_ahead(process: Callable[[Block], None], layout: BlockLayout, workers: int = 1,
                           block_id: int | None = None, launcher: str | None = None) -> None:
    """Start reading the first block's input (a block function with ``prefetch``) where :func:`run_blocks` will
    process it in this process (``--block-id``, one worker, or worker threads), so that the read overlaps what the
    command does before (creating its output)."""
    prefetch = getattr(process, "prefetch", None)
    here = block_id is not None or (not launcher and (workers == 1 or getattr(process, "threads", False)))
    if block_id is None and forks(process, len(layout), workers):
        here = False  # forked workers read their own blocks (this process must not start tensorstore first)
    if prefetch is not None and here:
        prefetch(layout.block(0 if block_id is None else block_id))


def _run_here(name, layout, process, markers, done, max_retries) -> dict:
    """All blocks not done, in this process, in id order (one worker: no scheduler needed), one after another
    (:func:`~alfine.blockwise.in_turn.in_turn`: the next block read ahead, a block's writes left running while the
    next is processed, the block marked done once they have ended)."""
    todo = [i for i in range(len(layout)) if i not in done]
    failures: list[str] = []
    blocks = iter(todo)
    try:
        with progress.bar(total=len(layout), desc=name, unit="block", initial=len(done)) as bar:

            def finished(block_id: int) -> None:
                markers.append(block_id)
                bar.update()

            def failed(failure: str) -> None:
                failures.append(failure)
                bar.update()

            in_turn(process, layout, lambda: next(blocks, None), finished, failed, max_retries)
    finally:
        markers.close()
    if failures:
        raise blocks_failed(name, len(failures), len(layout), max_retries, failures[0])
    return {"blocks": len(layout), "processed": len(todo), "skipped": len(done)}


def _run_threads(name, layout, process, markers, done, workers, max_retries) -> dict:
    """All blocks not done, ``workers`` at a time in threads of this process, started in id order.

    Blocks are marked done here, in this thread, as they finish. A :class:`UserError` in one block stops the
    job: blocks not started stay undone, those running finish first. A block function with a ``prefetch(block)``
    method is told the next block each time one starts (measured: postprocess-block of 323³ with 2 workers
    0.54 -> 0.50 s)."""
    todo = deque(i for i in range(len(layout)) if i not in done)
    failures: list[str] = []
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="block") as pool, \
                progress.bar(total=len(layout), desc=name, unit="block", initial=len(done)) as bar:
            processed = _threads_loop(pool, todo, workers, layout, process, markers, max_retries, failures, bar)
    finally:
        markers.close()
    if failures:
        raise blocks_failed(name, len(failures), len(layout), max_retries, failures[0])
    return {"blocks": len(layout), "processed": processed, "skipped": len(done)}


def _threads_loop(pool, todo, workers, layout, process, markers, max_retries, failures, bar) -> int:
    """:func:`_run_threads`' loop: keep ``workers`` blocks running, record each as it ends; how many ended."""
    processed = 0
    running = {}
    prefetch = getattr(process, "prefetch", None)

    def start() -> None:
        if todo:
            block_id = todo.popleft()
            running[pool.submit(attempts, process, layout.block(block_id), max_retries)] = block_id
            if prefetch is not None and todo:
                prefetch(layout.block(todo[0]))

    for _ in range(workers):
        start()
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            block_id = running.pop(future)
            failure = future.result()  # a UserError is raised here; the pool waits for the running blocks
            if failure is None:
                markers.append(block_id)
            else:
                failures.append(failure)
            processed += 1
            bar.update()
            start()
    return processed


def _last_error(text: str, folder: str) -> str:
    """The line of daisy's report that says what went wrong (a launched worker's names its log); never empty."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "its log:" in line:
            return line.removeprefix("RuntimeError: ")
    found = lines[0] if lines else ""
    if not found or found.endswith("Last worker error:"):
        found = f"{found} none reported; the worker logs are in {folder}".strip()
    return found


def _run_daisy(name, layout, process, markers, done, workers, max_retries, launcher=None) -> dict:
    """All blocks not done on daisy (a task of unit blocks numbered by id: :mod:`~alfine.blockwise.daisy_ids`):
    ``workers`` local processes, or workers started through ``launcher`` (which then listen on this host's
    address, not only on 127.0.0.1)."""
    import daisy

    total = len(layout)
    folder = launch.log_folder(name)
    markers.clear_stop()
    markers.clear_failures()
    daisy.logging.set_log_basedir(folder)  # daisy's own worker output goes there, not to this terminal
    if launcher:
        log.info("starting %d worker(s) with %r; their logs: %s", workers, launcher, folder)
        markers.clear_workers()
        function = launch.LaunchedWorker(launcher, launch.invocation(), folder, markers.url)
    else:
        log.debug("worker logs: %s", folder)
        function = DaisyBlockFunction(layout, process, markers.url, max_retries, agrees(total))
    skip = None  # numpy only where some blocks are done
    if done:
        import numpy as np

        skip = np.zeros(total, dtype=np.uint8)
        skip[sorted(done)] = 1
    task = daisy.Task(
        name,
        *task_rois(total),
        process_function=function,
        read_write_conflict=False,
        max_workers=workers,
        max_retries=max_retries,
        timeout=math.inf,
        skip_mask=skip,
        **({"max_worker_restarts": 2 * workers} if launcher else {}),  # a broken launcher fails fast
    )
    if list(task.block_grid_shape) != [total]:  # the ids of both must agree
        raise RuntimeError(f"daisy's block grid {task.block_grid_shape} differs from alfine's {total} blocks")
    watch = progress.observer(name)
    try:
        states = daisy.run_blockwise(task, multiprocessing=True, progress=watch, summary=False, return_states=True,
                                     host=None if launcher else "127.0.0.1")
    except RuntimeError as e:  # daisy gives up when workers keep dying
        stopped = markers.stopped()
        if stopped is not None:
            raise UserError(stopped) from None
        raise BlocksFailed(f"{name}: workers kept failing ({_last_error(str(e), folder)}); finished blocks are "
                           "kept, re-run to finish") from None
    finally:
        if isinstance(watch, progress.Lines):
            watch.close()
    stopped = markers.stopped()
    if stopped is not None:
        markers.clear_stop()
        raise UserError(stopped)
    failures = markers.failures()
    state = states[name]
    failed = len(failures) + state.failed_count + state.orphaned_count
    if failed:
        lines = str(state.first_worker_error or "").strip().splitlines()
        error = (failures[min(failures)] if failures else lines[-1] if lines
                 else f"a worker died; its log is in {folder}")
        raise blocks_failed(name, failed, total, max_retries, error, folder)
    log.debug("daisy: completed %s, skipped %s", state.completed_count, state.skipped_count)
    return {"blocks": total, "processed": int(state.completed_count - state.skipped_count), "skipped": len(done)}
