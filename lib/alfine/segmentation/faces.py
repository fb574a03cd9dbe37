"""Which objects of neighbouring blocks meet across block faces.

Blocks tile a region; ids are unique across blocks (an id lies in one block only). Two rules
join objects of neighbouring blocks:

- **adjacency** (connected components, ``context = 0``): two nonzero voxels that are neighbours
  under the connectivity (6/18/26 in 3D, 4/8 in 2D; across edges and corners of blocks too) and
  lie in different blocks join their objects. For the components of a thresholded volume this
  gives exactly the components of the whole volume.
- **overlap** (watershed-type methods, computed with context): a block also keeps its own labels
  of the voxel layer just beyond each of its upper faces (its *view* of the neighbour's first
  layer). Object ``a`` of the lower block joins object ``b`` of the upper block when more than
  ``fraction`` of the layer voxels that the lower block gives to ``a`` are ``b`` in the upper
  block: both blocks, each with context, see the same object there. Two objects that merely
  touch at the face are not joined, because the lower block's view gives the voxels across the
  face to the other object.

Every pair is found by exactly one block: the block whose grid position is the smallest of the
pair's (per axis). It looks at its write region grown by one voxel beyond its upper faces, and
of that only at the two voxel layers around each upper face (a *slab*, :func:`face_slab`). A
slab is built either from the volume (:func:`adjacent_pairs`, reading the grown block) or from
the blocks' outer layers (:func:`layer_slab`: the block's last layer along each axis with an
upper neighbour, and the upper neighbours' first layers, which ``alfine-postprocess-block``
records per block, see :func:`outer_layers`); both give the same slabs, so the same pairs.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..postprocess.affinities import edge_slices

CONNECTIVITY_REACH = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}  # the largest number of axes a neighbour step changes

Layers = dict[int, np.ndarray]  # axis -> a voxel layer of a block across that axis (ndim - 1 axes)


def half_neighbourhood(ndim: int, connectivity: int) -> np.ndarray:
    """The neighbour offsets ``[K, ndim]`` of ``connectivity`` whose first nonzero entry is positive.

    Each unordered pair of neighbouring voxels is ``(v, v + d)`` for exactly one such ``d``.
    """
    reach = CONNECTIVITY_REACH[connectivity]
    offsets = [d for d in itertools.product((-1, 0, 1), repeat=ndim)
               if 0 < sum(map(abs, d)) <= reach and next(x for x in d if x) > 0]
    return np.array(offsets, dtype=np.int64).reshape(-1, ndim)


def boundary_ids(labels: np.ndarray) -> np.ndarray:
    """The sorted nonzero ids on the outer voxel layers (the faces) of ``labels``."""
    layers = []
    for axis in range(labels.ndim):
        for end in (0, -1):
            layers.append(np.take(labels, [end], axis=axis).ravel())
    return nonzero_unique(layers)


def nonzero_unique(arrays: list[np.ndarray]) -> np.ndarray:
    """The sorted nonzero values of ``arrays`` (uint64), each once."""
    import fastremap

    if not arrays:
        return np.zeros(0, np.uint64)
    ids = fastremap.unique(np.concatenate([np.asarray(a, np.uint64).ravel() for a in arrays]))
    return np.asarray(ids[ids != 0], np.uint64)


def outer_layers(labels: np.ndarray, lower: tuple[bool, ...], upper: tuple[bool, ...]) -> tuple[Layers, Layers]:
    """A block's ``(first, last)`` voxel layers: ``first[a]`` where it has a neighbour below along
    axis ``a`` (``lower[a]``), ``last[a]`` where it has one above (``upper[a]``). All that the
    faces of its neighbours and its own need of it (:func:`layer_slab`)."""
    first = {a: np.ascontiguousarray(np.take(labels, 0, axis=a)) for a in range(labels.ndim) if lower[a]}
    last = {a: np.ascontiguousarray(np.take(labels, -1, axis=a)) for a in range(labels.ndim) if upper[a]}
    return first, last


def face_slab(grown: np.ndarray, axis: int) -> np.ndarray:
    """The slab of ``axis`` of a grown block: its last layer and the grown one along ``axis``, all of
    the grown block along the other axes."""
    return grown[tuple(slice(s - 2, s) if a == axis else slice(None) for a, s in enumerate(grown.shape))]


def layer_slab(shape: tuple[int, ...], axis: int, last: np.ndarray, neighbours: dict[tuple[int, ...], Layers]
               ) -> np.ndarray:
    """:func:`face_slab` of ``axis`` of the block of ``shape`` voxels, built from outer layers.

    ``last``: the block's last layer along ``axis``; ``neighbours``: for each upper neighbour that
    exists, keyed by its grid step ``n`` (0 or 1 per axis, not all 0), its first layers (at least
    along the first axis where ``n`` is 1, and along ``axis`` when ``n[axis]`` is 1). Voxels of
    neighbours that do not exist are 0.
    """
    ndim = len(shape)
    slab = np.zeros(tuple(2 if a == axis else s + 1 for a, s in enumerate(shape)), np.uint64)
    slab[tuple(0 if a == axis else slice(0, s) for a, s in enumerate(shape))] = last
    for step, first in neighbours.items():
        side = step[axis]
        # the neighbour's voxels in the slab: at its first voxel along each axis where it lies above
        # the block; along `axis` that or (side 0: it lies beside the block) at the block's last.
        source = axis if side else step.index(1)
        fixed = {} if side else {axis: shape[axis] - 1}
        values = first[source][tuple(0 if step[a] else fixed.get(a, slice(None)) for a in range(ndim) if a != source)]
        slab[tuple(side if a == axis else (shape[a] if step[a] else slice(0, shape[a])) for a in range(ndim))] = values
    return slab


def slab_pairs(slab: np.ndarray, axis: int, offsets: np.ndarray) -> np.ndarray:
    """The pairs (adjacency rule) that the block owning ``slab`` (:func:`face_slab`) finds across its
    upper face along ``axis``: nonzero, differing ids at ``v`` and ``v + d`` for the offsets ``d``
    that cross that face. Along an axis ``d`` does not change, the block's extent only (both voxels
    on the grown layer there is another block's pair). Unique pairs, smaller id first."""
    import fastremap

    # the slab's few ids numbered 0..k-1 (0 stays 0): a pair of them is one small key, i * k + j
    local, mapping = fastremap.renumber(np.ascontiguousarray(slab), preserve_zero=True, in_place=False)
    k = max(mapping.values(), default=0) + 1
    ids = np.zeros(k, np.uint64)
    ids[np.fromiter(mapping.values(), np.int64, len(mapping))] = np.fromiter(mapping.keys(), np.uint64, len(mapping))
    local = local.astype(np.int64, copy=False)
    seen = np.zeros(k * k, bool) if k <= 1024 else None  # the keys met, or (many ids) each offset's keys
    keys = [np.zeros(0, np.int64)]
    for offset in offsets:
        if offset[axis] == 0:
            continue
        window = tuple(slice(None) if a == axis else slice(0, s - 1 + (offset[a] != 0))
                       for a, s in enumerate(slab.shape))
        part = local[window]
        here, there = edge_slices(part.shape, offset)
        key = part[here] * k
        key += part[there]
        if seen is not None:
            seen[key.ravel()] = True
        else:
            keys.append(np.unique(key))
    found = np.flatnonzero(seen) if seen is not None else np.unique(np.concatenate(keys))
    u, w = found // k, found % k
    keep = (u != 0) & (w != 0) & (u != w)
    return unique_pairs(np.stack([ids[u[keep]], ids[w[keep]]], axis=1))


