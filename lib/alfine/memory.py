"""Process-wide memory settings of alfine's commands."""

from __future__ import annotations

import os

M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter: the most malloc arenas the process makes (its default is 8 per core)."""
M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter: free memory at the top of a heap above this many bytes goes back to the system."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter: allocations of this many bytes or more get memory of their own from the system."""
MMAP_THRESHOLD = 32 * 2**20
"""The most glibc allows for ``M_MMAP_THRESHOLD`` on 64-bit systems (half its largest heap)."""
TRIM_THRESHOLD = 128 * 2**20
"""Free memory a process keeps for its next blocks (see :func:`keep_freed_memory`; 512 MiB gave the same speed and
a peak of relabelling 512³ 8-30 MB higher)."""


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Have glibc's malloc make at most ``arenas`` arenas (default: one per core) from now on; whether it was set.

    Every thread that allocates (a command's block threads, tensorstore's and zarr's pools) otherwise gets an
    arena of its own, which keeps the large block buffers it freed for reuse: a process's resident memory then
    grows with the number of threads that ever touched a block, not with the blocks in flight (measured:
    postprocess-block of 512³ with 2 workers peaked at 267-308 MB, with 2 arenas at 201-211 MB, as fast).
    Left alone where the user set ``MALLOC_ARENA_MAX`` (glibc applied it already) and off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    count = arenas if arenas is not None else len(os.sched_getaffinity(0))
    return bool(mallopt(M_ARENA_MAX, max(1, count)))


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory of freed arrays under 32 MiB for the next ones (up to
    :data:`TRIM_THRESHOLD` free at once) instead of giving it back to the system; whether it was set.

    A block's arrays (a 128³ block of uint64 labels is 16 MiB) are otherwise mapped afresh for every block
    and unmapped when freed, and the system then clears every page of them again on first touch: a minor
    page fault each 4 KiB, which on 2 cores made a third of the CPU time of relabelling 254³ (measured: 107-148
    thousand faults, 0.30-0.35 s of system time; kept: 40 thousand and 0.17 s, 10 % less wall time). The peak
    stays that of the blocks (what is kept is what the next block takes; relabelling 512³ peaked at 232-290 MB,
    233 MB before). Left alone where the user set either
    threshold (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``) and off glibc."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or any(
            name in tunables for name in ("mmap_threshold", "trim_threshold")):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


_freezing = False


def freeze_at_first_full_collection() -> None:
    """Have Python's first full garbage collection from now on freeze the objects then alive instead of scanning
    them (``gc.freeze``): later full collections skip them, while everything made afterwards is collected as usual.

    A command imports its libraries when it starts working (numpy, zarr, tensorstore, alfine: about a million
    objects), and soon after, Python runs one full collection over them all: 16-25 ms on these machines, a fifth of
    postprocess-block and relabel of a small volume together (measured on 64³: 96-107 ms with it, 66-77 ms without).
    The objects alive at that moment are the modules and the command's setup, which live as long as the process
    (cyclic garbage not yet collected then is kept too: once, and little). Once per process: a second call (a test
    process running many commands) changes nothing."""
    import gc

    global _freezing
    if _freezing:
        return
    _freezing = True

    def freeze(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2 and freeze in gc.callbacks:
            gc.callbacks.remove(freeze)
            gc.freeze()  # before the collection runs (callbacks come first): it finds nothing left to scan

    gc.callbacks.append(freeze)


def _mallopt():
    """glibc's ``mallopt``, or None off glibc (macOS, musl without it)."""
    import ctypes

    try:
        return ctypes.CDLL(None).mallopt  # this process's own symbols: no search (ctypes.util starts programs)
    except (OSError, AttributeError):
        return None
