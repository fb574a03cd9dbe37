"""Runs: the run directory and everything about it that more than one command needs.

- :class:`RunDirectory` (:mod:`.directory`): ``run.json`` (read, or refused where there is none), the lock
  that keeps a second trainer out, stats, and checkpoints: which one an iteration argument means (a number,
  ``best``, or the latest) and their URLs;
- :mod:`.best`: ``best.json``, validation's best checkpoint and post-processing per criterion;
- :func:`choose_device`: the torch device a run's model uses.

Nothing here imports torch at import time.
"""

from .best import best_for, read_best
from .device import choose_device
from .directory import RunDirectory

__all__ = ["RunDirectory", "best_for", "choose_device", "read_best"]
