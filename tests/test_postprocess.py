"""Post-processing methods on volumes whose right segmentation is known."""

import itertools
import sys

import edt
import numpy as np
import pytest

from alfine.errors import UserError
from alfine.postprocess import (
    METHODS,
    agglomerate,
    argmax,
    connected_components,
    grid,
    load_function,
    mutex_watershed,
    remove_small_objects,
    run,
    threshold,
    watershed,
)
from alfine.postprocess.agglomeration import fragment, tidy
from alfine.postprocess.merging import merge_by_mean_affinity

SHORT_3D = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
LONG_3D = [[-3, 0, 0], [0, 3, 0], [0, 0, -3], [0, 0, 6]]
SHORT_2D = [[1, 0], [0, 1]]
LONG_2D = [[4, 0], [0, -4]]


# -- known volumes and references -------------------------------------------------------------


def balls(shape, centres, radius):
    """Labels 1.. of the voxels within ``radius`` of a centre, each given to its nearest centre; 0 elsewhere."""
    grid_ = np.indices(shape)
    squared = np.stack([sum((g - c) ** 2 for g, c in zip(grid_, centre, strict=True)) for centre in centres])
    return np.where(squared.min(0) <= radius**2, squared.argmin(0) + 1, 0).astype(np.uint64)


def cells_3d():
    """Two touching balls, a separate ball holding a box of another id, and background."""
    labels = balls((26, 26, 30), [(8, 8, 8), (8, 8, 18), (17, 17, 16)], 6)
    labels[15:19, 15:19, 14:18] = 4
    return labels


def cells_2d():
    labels = balls((30, 34), [(9, 9), (9, 21), (22, 16)], 7)
    labels[20:24, 14:18] = 4
    return labels


def affinities_from(labels, offsets):
    """aff[c, v] = labels[v] == labels[v + offsets[c]] and labels[v] != 0 (0 where v + offset is outside)."""
    reach = int(np.abs(offsets).max())
    padded = np.pad(labels, reach)
    out = []
    for offset in offsets:
        shifted = padded[tuple(slice(reach + o, reach + o + n) for o, n in zip(offset, labels.shape, strict=True))]
        out.append((labels == shifted) & (labels != 0))
    return np.array(out, dtype=np.float32)


def assert_same_segmentation(result, expected):
    """The same background and a one-to-one correspondence of object ids."""
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result == 0, expected == 0)
    pairs = np.unique(np.stack([result.ravel(), expected.ravel()]), axis=1)
    assert pairs.shape[1] == len(np.unique(result)) == len(np.unique(expected))


