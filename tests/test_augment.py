"""Training augmentations: raw, labels and mask move together, sources suffice, fast paths, intensity, config."""

import itertools

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from scipy.ndimage import gaussian_filter

from alfine.configs import from_dict
from alfine.errors import ConfigError
from alfine.training.augment import Augmentation, AugmentConfig
from alfine.training.warp import ElasticField

CENTRE = Coordinate(2000, 2000, 2000)  # on every grid below
OFF = {name: 0.0 for name in ("mirror", "transpose", "rotate", "elastic", "intensity_scale", "intensity_shift",
                              "gamma", "noise", "blur", "missing_section", "shifted_section")}
GEOMETRY = {"mirror": {"mirror": 1.0}, "transpose": {"transpose": 1.0}, "rotate": {"rotate": 1.0},
            "rotate_3d": {"rotate": 1.0, "rotate_3d": True}, "elastic": {"elastic": 1.0},
            "all": {"mirror": 0.5, "transpose": 1.0, "rotate": 1.0, "rotate_3d": True, "elastic": 1.0}}
# (raw voxel size, label voxel size, raw target shape, label target shape), in voxels of their grids
GRIDS = {"isotropic": ((4, 4, 4), (4, 4, 4), (24, 24, 24), (12, 14, 16)),
         "anisotropic": ((40, 4, 4), (40, 4, 4), (6, 24, 24), (4, 14, 12)),
         "super-resolution": ((8, 8, 8), (4, 4, 4), (14, 14, 14), (16, 20, 16)),
         "anisotropic super-resolution": ((40, 8, 8), (20, 4, 4), (6, 14, 14), (8, 20, 16))}


def _config(**changes) -> AugmentConfig:
    return AugmentConfig(**{**OFF, "elastic_spacing": 80.0, "elastic_magnitude": 6.0, **changes})


