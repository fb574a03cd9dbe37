"""Mean-affinity agglomeration: watershed fragments merged greedily by their mean affinity.

Only the nearest-neighbour channels of the affinities are used (see :mod:`.affinities`).

1. Fragments: a seeded watershed of the affinity graph at one level, ``threshold``. A voxel is
   foreground iff at least one of its nearest-neighbour edges has an affinity above
   ``threshold`` (the rule by which mutex watershed with ``bias=-threshold`` leaves
   background); it is interior iff all its edges inside the array do. Seeds are the connected
   components (face neighbours) of the interior eroded by one voxel (the array's edge is no
   boundary), so that one strong edge across a boundary joins no seeds. Seeds grow in rounds:
   in each round every unlabelled voxel joined by an edge above ``threshold`` to labelled
   voxels takes the label across its strongest such edge. When growth stops with foreground
   voxels left unlabelled, the first voxel (C order) of each of their connected components
   becomes a new seed, until every foreground voxel is labelled. So every fragment is connected
   by edges above ``threshold``, and affinities that never exceed ``threshold`` between objects
   give fragments that never cross them.
2. Region adjacency graph and 3. merging, above ``threshold``: :mod:`.merging`.
4. Tidying (:func:`tidy`, also used by mutex watershed): segments smaller than ``min_fragment``
   voxels are merged into their best neighbour, and with ``fill`` the voxels left at 0 are grown
   into from the segments around them.
"""

from __future__ import annotations

from collections.abc import Sequence

import fastremap
import numpy as np

from ..errors import UserError
from .affinities import check_affinities, edge_slices, nearest_neighbour_channels
from .instance import label_components
from .labels import finish_instances
from .merging import merge_by_mean_affinity, region_graph
from .reuse import digest, last_or_compute

try:
    from .. import _agglomeration as _compiled
except ImportError:  # built without a C compiler: numpy and Python do the same
    _compiled = None


def agglomerate(
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    threshold: float = 0.5,
    min_size: int = 0,
    min_fragment: int = 0,
    fill: float | None = None,
) -> np.ndarray:
    """Segments of mean-affinity agglomeration (see the module), uint64 labels 1..n, 0 = background.

    Channel ``c`` at voxel ``v`` is the affinity between ``v`` and ``v + offsets[c]``; only the
    nearest-neighbour offsets are used (at least one is needed). A voxel none of whose edges is
    above ``threshold`` is left at 0. Then :func:`tidy` with ``min_fragment`` and ``fill``: no
    segment smaller than ``min_fragment`` voxels is left where it has a neighbour, and with
    ``fill`` the voxels at 0 joined to segments by edges of affinity at least ``fill`` join them
    (``fill=0``: every voxel connected to a segment). Last, objects smaller than ``min_size``
    voxels become background.
    """
    affinities, offsets = check_affinities(affinities, offsets)
    channels = nearest_neighbour_channels(offsets)
    affinities, offsets = affinities[channels], offsets[channels]

    def merged() -> np.ndarray:
        fragments = fragment(affinities, offsets, threshold)
        pairs, sums, counts = region_graph(fragments, affinities, offsets)
        return merge_by_mean_affinity(int(fragments.max()), pairs, sums, counts, threshold)[fragments]

    segments = last_or_compute("agglomerate", (digest(affinities), offsets.tobytes(), float(threshold)), merged)
    segments = tidy(segments, affinities, offsets, min_fragment, fill)
    return finish_instances(segments, min_size)