def assert_consecutive_uint64(labels):
    assert labels.dtype == np.uint64
    ids = np.unique(labels[labels != 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


# -- semantic -------------------------------------------------------------------------------


def test_threshold_all_channels_and_one():
    prediction = np.array([[[0.2, 0.6], [0.5, 0.9]], [[0.7, 0.1], [0.51, 0.4]]], np.float32)[:, None]
    np.testing.assert_array_equal(threshold(prediction)[:, 0], [[[0, 1], [0, 1]], [[1, 0], [1, 0]]])
    one = threshold(prediction, threshold=0.55, channel=1)
    assert one.dtype == np.uint8 and one.shape == prediction.shape[1:]
    np.testing.assert_array_equal(one[0], [[1, 0], [0, 0]])
    with pytest.raises(UserError, match="channel"):
        threshold(prediction, channel=2)


def test_threshold_on_tanh_scale():
    distances = np.tanh(np.linspace(-3, 3, 12, dtype=np.float32)).reshape(1, 3, 4)
    np.testing.assert_array_equal(threshold(distances, threshold=0.0, channel=0).ravel(), [0] * 6 + [1] * 6)


def test_argmax_picks_largest_channel_first_on_ties():
    prediction = np.array([[[0.1, 0.5, 0.3]], [[0.8, 0.5, 0.1]], [[0.1, 0.0, 0.6]]], np.float32)[:, None]
    classes = argmax(prediction)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes[0, 0], [1, 0, 2])
    many = np.zeros((300, 1, 1, 2), np.float32)
    many[299, 0, 0, 1] = 1.0
    assert argmax(many).dtype == np.uint16
    np.testing.assert_array_equal(argmax(many)[0, 0], [0, 299])


# -- connected components, small objects ------------------------------------------------------


def test_connected_components_gives_two_separated_spheres():
    spheres = balls((20, 20, 32), [(10, 10, 8), (10, 10, 23)], 6)
    prediction = np.stack([np.where(spheres > 0, 0.9, 0.1), np.zeros(spheres.shape)]).astype(np.float32)
    labels = connected_components(prediction, threshold=0.5)
    assert_consecutive_uint64(labels)
    assert labels.max() == 2
    assert_same_segmentation(labels, spheres)
    assert connected_components(prediction, channel=1).max() == 0


def test_connected_components_connectivity_in_3d_and_2d():
    diagonal = np.zeros((1, 3, 3, 3), np.float32)
    diagonal[0, 0, 0, 0] = diagonal[0, 1, 1, 1] = 1.0
    assert connected_components(diagonal).max() == 2
    assert connected_components(diagonal, connectivity=18).max() == 2
    assert connected_components(diagonal, connectivity=26).max() == 1
    flat = diagonal[:, 0] + diagonal[:, 1]  # (0, 0) and (1, 1) in 2D
    assert connected_components(flat).max() == 2
    assert connected_components(flat, connectivity=8).max() == 1
    with pytest.raises(UserError, match="connectivity must be one of 4, 8"):
        connected_components(flat, connectivity=6)


def test_connected_components_min_size_and_renumbering():
    prediction = np.zeros((1, 4, 12), np.float32)
    prediction[0, 0, 0:1] = prediction[0, 0, 3:6] = prediction[0, 2, 8:12] = 1.0
    labels = connected_components(prediction, min_size=3)
    expected = np.zeros((4, 12), np.uint64)
    expected[0, 3:6], expected[2, 8:12] = 1, 2
    np.testing.assert_array_equal(labels, expected)


def test_remove_small_objects_keeps_ids_and_input():
    labels = np.array([[7, 7, 0, 3], [7, 9, 9, 3], [0, 0, 0, 3]], np.uint64)
    before = labels.copy()
    np.testing.assert_array_equal(remove_small_objects(labels, 3), [[7, 7, 0, 3], [7, 0, 0, 3], [0, 0, 0, 3]])
    np.testing.assert_array_equal(remove_small_objects(labels, 4), np.zeros_like(labels))
    np.testing.assert_array_equal(remove_small_objects(labels, 0), labels)
    np.testing.assert_array_equal(labels, before)
    with pytest.raises(UserError, match="min_size"):
        remove_small_objects(labels, -1)


# -- watershed ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def touching():
    """Two overlapping balls split by the plane between their centres (between voxel planes)."""
    return balls((24, 24, 32), [(12, 12, 10), (12, 12, 21)], 7)


def test_watershed_on_distances_splits_touching_spheres(touching):
    distance = np.tanh(edt.edt(touching > 0) / 4)[None].astype(np.float32)  # one blob; the neck is 4.3 wide
    by_components = watershed(distance, seed_threshold=float(np.tanh(6 / 4)), mask_threshold=0.0)
    assert_consecutive_uint64(by_components)
    assert_same_segmentation(by_components, touching)
    by_maxima = watershed(distance, seed_threshold=0.5, mask_threshold=0.0, min_seed_distance=4)
    assert_same_segmentation(by_maxima, touching)
    # A seed threshold below the neck gives one seed, hence one object.
    assert watershed(distance, seed_threshold=0.5, mask_threshold=0.0).max() == 1


def test_watershed_on_boundaries(touching):
    boundary = (1 - np.tanh(edt.edt(touching) / 3))[None].astype(np.float32)  # 1 on background, 0.68 next to it
    assert_same_segmentation(watershed(boundary, 0.3, 0.9, kind="boundary"), touching)
    assert_same_segmentation(watershed(boundary, 0.5, 0.9, kind="boundary", min_seed_distance=3), touching)
    with pytest.raises(UserError, match="kind"):
        watershed(boundary, 0.3, 0.9, kind="affinities")
    with pytest.raises(UserError, match="min_seed_distance"):
        watershed(boundary, 0.3, 0.9, kind="boundary", min_seed_distance=0)


def test_watershed_in_2d_with_min_size():
    circles = balls((32, 40), [(16, 12), (16, 27)], 9)
    distance = np.tanh(edt.edt(circles > 0) / 4)[None].astype(np.float32)
    assert_same_segmentation(watershed(distance, 0.5, 0.0, min_seed_distance=4), circles)
    assert watershed(distance, 0.5, 0.0, min_seed_distance=4, min_size=int((circles > 0).sum())).max() == 0


def test_watershed_gives_a_seedless_mask_component_its_own_object():
    """A faint object (its distances never reach the seed threshold) is an object, not background."""
    objects = balls((20, 20, 40), [(10, 10, 9), (10, 10, 30)], 7)
    objects[objects == 2] = 0
    objects[10:13, 9:12, 28:31] = 2  # a 3x3x3 box: distance at most 2, the ball's reaches 7
    distance = np.tanh(edt.edt(objects) / 4)[None].astype(np.float32)
    assert np.tanh(2 / 4) < 0.6 < np.tanh(6 / 4)
    labels = watershed(distance, seed_threshold=0.6, mask_threshold=0.0)
    assert_consecutive_uint64(labels)
    assert_same_segmentation(labels, objects)  # before: the box was left at 0
    boundary = 1 - distance
    assert_same_segmentation(watershed(boundary, 0.4, 1.0, kind="boundary", min_seed_distance=3), objects)
    assert watershed(distance, seed_threshold=0.6, mask_threshold=0.0, min_size=28).max() == 1


# -- mutex watershed ----------------------------------------------------------------------------


def test_mutex_watershed_offset_convention():
    """Channel c at voxel v relates v and v + offsets[c]; voxels without an attractive edge are background."""
    affinities = np.zeros((1, 1, 1, 5), np.float32)
    affinities[0, 0, 0, 1] = 1.0
    np.testing.assert_array_equal(mutex_watershed(affinities, [[0, 0, 1]]).ravel(), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(mutex_watershed(affinities, [[0, 0, -1]]).ravel(), [1, 1, 0, 0, 0])


@pytest.mark.parametrize("strides", [2, 1, [[1, 1, 1]] * 3 + [[3, 3, 3]] * 4])
def test_mutex_watershed_recovers_segmentation_3d(strides):
    labels = cells_3d()
    offsets = SHORT_3D + LONG_3D
    result = mutex_watershed(affinities_from(labels, offsets), offsets, strides=strides)
    assert_consecutive_uint64(result)
    assert_same_segmentation(result, labels)


def test_mutex_watershed_recovers_segmentation_2d_with_per_offset_bias():
    labels = cells_2d()
    offsets = SHORT_2D + LONG_2D
    result = mutex_watershed(affinities_from(labels, offsets), offsets, bias=[-0.5, -0.5, -0.7, -0.7])
    assert_same_segmentation(result, labels)


def test_mutex_watershed_bias_is_added():
    labels = cells_2d()
    affinities = affinities_from(labels, SHORT_2D)
    np.testing.assert_array_equal(mutex_watershed(affinities, SHORT_2D, bias=0.5), np.ones(labels.shape))
    small = int(np.sum(labels == 4))
    result = mutex_watershed(affinities, SHORT_2D, min_size=small + 1)
    assert_same_segmentation(result, np.where(labels == 4, 0, labels))


def test_mutex_watershed_rejects_bad_input():
    affinities = np.full((2, 4, 4), 0.9, np.float32)
    with pytest.raises(UserError, match="2 integer offsets of length 2"):
        mutex_watershed(affinities, [[1, 0]])
    with pytest.raises(UserError, match="all zeros"):
        mutex_watershed(affinities, [[1, 0], [0, 0]])
    with pytest.raises(UserError, match="bias"):
        mutex_watershed(affinities, SHORT_2D, bias=[-0.5, -0.5, -0.5])
    with pytest.raises(UserError, match="strides"):
        mutex_watershed(affinities, SHORT_2D, strides=[[1, 1]])
    affinities[0, 1, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        mutex_watershed(affinities, SHORT_2D)


def noisy_affinities(labels, offsets, seed, sd=0.2, holes=0.0):
    """Affinities of ``labels`` plus gaussian noise (``sd``), clipped to [0, 1]; a ``holes`` fraction of the
    object voxels get all their nearest-neighbour edges (both ways) at 0.3: below 0.5, but above background."""
    rng = np.random.default_rng(seed)
    affinities = affinities_from(labels, offsets)
    affinities = np.clip(affinities + rng.normal(0, sd, affinities.shape), 0, 1).astype(np.float32)
    holed = (labels != 0) & (rng.random(labels.shape) < holes)
    for channel, offset in enumerate(offsets):
        if np.abs(offset).sum() == 1:
            affinities[channel][holed] = 0.3
            affinities[channel][np.roll(holed, -np.array(offset), axis=tuple(range(labels.ndim)))] = 0.3
    return affinities, holed


def assert_objects_recovered(result, labels, min_fragment):
    """No 0 inside objects, no object of ``result`` smaller than ``min_fragment``, and every truth object is
    mostly (99 %: noise moves a few voxels where objects touch) one object of ``result``, a different one for each."""
    inside = labels != 0
    assert (result[inside] != 0).all()
    assert np.bincount(result.ravel().astype(np.int64))[1:].min() >= min_fragment
    pairs, counts = np.unique(np.stack([labels[inside], result[inside]]), axis=1, return_counts=True)
    truth_ids, sizes = np.unique(labels[inside], return_counts=True)
    main = {t: pairs[1, pairs[0] == t][np.argmax(counts[pairs[0] == t])] for t in truth_ids}
    assert len(set(main.values())) == len(truth_ids)
    for t, size in zip(truth_ids, sizes, strict=True):
        assert np.sum((labels == t) & (result == main[t])) >= 0.99 * size


@pytest.mark.parametrize("method", ["mutex_watershed", "agglomerate"])
def test_affinity_methods_leave_no_fragments_and_no_holes(method):
    """Noise makes many tiny fragments and holed voxels make 0s inside objects; min_fragment and fill mend both."""
    labels = cells_3d()
    offsets = SHORT_3D + LONG_3D
    affinities, holed = noisy_affinities(labels, offsets, seed=4, holes=0.01)
    before = run(method, affinities, {}, offsets=offsets)
    sizes = np.bincount(before.ravel().astype(np.int64))[1:]
    assert (before[holed] == 0).sum() > 5 and (sizes < 20).sum() > 20  # the defaults: 0s in objects, fragments
    # keep background: the holed voxels' edges (0.3) reach fill, background edges (noise about 0) mostly not
    kept = run(method, affinities, {"min_fragment": 20, "fill": 0.25}, offsets=offsets)
    assert_objects_recovered(kept, labels, 20)
    assert (kept[labels == 0] != 0).mean() < 0.1
    # absorb everything: every voxel joins an object (the background too), objects are still recovered
    absorbed = run(method, affinities, {"min_fragment": 20, "fill": 0.0}, offsets=offsets)
    assert_objects_recovered(absorbed, labels, 20)
    assert absorbed.all()
    assert_consecutive_uint64(absorbed)
    np.testing.assert_array_equal(run(method, affinities, {"min_fragment": 20, "fill": 0.0}, offsets=offsets),
                                  absorbed)


def test_tidy_merges_a_small_segment_by_mean_affinity_not_by_one_edge():
    """Hand-checked: S (2 voxels) meets A by edges 0.9 and 0.1 (mean 0.5), B by three edges of 0.6 (mean 0.6)."""
    a, s_, b = 1, 2, 3
    labels = np.array([[a, a, a], [s_, s_, b], [b, b, b]], np.uint64)
    affinities = affinities_from(labels, SHORT_2D)  # channel 0: (y, x)-(y+1, x); channel 1: (y, x)-(y, x+1)
    affinities[0, 0, 0], affinities[0, 0, 1] = 0.9, 0.1  # S-A
    affinities[1, 1, 1] = affinities[0, 1, 0] = affinities[0, 1, 1] = 0.6  # S-B
    merged = tidy(labels, affinities, SHORT_2D, min_fragment=3)
    assert merged.dtype == np.uint64
    assert_same_segmentation(merged, np.array([[a, a, a], [b, b, b], [b, b, b]]))
    assert merged[0, 0] == a and merged[2, 2] in (s_, b)  # a merged segment keeps one of its ids
    np.testing.assert_array_equal(tidy(labels, affinities, SHORT_2D, min_fragment=2), labels)  # none is small
    # with 4, A (3 voxels) is small too: S joins B first (0.6), then A joins S+B, its only neighbour
    assert len(np.unique(tidy(labels, affinities, SHORT_2D, min_fragment=4))) == 1
    np.testing.assert_array_equal(tidy(labels, affinities, SHORT_2D), labels)


def test_tidy_fill_grows_in_rounds_along_edges_at_least_fill():
    """Hand-checked on one row: edges 0-1: 0.2, 1-2: 0.5, 2-3: 0.4; 4 is alone; 5 and 6 are one small segment."""
    labels = np.array([[1, 0, 0, 2, 0, 3, 3]], np.uint64)
    affinities = np.zeros((2, 1, 7), np.float32)  # channel 1: (0, x)-(0, x+1)
    affinities[1, 0, :3] = [0.2, 0.5, 0.4]
    affinities[1, 0, 3:6] = [0.1, 0.0, 0.9]
    row = SHORT_2D
    check = {0.3: [1, 2, 2, 2, 0, 3, 3],  # round 1: 2 takes voxel 2 (0.4); round 2: voxel 1 from 2 (0.5)
             0.4: [1, 2, 2, 2, 0, 3, 3],  # an edge at fill counts
             0.45: [1, 0, 0, 2, 0, 3, 3],  # nothing reaches fill from a labelled voxel
             0.0: [1, 1, 2, 2, 2, 3, 3]}  # round 1: voxel 1 from 1 (0.2 > 0.0 from nothing else), 2 from 2, 4 from 2
    for fill, expected in check.items():
        np.testing.assert_array_equal(tidy(labels, affinities, row, fill=fill)[0], expected, err_msg=str(fill))
    # segment 3 (one voxel) has no adjacent segment: it becomes 0, then fill=0 floods it from segment 2;
    # voxel 2 goes to 1 across 0.5, not to 2 across 0.4
    labels = np.array([[1, 1, 0, 2, 2, 0, 3]], np.uint64)
    np.testing.assert_array_equal(tidy(labels, affinities, row, min_fragment=2)[0], [1, 1, 0, 2, 2, 0, 0])
    np.testing.assert_array_equal(tidy(labels, affinities, row, min_fragment=2, fill=0.0)[0], [1, 1, 1, 2, 2, 2, 2])
    # a voxel that no segment reaches stays 0
    np.testing.assert_array_equal(tidy(np.zeros((1, 7), np.uint64), affinities, row, 3, 0.0), np.zeros((1, 7)))
    with pytest.raises(UserError, match="min_fragment"):
        tidy(labels, affinities, row, min_fragment=-1)
    with pytest.raises(UserError, match="fill"):
        tidy(labels, affinities, row, fill="all")
    with pytest.raises(UserError, match="nearest-neighbour"):
        mutex_watershed(np.zeros((1, 6, 6), np.float32), [[0, 2]], min_fragment=2)


# -- agglomeration ------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_agglomerate_recovers_segmentation_3d(noise):
    labels = cells_3d()
    offsets = SHORT_3D + LONG_3D  # the long-range channels are not used
    affinities = affinities_from(labels, offsets)
    affinities += np.random.default_rng(1).normal(0, noise, affinities.shape).astype(np.float32)
    result = agglomerate(np.clip(affinities, 0, 1), offsets)
    assert_consecutive_uint64(result)
    assert_same_segmentation(result, labels)


def test_agglomerate_recovers_segmentation_2d_with_noise():
    labels = cells_2d()
    affinities = affinities_from(labels, SHORT_2D)
    affinities += np.random.default_rng(2).normal(0, 0.1, affinities.shape).astype(np.float32)
    assert_same_segmentation(agglomerate(affinities, SHORT_2D), labels)


def test_agglomerate_merges_fragments_by_mean_not_by_one_edge():
    """Two boxes touching along a face, with one strong edge across it: two objects, not one."""
    labels = np.zeros((12, 12, 20), np.uint64)
    labels[2:10, 2:10, 2:10], labels[2:10, 2:10, 10:18] = 1, 2
    affinities = affinities_from(labels, SHORT_3D)
    affinities[2, 6, 6, 9] = 0.95  # the edge between (6, 6, 9) in box 1 and (6, 6, 10) in box 2
    assert_same_segmentation(agglomerate(affinities, SHORT_3D), labels)
    assert agglomerate(affinities, SHORT_3D, threshold=0.01).max() == 1  # the mean across the face: 0.95 / 64


def test_agglomerate_joins_the_fragments_of_a_dumbbell():
    """Two balls joined by a one-voxel neck: the neck has no interior, so there are several fragments."""
    dumbbell = (balls((16, 16, 34), [(8, 8, 7), (8, 8, 26)], 5) > 0).astype(np.uint64)
    dumbbell[8, 8, 12:22] = 1
    affinities = affinities_from(dumbbell, SHORT_3D)
    assert fragment(affinities, np.array(SHORT_3D), 0.5).max() >= 2
    np.testing.assert_array_equal(agglomerate(affinities, SHORT_3D), dumbbell)


def test_agglomerate_needs_a_nearest_neighbour_offset():
    with pytest.raises(UserError, match="nearest-neighbour"):
        agglomerate(np.zeros((2, 4, 4, 4), np.float32), [[2, 0, 0], [0, 1, 1]])


@pytest.fixture(params=["compiled", "python"])
def merging_loop(request, monkeypatch):
    """merge_by_mean_affinity with the compiled loop (skipped where it was not built) or the Python one."""
    from alfine.postprocess import merging

    if request.param == "python":
        monkeypatch.setattr(merging, "_compiled", None)
    elif not merging.COMPILED:
        pytest.skip("alfine._agglomeration was not built (no C compiler at install)")
    return request.param


def test_merge_recomputes_the_mean_of_merged_edges(merging_loop):
    pairs = np.array([[1, 2], [2, 3], [1, 3]])
    # 1-2 merge first (0.9); then (1+2)-3 has mean (0.6 + 9 * 0.2) / 10 = 0.24, below the threshold.
    segment_of = merge_by_mean_affinity(3, pairs, np.array([9.0, 0.6, 1.8]), np.array([10, 1, 9]), 0.5)
    assert segment_of[1] == segment_of[2] != segment_of[3]
    # Here (1+2)-3 has mean (2.4 + 0.4) / 4 = 0.7: all merge, although 1-3 alone is 0.4.
    segment_of = merge_by_mean_affinity(3, pairs, np.array([9.0, 2.4, 0.4]), np.array([10, 3, 1]), 0.5)
    assert segment_of[1] == segment_of[2] == segment_of[3]
    assert segment_of[0] == 0


def _merge_reference(nodes, pairs, sums, counts, threshold_):
    """Naive greedy merging: recompute every segment pair's mean from the voxel edges at each step."""
    segment = list(range(nodes + 1))
    while True:
        totals = {}
        for (u, v), total, count in zip(pairs.tolist(), sums, counts, strict=True):
            a, b = sorted((segment[u], segment[v]))
            if a != b:
                previous = totals.get((a, b), (0.0, 0))
                totals[(a, b)] = (previous[0] + total, previous[1] + count)
        best = max(totals.items(), key=lambda item: item[1][0] / item[1][1], default=None)
        if best is None or best[1][0] / best[1][1] <= threshold_:
            return segment
        a, b = best[0]
        segment = [a if s == b else s for s in segment]


@pytest.mark.parametrize("seed", range(12))
def test_merge_matches_a_naive_reference(seed, merging_loop):
    rng = np.random.default_rng(seed)
    nodes = 9
    pairs = np.array([p for p in itertools.combinations(range(1, nodes + 1), 2) if rng.random() < 0.4])
    counts = rng.integers(1, 6, len(pairs))
    sums = rng.random(len(pairs)) * counts
    segment_of = merge_by_mean_affinity(nodes, pairs, sums, counts, 0.45)
    reference = np.array(_merge_reference(nodes, pairs, sums.tolist(), counts.tolist(), 0.45))
    assert_same_segmentation(segment_of, reference)


# -- registry -----------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product():
    assert len(grid("threshold")) == 9
    assert len(grid("watershed")) == len(METHODS["watershed"].default_grid["seed_threshold"]) * len(
        METHODS["watershed"].default_grid["mask_threshold"]
    )
    assert grid("argmax") == [{}]
    combos = grid("watershed", {"kind": "boundary", "seed_threshold": [0.1, 0.2], "mask_threshold": (0.5, 0.7, 0.9)})
    assert len(combos) == 6 and all(c["kind"] == "boundary" for c in combos)
    assert {(c["seed_threshold"], c["mask_threshold"]) for c in combos} == set(
        itertools.product([0.1, 0.2], [0.5, 0.7, 0.9])
    )
    combos = grid("mutex_watershed", {"bias": [[-0.5, -0.5, -0.8]], "min_fragment": 10})
    assert combos == [{"bias": [-0.5, -0.5, -0.8], "min_fragment": 10, "fill": fill} for fill in (0.25, 0.0)]
    for name in ("mutex_watershed", "agglomerate"):  # validation sweeps these on the CPU: a few runs only
        combos = grid(name)
        assert len(combos) <= 14 and {c["fill"] for c in combos} == {0.25, 0.0}, name
        assert combos[0]["fill"] == 0.25  # on ties the first wins: keep background
    with pytest.raises(UserError, match="'agglomerate' has no parameter 'bias'"):
        grid("agglomerate", {"bias": [0.1]})


def test_default_grids_name_real_parameters_and_run():
    labels = cells_2d()
    for name, method in METHODS.items():
        assert set(method.default_grid) <= set(method.parameters), name
        prediction = affinities_from(labels, SHORT_2D) if method.takes_offsets else np.stack([labels > 0] * 2) * 0.9
        result = run(name, prediction.astype(np.float32), grid(name)[len(grid(name)) // 2], offsets=SHORT_2D)
        assert result.dtype == (np.uint64 if method.instances else np.uint8), name


def test_run_validates_names():
    prediction = np.stack([cells_2d() > 0]).astype(np.float32)
    np.testing.assert_array_equal(
        run("connected_components", prediction, {"threshold": 0.5, "min_size": 10}),
        connected_components(prediction, min_size=10),
    )
    with pytest.raises(UserError) as error:
        run("connected_components", prediction, {"treshold": 0.5})
    message = str(error.value)
    assert "'connected_components'" in message and "'treshold'" in message
    assert "threshold, connectivity, channel, min_size" in message
    with pytest.raises(UserError, match="unknown post-processing method 'waterz'.*mutex_watershed"):
        run("waterz", prediction, {})
    with pytest.raises(UserError, match="needs parameter.*seed_threshold"):
        run("watershed", prediction, {"mask_threshold": 0.0})
    with pytest.raises(UserError, match="needs the affinity offsets"):
        run("agglomerate", prediction, {})


# -- user functions -----------------------------------------------------------------------------

USER_CODE = """
import numpy as np

SCALE = 3

def label(prediction, threshold=0.5):
    return (prediction[0] > threshold).astype(np.uint64) * SCALE
"""


def test_user_function_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USER_CODE)
    function = load_function(f"{path}:label")
    prediction = np.array([[[0.2, 0.7]]], np.float32)
    np.testing.assert_array_equal(function(prediction, threshold=0.1), [[3, 3]])
    np.testing.assert_array_equal(function(prediction), [[0, 3]])


def test_user_function_from_a_module(tmp_path, monkeypatch):
    package = tmp_path / "alfine_test_userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "post.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "alfine_test_userpkg", raising=False)
    function = load_function("alfine_test_userpkg.post:label")
    np.testing.assert_array_equal(function(np.ones((1, 1, 2), np.float32)), [[3, 3]])


def test_user_function_errors(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USER_CODE)
    broken = tmp_path / "broken.py"
    broken.write_text("import alfine_no_such_module_xyz\n")
    cases = {
        "label": "module:function",
        f"{tmp_path}/missing.py:label": "does not exist",
        "alfine_no_such_module_xyz:label": "cannot import module",
        f"{path}:nothing": "no function 'nothing'",
        f"{path}:SCALE": "not callable",
        f"{broken}:label": "cannot load",
        f"{path}:": "module:function",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError, match=message):
            load_function(spec)


def test_predictions_must_be_channel_first_2d_or_3d():
    with pytest.raises(UserError, match="channel-first"):
        connected_components(np.zeros((4, 4), np.float32))
    with pytest.raises(UserError, match="channel-first"):
        argmax(np.zeros((1, 2, 2, 2, 2), np.float32))


def test_background_only_gives_no_objects():
    empty = np.zeros((3, 5, 6, 7), np.float32)
    for name in ("connected_components", "mutex_watershed", "agglomerate"):
        labels = run(name, empty, {}, offsets=SHORT_3D)
        assert labels.shape == (5, 6, 7) and labels.dtype == np.uint64 and not labels.any(), name


@pytest.mark.parametrize("method, core", [("mutex_watershed", {"bias": -0.5}), ("agglomerate", {"threshold": 0.5})])
def test_a_sweep_reuses_the_core_result_only_for_the_same_input(method, core, monkeypatch):
    """A sweep over min_fragment and fill reuses the method's core result, and the merge of small fragments
    across fills, which equal fresh ones; an array changed in place, or another core parameter, is computed anew."""
    from alfine.postprocess import agglomeration, reuse
    from alfine.postprocess.registry import run as run_method

    merges, merge_small = [], agglomeration._merge_small
    monkeypatch.setattr(agglomeration, "_merge_small", lambda *args: merges.append(args[3]) or merge_small(*args))
    offsets = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    affinities = affinities_from(cells_3d(), offsets)
    affinities += np.random.default_rng(4).normal(0, 0.3, affinities.shape).astype(affinities.dtype)
    affinities = np.clip(affinities, 0, 1).astype(np.float32)
    results = []
    # (tidy parameters, the merges computed): min_fragment 20 with its second fill follows the fresh run with
    # the first (below), whose merge it reuses
    sweep = [({}, []), ({"min_fragment": 20, "fill": 0.0}, [20]), ({"min_fragment": 20, "fill": 0.25}, []),
             ({"min_fragment": 5, "fill": 0.25}, [5])]
    for tidy_params, computed in sweep:
        merges.clear()
        results.append(run_method(method, affinities, {**core, **tidy_params}, offsets=offsets))
        assert merges == computed, tidy_params
        reuse._LAST.clear()
        np.testing.assert_array_equal(results[-1], run_method(method, affinities, {**core, **tidy_params},
                                                              offsets=offsets))
    assert not np.array_equal(results[0], results[1]) and not np.array_equal(results[1], results[2])
    run_method(method, affinities, core, offsets=offsets)
    affinities[:, :4] = 0.0  # the same array object, other values: no stale result
    changed = run_method(method, affinities, core, offsets=offsets)
    reuse._LAST.clear()
    np.testing.assert_array_equal(changed, run_method(method, affinities, core, offsets=offsets))
    assert not np.array_equal(changed, results[0])


def test_a_method_carries_its_context_join_rule_and_output_type():
    from alfine.postprocess import METHODS

    long_range = [[1, 0, 0], [0, 0, 9], [0, -12, 0]]
    assert METHODS["connected_components"].default_context(None) == 0
    assert METHODS["watershed"].default_context(long_range) == 16  # takes no offsets: its own context
    assert METHODS["mutex_watershed"].default_context(long_range) == 24  # twice the longest offset
    assert METHODS["agglomerate"].default_context([[1, 0, 0]]) == 16
    assert METHODS["connected_components"].join_rule({"connectivity": 26}, (0, 0, 0), 3) == {
        "rule": "adjacency", "connectivity": 26}
    assert METHODS["watershed"].join_rule({}, (0, 0, 0), 2) == {"rule": "adjacency", "connectivity": 4}
    assert METHODS["watershed"].join_rule({}, (16, 16, 16), 3)["rule"] == "overlap"
    assert METHODS["argmax"].output_type({}, 300) == (np.dtype(np.uint16), ())
    assert METHODS["threshold"].output_type({}, 3) == (np.dtype(np.uint8), (3,))
    assert METHODS["threshold"].output_type({"channel": 1}, 3) == (np.dtype(np.uint8), ())
    assert METHODS["agglomerate"].output_type({}, 3) == (np.dtype(np.uint64), ())


def test_postprocess_block_help_lists_every_method_with_its_parameters_and_defaults(capsys):
    from alfine.postprocess import METHODS
    from alfine.postprocess.registry import REQUIRED
    from alfine_tools.postprocess_block import main

    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")
             and line.split()[0] in METHODS}
    assert set(lines) == set(METHODS)
    for name, method in METHODS.items():
        for parameter, default in method.defaults.items():
            assert (parameter if default is REQUIRED else f"{parameter}={default!r}") in lines[name], (name, parameter)


@pytest.mark.parametrize("shape, connectivities", [((7, 23, 19), (6, 18, 26)), ((31, 29), (4, 8))])
def test_connected_components_number_objects_in_order_of_first_voxel(shape, connectivities):
    """The labels are scipy.ndimage.label's exactly (1..n in C order of each object's first voxel), with and
    without min_size: postprocess-block relies on that order and does not renumber them."""
    from scipy import ndimage

    rng = np.random.default_rng(11)
    for share in (0.3, 0.6):
        prediction = rng.random((1, *shape)).astype(np.float32)
        for connectivity in connectivities:
            structure = ndimage.generate_binary_structure(len(shape), 1 if connectivity in (4, 6) else
                                                          2 if connectivity == 18 else len(shape))
            expected, _ = ndimage.label(prediction[0] > share, structure)
            labels = connected_components(prediction, threshold=share, connectivity=connectivity)
            assert labels.dtype == np.uint64
            np.testing.assert_array_equal(labels, expected)
            kept = connected_components(prediction, threshold=share, connectivity=connectivity, min_size=2)
            sizes = np.bincount(expected.ravel())
            np.testing.assert_array_equal(kept != 0, (expected != 0) & (sizes[expected] >= 2))
            np.testing.assert_array_equal(np.unique(kept[kept != 0], return_index=True)[0],
                                          np.arange(1, kept.max() + 1))
