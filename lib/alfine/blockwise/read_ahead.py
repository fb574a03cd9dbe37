"""Reading a block's input while the blocks before it are processed (:func:`alfine.blockwise.runner.run_blocks`
tells a block function with a ``prefetch(block)`` method the next block to start, in this process: one worker, or
worker threads).

The reads run one at a time in a thread of their own; volume reads spend their time in code that releases the
GIL (tensorstore, zarr's codecs), so they overlap the block's own work. At most :data:`KEEP` reads are held: the
block about to be processed and the next; an older one nobody took is dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

KEEP = 2

_reads: dict[Hashable, Future] = {}
_reader: list[ThreadPoolExecutor] = []


def _forget() -> None:
    """Drop the reads and the reader thread of the process this one was forked from (its thread is not here)."""
    _reads.clear()
    _reader.clear()


os.register_at_fork(after_in_child=_forget)


def start(key: Hashable, read: Callable[[], T]) -> None:
    """Start ``read()`` in the read-ahead thread, for :func:`take` with the same ``key`` (say, the input's URL and
    the block's id) to collect."""
    if not _reader:
        _reader.append(ThreadPoolExecutor(1, thread_name_prefix="alfine-read-ahead"))
    _reads[key] = _reader[0].submit(read)
    while len(_reads) > KEEP:
        _reads.pop(next(iter(_reads))).cancel()


def take(key: Hashable, read: Callable[[], T]) -> T:
    """What the read started for ``key`` returned (its error raised here), or ``read()`` now where none was started
    or it has not begun yet (so that blocks in several threads never wait in the read-ahead thread's queue)."""
    ahead = _reads.pop(key, None)
    if ahead is None or ahead.cancel():
        return read()
    return ahead.result()
