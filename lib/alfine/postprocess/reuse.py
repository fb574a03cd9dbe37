"""The last result of a costly step, kept for a call with the same inputs.

Validation sweeps a method over a grid in which most parameters only refine one core result
(mutex watershed at one bias, then fragments merged and holes filled in several ways); keeping
the core result of the latest inputs makes such a sweep run the core step once per core setting.
A key holds a digest of the input arrays' bytes, so a changed array is never mistaken for an old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable

import numpy as np

_LAST: dict[str, tuple[Hashable, np.ndarray]] = {}


def digest(array: np.ndarray) -> str:
    """A digest of ``array``'s dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(f"{array.dtype.str}{array.shape}".encode(), digest_size=16)
    h.update(array.view(np.uint8).reshape(-1))
    return h.hexdigest()


def last_or_compute(step: str, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, or a copy of the result ``step`` last returned when its key was ``key`` too."""
    kept = _LAST.get(step)
    if kept is None or kept[0] != key:
        kept = (key, compute())
        _LAST[step] = kept
    return kept[1].copy()
