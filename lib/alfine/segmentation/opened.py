"""Volumes a block function opens once per process and reuses for every block it processes."""

from __future__ import annotations

import threading


class OpensVolumes:
    """A mixin for picklable block functions: :meth:`volume` opens a URL once in each process (opening costs a
    few metadata reads, about 5-15 ms, against tens of ms of work per block) and shares it between the threads
    that run blocks; pickling (to a worker) leaves the opened volumes behind."""

    def volume(self, url: str, mode: str = "r"):
        """The volume at ``url`` opened with ``mode``, the same object on every call in this process."""
        from ..volumes import open_volume

        lock = self.__dict__.setdefault("_volumes_lock", threading.Lock())  # setdefault: one lock for all threads
        with lock:
            opened = self.__dict__.setdefault("_volumes", {})
            if (url, mode) not in opened:
                opened[url, mode] = open_volume(url, mode=mode)
            return opened[url, mode]

    def share(self, url: str, mode: str, volume) -> None:
        """Use ``volume``, open in this process already (the command's own), for ``url`` opened with ``mode``: blocks
        run here open nothing again (measured: a block thread's first open took 11-15 ms beside another block's
        labelling, on the critical path of a small job); a worker process still opens its own."""
        self.__dict__.setdefault("_volumes", {})[url, mode] = volume

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_volumes", "_volumes_lock")}
