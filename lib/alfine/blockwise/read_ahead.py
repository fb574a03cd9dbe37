"""Reading a block's input while the blocks before it are processed (:func:`alfine.blockwise.runner.run_blocks`
tells a block function with a ``prefetch(block)`` method the next block to start, in this process: one worker, or
worker threads).

The reads run one at a time in a thread of their own; volume reads spend their time in code that releases the
GIL (tensorstore, zarr's codecs), so they overlap the block's own work. At most :data:`KEEP` reads are held: the
block about to be processed and the next; an older one nobody took is dropped. A read is known by its
:func:`key`: the input and the block's region, so a read started for one layout is never taken by a block of
another (a failed command's read, in a process that runs several).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterator
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


def key(url: str, block) -> Hashable:
    """The key of ``block``'s read of the input ``url``: its id and the region it reads."""
    roi = block.read_roi
    return url, block.id, tuple(roi.begin), tuple(roi.shape)


def start(key: Hashable, read: Callable[[], T]) -> None:
    """Start ``read()`` in the read-ahead thread, for :func:`take` with the same ``key`` (:func:`key`) to collect;
    nothing new where that read was started already and not taken yet."""
    if key in _reads:
        return
    if not _reader:
        _reader.append(ThreadPoolExecutor(1, thread_name_prefix="alfine-read-ahead"))
    _reads[key] = _reader[0].submit(read)
    while len(_reads) > KEEP:
        _reads.pop(next(iter(_reads))).cancel()


def drop_all() -> None:
    """Forget every read not taken (those not begun do not run): a command that fails after it started reading
    ahead leaves nothing behind."""
    while _reads:
        _reads.popitem()[1].cancel()


@contextlib.contextmanager
def dropped_on_error() -> Iterator[None]:
    """Inside, an error (or an interrupt) drops every read not taken (:func:`drop_all`) before it goes on: for a
    command that reads its first block ahead and may still fail before it takes it."""
    try:
        yield
    except BaseException:
        drop_all()
        raise


def take(key: Hashable, read: Callable[[], T]) -> T:
    """What the read started for ``key`` returned (its error raised here), or ``read()`` now where none was started
    or it has not begun yet (so that blocks in several threads never wait in the read-ahead thread's queue)."""
    ahead = _reads.pop(key, None)
    if ahead is None or ahead.cancel():
        return read()
    return ahead.result()
