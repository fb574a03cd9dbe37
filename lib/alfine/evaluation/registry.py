"""Which way every score points, so that model selection never picks the worst.

Every key that :meth:`~alfine.evaluation.instance.Contingency.scores`,
:meth:`~alfine.evaluation.semantic.ConfusionCounts.scores`,
:func:`~alfine.evaluation.semantic.hausdorff` and
:func:`~alfine.evaluation.semantic.evaluate_semantic` produce is either a metric in
:data:`HIGHER_IS_BETTER` or a count in :data:`COUNTS` that describes the evaluation
rather than scoring it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar

from ..errors import UserError

HIGHER_IS_BETTER: dict[str, bool] = {
    # instance scores
    "voi_split": False,
    "voi_merge": False,
    "voi": False,
    "adapted_rand_error": False,
    "rand_precision": True,
    "rand_recall": True,
    "false_splits": False,
    "false_merges": False,
    "match_precision": True,
    "match_recall": True,
    "match_f1": True,
    # semantic scores
    "f1": True,
    "jaccard": True,
    "precision": True,
    "recall": True,
    "false_positive_rate": False,
    "false_negative_rate": False,
    "hausdorff": False,
    "hausdorff95": False,
}

COUNTS = frozenset({"voxels", "truth_objects", "predicted_objects"})
"""Keys of score dicts that are not metrics: no value of them is better than another."""

Key = TypeVar("Key")


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` for ``metric``; NaN is worse than any number.

    An unknown metric name is a :class:`~alfine.errors.UserError` listing the known ones.
    """
    higher = _higher_is_better(metric)
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if higher else a < b


def best(metric: str, values: Mapping[Key, float]) -> Key:
    """The key of the best value for ``metric`` (the first one on ties; NaN never wins over a number)."""
    _higher_is_better(metric)
    if not values:
        raise ValueError(f"no values to choose the best {metric} from")
    keys = iter(values)
    chosen = next(keys)
    for key in keys:
        if better(metric, values[key], values[chosen]):
            chosen = key
    return chosen


def _higher_is_better(metric: str) -> bool:
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise UserError(f"unknown metric {metric!r}; known: {', '.join(sorted(HIGHER_IS_BETTER))}") from None
