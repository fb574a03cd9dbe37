"""Tests of the semantic and distance targets: hand-computed values, and crops against the whole volume."""

from __future__ import annotations

import math

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from alfine.tasks.targets.distance import (
    distance_context,
    distance_targets,
    inner_distance,
    signed_distance,
    tanh_distance,
)
from alfine.tasks.targets.semantic import (
    binary_channels,
    classes_from_labels,
    one_hot,
)
from alfine.tasks.targets.weights import balance_binary, balance_classes

# --- semantic targets -------------------------------------------------------------------------


def test_classes_from_labels_default_and_grouped():
    labels = np.array([[0, 3, 7], [2**40, 0, 9]], dtype=np.uint64)
    default = classes_from_labels(labels)
    assert default.dtype == np.uint8
    assert default.tolist() == [[0, 1, 1], [1, 0, 1]]
    grouped = classes_from_labels(labels, {3: 1, 7: 2, 2**40: 2, 5: 3})
    assert grouped.dtype == np.uint8
    assert grouped.tolist() == [[0, 1, 2], [2, 0, 0]]  # 9 is not in the mapping
    assert classes_from_labels(labels, {0: 4, 9: 300}).tolist() == [[4, 0, 0], [0, 4, 300]]
    assert classes_from_labels(labels, {}).tolist() == [[0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match=">= 0"):
        classes_from_labels(labels, {3: -1})


def test_one_hot_and_mask():
    classes = np.array([[0, 2], [1, 2]], dtype=np.uint8)
    mask = np.array([[1, 0], [1, 1]], dtype=np.uint8)
    target, known = one_hot(classes, 3, mask)
    assert target.dtype == known.dtype == np.float32
    expected = [[[1, 0], [0, 0]], [[0, 0], [1, 0]], [[0, 1], [0, 1]]]
    assert target.tolist() == expected
    assert known.tolist() == [[[1, 0], [1, 1]]] * 3
    assert one_hot(classes, 3)[1].tolist() == [[[1, 1], [1, 1]]] * 3


def test_one_hot_refuses_a_known_class_beyond_num_classes():
    classes = np.array([0, 1, 5], dtype=np.uint8)
    with pytest.raises(ValueError, match="class 5"):
        one_hot(classes, 2)
    target, known = one_hot(classes, 2, mask=np.array([1, 1, 0]))  # 5 lies where labels are unknown
    assert known[:, 2].tolist() == [0, 0]
    assert target.tolist() == [[1, 0, 0], [0, 1, 0]]


def test_binary_channels():
    classes = np.array([[0, 1, 2], [2, 3, 1]], dtype=np.uint8)
    target, known = binary_channels(classes, [2, 1], mask=np.array([[1, 1, 1], [0, 1, 1]]))
    assert target.shape == known.shape == (2, 2, 3)
    assert target.tolist() == [[[0, 0, 1], [1, 0, 0]], [[0, 1, 0], [0, 0, 1]]]
    assert known.tolist() == [[[1, 1, 1], [0, 1, 1]]] * 2


def test_one_hot_weights_balance_classes():
    classes = np.array([0, 0, 0, 1, 2, 2, 0, 1], dtype=np.uint8)
    mask = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # known: three 0s, one 1, two 2s
    target, known = one_hot(classes, 3, mask)
    weights = np.broadcast_to(balance_classes(classes, 3, known[0]), target.shape)
    assert weights.shape == target.shape == (3, 8)
    assert np.array_equal(weights[0], weights[1]) and np.array_equal(weights[0], weights[2])
    # weight of class c = 1 / (3 * frequency_c): frequencies 1/2, 1/6, 1/3
    assert np.allclose(weights[0], [2 / 3, 2 / 3, 2 / 3, 2, 1, 1, 0, 0])
    sums = [weights[0][(classes == c) & (mask > 0)].sum() for c in range(3)]
    assert np.allclose(sums, 2.0)
    given = balance_classes(classes, 3, known[0], frequencies=np.array([0.25, 0.25, 0.5]))
    assert np.allclose(given, [4 / 3, 4 / 3, 4 / 3, 4 / 3, 2 / 3, 2 / 3, 0, 0])


def test_binary_channel_weights_balance_ones_and_zeros():
    classes = np.array([1, 0, 0, 0, 2, 2, 2, 2], dtype=np.uint8)
    target, known = binary_channels(classes, [1, 2], mask=np.array([1, 1, 1, 1, 1, 1, 1, 0]))
    weights = balance_binary(target, known)
    # channel 0: 1 positive of 7 known -> 0.5 / (1/7) and 0.5 / (6/7); channel 1: 3 of 7
    assert np.allclose(weights[0], [3.5, 7 / 12, 7 / 12, 7 / 12, 7 / 12, 7 / 12, 7 / 12, 0])
    assert np.allclose(weights[1], [7 / 8] * 4 + [7 / 6] * 3 + [0])
    for c in range(2):
        assert weights[c][target[c] == 1].sum() == pytest.approx(weights[c][target[c] == 0].sum())


# --- signed distance: hand-computed values ----------------------------------------------------


def test_line_of_voxels_in_a_3d_array():
    inside = np.zeros((1, 1, 8), bool)
    inside[0, 0, 2:6] = True
    distance, known = signed_distance(inside, (40, 4, 4), clip_distance=100)
    assert distance.dtype == known.dtype == np.float32
    assert distance.ravel().tolist() == [-8, -4, 4, 8, 8, 4, -4, -8]
    # The array is one voxel thick along y: a voxel beyond it, 4 away, could be a boundary.
    assert known.ravel().tolist() == [0, 1, 1, 0, 0, 1, 1, 0]


def test_anisotropic_slab_distances_count_in_z_voxels_of_40():
    inside = np.zeros((8, 5, 5), bool)
    inside[2:6] = True
    distance, known = signed_distance(inside, (40, 4, 4), clip_distance=1000)
    assert np.all(distance == np.array([-80, -40, 40, 80, 80, 40, -40, -80]).reshape(8, 1, 1))
    assert not known.any()  # every |d| >= 40 exceeds the 12 nm to the nearest y or x edge
    distance, known = signed_distance(inside, (40, 4, 4), clip_distance=12)
    assert np.all(distance == np.where(inside, 12, -12))
    expected = np.zeros((8, 5, 5))
    expected[:, 2, 2] = 1  # only the central column is 12 nm from the y and x edges
    assert np.array_equal(known, expected)


def test_anisotropic_cube():
    inside = np.zeros((7, 7, 7), bool)
    inside[2:5, 2:5, 2:5] = True
    distance, known = signed_distance(inside, (8, 4, 4), clip_distance=100)
    assert distance[:, 3, 3].tolist() == [-16, -8, 8, 8, 8, -8, -16]
    assert distance[3, :, 3].tolist() == [-8, -4, 4, 8, 4, -4, -8]
    assert distance[1, 1, 1] == pytest.approx(-math.sqrt(8**2 + 4**2 + 4**2))
    assert distance[0, 0, 0] == pytest.approx(-math.sqrt(16**2 + 8**2 + 8**2))
    assert known[3, 3, 3] == 1  # d = 8 <= 16 (four voxels of 4 to the y edge)
    assert known[1, 3, 3] == 1  # d = -8, edge 16 away along z
    assert known[0, 3, 3] == 0  # d = -16, the z edge is 8 away
    assert known[3, 0, 3] == 0 and known[3, 1, 3] == 1  # d = -8 vs edge 4; d = -4 vs edge 8
    assert known[1, 1, 1] == 0  # |d| = 9.8 > 8 to the y and x edges


def test_2d_squares_and_clipping():
    inside = np.zeros((6, 7), bool)
    inside[1:4, 1:4] = True  # a 3 x 3 square
    inside[1:3, 5:7] = True  # a 2 x 2 square touching the right edge
    distance, _ = signed_distance(inside, (8, 4), clip_distance=100)
    assert distance[2, 2] == 8 and distance[1, 1] == 4 and distance[2, 1] == 4
    assert distance[0, 2] == -8 and distance[2, 0] == -4 and distance[2, 4] == -4
    assert distance[0, 0] == pytest.approx(-math.sqrt(8**2 + 4**2))
    assert distance[5, 5] == pytest.approx(-math.sqrt(16**2 + 8**2))  # to (3, 3); (2, 5) is 24 away
    assert distance[1, 6] == 8 and distance[2, 6] == 8  # the right edge is not a boundary
    clipped, known = signed_distance(inside, (8, 4), clip_distance=6)
    assert clipped.min() == -6 and clipped.max() == 6
    assert clipped[2, 2] == 6 and clipped[2, 1] == 4 and clipped[0, 2] == -6 and clipped[2, 0] == -4
    assert known[2, 2] == 1 and known[2, 1] == 1  # 6 <= 12 to the nearest edge; 4 <= 8
    assert known[2, 6] == 0  # 6 > 4 to the right edge


def test_all_inside_is_clipped_and_known_far_from_the_edges():
    distance, known = signed_distance(np.ones((5, 5), bool), (4, 4), clip_distance=8)
    assert np.all(distance == 8)
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = 1
    assert np.array_equal(known, expected)


def test_mask_voxels_are_unknown_and_may_be_boundaries():
    inside = np.ones((7, 7), bool)
    inside[:, 6] = False
    mask = np.ones((7, 7), np.uint8)
    mask[:, 0] = 0
    distance, known = signed_distance(inside, (4, 4), clip_distance=100, mask=mask)
    row = 3  # 16 nm from the top and bottom edges
    assert distance[row].tolist() == [0, 4, 8, 12, 8, 4, -4]
    # col 1, 2: the nearest boundary seen is the unknown column 0; col 3 ties with it (12 vs 12)
    assert known[row].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert not known[:, 0].any()


def test_tanh_distance():
    values = tanh_distance(np.array([-16, -4, 4, 8, 40]), 8)
    assert values.dtype == np.float32
    assert np.allclose(values, [math.tanh(-2), math.tanh(-0.5), math.tanh(0.5), math.tanh(1), math.tanh(5)], atol=1e-7)


def test_distance_targets_one_channel_per_class_with_default_clip():
    classes = np.zeros((9, 9), np.uint8)
    classes[1:8, 1:8] = 1
    classes[3:6, 3:6] = 2
    target, known = distance_targets(classes, [2, 1], (4, 4), scale=4)
    assert target.shape == known.shape == (2, 9, 9)
    # class 2: a 3 x 3 square; default clip 3 * scale = 12
    assert np.allclose(target[0, 4], np.tanh(np.array([-12, -8, -4, 4, 8, 4, -4, -8, -12]) / 4))
    # class 1: a 7 x 7 square less class 2: a ring, with class 2 outside it
    assert np.allclose(target[1, 4], np.tanh(np.array([-4, 4, 4, -4, -8, -4, 4, 4, -4]) / 4))
    assert known[0, 4].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0]  # |d| vs 4, 8, 12, 16, 20, ... from the edge
    assert known[1, 4].tolist() == [1] * 9
    assert np.isclose(target[1, 0, 0], math.tanh(-math.sqrt(32) / 4))


