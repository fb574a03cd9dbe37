"""Done markers: which blocks of a layout are finished, kept beside the output.

A marker directory holds ``layout.json`` (the layout that started the output) and one empty
file per finished block under ``done/``. Re-running with the same layout skips finished
blocks; a different layout is refused rather than mixed. Where the output records a creation
token (``alfine_created``, new each time the array is created), ``output`` holds the token the
markers belong to: markers of an array since deleted and created again (``--overwrite``) are
stale and dropped, so its blocks are computed again rather than skipped and left empty.
Works on any fsspec URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator

from ..errors import UserError
from .layout import BlockLayout

log = logging.getLogger(__name__)


class DoneMarkers:
    """The finished blocks of ``layout`` for one output, recorded under ``url``."""

    def __init__(self, url: str, layout: BlockLayout, output_token: str | None = None):
        import fsspec

        self.url = url.rstrip("/")
        self.layout = layout
        self.output_token = output_token
        self.fs, self.path = fsspec.core.url_to_fs(self.url)

    def start(self) -> None:
        """Record the layout, or check it against the recorded one (refusing a mismatch); drop the
        markers of another creation of the output (see the module)."""
        self._forget_stale()
        layout_file = f"{self.path}/layout.json"
        mine = self.layout.to_json()
        if self.fs.exists(layout_file):
            theirs = json.loads(self.fs.cat_file(layout_file))
            if theirs != mine:
                raise UserError(
                    f"{self.url}: this output was started with blocks {theirs}, this run asks for {mine}; "
                    "re-run with the same --roi/--block-shape, or remove the output and its markers to start over"
                )
            return
        self.fs.makedirs(f"{self.path}/done", exist_ok=True)
        self.fs.pipe_file(layout_file, (json.dumps(mine, indent=2) + "\n").encode())

    def _forget_stale(self) -> None:
        if self.output_token is None:
            return
        token_file = f"{self.path}/output"
        if self.fs.exists(token_file):
            if self.fs.cat_file(token_file).decode().strip() == self.output_token:
                return
            log.warning("%s: the output was created anew since these markers were written; "
                        "its blocks are computed again", self.url)
            for name in ("done", "failed", "stop", "layout.json"):
                if self.fs.exists(f"{self.path}/{name}"):
                    self.fs.rm(f"{self.path}/{name}", recursive=True)
        self.fs.makedirs(self.path, exist_ok=True)
        self.fs.pipe_file(token_file, self.output_token.encode())

    def done_ids(self) -> set[int]:
        """The ids of the finished blocks."""
        folder = f"{self.path}/done"
        if not self.fs.exists(folder):
            return set()
        names = (p.rpartition("/")[2] for p in self.fs.ls(folder, detail=False))
        return {int(n) for n in names if n.isdigit()}

    def mark(self, block_id: int) -> None:
        """Record block ``block_id`` as finished (call after its output is written)."""
        self.fs.pipe_file(f"{self.path}/done/{block_id}", b"")

    def is_done(self, block_id: int) -> bool:
        return self.fs.exists(f"{self.path}/done/{block_id}")

    def stop(self, message: str) -> None:
        """Record that the job must stop with ``message`` (a block met bad input; workers check it)."""
        self.fs.pipe_file(f"{self.path}/stop", message.encode())

    def stopped(self) -> str | None:
        """The message of :meth:`stop`, or None while the job may go on."""
        try:
            return self.fs.cat_file(f"{self.path}/stop").decode()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the output for one whole-volume run: a second one started while this one runs is refused (a
        :class:`UserError`). Locally an OS lock on ``lock`` (released if the process dies); on object stores
        there is no such lock and concurrent runs are not detected. ``--block-id`` runs take no lock: a job
        array runs different blocks at once."""
        if "file" not in self.fs.protocol and "local" not in self.fs.protocol:
            yield
            return
        import fcntl

        os.makedirs(self.path, exist_ok=True)
        with open(f"{self.path}/lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise UserError(f"{self.url}: this output is being written by another run ({holder}); two runs "
                                "into one output at once are refused: wait for it, or stop it first") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            yield

    def fail(self, block_id: int, message: str) -> None:
        """Record that block ``block_id`` failed after its retries, with ``message``."""
        self.fs.makedirs(f"{self.path}/failed", exist_ok=True)
        self.fs.pipe_file(f"{self.path}/failed/{block_id}", message.encode())

    def failures(self) -> dict[int, str]:
        """The blocks recorded by :meth:`fail` and their messages."""
        folder = f"{self.path}/failed"
        if not self.fs.exists(folder):
            return {}
        paths = [p for p in self.fs.ls(folder, detail=False) if p.rpartition("/")[2].isdigit()]
        return {int(p.rpartition("/")[2]): self.fs.cat_file(p).decode() for p in paths}

    def clear_failures(self) -> None:
        if self.fs.exists(f"{self.path}/failed"):
            self.fs.rm(f"{self.path}/failed", recursive=True)

    def clear_stop(self) -> None:
        if self.fs.exists(f"{self.path}/stop"):
            self.fs.rm_file(f"{self.path}/stop")

    def clear_workers(self) -> None:
        """Forget the ends recorded by an earlier run's launched workers (``workers/``; see
        :class:`~alfine.blockwise.launch.LaunchedWorker`), whose ids the next run's workers reuse."""
        if self.fs.exists(f"{self.path}/workers"):
            self.fs.rm(f"{self.path}/workers", recursive=True)


def markers_url_for(output_url: str) -> str:
    """Where the markers of the output volume ``output_url`` live: ``CONTAINER/.alfine-blocks/ARRAY``."""
    from ..volumes import parse_volume_url

    parsed = parse_volume_url(output_url)
    return f"{parsed.container}/.alfine-blocks/{parsed.path}"
