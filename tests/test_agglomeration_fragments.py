"""Step 1 of agglomeration (fragments) against the round-by-round rule its docstring states, written out plainly."""

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from alfine.postprocess import agglomerate
from alfine.postprocess.agglomeration import _edge_extremes, _grow, fragment
from alfine.postprocess.instance import label_components


def fragments_by_rounds(affinities, offsets, threshold):
    """The reference: grow, then seed the first voxel of every unlabelled foreground component, rescan, repeat."""
    highest, lowest = _edge_extremes(affinities, offsets)
    foreground = highest > threshold
    fragments = label_components(binary_erosion(lowest > threshold, border_value=1))
    seeds = np.flatnonzero(fragments)
    while len(seeds):
        fragments = _grow(fragments, seeds, affinities, offsets, threshold)
        unlabelled = label_components(foreground & (fragments == 0))
        where = np.flatnonzero(unlabelled)
        _, first = np.unique(unlabelled.flat[where], return_index=True)
        seeds = where[first]
        fragments.flat[seeds] = fragments.max() + unlabelled.flat[seeds]
    return fragments


def noisy_affinities(rng, shape, offsets, quantised, noise=0.45):
    """Noise in [0, ``noise``] (much background) and a few bright balls; ``quantised`` makes ties (steps of 1/20)."""
    affinities = rng.uniform(0, noise, (len(offsets), *shape))
    grid = np.indices(shape) / np.array(shape).reshape((-1,) + (1,) * len(shape))
    for _ in range(3):
        inside = ((grid - rng.uniform(0.2, 0.8, (len(shape),) + (1,) * len(shape))) ** 2).sum(0) < 0.05
        affinities[:, inside] = rng.uniform(0.6, 1.0, (len(offsets), int(inside.sum())))
    if quantised:
        affinities = np.round(affinities * 20) / 20
    return np.ascontiguousarray(affinities, dtype=np.float32)


CASES = [((10, 14, 14), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), ((20, 24), [[1, 0], [0, 1]]),
         ((8, 12, 12), [[0, 1, 0], [0, 0, 1]])]  # the last: no edges along z, but face components still join z


@pytest.mark.parametrize("shape,offsets", CASES)
@pytest.mark.parametrize("threshold", [0.3, 0.4, 0.55])
@pytest.mark.parametrize("quantised", [False, True])
def test_fragments_equal_the_round_by_round_rule(shape, offsets, threshold, quantised):
    rng = np.random.default_rng([len(shape), len(offsets), round(threshold * 100), quantised])
    offsets = np.array(offsets)
    for _ in range(2):
        affinities = noisy_affinities(rng, shape, offsets, quantised, noise=threshold + 0.15)
        expected = fragments_by_rounds(affinities, offsets, threshold)
        assert expected.max() > 10  # many rounds of new seeds happen
        np.testing.assert_array_equal(fragment(affinities, offsets, threshold), expected)


def test_fragments_without_interior_label_nothing():
    """No voxel has all its edges above the threshold: no seed, nothing labelled (as the rounds do)."""
    affinities = np.zeros((3, 6, 6, 6), np.float32)
    affinities[0, 2, 2, 2] = 0.9
    offsets = np.eye(3, dtype=int)
    assert fragments_by_rounds(affinities, offsets, 0.5).max() == 0
    assert fragment(affinities, offsets, 0.5).max() == 0


def test_agglomerate_on_noisy_background_is_unchanged():
    """The whole method on a noisy volume with much background equals merging the reference's fragments."""
    from alfine.postprocess.labels import finish_instances
    from alfine.postprocess.merging import merge_by_mean_affinity, region_graph

    rng = np.random.default_rng(5)
    offsets = np.eye(3, dtype=int)
    affinities = noisy_affinities(rng, (12, 16, 16), offsets, quantised=True)
    fragments = fragments_by_rounds(affinities, offsets, 0.3)
    pairs, sums, counts = region_graph(fragments, affinities, offsets)
    expected = finish_instances(merge_by_mean_affinity(int(fragments.max()), pairs, sums, counts, 0.3)[fragments], 0)
    np.testing.assert_array_equal(agglomerate(affinities, offsets, threshold=0.3), expected)