def test_inner_distance_separates_touching_instances():
    labels = np.array([[0, 5, 5, 5, 7, 7, 0, 0, 9, 9]], dtype=np.uint64)
    target, known = inner_distance(labels, (4, 4), scale=8, clip_distance=100)
    assert target.shape == known.shape == (1, 1, 10)
    assert np.allclose(target[0, 0], np.tanh(np.array([0, 4, 8, 4, 4, 4, 0, 0, 4, 8]) / 8))
    # one voxel thick: only distances of 4 (and background) are known; 9 runs into the edge
    assert known[0, 0].tolist() == [1, 1, 0, 1, 1, 1, 1, 1, 1, 0]


def test_inner_distance_mask():
    labels = np.zeros((5, 8), np.uint64)
    labels[:, 1:7] = 3
    mask = np.ones((5, 8), np.uint8)
    mask[:, 7] = 0
    labels[:, 7] = 3  # under the mask: ignored, so column 6 sees a boundary there
    target, known = inner_distance(labels, (4, 4), scale=8, clip_distance=8, mask=mask)
    assert np.allclose(target[0, 2], np.tanh(np.array([0, 4, 8, 8, 8, 8, 4, 0]) / 8))
    assert known[0, 2].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]


def test_balance_inside_outside():
    target = np.array([[0.5, -0.2, -0.3, -0.9], [0.1, 0.3, -0.1, 0.7]], np.float32)
    known = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], np.float32)
    weights = balance_binary(target > 0, known)  # the known voxels inside and outside weigh the same
    assert np.allclose(weights, [[2, 2 / 3, 2 / 3, 2 / 3], [0.75, 0.75, 1.5, 0]])


