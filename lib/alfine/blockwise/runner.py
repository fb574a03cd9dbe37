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
cc3d's labelling, relabel's faces) and a run has at least :data:`FORK_BLOCKS_PER_WORKER` blocks a worker (on
Linux, unless ``ALFINE_FORK=0``), its workers are processes forked from this one instead (a few milliseconds
each, everything already imported), so that work runs on all of them at once: relabelling 512³ on 2 cores,
1.90 -> 1.68-1.77 s. With a launcher it runs on daisy like any other.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .. import progress
from ..errors import BlocksFailed, UserError
from . import launch, write_behind
from .daisy_ids import agrees, task_rois
from .layout import Block, BlockLayout
from .markers import DoneMarkers
from .worker import DaisyBlockFunction

log = logging.getLogger(__name__)

FORK_BLOCKS_PER_WORKER = 8
"""Blocks a worker from which a local run of a thread-safe block function forks its workers rather than running
threads (see the module's docstring). A forked worker starts in 30-40 ms (tensorstore and its first block, which
nothing reads ahead). Relabelling with 2 workers, forked against threads: 202³ and 254³ (8 blocks, 4 a worker)
0.225 against 0.197 s and 0.343 against 0.335 s; 512³ (64 blocks) 1.68 against 1.92 s."""


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
            return _run_forked(name, layout, process, markers, done, workers, max_retries)
        if not launcher and getattr(process, "threads", False):
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


def forks(process: Callable[[Block], None], blocks: int, workers: int) -> bool:
    """Whether a local run of ``blocks`` blocks with ``workers`` workers runs ``process`` in forked worker
    processes (:func:`_run_forked`) rather than threads: a thread-safe block function (``threads``) whose work
    holds the GIL all the same (``holds_gil``; a block function whose work releases it gains nothing), at least
    :data:`FORK_BLOCKS_PER_WORKER` blocks a worker, on Linux (elsewhere forking a process that has threads is
    not safe), unless ``ALFINE_FORK=0``, and not where this process has used tensorstore already (its forked
    workers would read and write through zarr-python, 2-3 times slower: a library caller's, a test's process)."""
    from ..volumes import bulk

    return (workers > 1 and getattr(process, "threads", False) and getattr(process, "holds_gil", False)
            and blocks >= FORK_BLOCKS_PER_WORKER * workers
            and sys.platform == "linux" and os.environ.get("ALFINE_FORK", "").strip() != "0"
            and not (bulk.started and bulk.enabled()))


def _failed(name: str, failed: int, total: int, max_retries: int, error: str, logs: str | None = None) -> BlocksFailed:
    where = f"; tracebacks in the worker logs, {logs}" if logs else ""
    return BlocksFailed(f"{name}: {failed} of {total} blocks failed after {max_retries} retries (first error: "
                        f"{error}{where}); finished blocks are kept, re-run the same command to finish")


def _attempts(process: Callable[[Block], None], block: Block, max_retries: int) -> str | None:
    """Process ``block``, retrying a failure ``max_retries`` times; None when done, else the last failure.
    A :class:`UserError` (bad input: the same in every block) is raised at once, naming the block."""
    for attempt in range(max_retries + 1):
        try:
            process(block)
        except UserError as e:
            raise UserError(f"block {block.id}: {e}") from e
        except Exception as e:  # a block's failure must not stop the others
            write_behind.abandon()  # what the failed attempt started writing ends before the next attempt
            log.warning("block %d failed (attempt %d of %d): %s: %s", block.id, attempt + 1, max_retries + 1,
                        type(e).__name__, e)
            if attempt == max_retries:
                return f"block {block.id}: {type(e).__name__}: {e}"
        else:
            return None
    return None


