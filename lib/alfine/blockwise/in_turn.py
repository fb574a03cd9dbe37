"""Processing blocks one after another in one thread, as this process's single worker and each forked worker do
(:mod:`~alfine.blockwise.runner`, :mod:`~alfine.blockwise.forked`): retries, reading ahead, writing behind.

A block function with a ``prefetch(block)`` method is told the next block before it processes the current one, so
it can read ahead (measured: postprocess-block of 323³, 0.75 -> 0.68 s). A block's
:func:`~alfine.blockwise.write_behind.write` calls go on while the next block is processed; the block counts as
finished once they have ended (a write that failed has the block processed again), so a killed job still loses
nothing it recorded as done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from ..errors import BlocksFailed, UserError
from . import write_behind
from .layout import Block, BlockLayout

log = logging.getLogger(__name__)


def blocks_failed(name: str, failed: int, total: int, max_retries: int, error: str,
                  logs: str | None = None) -> BlocksFailed:
    """The error of a job ``name`` whose ``failed`` blocks of ``total`` still failed after ``max_retries``."""
    where = f"; tracebacks in the worker logs, {logs}" if logs else ""
    return BlocksFailed(f"{name}: {failed} of {total} blocks failed after {max_retries} retries (first error: "
                        f"{error}{where}); finished blocks are kept, re-run the same command to finish")


def attempts(process: Callable[[Block], None], block: Block, max_retries: int) -> str | None:
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
    """Wait for ``block``'s writes left running; where one failed, process the block again (its writes then end
    before this returns). None when written, else the last failure."""
    try:
        write_behind.finish(writes)
        return None
    except Exception as e:
        log.warning("block %d: writing its output failed (%s: %s); processing it again", block.id,
                    type(e).__name__, e)
        return attempts(process, block, max_retries)


def in_turn(process: Callable[[Block], None], layout: BlockLayout, next_block: Callable[[], int | None],
            finished: Callable[[int], None], failed: Callable[[str], None], max_retries: int) -> None:
    """Process the blocks ``next_block()`` gives (their ids; None: no more) one after another in this thread:
    each next one read ahead while the one before is processed, a block's writes left running while the next is
    processed. ``finished(block_id)`` once a block's writes have ended, ``failed(failure)`` for a block that still
    failed after ``max_retries``. A :class:`UserError` (or an interrupt) ends it, raised here once the block
    before is written and finished."""
    prefetch = getattr(process, "prefetch", None)
    writing: tuple[int, list] | None = None  # the block before, finished once its writes end

    def settle() -> None:
        nonlocal writing
        (block_id, writes), writing = writing, None
        failure = _written(process, layout.block(block_id), writes, max_retries)
        if failure is None:
            finished(block_id)
        else:
            failed(failure)

    try:
        current = next_block()
        while current is not None:
            following = next_block()
            if prefetch is not None and following is not None:
                prefetch(layout.block(following))
            with write_behind.collect() as writes:
                failure = attempts(process, layout.block(current), max_retries)
            if writing is not None:
                settle()
            if failure is None:
                writing = (current, writes)
            else:
                failed(failure)
            current = following
        if writing is not None:
            settle()
    finally:
        if writing is not None:  # the next block stopped the job (bad input, an interrupt): this one still counts
            with contextlib.suppress(Exception):
                write_behind.finish(writing[1])
                finished(writing[0])