def test_distance_context():
    assert distance_context(20, (8, 4, 4)) == (16, 16, 16)
    assert distance_context(12, (40, 4, 4)) == (0, 8, 8)
    assert distance_context(4, (4, 4)) == (0, 0)


# --- crops against the whole volume -----------------------------------------------------------

CLIP = 20.0
VOXEL_SIZES = [(8, 4, 4), (40, 4, 4)]


@pytest.fixture(scope="module")
def volume():
    """Random blobs cut into instances by three planes (so some touch), their classes, and a random mask."""
    rng = np.random.default_rng(4)
    shape = (20, 36, 36)
    blobs = ndimage.gaussian_filter(rng.random(shape), (1, 2, 2)) > 0.51
    z, y, x = np.indices(shape)
    octant = 4 * (z >= 10) + 2 * (y >= 18) + (x >= 18)
    labels = np.where(blobs, 8 * cc3d.connected_components(blobs).astype(np.uint64) + octant, 0).astype(np.uint64)
    classes = classes_from_labels(labels, {int(i): 1 + int(i) % 2 for i in np.unique(labels) if i})
    mask = (ndimage.gaussian_filter(rng.random(shape), (1, 2, 2)) < 0.53).astype(np.uint8)
    return labels, classes, mask


def crops(shape, count, seed):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        size = [int(rng.integers(6, n + 1)) for n in shape]
        begin = [int(rng.integers(0, n - s + 1)) for n, s in zip(shape, size, strict=True)]
        yield tuple(slice(b, b + s) for b, s in zip(begin, size, strict=True))