def _written(process: Callable[[Block], None], block: Block, writes: list, max_retries: int) -> str | None:
    """Wait for ``block``'s writes left running (:mod:`~alfine.blockwise.write_behind`); where one failed, process
    the block again (its writes then end before this returns). None when written, else the last failure."""
    try:
        write_behind.finish(writes)
        return None
    except Exception as e:
        log.warning("block %d: writing its output failed (%s: %s); processing it again", block.id,
                    type(e).__name__, e)
        return _attempts(process, block, max_retries)


def _run_here(name, layout, process, markers, done, max_retries) -> dict:
    """All blocks not done, in this process, in id order (one worker: no scheduler needed).

    A block function with a ``prefetch(block)`` method is told the next block before it processes
    the current one, so it can read ahead (measured: postprocess-block of 323³, 0.75 -> 0.68 s). A block's
    :func:`~alfine.blockwise.write_behind.write` calls go on while the next block is processed; the block is
    marked done once they have finished (a write that failed has the block processed again)."""
    todo = [i for i in range(len(layout)) if i not in done]
    failures: list[str] = []
    prefetch = getattr(process, "prefetch", None)
    writing: tuple[int, list] | None = None  # the block before, marked done once its writes end

    def settle() -> None:
        block_id, writes = writing
        failure = _written(process, layout.block(block_id), writes, max_retries)
        if failure is None:
            markers.append(block_id)
        else:
            failures.append(failure)
        bar.update()

    try:
        with progress.bar(total=len(layout), desc=name, unit="block", initial=len(done)) as bar:
            for position, block_id in enumerate(todo):
                block = layout.block(block_id)
                if prefetch is not None and position + 1 < len(todo):
                    prefetch(layout.block(todo[position + 1]))
                with write_behind.collect() as writes:
                    failure = _attempts(process, block, max_retries)
                if writing is not None:
                    settle()
                writing = (block_id, writes) if failure is None else None
                if failure is not None:
                    failures.append(failure)
                    bar.update()
            if writing is not None:
                settle()
                writing = None
    finally:
        if writing is not None:  # the next block stopped the job (bad input, an interrupt): this one still counts
            with contextlib.suppress(Exception):
                write_behind.finish(writing[1])
                markers.append(writing[0])
        markers.close()
    if failures:
        raise _failed(name, len(failures), len(layout), max_retries, failures[0])
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
        raise _failed(name, len(failures), len(layout), max_retries, failures[0])
    return {"blocks": len(layout), "processed": processed, "skipped": len(done)}


def _threads_loop(pool, todo, workers, layout, process, markers, max_retries, failures, bar) -> int:
    """:func:`_run_threads`' loop: keep ``workers`` blocks running, record each as it ends; how many ended."""
    processed = 0
    running = {}
    prefetch = getattr(process, "prefetch", None)

    def start() -> None:
        if todo:
            block_id = todo.popleft()
            running[pool.submit(_attempts, process, layout.block(block_id), max_retries)] = block_id
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
        raise _failed(name, failed, total, max_retries, error, folder)
    log.debug("daisy: completed %s, skipped %s", state.completed_count, state.skipped_count)
    return {"blocks": total, "processed": int(state.completed_count - state.skipped_count), "skipped": len(done)}


