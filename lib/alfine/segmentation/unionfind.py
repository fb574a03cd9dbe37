"""The objects that pairs of equivalent ids join (connected components of the pair graph)."""

from __future__ import annotations

import numpy as np


def join(ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The root of every id of the sorted unique uint64 array ``ids`` after joining ``pairs``.

    ``pairs`` is ``[P, 2]`` and holds only ids of ``ids``. Ids joined by a chain of pairs get the
    same root, the smallest id among them; an id in no pair is its own root. Vectorised union-find
    (numpy only: scipy's graphs cost 0.3 s of imports, more than relabelling a small volume takes):
    each round hooks the larger of the two roots of every pair still apart to the smaller, then
    points every id at its root; each round leaves fewer roots (about half as many), so few rounds.
    """
    ids = np.asarray(ids, dtype=np.uint64)
    pairs = np.asarray(pairs, dtype=np.uint64).reshape(-1, 2)
    if len(ids) == 0:
        return ids.copy()
    nodes = np.searchsorted(ids, pairs)
    if len(pairs) and (nodes.max() >= len(ids) or not np.array_equal(ids[nodes], pairs)):
        raise ValueError("every id of a pair must be one of ids")
    parent = np.arange(len(ids), dtype=np.intp)  # parent[i] <= i always: the smallest index of a set is its root
    first, second = nodes[:, 0].astype(np.intp), nodes[:, 1].astype(np.intp)
    while len(first):
        a, b = parent[first], parent[second]  # the roots (parent is compressed: every index points at its root)
        apart = a != b
        if not apart.any():
            break
        first, second, a, b = first[apart], second[apart], a[apart], b[apart]  # joined pairs stay joined
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return ids[parent]
