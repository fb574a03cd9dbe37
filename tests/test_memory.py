"""alfine.memory: a command's process makes at most the malloc arenas it is allowed (glibc)."""

import os
import subprocess
import sys

import pytest

from alfine.memory import limit_malloc_arenas

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