def _run_forked(name, layout, process, markers, done, workers, max_retries) -> dict:
    """All blocks not done, in ``workers`` processes forked from this one, each taking the next block not yet taken
    (in id order) as it finishes one, reading ahead and writing behind as one worker does here
    (:func:`_forked_worker`).

    Each worker records the blocks it finishes in its own journal and reports them to this process, which shows
    the progress. A :class:`UserError` in one block stops the job: no worker takes another block, the error is
    raised here. A worker that dies (killed, out of memory) leaves its unfinished blocks undone and the job fails
    (:class:`BlocksFailed`; a re-run finishes them). The workers die with this process."""
    import multiprocessing

    todo = [i for i in range(len(layout)) if i not in done]
    taken = multiprocessing.get_context("fork").Value("q", 0)  # the next position in todo (len(todo): stop)
    parent = os.getpid()
    reader, writer = os.pipe()
    children = []
    try:
        for _ in range(min(workers, len(todo))):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child (measured through what it writes and reports)
                code = 1
                try:
                    os.close(reader)
                    _die_with(parent)
                    _forked_worker(todo, taken, layout, process, markers.url, max_retries, writer)
                    code = 0
                except KeyboardInterrupt:
                    code = 130
                except BaseException:  # an error outside the blocks: the job fails, loudly
                    log.exception("a forked worker of %s failed", name)
                finally:
                    os._exit(code)  # no cleanup of the parent's state: it is the parent's
            children.append(pid)
    finally:
        os.close(writer)
    failures, stop, finished = [], None, 0
    try:
        with progress.bar(total=len(layout), desc=name, unit="block", initial=len(done)) as bar, \
                os.fdopen(reader, "rb") as reports:
            for line in reports:
                kind, _, text = line.decode(errors="replace").rstrip("\n").partition(" ")
                if kind == "stop":
                    stop = stop or text
                    with taken.get_lock():
                        taken.value = len(todo)
                    continue
                if kind == "failed":
                    failures.append(text)
                finished += 1
                bar.update()
    except BaseException:  # an interrupt here (its own, or its workers' too): they stop, keeping what they finished
        import signal

        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        raise
    finally:
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        markers.close()
    if stop is not None:
        raise UserError(stop)
    if finished < len(todo):
        died = [code for code in codes if code != 0]
        raise BlocksFailed(f"{name}: {len(todo) - finished} of {len(layout)} blocks were not finished: "
                           f"{len(died)} forked worker(s) ended with exit code(s) {died or codes}; finished blocks "
                           "are kept, re-run the same command to finish")
    if failures:
        raise _failed(name, len(failures), len(layout), max_retries, failures[0])
    return {"blocks": len(layout), "processed": len(todo), "skipped": len(done)}


def _die_with(parent: int) -> None:
    """Have the system end this forked worker when its parent ends (Linux's ``PR_SET_PDEATHSIG``): a killed job
    leaves no worker writing behind it."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before that was set
        os._exit(1)


def _forked_worker(todo, taken, layout, process, markers_url, max_retries, reports: int) -> None:
    """A forked worker of :func:`_run_forked`: takes blocks until none is left (or the job stops), records each
    finished one in its journal, reports ``done ID``, ``failed MESSAGE`` or ``stop MESSAGE`` lines to ``reports``
    (a pipe: lines under 4 KiB are written whole)."""
    markers = DoneMarkers(markers_url, layout)
    record = markers.recorder()
    prefetch = getattr(process, "prefetch", None)

    def take() -> int | None:
        with taken.get_lock():
            position = taken.value
            taken.value = min(position + 1, len(todo))
        return todo[position] if position < len(todo) else None

    def report(kind: str, text: str) -> None:  # one line, under the 4 KiB a pipe takes whole
        line = f"{kind} {' '.join(text.split())}".encode()[:4000]
        os.write(reports, line + b"\n")

    def settle(block_id: int, writes: list) -> None:
        failure = _written(process, layout.block(block_id), writes, max_retries)
        if failure is None:
            record(block_id)
            report("done", str(block_id))
        else:
            report("failed", failure)

    writing = None  # the block before, recorded once its writes end
    try:
        current = take()
        while current is not None:
            following = take()
            if prefetch is not None and following is not None:
                prefetch(layout.block(following))
            try:
                with write_behind.collect() as writes:
                    failure = _attempts(process, layout.block(current), max_retries)
            except UserError as e:
                report("stop", str(e))
                break
            if writing is not None:
                settle(*writing)
            writing = None
            if failure is None:
                writing = (current, writes)
            else:
                report("failed", failure)
            current = following
        if writing is not None:
            settle(*writing)
            writing = None
    finally:
        if writing is not None:  # an interrupt or a stop: the block before still counts once written
            with contextlib.suppress(Exception):
                write_behind.finish(writing[1])
                record(writing[0])
                report("done", str(writing[0]))
        markers.close()
