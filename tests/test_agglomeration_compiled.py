"""The compiled loops of agglomeration (alfine._agglomeration) give what the numpy and Python versions they stand in
for give, ties included: greedy merging (alfine.postprocess.merging), growing fragments and the depths of the
rounds of new seeds (alfine.postprocess.agglomeration)."""

import numpy as np
import pytest
from compiler_helpers import skip_without_c_compiler

from alfine.postprocess import agglomeration, merging

compiled = pytest.mark.skipif(not merging.COMPILED, reason="alfine._agglomeration was not built (no C compiler)")


def test_the_compiled_module_is_built_where_a_c_compiler_is():
    skip_without_c_compiler()
    assert merging.COMPILED and agglomeration._compiled is not None


def _graph(rng, nodes: int, edges: int, levels: int):
    """Unique pairs of distinct nodes 1..nodes with sums and counts; ``levels`` > 0 rounds the means to that many
    levels, so that many edges tie."""
    u, v = rng.integers(1, nodes + 1, edges), rng.integers(1, nodes + 1, edges)
    keep = u != v
    pairs = np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], 1)[keep], axis=0).astype(np.uint64)
    counts = rng.integers(1, 20, len(pairs))
    means = rng.random(len(pairs))
    if levels:
        means = np.round(means * levels) / levels
    return pairs, means * counts, counts


@compiled
@pytest.mark.parametrize("seed", range(40))
def test_the_compiled_loop_merges_as_the_python_loop(seed):
    rng = np.random.default_rng(seed)
    nodes = int(rng.integers(2, 200))
    pairs, sums, counts = _graph(rng, nodes, int(rng.integers(0, 1000)), (0, 4, 10)[seed % 3])
    if seed % 4 == 1:
        pairs = pairs[rng.permutation(len(pairs))]  # in no order
    if seed % 4 == 2:
        pairs = np.ascontiguousarray(pairs[:, ::-1])  # larger node first
    threshold = (-np.inf, 0.3, 0.5, 0.0)[seed % 4]
    sizes = rng.integers(1, 50, nodes + 1) if seed % 2 else None
    small = int(rng.integers(1, 60))
    kept = None if sizes is None else sizes.copy()
    compiled = merging.merge_by_mean_affinity(nodes, pairs, sums, counts, threshold, sizes=sizes, small=small)
    python = merging._merge_in_python(nodes, pairs, sums, counts, threshold, sizes, small)
    np.testing.assert_array_equal(compiled, python)
    assert compiled.dtype == np.uint64 and compiled[0] == 0
    if sizes is not None:
        np.testing.assert_array_equal(sizes, kept)  # the caller's sizes are not changed
    if threshold == -np.inf and sizes is None and len(pairs):
        assert len(np.unique(compiled[np.unique(pairs)])) < len(np.unique(pairs))  # something merged


@compiled
def test_the_compiled_loop_refuses_a_pair_beyond_the_nodes_or_of_one_node():
    sums, counts = np.array([1.0]), np.array([1])
    with pytest.raises(ValueError, match="node 5 in pairs, above nodes 4"):
        merging.merge_by_mean_affinity(4, np.array([[1, 5]]), sums, counts, 0.5)
    with pytest.raises(ValueError, match="joins node 2 to itself"):
        merging.merge_by_mean_affinity(4, np.array([[2, 2]]), sums, counts, 0.5)
    with pytest.raises(ValueError, match="one entry an edge"):
        merging.merge_by_mean_affinity(4, np.array([[1, 2]]), np.array([1.0, 2.0]), np.array([1, 1]), 0.5)


