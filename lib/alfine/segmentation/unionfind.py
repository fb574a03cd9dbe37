"""The objects that pairs of equivalent ids join (connected components of the pair graph)."""

from __future__ import annotations

import numpy as np


def import_in_background() -> None:
    """Start importing what :func:`join` needs (scipy's sparse graphs: about 0.3 s, seconds on a busy machine)
    in a thread, so that a caller busy with other work meanwhile finds it imported; returns at once."""
    import threading

    threading.Thread(target=_import, name="import scipy.sparse.csgraph", daemon=True).start()


def _import() -> None:
    import scipy.sparse.csgraph  # noqa: F401


def join(ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The root of every id of the sorted unique uint64 array ``ids`` after joining ``pairs``.

    ``pairs`` is ``[P, 2]`` and holds only ids of ``ids``. Ids joined by a chain of pairs get the
    same root, the smallest id among them; an id in no pair is its own root. Linear in the
    number of ids and pairs (``scipy.sparse.csgraph.connected_components``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.asarray(ids, dtype=np.uint64)
    pairs = np.asarray(pairs, dtype=np.uint64).reshape(-1, 2)
    if len(ids) == 0:
        return ids.copy()
    nodes = np.searchsorted(ids, pairs)
    if len(pairs) and (nodes.max() >= len(ids) or not np.array_equal(ids[nodes], pairs)):
        raise ValueError("every id of a pair must be one of ids")
    graph = coo_matrix((np.ones(len(pairs), np.int8), (nodes[:, 0], nodes[:, 1])), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    # ids are sorted, so the first id of each component is its smallest
    _, first = np.unique(component, return_index=True)
    return ids[first][component]
