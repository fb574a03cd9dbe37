"""Tests of the affinity and local-shape-descriptor targets against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from alfine.tasks.targets.affinities import affinities, affinity_context
from alfine.tasks.targets.lsds import local_shape_descriptors, lsd_context
from alfine.tasks.targets.weights import balance_binary

# 2D labels with background (0) pairs, touching objects and an object (5) at the right edge.
LABELS_2D = np.array(
    [
        [1, 1, 0, 0],
        [1, 2, 0, 5],
        [2, 2, 2, 5],
    ],
    dtype=np.uint64,
)
NEIGHBORHOOD_2D = [[0, 1], [1, 0], [-1, 0], [0, -2], [2, 3]]
# Per channel: affinities, affinities with background as an object, known.
EXPECTED_2D = [
    (
        [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
        [[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
        [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]],
    ),
    (
        [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]],
        [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]],
        [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]],
    ),
    (
        [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1]],
        [[0, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]],
        [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]],
    ),
    (
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]],
        [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]],
    ),
    (
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    ),
]


def voronoi(shape, seeds, rng, background=0.05):
    """Labels of the nearest of ``seeds`` random points (ids far apart), with some background voxels."""
    points = rng.integers(0, shape, size=(seeds, len(shape)))
    grid = np.indices(shape).reshape(len(shape), -1).T
    nearest = ((grid[:, None, :] - points[None]) ** 2).sum(-1).argmin(1).reshape(shape)
    labels = (nearest.astype(np.uint64) + 1) * np.uint64(1 << 33)
    labels[rng.random(shape) < background] = 0
    return labels


# --- affinities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("background_as_object", [False, True])
def test_affinities_2d(background_as_object):
    affs, known = affinities(LABELS_2D, NEIGHBORHOOD_2D, background_as_object=background_as_object)
    assert affs.dtype == known.dtype == np.float32
    assert affs.shape == known.shape == (5, 3, 4)
    for channel, (plain, with_background, expected_known) in enumerate(EXPECTED_2D):
        expected = with_background if background_as_object else plain
        np.testing.assert_array_equal(affs[channel], expected, err_msg=f"channel {channel}")
        np.testing.assert_array_equal(known[channel], expected_known, err_msg=f"channel {channel}")


def test_affinities_3d_long_range_and_negative():
    labels = np.array(
        [
            [[1, 1, 1, 1], [1, 0, 0, 2], [3, 3, 2, 2]],
            [[1, 1, 4, 2], [0, 0, 0, 2], [3, 3, 2, 2]],
        ],
        dtype=np.uint64,
    )
    zeros = np.zeros((3, 4))
    affs, known = affinities(labels, [[1, 0, 0], [0, 2, 0], [0, 0, -3]])
    np.testing.assert_array_equal(affs[0], [[[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]], zeros])
    np.testing.assert_array_equal(known[0], [np.ones((3, 4)), zeros])
    np.testing.assert_array_equal(affs[1], [zeros, [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]])
    np.testing.assert_array_equal(known[1], [[[1, 1, 1, 1], [0] * 4, [0] * 4]] * 2)
    np.testing.assert_array_equal(affs[2], [[[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], zeros])
    np.testing.assert_array_equal(known[2], [[[0, 0, 0, 1]] * 3] * 2)
    background, _ = affinities(labels, [[1, 0, 0]], background_as_object=True)
    np.testing.assert_array_equal(background[0], [[[1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], zeros])


def test_affinities_mask_makes_both_ends_unknown():
    mask = np.ones((3, 4), bool)
    mask[1, 1] = False
    affs, known = affinities(LABELS_2D, [[0, 1], [1, 0]], mask=mask)
    np.testing.assert_array_equal(known[0], [[1, 1, 1, 0], [0, 0, 1, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(known[1], [[1, 0, 1, 1], [1, 0, 1, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(affs[0], EXPECTED_2D[0][0])  # the values do not change


def test_affinities_never_invent_a_boundary_at_the_crop_edge():
    labels = np.full((4, 5, 6), 7, np.uint64)  # one object filling the crop
    affs, known = affinities(labels, [[0, 0, 1], [0, 0, -2], [3, 0, 0]])
    assert np.all(affs[known == 1] == 1)
    assert np.all(affs[known == 0] == 0)
    assert known[0].sum() == 4 * 5 * 5 and known[1].sum() == 4 * 5 * 4 and known[2].sum() == 1 * 5 * 6


def test_affinities_of_a_crop_interior_equal_the_whole_volume():
    rng = np.random.default_rng(3)
    voxel_size = (40, 8, 8)
    labels = voronoi((16, 30, 30), 12, rng)
    neighborhood = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [0, -9, 0], [0, 0, 9], [-2, 4, -5]]
    context = affinity_context(neighborhood, voxel_size)
    assert context == (120, 72, 72)
    whole, _ = affinities(labels, neighborhood)
    begin, end = (2, 3, 1), (15, 28, 29)
    affs, known = affinities(labels[tuple(map(slice, begin, end))], neighborhood)
    grow = [c // v for c, v in zip(context, voxel_size, strict=True)]
    interior = tuple(slice(g, e - b - g) for g, b, e in zip(grow, begin, end, strict=True))
    place = tuple(slice(b + g, e - g) for g, b, e in zip(grow, begin, end, strict=True))
    assert np.all(known[(slice(None),) + interior] == 1)
    np.testing.assert_array_equal(affs[(slice(None),) + interior], whole[(slice(None),) + place])
    assert 0 < affs[(slice(None),) + interior].mean() < 1


def test_affinity_offsets_must_match_the_dimensions():
    with pytest.raises(ValueError):
        affinities(LABELS_2D, [[1, 0, 0]])
    with pytest.raises(ValueError):
        affinities(LABELS_2D, [[1, 0], [0, 1, 0]])
    with pytest.raises(ValueError):
        affinity_context([[1, 0]], (8, 8, 8))
    with pytest.raises(ValueError):
        affinities(LABELS_2D, [[1, 0]], mask=np.ones((3, 3)))


def test_balanced_affinity_weights():
    affs, known = affinities(LABELS_2D, [[0, 1], [1, 0]])
    weights = balance_binary(affs, known)
    # channel 0: 9 known, 3 positive -> 1s weigh 0.5 / (3/9) = 1.5, 0s 0.5 / (6/9) = 0.75
    np.testing.assert_allclose(weights[0], np.where(affs[0] == 1, 1.5, 0.75) * EXPECTED_2D[0][2])
    for channel in range(2):
        positive = weights[channel][affs[channel] == 1].sum()
        negative = weights[channel][(affs[channel] == 0) & (weights[channel] > 0)].sum()
        assert positive == pytest.approx(negative) and positive > 0
    assert np.all(weights[1][2] == 0)  # the last row has no neighbour below


# --- local shape descriptors --------------------------------------------------------------------


def window(sigma_voxels, radius):
    """The 1D window: offsets -radius..radius and their normalised sampled Gaussian weights."""
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma_voxels) ** 2)
    return offsets, weights / weights.sum()


def window_variance(sigma_voxels, radius):
    """The full window's variance in units of sigma^2."""
    offsets, weights = window(sigma_voxels, radius)
    return (weights * offsets**2).sum() / sigma_voxels**2