def _roi(shape, voxel, shift=(0, 0, 0)) -> Roi:
    """``shape`` voxels around CENTRE, moved by ``shift`` voxels."""
    v = Coordinate(voxel)
    return Roi(CENTRE - Coordinate(s // 2 - d for s, d in zip(shape, shift, strict=True)) * v, Coordinate(shape) * v)


def _coordinates(roi: Roi, voxel) -> np.ndarray:
    """[3, *shape] world coordinates of the voxel centres: a linear 'raw' that linear interpolation keeps exact."""
    axes = [b + (np.arange(s // v) + 0.5) * v for b, s, v in zip(roi.begin, roi.shape, voxel, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _cells(roi: Roi, voxel) -> np.ndarray:
    """Labels: the id of the 4x4x4-voxel cell of the world grid each voxel lies in."""
    cell = (_coordinates(roi, voxel) // (4 * np.asarray(voxel, float)[:, None, None, None])).astype(np.int64)
    return cell[0] * 1_000_000 + cell[1] * 1_000 + cell[2]


def _warped_coordinates(aug: Augmentation, roi: Roi, voxel, **kwargs) -> np.ndarray:
    source = aug.source_roi(roi, voxel)
    return aug.warp(_coordinates(source, voxel), source, roi, voxel, order=1, **kwargs)


def _warped_cells(aug: Augmentation, roi: Roi, voxel, **kwargs) -> np.ndarray:
    source = aug.source_roi(roi, voxel)
    return aug.warp(_cells(source, voxel), source, roi, voxel, order=0, **kwargs)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("geometry", GEOMETRY)
def test_labels_lie_where_raw_says_they_came_from(grid, geometry):
    raw_voxel, label_voxel, _, label_shape = GRIDS[grid]
    aug = Augmentation.draw(_config(**GEOMETRY[geometry]), np.random.default_rng(7), raw_voxel, centre=CENTRE)
    roi = _roi(label_shape, label_voxel)
    points = _warped_coordinates(aug, roi, label_voxel)  # the world point each label voxel shows
    labels = _warped_cells(aug, roi, label_voxel)
    size = 4 * np.asarray(label_voxel, float)[:, None, None, None]
    cells = np.stack([labels // 1_000_000, labels // 1_000 % 1_000, labels % 1_000])
    # nearest neighbour picks a voxel whose centre is within half a voxel, so the point is in its closed cell
    assert (points >= cells * size - 1e-6).all() and (points <= (cells + 1) * size + 1e-6).all()
    assert np.abs(points - _coordinates(roi, label_voxel)).max() > 1.0  # the augmentation did move things


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("geometry", ["rotate", "elastic", "all"])
def test_raw_and_label_grids_see_one_world_map(grid, geometry):
    """No centre given: rois that are not concentric still share the map fixed by the first use."""
    raw_voxel, label_voxel, raw_shape, _ = GRIDS[grid]
    aug = Augmentation.draw(_config(**GEOMETRY[geometry]), np.random.default_rng(3), raw_voxel)
    raw_roi = _roi(raw_shape, raw_voxel)
    inner = Roi(raw_roi.begin + Coordinate(raw_voxel) * 2, raw_roi.shape - Coordinate(raw_voxel) * 5)
    on_raw = _warped_coordinates(aug, raw_roi, raw_voxel)
    assert np.allclose(aug.centre, np.asarray(raw_roi.begin) + np.asarray(raw_roi.shape) / 2)
    on_labels = _warped_coordinates(aug, inner, label_voxel)
    # the elastic lattice (80) lies on raw voxel faces, so the map is multilinear inside a raw voxel:
    # its value at a raw voxel centre is the mean over the label voxel centres around it
    f = [r // v for r, v in zip(raw_voxel, label_voxel, strict=True)]
    n = [s // r for s, r in zip(inner.shape, raw_voxel, strict=True)]
    blocks = on_labels.reshape(3, n[0], f[0], n[1], f[1], n[2], f[2]).mean(axis=(2, 4, 6))
    np.testing.assert_allclose(blocks, on_raw[:, 2:2 + n[0], 2:2 + n[1], 2:2 + n[2]], rtol=0, atol=1e-6)


@pytest.mark.parametrize("grid", GRIDS)
def test_the_source_roi_suffices(grid):
    raw_voxel, label_voxel, raw_shape, label_shape = GRIDS[grid]
    for seed in range(6):
        aug = Augmentation.draw(_config(**GEOMETRY["all"]), np.random.default_rng(seed), raw_voxel, centre=CENTRE)
        for roi, voxel in ((_roi(raw_shape, raw_voxel), raw_voxel), (_roi(label_shape, label_voxel), label_voxel)):
            source = aug.source_roi(roi, voxel)
            assert source.snap_to_grid(voxel) == source
            assert np.isfinite(_warped_coordinates(aug, roi, voxel, mode="constant", cval=np.nan)).all()
            assert (_warped_cells(aug, roi, voxel, mode="constant", cval=-1) >= 0).all()


def test_a_smaller_source_than_asked_for_would_be_noticed():
    aug = Augmentation.draw(_config(rotate=1.0), np.random.default_rng(0), (4, 4, 4), centre=CENTRE)
    roi = _roi((16, 16, 16), (4, 4, 4))
    source = aug.source_roi(roi, (4, 4, 4)).grow(Coordinate(-8, -8, -8), Coordinate(-8, -8, -8))
    out = aug.warp(_coordinates(source, (4, 4, 4)), source, roi, (4, 4, 4), order=1, mode="constant", cval=np.nan)
    assert np.isnan(out).any()
    flipped = Augmentation.draw(_config(mirror=1.0), np.random.default_rng(0), (4, 4, 4), centre=CENTRE)
    with pytest.raises(ValueError, match="does not cover"):
        flipped.warp(np.zeros((14, 16, 16)), roi.grow(Coordinate(-4, 0, 0), Coordinate(-4, 0, 0)), roi, (4, 4, 4), 0)


@pytest.mark.parametrize("voxel", [(4, 4, 4), (40, 4, 4)])
def test_mirror_alone_is_a_flip_of_every_axis(voxel):
    aug = Augmentation.draw(_config(mirror=1.0), np.random.default_rng(0), voxel, centre=CENTRE)
    roi = _roi((6, 10, 12), voxel)
    assert aug.source_roi(roi, voxel) == roi
    labels = np.random.default_rng(1).integers(2**60, 2**62, (6, 10, 12), dtype=np.uint64)
    out = aug.warp(labels, roi, roi, voxel, order=0)
    assert out.dtype == np.uint64 and np.array_equal(out, np.flip(labels))
    raw = np.random.default_rng(2).random((2, 6, 10, 12), dtype=np.float32)
    assert np.array_equal(aug.warp(raw, roi, roi, voxel, order=1), np.flip(raw, axis=(1, 2, 3)))


def test_transpose_alone_is_a_numpy_transpose():
    seen = set()
    for seed in range(30):
        aug = Augmentation.draw(_config(transpose=1.0), np.random.default_rng(seed), (4, 4, 4), centre=CENTRE)
        perm = tuple(int(p) for p in np.argmax(np.abs(aug.world_map.matrix), axis=1))
        roi = _roi((6, 8, 10), (4, 4, 4))
        source = aug.source_roi(roi, (4, 4, 4))
        assert tuple(source.shape) == tuple(roi.shape[p] for p in perm)
        labels = np.random.default_rng(seed).integers(2**60, 2**62, source.shape / 4, dtype=np.uint64)
        out = aug.warp(labels, source, roi, (4, 4, 4), order=0)
        assert np.array_equal(out, labels.transpose(np.argsort(perm)))
        seen.add(perm)
    assert len(seen) == 5 and (0, 1, 2) not in seen  # every non-trivial permutation, never the identity


def test_anisotropic_data_is_never_turned_across_the_coarse_axis():
    config = _config(mirror=0.5, transpose=1.0, rotate=1.0, rotate_3d=True, elastic=1.0)
    roi = _roi((6, 16, 16), (40, 4, 4))
    planes = _coordinates(roi, (40, 4, 4))[0]
    for seed in range(8):
        aug = Augmentation.draw(config, np.random.default_rng(seed), (40, 4, 4), centre=CENTRE)
        matrix = aug.world_map.matrix
        assert abs(matrix[0, 0]) == 1 and not matrix[0, 1:].any() and not matrix[1:, 0].any()
        assert aug.world_map.elastic.axes == (1, 2)
        z = _warped_coordinates(aug, roi, (40, 4, 4))[0]
        np.testing.assert_allclose(z, CENTRE[0] + matrix[0, 0] * (planes - CENTRE[0]), atol=1e-9)  # whole sections


def test_with_every_probability_zero_the_sample_is_a_plain_crop():
    roi = _roi((6, 8, 8), (4, 4, 4))
    wider = roi.grow(Coordinate(8, 4, 4), Coordinate(4, 8, 4))
    raw = np.random.default_rng(0).random((2, *(wider.shape / 4)), dtype=np.float32)
    crop = raw[:, 2:8, 1:9, 1:9]
    for seed in range(5):
        aug = Augmentation.draw(_config(), np.random.default_rng(seed), (4, 4, 4), centre=CENTRE)
        assert aug.source_roi(roi, (4, 4, 4)) == roi
        out = aug.warp(raw, wider, roi, (4, 4, 4), order=1)
        assert np.array_equal(out, crop)
        assert np.array_equal(aug.intensity(out, np.random.default_rng(seed)), crop)


def test_same_seed_same_sample_and_different_seeds_differ():
    config = AugmentConfig(missing_section=0.3, shifted_section=0.3)  # the defaults, plus section defects

    def sample(seed):
        rng = np.random.default_rng(seed)
        aug = Augmentation.draw(config, rng, (40, 4, 4), centre=CENTRE)
        roi = _roi((6, 16, 16), (40, 4, 4))
        raw = aug.intensity(_warped_coordinates(aug, roi, (40, 4, 4))[2] / 2000 - 1, rng)
        return raw, _warped_cells(aug, roi, (40, 4, 4))

    first, again, other = sample(5), sample(5), sample(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])


def test_intensity_changes_raw_only():
    """Intensity settings do not change the geometry drawn, and intensity leaves its input alone."""
    on = _config(**GEOMETRY["all"], intensity_scale=1.0, intensity_shift=1.0, gamma=1.0, noise=1.0, blur=1.0)
    off = _config(**GEOMETRY["all"])
    roi = _roi((8, 12, 12), (4, 4, 4))
    a = Augmentation.draw(on, np.random.default_rng(4), (4, 4, 4), centre=CENTRE)
    b = Augmentation.draw(off, np.random.default_rng(4), (4, 4, 4), centre=CENTRE)
    assert np.array_equal(_warped_cells(a, roi, (4, 4, 4)), _warped_cells(b, roi, (4, 4, 4)))
    raw = np.random.default_rng(0).random((8, 12, 12), dtype=np.float32)
    kept = raw.copy()
    assert not np.allclose(a.intensity(raw, np.random.default_rng(0)), raw)
    assert np.array_equal(raw, kept)


def _intensity(seed, raw, voxel=(4, 4, 4), **changes):
    rng = np.random.default_rng(seed)
    return Augmentation.draw(_config(**changes), rng, voxel).intensity(raw, rng)


_DRAWS = np.random.default_rng(0)
RAW = (_DRAWS.choice([-1, 1], (2, 6, 16, 16)) * _DRAWS.uniform(0.05, 0.9, (2, 6, 16, 16))).astype(np.float32)


def test_scale_shift_and_gamma_stay_in_their_ranges():
    scales, shifts, gammas = [], [], []
    for seed in range(20):
        scaled = _intensity(seed, RAW, intensity_scale=1.0, intensity_scale_range=(0.8, 1.2)) / RAW
        shifted = _intensity(seed, RAW, intensity_shift=1.0, intensity_shift_range=(-0.1, 0.2)) - RAW
        powered = _intensity(seed, RAW, gamma=1.0, gamma_range=(0.7, 1.5))
        assert np.array_equal(np.sign(powered), np.sign(RAW))
        exponent = np.log(np.abs(powered)) / np.log(np.abs(RAW))
        for values, found in ((scaled, scales), (shifted, shifts), (exponent, gammas)):
            assert np.ptp(values) < 1e-3  # one value for the whole sample
            found.append(float(values.mean()))
    for found, (low, high) in ((scales, (0.8, 1.2)), (shifts, (-0.1, 0.2)), (gammas, (0.7, 1.5))):
        assert low - 1e-4 <= min(found) and max(found) <= high + 1e-4
        assert max(found) - min(found) > 0.5 * (high - low)  # drawn across the range, not a constant


def test_noise_has_its_std_and_blur_its_sigma_in_plane():
    noise = _intensity(0, RAW, noise=1.0, noise_std=0.05) - RAW
    assert abs(noise.std() - 0.05) < 0.005 and abs(noise.mean()) < 0.005
    blurred = _intensity(0, RAW, (40, 4, 4), blur=1.0, blur_sigma=(1.2, 1.2))
    np.testing.assert_allclose(blurred, gaussian_filter(RAW, (0, 0, 1.2, 1.2), mode="nearest"), atol=1e-6)
    isotropic = _intensity(0, RAW, (4, 4, 4), blur=1.0, blur_sigma=(1.2, 1.2))
    np.testing.assert_allclose(isotropic, gaussian_filter(RAW, (0, 1.2, 1.2, 1.2), mode="nearest"), atol=1e-6)


def test_missing_and_shifted_sections_follow_the_coarse_axis():
    missing = _intensity(0, RAW, (40, 4, 4), missing_section=0.5)
    gone = [np.all(missing[:, z] == RAW.mean()) for z in range(6)]
    kept = [np.array_equal(missing[:, z], RAW[:, z]) for z in range(6)]
    assert any(gone) and any(kept) and all(g != k for g, k in zip(gone, kept, strict=True))
    shifted = _intensity(1, RAW, (40, 4, 4), shifted_section=1.0, max_section_shift=2)
    for z in range(6):
        padded = np.pad(RAW[:, z], ((0, 0), (2, 2), (2, 2)), mode="edge")
        moves = [(dy, dx) for dy, dx in itertools.product(range(-2, 3), repeat=2)
                 if np.array_equal(shifted[:, z], padded[:, 2 - dy:18 - dy, 2 - dx:18 - dx])]
        assert moves, f"section {z} is not an in-plane shift of at most 2 voxels"
    assert not np.array_equal(shifted, RAW)
    assert np.array_equal(_intensity(0, RAW, (4, 4, 4), missing_section=1.0, shifted_section=1.0), RAW)


def test_the_elastic_field_is_a_bounded_function_of_world_position():
    field = ElasticField(seed=11, spacing=80.0, magnitude=6.0, axes=(1, 2))
    coarse = [1000 + 8 * np.arange(20) + 4.0] * 3
    fine = [1000 + 4 * np.arange(40) + 4.0] * 3  # includes every coarse position
    a, b = field.evaluate(coarse), field.evaluate(fine)
    assert set(a) == {1, 2}
    for axis in (1, 2):
        np.testing.assert_allclose(a[axis], b[axis][::2, ::2, ::2], atol=1e-9)
        assert np.abs(b[axis]).max() <= field.bound(fine)[axis] <= 3 * 6.0
    lattice = field.evaluate([80.0 * np.arange(12)] * 3)[1]
    assert abs(lattice.std() - 6.0) < 0.6 and abs(lattice.mean()) < 0.6


def test_the_config_reads_json_and_refuses_nonsense():
    config = from_dict(AugmentConfig, {"mirror": 1, "gamma_range": [0.5, 2], "rotate_3d": True}, "run.json")
    assert config.mirror == 1.0 and config.gamma_range == (0.5, 2.0) and config.rotate_3d
    for bad, message in (({"mirror": 1.5}, "mirror is a probability"), ({"blur_sigma": [2, 1]}, "low <= high"),
                         ({"elastic_spacing": 0}, "elastic_spacing"), ({"gamma_range": [0, 1]}, "positive")):
        with pytest.raises(ConfigError, match=message):
            from_dict(AugmentConfig, bad, "run.json")
