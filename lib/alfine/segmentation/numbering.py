"""Consecutive ids for the objects of a per-block segmentation, from its blocks' records.

Every block's record (written by the faces pass of :mod:`.relabel`) holds its ids and their
voxel counts, its *face ids* (ids on its faces or in a pair) and the pairs it found. Ids that
are no face id lie inside one block and stay single objects; face ids are joined by the pairs
(:func:`.unionfind.join`). So memory grows with the number of face objects and of one block's
ids, never with the volume, and time is linear in the records.

New ids run from 1 in block order (within a block, by smallest old id); objects smaller than
``min_size`` voxels over the whole volume get 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import fastremap
import numpy as np

from .unionfind import join

Record = dict[str, np.ndarray]


def number_objects(block_ids: Iterable[int], record: Callable[[int], Record], min_size: float = 0,
                   save_mapping: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """The sizes of the new objects (``sizes[new_id - 1]``); each block's map via ``save_mapping``.

    ``record(block)`` gives a block's ``ids`` (sorted, nonzero), ``counts``, ``face`` and ``pairs``;
    ``save_mapping(block, ids, new_ids)`` receives the block's old ids and their new ids (0:
    removed). Records are read three times (face ids, object sizes, numbering), one at a time.
    """
    block_ids = list(block_ids)
    faces, pairs = [np.zeros(0, np.uint64)], [np.zeros((0, 2), np.uint64)]
    for block in block_ids:
        r = record(block)
        faces.append(r["face"].astype(np.uint64))
        pairs.append(r["pairs"].astype(np.uint64).reshape(-1, 2))
    pairs = np.concatenate(pairs)
    face = fastremap.unique(np.concatenate(faces + [pairs.ravel()]))
    del faces
    root = join(face, pairs)
    del pairs
    roots, root_index = np.unique(root, return_inverse=True)  # root_index[i]: the object of face[i]
    total = np.zeros(len(roots), np.int64)
    for block in block_ids:
        r = record(block)
        on_face, where = _face_members(r["ids"], face)
        np.add.at(total, root_index[where], r["counts"][on_face])
    numbered = np.zeros(len(roots), np.uint64)  # the new id of each face object (0: not yet / removed)
    seen = np.zeros(len(roots), bool)
    sizes: list[np.ndarray] = []
    next_id = 1
    for block in block_ids:
        r = record(block)
        ids, counts = r["ids"].astype(np.uint64), r["counts"].astype(np.int64)
        on_face, where = _face_members(ids, face)
        objects = root_index[where]
        first = fastremap.unique(objects[~seen[objects]])  # face objects this block is the first to meet
        seen[first] = True
        # candidates: the inner ids and the newly met face objects, keyed by their smallest old id
        keys = np.concatenate([ids[~on_face], roots[first]])
        size = np.concatenate([counts[~on_face], total[first]])
        kind = np.concatenate([np.zeros((~on_face).sum(), bool), np.ones(len(first), bool)])
        index = np.concatenate([np.flatnonzero(~on_face), first])
        order = np.argsort(keys, kind="stable")
        keep = order[size[order] >= min_size]
        new = np.zeros(len(keys), np.uint64)
        new[keep] = np.arange(next_id, next_id + len(keep), dtype=np.uint64)
        next_id += len(keep)
        sizes.append(size[keep])
        numbered[index[kind]] = new[kind]
        new_ids = np.zeros(len(ids), np.uint64)
        new_ids[index[~kind]] = new[~kind]
        new_ids[on_face] = numbered[objects]
        if save_mapping is not None:
            save_mapping(block, ids, new_ids)
    return np.concatenate(sizes).astype(np.int64) if sizes else np.zeros(0, np.int64)


def _face_members(ids: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``ids`` are face ids, and their indices in the sorted ``face``."""
    where = np.searchsorted(face, ids)
    where_clipped = np.minimum(where, max(len(face) - 1, 0))
    on_face = (where < len(face)) & (face[where_clipped] == ids) if len(face) else np.zeros(len(ids), bool)
    return on_face, where[on_face]

