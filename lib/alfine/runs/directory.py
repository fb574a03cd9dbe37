"""A run directory (any fsspec URL): its config, lock, statistics and checkpoint files, and which checkpoint
an iteration argument means.

::

    RUN/run.json              the resolved run config (a different one is refused)
    RUN/checkpoints/N.pt      model, optimiser, scheduler and RNG state after N iterations
    RUN/stats.jsonl           one line per iteration (loss, learning rate, step time, data wait), added
                              every 10 iterations (at most every 5 s) and at checkpoints
    RUN/loss.png              the loss curve
    RUN/snapshots.zarr/N/     raw, labels, target, weights and prediction of a batch
    RUN/validation.jsonl      validation scores, one line per (iteration, dataset, post-processing parameters)
    RUN/best.json             the best iteration and parameters per metric (:mod:`alfine.runs.best`)
    RUN/validation.png        the validation metrics over iterations
    RUN/validation/N.zarr/    validation predictions and segmentations (best iterations and the latest only)
    RUN/.lock                 held while a trainer works on the run
"""

from __future__ import annotations

import json
import os
import socket
import time

from ..configs import from_dict, to_dict
from ..errors import UserError
from ..files import write_whole
from ..training.config import RunConfig, same_run

STALE_LOCK_SECONDS = 15 * 60


class RunDirectory:
    """The files of one run."""

    def __init__(self, url: str):
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocol or "local" in protocol
        self._lock_file = None

    def file(self, name: str) -> str:
        return f"{self.path}/{name}"

    # -- config ------------------------------------------------------------------------------
    def write_config(self, run: RunConfig) -> None:
        """Record ``run``; a directory holding another run (other than its iterations) is refused."""
        self.fs.makedirs(self.path, exist_ok=True)
        existing = self.read_config()
        if existing is not None and not same_run(existing, run):
            raise UserError(f"{self.url} holds another run ({existing.name!r}, a different config); "
                            "use another --run directory, or the same config to resume")
        self.write_text("run.json", json.dumps(to_dict(run), indent=2) + "\n")

    def config(self) -> RunConfig:
        """The run recorded in ``run.json``; a :class:`UserError` naming the directory when there is none."""
        run = self.read_config()
        if run is None:
            raise UserError(f"{self.url} is not a run directory (no run.json)")
        return run

    def read_config(self) -> RunConfig | None:
        if not self.fs.exists(self.file("run.json")):
            return None
        return from_dict(RunConfig, json.loads(self.fs.cat_file(self.file("run.json"))), f"{self.url}/run.json")

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a file whole or not at all (:func:`alfine.files.write_whole`)."""
        write_whole(f"{self.url}/{name}", data)

    # -- lock --------------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the run for this process; another live trainer on the same run is refused."""
        self.fs.makedirs(self.path, exist_ok=True)
        if self.local:
            import fcntl

            handle = open(self.file(".lock"), "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the OS if we die
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                message = f"{self.url} is being trained by {holder}; two trainers on one run are refused"
                raise UserError(message) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            self._lock_file = handle
            return
        lock = self.file(".lock")
        if self.fs.exists(lock):
            holder = json.loads(self.fs.cat_file(lock))
            if time.time() - holder["time"] < STALE_LOCK_SECONDS:
                raise UserError(f"{self.url} is being trained by pid {holder['pid']} on {holder['host']} "
                                f"(lock refreshed {int(time.time() - holder['time'])} s ago); two trainers are refused")
        self.refresh_lock()

    @property
    def lock_fd(self) -> int | None:
        """The file descriptor holding a local lock (forked workers close their copy of it)."""
        return self._lock_file.fileno() if self._lock_file is not None else None

    def refresh_lock(self) -> None:
        """Keep a remote lock fresh (a lock not refreshed for 15 minutes counts as abandoned)."""
        if not self.local:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
            self.fs.pipe_file(self.file(".lock"), json.dumps(holder).encode())

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        elif not self.local and self.fs.exists(self.file(".lock")):
            self.fs.rm(self.file(".lock"))

    # -- checkpoints and stats -----------------------------------------------------------------
    def checkpoints(self) -> list[int]:
        """The iterations with a checkpoint, ascending."""
        folder = self.file("checkpoints")
        if not self.fs.exists(folder):
            return []
        names = (p.rpartition("/")[2] for p in self.fs.ls(folder, detail=False))
        return sorted(int(n[:-3]) for n in names if n.endswith(".pt") and n[:-3].isdigit())

    def checkpoint_path(self, iteration: int) -> str:
        """The file system path of checkpoint ``iteration`` (in :attr:`fs`)."""
        return self.file(f"checkpoints/{iteration}.pt")

    def checkpoint_url(self, iteration: int) -> str:
        """The URL of checkpoint ``iteration``, with its protocol (what fsspec and other processes open)."""
        return self.fs.unstrip_protocol(self.checkpoint_path(iteration))

    def choose_checkpoint(self, iteration: int | str | None = None, criterion: str | None = None) -> int:
        """The checkpoint ``iteration`` means: a number (that checkpoint), ``"best"`` (validation's best for
        ``criterion``, default the main metric: :func:`alfine.runs.best.best_for`) or None (the latest); a
        :class:`UserError` when there is none."""
        if str(iteration) == "best":
            from .best import best_for

            return int(best_for(self.url, criterion)["iteration"])
        available = self.checkpoints()
        if not available:
            raise UserError(f"{self.url} has no checkpoints yet: train it first (alfine-train --run {self.url})")
        if iteration is None:
            return available[-1]
        try:
            number = int(iteration)
        except ValueError:
            raise UserError(f"--iteration {iteration!r}: expected a checkpoint number or 'best'") from None
        if number not in available:
            raise UserError(f"{self.url} has no checkpoint {number}; it has {available}")
        return number

    def read_stats(self, up_to: int | None = None) -> list[dict]:
        """The stats lines (of iterations ``<= up_to``)."""
        if not self.fs.exists(self.file("stats.jsonl")):
            return []
        lines = [json.loads(line) for line in self.fs.cat_file(self.file("stats.jsonl")).decode().splitlines() if line]
        return [s for s in lines if up_to is None or s["iteration"] <= up_to]

    def write_stats(self, stats: list[dict]) -> None:
        self.write_text("stats.jsonl", "".join(json.dumps(s) + "\n" for s in stats))

    def append_stats(self, stats: list[dict], new: int) -> None:
        """Add the last ``new`` lines of ``stats`` (all the run's stats so far) to ``stats.jsonl``: appended on
        a local disk, the file written whole elsewhere (object stores cannot append)."""
        if not self.local:
            self.write_stats(stats)
            return
        with open(self.file("stats.jsonl"), "a") as handle:
            handle.write("".join(json.dumps(s) + "\n" for s in stats[len(stats) - new:]))