def tidy(
    labels: np.ndarray,
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    min_fragment: int = 0,
    fill: float | None = None,
) -> np.ndarray:
    """``labels`` (0 = unassigned) with small segments merged away and, with ``fill``, voxels at 0 filled.

    Only the nearest-neighbour channels of ``affinities`` are used (a :class:`UserError` if there
    are none and there is something to do). Two steps, both deterministic:

    1. ``min_fragment > 1``: while a segment smaller than ``min_fragment`` voxels has an adjacent
       segment (face neighbours), the adjacent pair of highest mean affinity (over the voxel
       edges between them) among the pairs with such a small end merges, and the sizes add up
       (:func:`.merging.merge_by_mean_affinity` with sizes). So a small segment joins its best neighbour
       however low that mean is. Segments still smaller than ``min_fragment`` (with no adjacent
       segment) become 0.
    2. ``fill`` not None: the segments grow into the voxels at 0, in rounds, along edges whose
       affinity is at least ``fill``; each voxel reached takes the label across its strongest
       such edge to a voxel labelled in the round before (:func:`_grow`), so a voxel goes to the
       segment that reaches it first. Voxels no such path of edges reaches from a segment stay 0.
       Affinities lie in [0, 1], so ``fill=0`` fills every voxel connected to a segment: nothing
       is background. A ``fill`` between 0 and the level at which the method left voxels at 0
       keeps the voxels whose affinities are all low as background.

    Returns uint64 labels; the ids of segments kept whole are not renumbered. Step 1's result for the
    latest inputs is kept (:mod:`.reuse`), so a sweep over ``fill`` merges once per ``min_fragment``.
    """
    labels = np.asarray(labels)
    min_fragment = _check_min_fragment(min_fragment)
    if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float, np.number))):
        raise UserError(f"fill must be a number (an affinity level) or null, got {fill!r}")
    if min_fragment <= 1 and fill is None:
        return labels.astype(np.uint64, copy=False)
    affinities, offsets = check_affinities(affinities, offsets)
    channels = nearest_neighbour_channels(offsets)
    affinities, offsets = np.ascontiguousarray(affinities[channels]), offsets[channels]
    labels = np.array(labels, dtype=np.uint64)  # a copy: steps write into it
    if min_fragment > 1 and labels.any():
        # a sweep tries each min_fragment with every fill (fill varies fastest): the merge is shared
        key = (digest(labels), digest(affinities), offsets.tobytes(), min_fragment)
        labels = last_or_compute("merge_small", key,
                                 lambda: _merge_small(labels, affinities, offsets, min_fragment))
    if fill is not None:
        seeds = _next_to_unlabelled(labels, offsets)
        # _grow follows edges above its threshold: the float64 just below fill admits those at fill (a numpy
        # float64, not a Python float, so that float32 affinities are compared in float64)
        below = np.nextafter(np.float64(fill), -np.inf)
        labels = _grow(labels, seeds, affinities, offsets, below)
    return labels


def _check_min_fragment(min_fragment: int) -> int:
    """``min_fragment`` as an int; a :class:`UserError` unless it is a non-negative integer."""
    if isinstance(min_fragment, bool) or not isinstance(min_fragment, (int, np.integer)) or min_fragment < 0:
        raise UserError(f"min_fragment must be a non-negative integer, got {min_fragment!r}")
    return int(min_fragment)


def _merge_small(labels: np.ndarray, affinities: np.ndarray, offsets: np.ndarray, min_fragment: int) -> np.ndarray:
    """Step 1 of :func:`tidy` on uint64 ``labels``."""
    compact, remapping = fastremap.renumber(labels, preserve_zero=True)
    compact = compact.astype(np.uint64, copy=False)
    nodes = int(compact.max())
    sizes = np.bincount(compact.ravel().astype(np.int64), minlength=nodes + 1)
    pairs, sums, counts = region_graph(compact, affinities, offsets)
    touches_small = sizes[pairs].min(axis=1, initial=min_fragment) < min_fragment  # the others never merge
    pairs, sums, counts = pairs[touches_small], sums[touches_small], counts[touches_small]
    roots = merge_by_mean_affinity(nodes, pairs, sums, counts, -np.inf, sizes=sizes, small=min_fragment)
    roots = roots.astype(np.int64)
    merged_sizes = np.bincount(roots, weights=sizes, minlength=nodes + 1)
    original = np.zeros(nodes + 1, np.uint64)  # compact id -> the caller's id
    for old, new in remapping.items():
        original[new] = old
    segment_of = np.where(merged_sizes[roots] < min_fragment, 0, original[roots]).astype(np.uint64)
    segment_of[0] = 0
    return segment_of[compact]


