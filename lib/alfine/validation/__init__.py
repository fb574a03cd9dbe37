"""Validation: scores of a run's checkpoints on its validation datasets, and the best per criterion.

:mod:`.scores` keeps ``validation.jsonl``; :mod:`.selection` chooses and stores ``best.json``
(``best_for`` and ``read_best`` come from :mod:`alfine.runs.best`); :mod:`.plot` draws ``validation.png``;
:mod:`.run` predicts, post-processes and scores (imports the inference code on use).
"""

from ..runs.best import best_for, read_best
from .scores import ValidationLog, flat_scores
from .selection import keep_iterations, main_metric, select_best, write_best

__all__ = ["ValidationLog", "best_for", "flat_scores", "keep_iterations", "main_metric", "read_best",
           "select_best", "write_best"]
