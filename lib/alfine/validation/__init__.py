"""Validation: scores of a run's checkpoints on its validation datasets, and the best per criterion.

:mod:`.scores` keeps ``validation.jsonl``; :mod:`.selection` chooses and stores ``best.json``
(:func:`best_for` is what ``--iteration best`` reads); :mod:`.plot` draws ``validation.png``;
:mod:`.run` predicts, post-processes and scores (imports the inference code on use).
"""

from .scores import ValidationLog, flat_scores
from .selection import best_for, keep_iterations, main_metric, read_best, select_best, write_best

__all__ = ["ValidationLog", "best_for", "flat_scores", "keep_iterations", "main_metric", "read_best",
           "select_best", "write_best"]