def _next_to_unlabelled(labels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Flat indices (ascending) of the labelled voxels with an unlabelled face neighbour along ``offsets``."""
    border = np.zeros(labels.shape, bool)
    unlabelled = labels == 0
    for offset in offsets:
        here, there = edge_slices(labels.shape, offset)
        border[here] |= unlabelled[there]
        border[there] |= unlabelled[here]
    return np.flatnonzero(border & ~unlabelled)


def fragment(affinities: np.ndarray, offsets: np.ndarray, threshold: float) -> np.ndarray:
    """Fragments (uint64, 0 = background) as step 1 of the module says.

    ``affinities`` are C-contiguous nearest-neighbour affinities ``[C, *spatial]``. The rounds of new
    seeds after the first growth are computed at once (:func:`_later_seed_ids`), with the same ids.
    """
    from scipy.ndimage import binary_erosion

    highest, lowest = _edge_extremes(affinities, offsets)
    fragments = label_components(binary_erosion(lowest > threshold, border_value=1))
    seeds = np.flatnonzero(fragments)
    if not len(seeds):
        return fragments  # no interior: nothing to grow from, nothing is labelled
    fragments = _grow(fragments, seeds, affinities, offsets, threshold)
    left = np.flatnonzero((highest > threshold) & (fragments == 0))
    if len(left):
        fragments.flat[left] = _later_seed_ids(left, fragments.shape, affinities, offsets, threshold,
                                               int(fragments.max()))
    return fragments


def _later_seed_ids(
    left: np.ndarray, shape: tuple[int, ...], affinities: np.ndarray, offsets: np.ndarray, threshold: float,
    start: int,
) -> np.ndarray:
    """The fragment ids that the rounds of new seeds of step 1 give the foreground voxels ``left`` (flat
    indices, ascending) unlabelled after the first growth, computed without those rounds' rescans.

    Growth from a voxel of ``left`` reaches exactly its part: the voxels of ``left`` joined to it by edges above
    ``threshold`` (an edge above ``threshold`` to a labelled voxel would have labelled it). A round seeds the
    first voxel (C order) of every face-connected component of the voxels still unlabelled, so it labels the
    part whose first voxel is that component's first voxel, and numbers the new parts after ``start`` in C
    order of their first voxels. The part seeded with a region's first voxel in round ``k`` leaves regions
    for round ``k + 1``; so a part's round is its depth in the tree whose node for part ``p`` spans the
    face-connected component of ``p`` among the parts whose first voxel comes no earlier (built from the
    last part to the first with a union-find). Ids follow by (round, first voxel).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    size = len(left)
    index = np.full(int(np.prod(shape)), -1, np.int64)
    index[left] = np.arange(size)
    unit = np.eye(len(shape), dtype=np.int64)
    strong, touching = _neighbour_pairs(index, shape, offsets, affinities, threshold), _neighbour_pairs(
        index, shape, unit)
    graph = coo_matrix((np.ones(len(strong[0]), np.int8), strong), shape=(size, size))
    _, part = connected_components(graph, directed=False)
    # parts numbered by their first voxel: the first occurrence of each part along ``left`` (ascending)
    _, first = np.unique(part, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    part = rank[part]
    u, v = part[touching[0]], part[touching[1]]
    between = u != v
    keys = np.unique(np.minimum(u, v)[between] * len(first) + np.maximum(u, v)[between])
    depth = _depths(len(first), np.stack([keys // len(first), keys % len(first)], axis=1))
    order = np.lexsort((np.arange(len(first)), depth))
    ids = np.empty(len(first), np.uint64)
    ids[order] = np.arange(start + 1, start + 1 + len(first), dtype=np.uint64)
    return ids[part]


def _neighbour_pairs(index: np.ndarray, shape: tuple[int, ...], offsets: np.ndarray,
                     affinities: np.ndarray | None = None, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the ``index`` values of the pairs of voxels ``v``, ``v + offset`` that both have one (``>= 0``),
    with ``affinities`` only those whose edge is above ``threshold``."""
    grid = index.reshape(shape)
    a_parts, b_parts = [], []
    for channel, offset in enumerate(offsets):
        here, there = edge_slices(shape, offset)
        a, b = grid[here], grid[there]
        keep = (a >= 0) & (b >= 0)
        if affinities is not None:
            keep &= affinities[channel][here] > threshold
        a_parts.append(a[keep])
        b_parts.append(b[keep])
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _depths(nodes: int, pairs: np.ndarray) -> np.ndarray:
    """Depth (roots 0) of every node of the tree in which node ``n`` spans the connected component of ``n`` in
    the graph ``pairs`` (``[E, 2]``, ``u < v``) restricted to nodes ``>= n``; its parent is the node that spans
    the smallest such component containing it. Compiled where ``alfine._agglomeration`` was built (the same
    steps: the noisy case of ``bench_agglomeration.py``, 38935 nodes and 125947 pairs, in 1.8 ms instead of 58)."""
    if _compiled is not None:
        depth = np.empty(nodes, np.int64)
        _compiled.depths(int(nodes), np.ascontiguousarray(pairs, np.int64).reshape(-1, 2), depth)
        return depth
    return _depths_in_python(nodes, pairs)


def _depths_in_python(nodes: int, pairs: np.ndarray) -> np.ndarray:
    """:func:`_depths` where ``alfine._agglomeration`` was not built."""
    later: list[list[int]] = [[] for _ in range(nodes)]
    for u, v in pairs.tolist():
        later[u].append(v)
    root = list(range(nodes))  # union-find over the nodes added so far; each set's root is its smallest node

    def find(n: int) -> int:
        while root[n] != n:
            root[n] = root[root[n]]
            n = root[n]
        return n

    parent = [-1] * nodes
    for n in range(nodes - 1, -1, -1):
        for w in later[n]:
            top = find(w)
            if top != n:
                parent[top] = n
                root[top] = n
    depth = np.zeros(nodes, np.int64)
    for n in range(nodes):  # parents come before their children
        if parent[n] >= 0:
            depth[n] = depth[parent[n]] + 1
    return depth


def _edge_extremes(affinities: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel, the highest and lowest affinity of its edges inside the array (-inf and inf without any)."""
    shape = affinities.shape[1:]
    highest, lowest = np.full(shape, -np.inf), np.full(shape, np.inf)
    for channel, offset in zip(affinities, offsets, strict=True):
        here, there = edge_slices(shape, offset)
        for end in (here, there):
            np.maximum(highest[end], channel[here], out=highest[end])
            np.minimum(lowest[end], channel[here], out=lowest[end])
    return highest, lowest


def _grow(
    labels: np.ndarray, seeds: np.ndarray, affinities: np.ndarray, offsets: np.ndarray, threshold: float
) -> np.ndarray:
    """``labels`` grown from the voxels ``seeds`` (flat indices) along edges above ``threshold``, till it stops.

    In each round, every unlabelled voxel with such an edge to a labelled voxel takes the label
    across its strongest one (on ties, the first in channel order, and per channel the neighbour
    at ``-offset`` before the one at ``+offset``). Only the voxels labelled in the previous round
    can label new ones, so a round costs in proportion to them. Compiled where ``alfine._agglomeration`` was built
    (float32 or float64 affinities, under 2^31 voxels; the same rounds, the threshold compared as numpy compares
    it: a Python float as the affinities' dtype, a numpy float64 as float64): the cells of
    ``bench_agglomeration.py`` grow in 16 ms instead of 119.
    """
    if _compiled is not None and affinities.dtype in (np.float32, np.float64) and labels.size < 2**31 - 1:
        compared = np.result_type(affinities.dtype, threshold)  # numpy's rule for ``weight > threshold`` below
        if compared in (np.float32, np.float64):
            grown = np.array(labels, np.uint64, order="C", copy=not (labels.dtype == np.uint64
                                                                      and labels.flags.c_contiguous))
            axes = np.array([int(np.flatnonzero(o)[0]) for o in offsets], np.int64)
            deltas = np.asarray(offsets, np.int64)[np.arange(len(axes)), axes]
            _compiled.grow(grown.reshape(-1), np.array(grown.shape, np.int64), np.ascontiguousarray(affinities),
                           axes, np.ascontiguousarray(deltas), float(compared.type(threshold)),
                           np.ascontiguousarray(seeds, np.int64))
            return grown
    return _grow_numpy(labels, seeds, affinities, offsets, threshold)


def _grow_numpy(
    labels: np.ndarray, seeds: np.ndarray, affinities: np.ndarray, offsets: np.ndarray, threshold: float
) -> np.ndarray:
    """:func:`_grow` where ``alfine._agglomeration`` was not built (or for other affinity dtypes)."""
    shape = labels.shape
    flat = np.ascontiguousarray(labels).reshape(-1)
    steps = np.cumprod((1,) + shape[:0:-1])[::-1]  # flat-index step per axis
    frontier = seeds
    while len(frontier):
        targets, weights, sources = [], [], []
        for channel, offset in zip(affinities, offsets, strict=True):
            axis = int(np.flatnonzero(offset)[0])
            sign, step = int(offset[axis]), int(offset[axis] * steps[axis])
            position = frontier // steps[axis] % shape[axis]
            edge = channel.reshape(-1)
            forward = frontier[(position + sign >= 0) & (position + sign < shape[axis])]
            backward = frontier[(position - sign >= 0) & (position - sign < shape[axis])]
            targets += [forward + step, backward - step]
            weights += [edge[forward], edge[backward - step]]  # the edge of v and v + offset lies at v
            sources += [forward, backward]
        target, weight, source = (np.concatenate(parts) for parts in (targets, weights, sources))
        open_ = (weight > threshold) & (flat[target] == 0)
        target, weight, source = target[open_], weight[open_], source[open_]
        order = np.lexsort((-weight, target))  # by target, then strongest first; stable on ties
        target, first = np.unique(target[order], return_index=True)
        flat[target] = flat[source[order[first]]]
        frontier = target
    return flat.reshape(shape)
