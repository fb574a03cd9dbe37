"""Done markers: which blocks of a layout are finished, kept beside the output.

A marker directory holds ``layout.json`` (the layout that started the output) and, under
``done/``, the finished blocks: an empty file named by its id for a block run alone
(``--block-id``), and, for a process that runs many blocks (a whole-volume run's workers), one
journal ``HOST-PID.ids`` to which finished blocks' ids are appended as lines
(:mod:`~alfine.blockwise.journal`: on local disks; on object stores, which cannot append, one empty
file per block). A killed process loses at most the records of the blocks it finished in its last
tenth of a second, which a re-run computes again, and marking a block costs no new file.
Re-running with the same layout skips finished blocks; a different layout is refused rather than
mixed. Where the output records a creation token (``alfine_created``, new each time the array is
created), ``output`` holds the token the markers belong to: markers of an array since deleted and
created again (``--overwrite``) are stale and dropped, so its blocks are computed again rather than
skipped and left empty. Works on any fsspec URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from functools import cached_property

from ..errors import UserError
from .journal import JOURNAL, Journal, journal_ids
from .layout import BlockLayout

log = logging.getLogger(__name__)


class DoneMarkers:
    """The finished blocks of ``layout`` for one output, recorded under ``url``."""

    def __init__(self, url: str, layout: BlockLayout | None, output_token: str | None = None):
        self.url = url.rstrip("/")
        self.layout = layout
        self.output_token = output_token
        self._journal: Journal | None = None  # this process's journal, made at its first append

    # -- storage: the local disk directly (no fsspec in a worker's path), else fsspec -----------

    @cached_property
    def local(self) -> str | None:
        """The folder of the markers when it is on a local disk (read and written without fsspec), else None."""
        if self.url.startswith("file://"):
            return os.path.abspath(self.url.removeprefix("file://"))
        return None if "://" in self.url or "::" in self.url else os.path.abspath(self.url)

    @cached_property
    def _fs_path(self):
        import fsspec

        return fsspec.core.url_to_fs(self.url)

    @property
    def fs(self):
        return self._fs_path[0]

    @property
    def path(self) -> str:
        return self._fs_path[1]

    def _read(self, name: str) -> bytes:
        """The bytes of ``name`` (under the markers); FileNotFoundError when it is missing."""
        if self.local is None:
            return self.fs.cat_file(f"{self.path}/{name}")
        with open(f"{self.local}/{name}", "rb") as f:
            return f.read()

    def _write(self, name: str, data: bytes) -> None:
        if self.local is None:
            self.fs.pipe_file(f"{self.path}/{name}", data)
            return
        path = f"{self.local}/{name}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not data:
            open(path, "wb").close()
            return
        with open(f"{path}.{os.getpid()}.tmp", "wb") as f:  # readers see all of it or nothing
            f.write(data)
        os.replace(f"{path}.{os.getpid()}.tmp", path)

    def _exists(self, name: str) -> bool:
        if self.local is None:
            return self.fs.exists(f"{self.path}/{name}")
        return os.path.exists(f"{self.local}/{name}")

    def _list(self, name: str) -> list[str]:
        """The names in the folder ``name`` (none when it is missing)."""
        if self.local is None:
            if not self.fs.exists(f"{self.path}/{name}"):
                return []
            return [p.rpartition("/")[2] for p in self.fs.ls(f"{self.path}/{name}", detail=False)]
        try:
            return os.listdir(f"{self.local}/{name}")
        except FileNotFoundError:
            return []

    def _remove(self, name: str) -> None:
        """Remove the file or folder ``name``, if it is there."""
        if self.local is None:
            if self.fs.exists(f"{self.path}/{name}"):
                self.fs.rm(f"{self.path}/{name}", recursive=True)
            return
        path = f"{self.local}/{name}"
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)

    # -- the record --------------------------------------------------------------------------

    def start(self) -> None:
        """Record the layout, or check it against the recorded one (refusing a mismatch); drop the
        markers of another creation of the output (see the module)."""
        self._forget_stale()
        mine = self.layout.to_json()
        theirs = self.recorded_layout()
        if theirs is not None:
            if theirs != mine:
                raise UserError(
                    f"{self.url}: this output was started with blocks {theirs}, this run asks for {mine}; "
                    "re-run with the same --roi/--block-shape, or remove the output and its markers to start over"
                )
            return
        self._write("layout.json", (json.dumps(mine, indent=2) + "\n").encode())

    def recorded_layout(self) -> dict | None:
        """The layout recorded by the run that started the output (``BlockLayout.to_json``), or None."""
        try:
            return json.loads(self._read("layout.json"))
        except FileNotFoundError:
            return None

    def stale(self) -> bool:
        """Whether the markers belong to an earlier creation of the output (see the module); reads only."""
        try:
            return self.output_token is not None and self._read("output").decode().strip() != self.output_token
        except FileNotFoundError:
            return False

    def _forget_stale(self) -> None:
        if self.output_token is None:
            return
        if self.stale():
            log.warning("%s: the output was created anew since these markers were written; "
                        "its blocks are computed again", self.url)
            for name in ("done", "failed", "stop", "layout.json"):
                self._remove(name)
        elif self._exists("output"):
            return
        self._write("output", self.output_token.encode())

    def done_ids(self) -> set[int]:
        """The ids of the finished blocks (marked alone or appended to a journal)."""
        ids: set[int] = set()
        for name in self._list("done"):
            if name.isdigit():
                ids.add(int(name))
            elif name.endswith(JOURNAL):
                try:
                    ids.update(journal_ids(self._read(f"done/{name}")))
                except FileNotFoundError:  # removed meanwhile (a new creation of the output)
                    pass
        return ids

    def mark(self, block_id: int) -> None:
        """Record block ``block_id`` as finished, as a file of its own (a block run alone; call after its output
        is written)."""
        self._write(f"done/{block_id}", b"")

    def append(self, block_id: int) -> None:
        """Record block ``block_id`` as finished, one of many this process finishes (call after its output is
        written): a line of this process's journal on a local disk, written within a tenth of a second or at
        :meth:`close` (see :mod:`~alfine.blockwise.journal`), else :meth:`mark`."""
        self.recorder()(block_id)

    def recorder(self) -> Callable[[int], None]:
        """:meth:`append` as one function, for a worker to call for each block it finishes."""
        if self.local is None:
            return self.mark
        if self._journal is None:
            self._journal = Journal(f"{self.local}/done")
        return self._journal.append

    def close(self) -> None:
        """Write and close this process's journal (the next :meth:`append` opens it again)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def is_done(self, block_id: int) -> bool:
        return self._exists(f"done/{block_id}") or block_id in self.done_ids()

    def stop(self, message: str) -> None:
        """Record that the job must stop with ``message`` (a block met bad input; workers check it)."""
        self._write("stop", message.encode())

    def stopped(self) -> str | None:
        """The message of :meth:`stop`, or None while the job may go on (workers check it before every block)."""
        try:
            return self._read("stop").decode()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the output for one whole-volume run: a second one started while this one runs is refused (a
        :class:`UserError`). Locally an OS lock on ``lock`` (released if the process dies); on object stores
        there is no such lock and concurrent runs are not detected. ``--block-id`` runs take no lock: a job
        array runs different blocks at once."""
        if self.local is None:
            yield
            return
        import fcntl

        os.makedirs(self.local, exist_ok=True)
        with open(f"{self.local}/lock", "a+") as handle:
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
        self._write(f"failed/{block_id}", message.encode())

    def failures(self) -> dict[int, str]:
        """The blocks recorded by :meth:`fail` and their messages."""
        names = [n for n in self._list("failed") if n.isdigit()]
        return {int(n): self._read(f"failed/{n}").decode() for n in names}

    def clear_failures(self) -> None:
        self._remove("failed")

    def clear_stop(self) -> None:
        self._remove("stop")

    def clear_workers(self) -> None:
        """Forget the ends recorded by an earlier run's launched workers (``workers/``; see
        :class:`~alfine.blockwise.launch.LaunchedWorker`), whose ids the next run's workers reuse."""
        self._remove("workers")


def markers_url_for(output_url: str) -> str:
    """Where the markers of the output volume ``output_url`` live: ``CONTAINER/.alfine-blocks/ARRAY``."""
    from ..volumes import parse_volume_url

    parsed = parse_volume_url(output_url)
    return f"{parsed.container}/.alfine-blocks/{parsed.path}"
