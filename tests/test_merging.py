"""Greedy mean-affinity merging (alfine.postprocess.merging): the compiled loop makes the merges the Python loop
makes, in the same order (ties included), so the same segments; both refuse pairs that name no edge."""

import shutil
import sysconfig

import numpy as np
import pytest

from alfine.postprocess import merging


def test_the_compiled_merging_is_built_where_a_c_compiler_is():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the install leaves the module out")
    assert merging.COMPILED


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


@pytest.mark.skipif(not merging.COMPILED, reason="alfine._merging was not built (no C compiler at install)")
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


@pytest.mark.skipif(not merging.COMPILED, reason="alfine._merging was not built (no C compiler at install)")
def test_the_compiled_loop_refuses_a_pair_beyond_the_nodes_or_of_one_node():
    sums, counts = np.array([1.0]), np.array([1])
    with pytest.raises(ValueError, match="node 5 in pairs, above nodes 4"):
        merging.merge_by_mean_affinity(4, np.array([[1, 5]]), sums, counts, 0.5)
    with pytest.raises(ValueError, match="joins node 2 to itself"):
        merging.merge_by_mean_affinity(4, np.array([[2, 2]]), sums, counts, 0.5)
    with pytest.raises(ValueError, match="one entry an edge"):
        merging.merge_by_mean_affinity(4, np.array([[1, 2]]), np.array([1.0, 2.0]), np.array([1, 1]), 0.5)