def ball(shape, centre, radius_world, voxel_size):
    """One object (id 9): the voxels within ``radius_world`` of ``centre`` (voxel coordinates)."""
    grid = np.indices(shape) - np.reshape(centre, (-1,) + (1,) * len(shape))
    distance = np.sqrt(sum((g * v) ** 2 for g, v in zip(grid, voxel_size, strict=True)))
    return np.where(distance <= radius_world, 9, 0).astype(np.uint64)


@pytest.mark.parametrize(
    "voxel_size, sigma, sigma_voxels, radius",
    [((4, 4, 4), 12.0, (3, 3, 3), (9, 9, 9)), ((8, 4, 4), 16.0, (2, 4, 4), (6, 12, 12))],
)
def test_lsds_at_the_centre_of_a_large_ball_are_a_full_window(voxel_size, sigma, sigma_voxels, radius):
    shape = tuple(2 * r + 3 for r in radius)
    centre = tuple(s // 2 for s in shape)
    labels = ball(shape, centre, 1.8 * 3 * sigma, voxel_size)  # the window's corners lie inside
    lsds, known = local_shape_descriptors(labels, sigma, voxel_size)
    assert lsds.shape == known.shape == (10,) + shape and lsds.dtype == known.dtype == np.float32
    at = lsds[(slice(None),) + centre]
    variance = [window_variance(s, r) for s, r in zip(sigma_voxels, radius, strict=True)]
    np.testing.assert_allclose(at, [0.5] * 3 + variance + [0.5] * 3 + [1.0], atol=1e-5)
    np.testing.assert_allclose(at[3:6], 1.0, atol=0.02)  # about sigma^2
    assert known[(slice(None),) + centre].tolist() == [1.0] * 10
    assert np.all(lsds[:, labels == 0] == 0)


@pytest.mark.parametrize("voxel_size", [(4, 4, 4), (8, 4, 4)])
def test_lsds_near_the_surface_of_a_ball_point_inwards(voxel_size):
    sigma, radius_world = 16.0, 100.0
    shape = (27, 55, 55) if voxel_size[0] == 8 else (55, 55, 55)
    centre = tuple(s // 2 for s in shape)
    lsds, _ = local_shape_descriptors(ball(shape, centre, radius_world, voxel_size), sigma, voxel_size)
    mass = []
    for axis in range(3):  # 20 nm inside the surface along +axis
        point = list(centre)
        point[axis] += 80 // voxel_size[axis]
        at = lsds[(slice(None),) + tuple(point)]
        others = [a for a in range(3) if a != axis]
        assert at[axis] < 0.4  # the mean offset points back to the centre
        np.testing.assert_allclose(at[others], 0.5, atol=1e-5)  # symmetric across the normal
        assert at[3 + axis] < 0.8 * at[3 + others[0]]  # less spread along the normal
        np.testing.assert_allclose(at[3 + others[0]], at[3 + others[1]], atol=0.02)
        np.testing.assert_allclose(at[6:9], 0.5, atol=1e-5)  # no correlation along principal axes
        assert 0.5 < at[9] < 0.95
        mass.append(at[9])
    np.testing.assert_allclose(mass, mass[0], atol=0.03)  # world units: the same on every axis


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize(
    "sigma, sigma_voxels, radius", [(16.0, (2, 4, 4), (6, 12, 12)), ((16, 24, 16), (2, 6, 4), (6, 18, 12))]
)
def test_lsds_at_a_flat_boundary_between_touching_objects_match_the_1d_sums(ndim, sigma, sigma_voxels, radius):
    """Objects 1 (x <= 14) and 2 (x >= 15) touch: each sees a window cut only along x (4 nm voxels)."""
    voxel_size, sigma_voxels, radius = (8, 4, 4)[-ndim:], sigma_voxels[-ndim:], radius[-ndim:]
    sigma = sigma if np.isscalar(sigma) else sigma[-ndim:]
    shape = (13, 37, 30)[-ndim:]
    labels = np.where(np.indices(shape)[-1] <= 14, 1, 2).astype(np.uint64)
    lsds, known = local_shape_descriptors(labels, sigma, voxel_size)
    assert lsds.shape[0] == (6 if ndim == 2 else 10)
    offsets, weights = window(4, 12)
    inside = offsets <= 2  # from x = 12 the object reaches 2 voxels on
    mass = weights[inside].sum()
    mean = (weights * offsets)[inside].sum() / mass
    variance = (weights * offsets**2)[inside].sum() / mass - mean**2
    full = [window_variance(s, r) for s, r in zip(sigma_voxels[:-1], radius[:-1], strict=True)]
    expected = (
        [0.5] * (ndim - 1) + [mean / 4 * 0.5 + 0.5] + full + [variance / 16] + [0.5] * (ndim * (ndim - 1) // 2) + [mass]
    )
    centre = tuple(s // 2 for s in shape[:-1])
    for x, mirrored in [(12, False), (17, True)]:  # object 1 at x = 12, object 2 mirrored at x = 17
        at = lsds[(slice(None),) + centre + (x,)]
        want = list(expected)
        if mirrored:
            want[ndim - 1] = 1 - want[ndim - 1]
        np.testing.assert_allclose(at, want, atol=1e-5)
        assert known[(0,) + centre + (x,)] == 1
    assert expected[ndim - 1] < 0.45 and expected[2 * ndim - 1] < 0.7 and 0.5 < mass < 1


def test_lsds_in_2d_at_the_centre_of_a_disc_and_near_its_edge():
    labels = ball((41, 41), (20, 20), 15 * 4, (4, 4))
    lsds, known = local_shape_descriptors(labels, 12.0, (4, 4))
    assert lsds.shape == known.shape == (6, 41, 41)
    variance = window_variance(3, 9)
    np.testing.assert_allclose(lsds[:, 20, 20], [0.5, 0.5, variance, variance, 0.5, 1.0], atol=1e-5)
    edge = lsds[:, 20, 33]  # 2 voxels inside the edge along +x
    assert edge[1] < 0.4 and edge[0] == pytest.approx(0.5, abs=1e-5)
    assert edge[3] < 0.8 * edge[2] and edge[4] == pytest.approx(0.5, abs=1e-5) and edge[5] < 0.95


# A half-plane through the window's centre: variance sigma^2 (1 - 2/pi) across the boundary and
# sigma^2 along it, so the two axes it cuts diagonally correlate by (2/pi) / (2 - 2/pi).
HALF_PLANE_CORRELATION = (2 / np.pi) / (2 - 2 / np.pi) * 0.5 + 0.5


def test_lsd_correlation_follows_a_diagonal_boundary_in_2d():
    rows, columns = np.indices((31, 31))
    below = np.where(columns <= rows, 1, 0).astype(np.uint64)  # the boundary runs along (1, 1)
    lsds, _ = local_shape_descriptors(below, 8.0, (4, 4))
    mirrored, _ = local_shape_descriptors(below[:, ::-1], 8.0, (4, 4))
    correlation = lsds[4, 15, 15]
    assert correlation == pytest.approx(HALF_PLANE_CORRELATION, abs=0.03)  # the diagonal line adds a bit
    assert mirrored[4, 15, 15] == pytest.approx(1 - correlation, abs=1e-5)


@pytest.mark.parametrize("pair, channel", [((0, 1), 6), ((0, 2), 7), ((1, 2), 8)])
def test_lsd_correlation_channels_in_3d(pair, channel):
    grid = np.indices((13, 13, 13))
    labels = np.where(grid[pair[1]] <= grid[pair[0]], 1, 0).astype(np.uint64)
    lsds, _ = local_shape_descriptors(labels, 8.0, (4, 4, 4))
    at = lsds[:, 6, 6, 6]
    assert at[channel] == pytest.approx(HALF_PLANE_CORRELATION, abs=0.03)
    np.testing.assert_allclose(np.delete(at[6:9], channel - 6), 0.5, atol=1e-5)


def test_lsd_offsets_beyond_one_sigma_are_clipped():
    labels = np.zeros((9, 41), np.uint64)
    labels[4, 10] = 3  # a lone voxel of object 3 whose other part lies 2 to 3 sigma to the right
    labels[:, 18:23] = 3
    lsds, _ = local_shape_descriptors(labels, 8.0, (4, 2))  # sigma (2, 4) voxels
    assert lsds[1, 4, 10] == 1.0  # mean offset 1.32 sigma (hand-summed), 1.16 normalised: clipped
    assert lsds[0, 4, 10] == pytest.approx(0.5, abs=1e-6)
    assert 0 < lsds[1, 4, 20] < 1  # inside the slab nothing is clipped


def test_lsds_of_touching_objects_do_not_leak():
    rng = np.random.default_rng(5)
    labels = voronoi((12, 20, 20), 6, rng, background=0.0)
    lsds, _ = local_shape_descriptors(labels, 16.0, (8, 4, 4))
    for value in np.unique(labels)[:3]:
        alone = np.where(labels == value, labels, 0)
        single, _ = local_shape_descriptors(alone, 16.0, (8, 4, 4))
        np.testing.assert_array_equal(lsds[:, labels == value], single[:, labels == value])
        assert np.all(single[:, labels != value] == 0)


def test_lsds_of_a_crop_interior_equal_the_whole_volume():
    rng = np.random.default_rng(7)
    voxel_size, sigma = (8, 4, 4), 16.0
    labels = voronoi((30, 44, 44), 16, rng)
    context = lsd_context(sigma, voxel_size)
    assert context == (48, 48, 48)
    whole, _ = local_shape_descriptors(labels, sigma, voxel_size)
    begin, end = (3, 5, 2), (28, 41, 43)
    lsds, known = local_shape_descriptors(labels[tuple(map(slice, begin, end))], sigma, voxel_size)
    grow = (6, 12, 12)
    interior = (slice(None),) + tuple(slice(g, e - b - g) for g, b, e in zip(grow, begin, end, strict=True))
    place = (slice(None),) + tuple(slice(b + g, e - g) for g, b, e in zip(grow, begin, end, strict=True))
    expected_known = np.zeros_like(known)
    expected_known[interior] = 1
    np.testing.assert_array_equal(known, expected_known)
    np.testing.assert_allclose(lsds[interior], whole[place], atol=1e-5)
    assert np.abs(lsds - whole[(slice(None),) + tuple(map(slice, begin, end))]).max() > 1e-3  # edges differ


def test_lsds_unknown_where_the_window_reaches_the_unlabelled_mask():
    labels = np.ones((40, 40), np.uint64)
    mask = np.ones((40, 40), bool)
    mask[20, 20] = False
    _, known = local_shape_descriptors(labels, 8.0, (4, 2), mask=mask)  # radius (6, 12) voxels
    expected = np.zeros((40, 40))
    expected[6:34, 12:28] = 1
    expected[14:27, 8:33] = 0
    np.testing.assert_array_equal(known[0], expected)
    np.testing.assert_array_equal(known[5], expected)


def test_lsd_context_and_arguments():
    assert lsd_context(80, (40, 8, 8)) == (240, 240, 240)  # radius int(6.5) = 6 and int(30.5) = 30 voxels
    assert lsd_context(20, (8, 4, 4)) == (64, 60, 60)  # int(8.0) and int(15.5)
    assert lsd_context((16, 8), (4, 4), truncate=2.0) == (32, 16)
    with pytest.raises(ValueError):
        local_shape_descriptors(np.ones((5, 5), np.uint64), (8, 8, 8), (4, 4))
    with pytest.raises(ValueError):
        local_shape_descriptors(np.ones((5, 5), np.uint64), 8, (4, 4, 4))
    with pytest.raises(ValueError):
        local_shape_descriptors(np.ones((5, 5), np.uint64), 0, (4, 4))
    with pytest.raises(ValueError):
        local_shape_descriptors(np.ones((5, 5), np.uint64), 8, (4, 4), mask=np.ones((5, 4)))
