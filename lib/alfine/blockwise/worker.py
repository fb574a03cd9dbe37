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
        self._checked = -math.inf  # when the stop record was last read
        self._stopped = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_markers": None, "_checked": -math.inf, "_stopped": False}

    def _stop_recorded(self) -> bool:
        """Whether the job stops (read at most every STOP_CHECK seconds: blocks run after a stop are harmless,
        their bad input stops them again, and small blocks do not pay a file read each)."""
        now = time.monotonic()
        if not self._stopped and now - self._checked >= STOP_CHECK:
            self._checked = now
            self._stopped = self._markers.stopped() is not None
        return self._stopped

    def __call__(self, daisy_block) -> None:
        # daisy's block of the task of daisy_ids: its number is the block's id (checked to agree), else its region
        block_id = daisy_block.block_id[1] if self.daisy_numbers else id_of_region(daisy_block.write_roi)
        block = Block(block_id, self.layout)  # an id of the layout: no range check
        if self._markers is None:
            self._markers = DoneMarkers(self.markers_url, self.layout)
        if self._stop_recorded():
            return  # a block met a deterministic error: the job stops; this block stays not done
        for attempt in range(self.max_retries + 1):
            try:
                self.process(block)
            except UserError as e:  # the same in every block: tell the scheduler's process, do not retry
                self._markers.stop(f"block {block.id}: {e}")
                self._stopped = True
                return
            except Exception as e:  # the worker's log (a file) gets the traceback, credentials blanked
                import traceback

                from ..redaction import redact

                log.warning("block %d failed (attempt %d of %d): %s", block.id, attempt + 1, self.max_retries + 1,
                            redact(traceback.format_exc()))
                if attempt == self.max_retries:
                    self._markers.fail(block.id, redact(f"block {block.id}: {type(e).__name__}: {e}"))
            else:
                self._markers.append(block.id)
                return
