"""One process's journal of finished blocks: ``done/HOST-PID.ids`` beside the done markers, one id a line.

A process that runs many blocks (a whole-volume run's worker, or the one-process loop) appends each
finished block's id. The lines are written in batches, not one write per block: an id is written at once
when the journal was last written at least :data:`FLUSH_EVERY` seconds before, else together with the
next one that is, and in any case by :meth:`Journal.close` and at the process's normal exit. A block is
done only once its line is written, so a process killed in between loses the records of the blocks it
finished in the last :data:`FLUSH_EVERY` seconds (never more: those blocks ran after the last write), and
a re-run computes them again; block functions are idempotent (a block writes the same bytes each time),
so the result is the same bytes. A slow block (longer than :data:`FLUSH_EVERY`) is recorded the moment
it ends. A line torn by a kill while it was written is left out by :func:`journal_ids`.
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import time

JOURNAL = ".ids"
"""The ending of a process's journal in ``done/``."""

FLUSH_EVERY = 0.1
"""Seconds of finished blocks a journal may hold before writing them (what a kill can lose per process)."""


class Journal:
    """This process's journal in the folder ``done`` (created at the first write). Not thread-safe: one thread
    appends."""

    def __init__(self, done: str):
        self.done = done
        self._fd: int | None = None
        self._pending = bytearray()
        self._written = -FLUSH_EVERY  # when the journal was last written (time.monotonic)

    def append(self, block_id: int) -> None:
        """Record block ``block_id`` as finished (call after its output is written); written as the module says."""
        self._pending += b"%d\n" % block_id
        now = time.monotonic()
        if now - self._written >= FLUSH_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Write the ids not yet written."""
        if self._pending:
            if self._fd is None:
                host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname())
                os.makedirs(self.done, exist_ok=True)
                self._fd = os.open(f"{self.done}/{host}-{os.getpid()}{JOURNAL}", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                   0o644)
                atexit.register(self.close)  # a worker ends by returning from its loop: its last ids are written
            data = bytes(self._pending)
            self._pending.clear()
            while data:  # whole lines: a short write goes on where it stopped
                data = data[os.write(self._fd, data):]
        self._written = time.monotonic() if now is None else now

    def close(self) -> None:
        """Write what is pending and close the journal (a next :meth:`append` opens it again)."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            atexit.unregister(self.close)


def journal_ids(data: bytes) -> set[int]:
    """The block ids of a journal: its complete lines (a line being written when a process died is left out)."""
    lines = data.split(b"\n")[:-1]
    return {int(line) for line in lines if line.isdigit()}
