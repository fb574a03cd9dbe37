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
pair's (per axis), reading its write region grown by one voxel beyond its upper faces.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..postprocess.affinities import edge_slices

CONNECTIVITY_REACH = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}  # the largest number of axes a neighbour step changes


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
    ids = np.unique(np.concatenate(layers)) if layers else np.zeros(0, labels.dtype)
    return ids[ids != 0].astype(np.uint64)


def adjacent_pairs(grown: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The pairs of ids that meet across the faces of a block, found by this block (adjacency rule).

    ``grown`` is the block's labels grown by one voxel beyond each upper face (0 where that lies
    outside the region). Returns the unique pairs ``[P, 2]`` (uint64, smaller id first) of
    nonzero, differing ids at voxels ``v`` and ``v + d`` (``d`` in ``offsets``) that lie in
    different blocks and share no grown layer (the pairs this block is responsible for).
    Looks at the two voxel layers around each upper face only.
    """
    ndim = grown.ndim
    shape = [s - 1 for s in grown.shape]  # the block itself
    found = [np.zeros((0, 2), np.uint64)]
    for axis in range(ndim):
        for offset in offsets:
            if offset[axis] == 0:
                continue
            # Along `axis` the last block layer and the grown one; along an axis the step does not
            # change, the block only (both voxels on the grown layer there is another block's pair).
            window = tuple(
                slice(shape[a] - 1, shape[a] + 1) if a == axis else slice(0, shape[a] + (offset[a] != 0))
                for a in range(ndim)
            )
            slab = grown[window]
            here, there = edge_slices(slab.shape, offset)
            u, w = slab[here].ravel(), slab[there].ravel()
            keep = (u != 0) & (w != 0) & (u != w)
            if keep.any():
                found.append(np.stack([u[keep], w[keep]], axis=1).astype(np.uint64))
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
    pairs, counts = np.unique(np.stack([view[both], layer[both]], axis=1), axis=0, return_counts=True)
    if len(pairs) == 0:
        return np.zeros((0, 2), np.uint64)
    totals = a_counts[np.searchsorted(a_ids, pairs[:, 0])]
    return unique_pairs(pairs[counts > fraction * totals])


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """``pairs`` ``[P, 2]`` with the smaller id first, without repeats, sorted."""
    pairs = np.sort(np.asarray(pairs, dtype=np.uint64).reshape(-1, 2), axis=1)
    if len(pairs) == 0:
        return pairs
    return np.unique(pairs, axis=0)
