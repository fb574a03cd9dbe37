"""Operations on instance label arrays (0 = background)."""

from __future__ import annotations

import fastremap
import numpy as np

from ..errors import UserError


def remove_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """A copy of ``labels`` in which every object (nonzero id) of fewer than ``min_size`` voxels is 0.

    Other ids are unchanged; ``min_size <= 1`` removes nothing.
    """
    labels = np.asarray(labels)
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise UserError(f"min_size must be a non-negative integer, got {min_size!r}")
    if min_size <= 1:
        return labels.copy()
    ids, counts = fastremap.unique(labels, return_counts=True)
    return fastremap.mask(labels, ids[(counts < min_size) & (ids != 0)])


def finish_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` without objects smaller than ``min_size``, renumbered 1..n as uint64.

    Ids follow the order in which objects first appear in C order; 0 stays background.
    """
    kept = remove_small_objects(labels, min_size)
    renumbered, _ = fastremap.renumber(kept, preserve_zero=True, in_place=True)
    return renumbered.astype(np.uint64, copy=False)