TARGETS = {
    "signed_distance": lambda labels, classes, mask, vs: signed_distance(classes == 1, vs, CLIP, mask),
    "distance_targets": lambda labels, classes, mask, vs: distance_targets(classes, [1, 2], vs, 6.0, CLIP, mask),
    "inner_distance": lambda labels, classes, mask, vs: inner_distance(labels, vs, 6.0, CLIP, mask),
}


def crop_of(region, channels):
    """``region`` of a spatial array, or of every channel of a channel-first one."""
    return channels[(slice(None),) * (channels.ndim - len(region)) + region]


@pytest.mark.parametrize("voxel_size", VOXEL_SIZES)
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("name", TARGETS)
def test_what_a_crop_knows_agrees_with_the_whole_volume(volume, name, masked, voxel_size):
    """Where a crop says known, its value is the whole unmasked volume's, whatever lies under the mask."""
    labels, classes, mask = volume
    truth, _ = TARGETS[name](labels, classes, None, voxel_size)
    rng = np.random.default_rng(2)
    known_fraction, differ = [], 0
    for region in crops(labels.shape, 6, seed=1):
        crop_labels, crop_classes, crop_mask = labels[region], classes[region], None
        if masked:
            crop_mask = mask[region]
            hidden = crop_mask == 0
            crop_labels = np.where(hidden, rng.integers(0, 3, hidden.shape, dtype=np.uint64), crop_labels)
            crop_classes = np.where(hidden, rng.integers(0, 3, hidden.shape, dtype=np.uint8), crop_classes)
        target, known = TARGETS[name](crop_labels, crop_classes, crop_mask, voxel_size)
        whole = crop_of(region, truth)
        assert target.shape == known.shape == whole.shape
        assert np.allclose(target[known > 0], whole[known > 0], rtol=0, atol=1e-5)
        if masked:
            assert not known[..., hidden].any()
        known_fraction.append(known.mean())
        differ += np.count_nonzero(np.abs(target - whole) > 1e-5)
    assert np.mean(known_fraction) > 0.2  # much of a crop is known ...
    assert differ > 0  # ... and what is not, is where the edges or the mask made a difference


@pytest.mark.parametrize("voxel_size", VOXEL_SIZES)
def test_context_makes_the_interior_known(volume, voxel_size):
    labels, classes, _ = volume
    context = distance_context(CLIP, voxel_size)  # 2, 4, 4 voxels at (8, 4, 4); 0, 4, 4 at (40, 4, 4)
    margin = [c // v for c, v in zip(context, voxel_size, strict=True)]
    interior = tuple(slice(m, n - m) for m, n in zip(margin, labels.shape, strict=True))
    _, known = signed_distance(classes == 1, voxel_size, CLIP)
    assert known[interior].all()
    _, known = inner_distance(labels, voxel_size, 6.0, CLIP)
    assert known[(0,) + interior].all()
    # One voxel less is not enough where the distance reaches the clip (here: everywhere).
    _, known = signed_distance(np.ones(labels.shape, bool), voxel_size, CLIP)
    for axis, (m, n) in enumerate(zip(margin, labels.shape, strict=True)):
        if m > 0:
            thinner = tuple(slice(m - 1, n - m + 1) if a == axis else s for a, s in enumerate(interior))
            assert not known[thinner].all()
