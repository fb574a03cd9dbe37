"""What a daisy worker runs for each block: the block function, then the block's done marker.

Kept apart from the scheduling side (:mod:`alfine.blockwise.runner`) so that a worker process, which
imports this module to unpickle its function, starts without importing what only the scheduler needs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from ..errors import UserError
from .daisy_ids import id_of_region
from .layout import Block, BlockLayout
from .markers import DoneMarkers

STOP_CHECK = 0.1
"""Seconds between two reads of a job's stop record by one worker."""

log = logging.getLogger(__name__)


class DaisyBlockFunction:
    """The per-block function daisy calls (pickled to each worker): process, then mark done.

    Failures are handled here, not by daisy (whose workers die on an exception and print its traceback):
    a :class:`UserError` stops the job (:meth:`DoneMarkers.stop`); another error is retried
    ``max_retries`` times in this worker, then recorded (:meth:`DoneMarkers.fail`) for the scheduler's
    summary; the block stays not done either way, and the worker goes on."""

    def __init__(self, layout: BlockLayout, process: Callable[[Block], None], markers_url: str,
                 max_retries: int = 2, daisy_numbers: bool = False):
        self.layout = layout
        self.process = process
        self.markers_url = markers_url
        self.max_retries = max_retries
        self.daisy_numbers = daisy_numbers  # blocks' ids are daisy's numbers (daisy_ids), checked to agree
        self._markers: DoneMarkers | None = None  # opened once per worker, not pickled
        self._record: Callable[[int], None] | None = None  # its DoneMarkers.recorder
        self._checked = -math.inf  # when the stop record was last read
        self._stopped = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_markers": None, "_record": None, "_checked": -math.inf, "_stopped": False}

    def _open(self) -> None:
        """Open this worker's markers (at its first block)."""
        self._markers = DoneMarkers(self.markers_url, self.layout)
        self._record = self._markers.recorder()

    def _read_stop(self, now: float) -> None:
        """Read whether the job stops. Read at most every STOP_CHECK seconds: blocks run after a stop are harmless,
        their bad input stops them again, and small blocks do not pay a file read each."""
        self._checked = now
        self._stopped = self._markers.stopped() is not None

    def __call__(self, daisy_block) -> None:
        """Process the block daisy hands over and record it done. The path of a block that succeeds at once is kept
        short: on a busy machine each line of Python a block runs costs several times what it costs in a loop."""
        if self._record is None:
            self._open()
        now = time.monotonic()
        if now - self._checked >= STOP_CHECK and not self._stopped:
            self._read_stop(now)
        if self._stopped:
            return  # a block met a deterministic error: the job stops; this block stays not done
        # a block of daisy_ids' task: its number is the block's id (checked to agree), else its region says it
        block = Block(daisy_block.block_id[1] if self.daisy_numbers else id_of_region(daisy_block.write_roi),
                      self.layout)  # an id of the layout: no range check
        try:
            self.process(block)
        except Exception as e:
            self._failed(block, e)
        else:
            self._record(block.id)

    def _failed(self, block: Block, error: Exception) -> None:
        """The block whose first attempt raised ``error``: a :class:`UserError` (the same in every block) tells the
        scheduler's process and is not retried; another error is logged (the worker's log, a file, gets the
        traceback, credentials blanked) and retried, and recorded as failed after ``max_retries`` retries."""
        import traceback

        from ..redaction import redact

        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            if isinstance(error, UserError):
                self._markers.stop(f"block {block.id}: {error}")
                self._stopped = True
                return
            log.warning("block %d failed (attempt %d of %d): %s", block.id, attempt, attempts,
                        redact("".join(traceback.format_exception(error))))
            if attempt == attempts:
                self._markers.fail(block.id, redact(f"block {block.id}: {type(error).__name__}: {error}"))
                return
            try:
                self.process(block)
            except Exception as e:
                error = e
            else:
                self._record(block.id)
                return