def adjacent_pairs(grown: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The pairs of ids that meet across the faces of a block, found by this block (adjacency rule).

    ``grown`` is the block's labels grown by one voxel beyond each upper face (0 where that lies
    outside the region). Returns the unique pairs ``[P, 2]`` (uint64, smaller id first) of
    nonzero, differing ids at voxels ``v`` and ``v + d`` (``d`` in ``offsets``) that lie in
    different blocks and share no grown layer (the pairs this block is responsible for).
    Looks at the two voxel layers around each upper face only.
    """
    found = [slab_pairs(face_slab(grown, axis), axis, offsets) for axis in range(grown.ndim)]
    return unique_pairs(np.concatenate(found))


def overlap_pairs(view: np.ndarray, layer: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The pairs ``(a, b)`` that the overlap rule joins on one face layer.

    ``view``: the lower block's ids on the upper block's first layer; ``layer``: the upper
    block's ids there. ``a`` joins ``b`` when the voxels with ``view == a`` and ``layer == b`` are
    more than ``fraction`` of the voxels with ``view == a``. Unique pairs, smaller id first.
    """
    view, layer = view.ravel().astype(np.uint64), layer.ravel().astype(np.uint64)
    inside = view != 0
    if not inside.any():
        return np.zeros((0, 2), np.uint64)
    a_ids, a_counts = np.unique(view[inside], return_counts=True)
    both = inside & (layer != 0)
    pairs, counts = _count_pairs(view[both], layer[both])
    if len(pairs) == 0:
        return np.zeros((0, 2), np.uint64)
    totals = a_counts[np.searchsorted(a_ids, pairs[:, 0])]
    return unique_pairs(pairs[counts > fraction * totals])


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """``pairs`` ``[P, 2]`` with the smaller id first, without repeats, sorted."""
    pairs = np.sort(np.asarray(pairs, dtype=np.uint64).reshape(-1, 2), axis=1)
    return _count_pairs(pairs[:, 0], pairs[:, 1])[0]


def _count_pairs(u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs ``(u[i], w[i])`` sorted, and how often each occurs (one sort, no row-wise unique)."""
    u, w = np.asarray(u, np.uint64).ravel(), np.asarray(w, np.uint64).ravel()
    if len(u) == 0:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.int64)
    order = np.lexsort((w, u))
    u, w = u[order], w[order]
    starts = np.flatnonzero(np.concatenate([[True], (u[1:] != u[:-1]) | (w[1:] != w[:-1])]))
    counts = np.diff(np.append(starts, len(u)))
    return np.stack([u[starts], w[starts]], axis=1), counts