def _growth_case(rng, seed: int):
    """Labels with a few seeds, their affinities (float32 or float64, often tied) and offsets (2D or 3D; some
    pointing backwards or two voxels along)."""
    ndim = 2 + seed % 2
    shape = tuple(int(s) for s in rng.integers(3, 14, ndim))
    offsets = np.eye(ndim, dtype=np.int64)
    if seed % 5 == 0:
        offsets *= rng.choice([1, -1, 2], ndim)[:, None]
    if seed % 7 == 0:
        offsets = offsets[1:]
    affinities = rng.random((len(offsets), *shape))
    if seed % 3 == 0:
        affinities = np.round(affinities * 5) / 5
    affinities = affinities.astype(np.float32 if seed % 4 else np.float64)
    labels = np.zeros(shape, np.uint64)
    where = rng.choice(labels.size, int(rng.integers(1, 6)), replace=False)
    labels.flat[where] = rng.integers(1, 9, len(where)).astype(np.uint64)
    return labels, affinities, offsets


@compiled
@pytest.mark.parametrize("seed", range(40))
def test_compiled_growth_grows_as_numpy_does(seed):
    rng = np.random.default_rng(seed)
    labels, affinities, offsets = _growth_case(rng, seed)
    # a Python float is compared in the affinities' dtype, a numpy float64 in float64 (0.4 as float32 is above 0.4)
    threshold = (0.3, 0.4, np.nextafter(np.float64(0.4), -np.inf), 0.0, np.float64(0.4))[seed % 5]
    seeds = np.flatnonzero(labels)
    grown = agglomeration._grow(labels.copy(), seeds, affinities, offsets, threshold)
    expected = agglomeration._grow_numpy(labels.copy(), seeds, affinities, offsets, threshold)
    np.testing.assert_array_equal(grown, expected)
    assert grown.dtype == np.uint64 and np.count_nonzero(grown) >= len(seeds)


@compiled
def test_compiled_growth_compares_the_threshold_as_numpy_does():
    """An affinity of float32(0.4) is above the float64 0.4 but not above the Python float 0.4 (numpy compares that
    in float32): the voxel beyond it is reached in one case only, either way."""
    affinities = np.full((1, 1, 3), np.float32(0.4))
    labels = np.array([[[5, 0, 0]]], np.uint64)
    for threshold, reached in ((0.4, 0), (np.float64(0.4), 5)):
        for grow in (agglomeration._grow, agglomeration._grow_numpy):
            grown = grow(labels.copy(), np.array([0]), affinities, np.array([[0, 0, 1]]), threshold)
            assert grown.tolist() == [[[5, reached, reached]]], (grow.__name__, threshold)


@compiled
@pytest.mark.parametrize("seed", range(20))
def test_compiled_depths_equal_the_python_union_find(seed):
    rng = np.random.default_rng(seed)
    nodes = int(rng.integers(1, 300))
    u, v = rng.integers(0, nodes, 800), rng.integers(0, nodes, 800)
    keys = np.unique(np.minimum(u, v)[u != v] * nodes + np.maximum(u, v)[u != v])
    pairs = np.stack([keys // nodes, keys % nodes], axis=1)
    depth = agglomeration._depths(nodes, pairs)
    np.testing.assert_array_equal(depth, agglomeration._depths_in_python(nodes, pairs))
    if len(pairs):
        assert depth.max() >= 1


@compiled
def test_compiled_growth_refuses_a_seed_outside_the_labels_and_other_affinities():
    from alfine import _agglomeration

    labels, shape = np.zeros(8, np.uint64), np.array([2, 4], np.int64)
    affinities, axes, deltas = np.zeros((1, 2, 4), np.float32), np.array([1], np.int64), np.array([1], np.int64)
    with pytest.raises(ValueError, match="seed 8 outside the 8 voxels"):
        _agglomeration.grow(labels, shape, affinities, axes, deltas, 0.5, np.array([8], np.int64))
    with pytest.raises(ValueError, match="float32 or float64 affinities"):
        _agglomeration.grow(labels, shape, affinities.astype(np.float16), axes, deltas, 0.5, np.array([0], np.int64))
    with pytest.raises(ValueError, match="not u < v"):
        _agglomeration.depths(3, np.array([[2, 1]], np.int64), np.empty(3, np.int64))
