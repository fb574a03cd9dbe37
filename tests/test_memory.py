"""alfine.memory: a command's process makes at most the malloc arenas it is allowed and keeps the memory of freed
block buffers for the next block (glibc)."""

import os
import subprocess
import sys

import pytest

from alfine.memory import keep_freed_memory, limit_malloc_arenas

# 8 threads allocate at once; the number of arenas malloc made is read from glibc's malloc_info
ARENAS_SCRIPT = """
import ctypes, ctypes.util, os, sys, tempfile, threading
import numpy as np
from alfine.memory import limit_malloc_arenas
if sys.argv[1] != "default":
    assert limit_malloc_arenas(int(sys.argv[1]))
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    arrays = [np.ones(2**16) for _ in range(8)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
stream = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
os.remove(path)
"""


def _arenas(limit: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", ARENAS_SCRIPT, limit], capture_output=True, text=True, check=True,
                          env=env)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_threads_share_the_arenas_allowed():
    assert _arenas("default") > 2  # the default: an arena per thread that allocates at once
    assert _arenas("2") == 2


def test_a_users_malloc_arena_max_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(1) is False


# a block's buffers of several sizes (MiB), allocated, written and freed block after block; minor page faults of each
BLOCKS_SCRIPT = """
import resource, sys
import numpy as np
from alfine.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for block in range(5):
    before = faults()
    arrays = [np.ones(n * 2**20 // 8) for n in (8, 16, 24, 2, 16)]
    del arrays
    counts.append(faults() - before)
print(*counts)
"""


def _faults(mode: str, **env) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", BLOCKS_SCRIPT, mode], capture_output=True, text=True, check=True,
                          env={**clean, **env})
    return [int(c) for c in done.stdout.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_block_buffers_are_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    assert default[0] > 1000 and kept[0] > 1000  # the first block faults its 66 MiB in either way
    assert min(default[1:]) > default[0] / 4  # glibc's default gives much of it back and faults it in again
    assert max(kept[1:]) < kept[0] / 20  # kept: the next blocks take the same memory


def test_a_users_malloc_thresholds_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert keep_freed_memory() is False


FREEZE_SCRIPT = """
import gc, weakref
from alfine.memory import freeze_at_first_full_collection
gc.collect()
before = gc.get_freeze_count()
freeze_at_first_full_collection()
freeze_at_first_full_collection()  # once per process
kept = [[i] for i in range(1000)]  # alive at the first full collection: frozen
gc.collect(1)
young = gc.get_freeze_count()  # a young collection freezes nothing
gc.collect()
frozen = gc.get_freeze_count()
class Node:
    pass
cycle = Node(); cycle.me = cycle; alive = weakref.ref(cycle); del cycle  # garbage made afterwards
gc.collect()
print(before, young, frozen > 1000, alive() is None, frozen == gc.get_freeze_count(), len(gc.callbacks))
"""


def test_the_first_full_collection_freezes_what_is_alive_and_later_garbage_is_still_collected():
    done = subprocess.run([sys.executable, "-c", FREEZE_SCRIPT], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "0", "True", "True", "True", "0"]
