"""Local workers forked from this process, for thread-safe block functions whose work holds Python's lock all the
same (cc3d's labelling, relabel's faces): threads of one process would take turns at it.

A forked worker starts in a few milliseconds with everything already imported (a daisy worker, a fresh process,
takes about a second), takes the next block not yet taken as it finishes one, processes it as the single worker
does (:func:`~alfine.blockwise.in_turn.in_turn`: reading ahead, writing behind), records it in its own journal and
reports it to this process, which shows the progress. Relabelling 512³ on 2 cores: 1.90 -> 1.68-1.77 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable

from .. import progress
from ..errors import BlocksFailed, UserError
from .in_turn import blocks_failed, in_turn
from .layout import Block
from .markers import DoneMarkers

log = logging.getLogger(__name__)

FORK_BLOCKS_PER_WORKER = 8
"""Blocks a worker from which a local run of a thread-safe block function that holds the GIL forks its workers
(with fewer, this process runs the blocks one after another). A forked worker starts in 30-40 ms (tensorstore and
its first block, which nothing reads ahead). Relabelling with 2 workers, forked against threads: 202³ and 254³
(8 blocks, 4 a worker) 0.225 against 0.197 s and 0.343 against 0.335 s; 512³ (64 blocks) 1.68 against 1.92 s."""


def forks(process: Callable[[Block], None], blocks: int, workers: int) -> bool:
    """Whether a local run of ``blocks`` blocks with ``workers`` workers runs ``process`` in forked worker
    processes (:func:`run_forked`) rather than in this process: a thread-safe block function (``threads``) whose work
    holds the GIL all the same (``holds_gil``; a block function whose work releases it gains nothing), at least
    :data:`FORK_BLOCKS_PER_WORKER` blocks a worker, on Linux (elsewhere forking a process that has threads is
    not safe), unless ``ALFINE_FORK=0``, and not where this process has used tensorstore already (its forked
    workers would read and write through zarr-python, 2-3 times slower: a library caller's, a test's process)."""
    from ..volumes import bulk

    return (workers > 1 and getattr(process, "threads", False) and getattr(process, "holds_gil", False)
            and blocks >= FORK_BLOCKS_PER_WORKER * workers
            and sys.platform == "linux" and os.environ.get("ALFINE_FORK", "").strip() != "0"
            and not (bulk.started and bulk.enabled()))


def run_forked(name, layout, process, markers, done, workers, max_retries) -> dict:
    """All blocks not done, in ``workers`` processes forked from this one, each taking the next block not yet taken
    (in id order) as it finishes one (:func:`_worker`).

    A :class:`UserError` in one block stops the job: no worker takes another block, the error is raised here. A
    worker that dies (killed, out of memory) leaves its unfinished blocks undone and the job fails
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
                    _worker(todo, taken, layout, process, markers.url, max_retries, writer)
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
        raise blocks_failed(name, len(failures), len(layout), max_retries, failures[0])
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


def _worker(todo, taken, layout, process, markers_url, max_retries, reports: int) -> None:
    """A forked worker of :func:`run_forked`: takes blocks until none is left (or the job stops), records each
    finished one in its journal, reports ``done ID``, ``failed MESSAGE`` or ``stop MESSAGE`` lines to ``reports``
    (a pipe: lines under 4 KiB are written whole)."""
    markers = DoneMarkers(markers_url, layout)
    record = markers.recorder()

    def take() -> int | None:
        with taken.get_lock():
            position = taken.value
            taken.value = min(position + 1, len(todo))
        return todo[position] if position < len(todo) else None

    def report(kind: str, text: str) -> None:  # one line, under the 4 KiB a pipe takes whole
        line = f"{kind} {' '.join(text.split())}".encode()[:4000]
        os.write(reports, line + b"\n")

    def finished(block_id: int) -> None:
        record(block_id)
        report("done", str(block_id))

    try:
        in_turn(process, layout, take, finished, lambda failure: report("failed", failure), max_retries)
    except UserError as e:
        report("stop", str(e))
    finally:
        markers.close()
