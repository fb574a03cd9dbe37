"""Tests of the synthetic EM-like volume: reproducibility, block independence, content."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from alfine.synthetic import SyntheticParams, generate_block

KEYS = ("raw", "labels", "classes", "mask")


def whole(shape, voxel_size, offset, params):
    return generate_block(shape, voxel_size, offset, (0,) * len(shape), shape, params)


def stitched(shape, voxel_size, offset, block, params):
    """The volume generated block by block (edge blocks cut to the volume) and put together."""
    out = {}
    for begin in itertools.product(*[range(0, s, b) for s, b in zip(shape, block, strict=True)]):
        size = tuple(min(b, s - o) for o, b, s in zip(begin, block, shape, strict=True))
        part = generate_block(shape, voxel_size, offset, begin, size, params)
        assert set(part) == set(KEYS)
        for key, value in part.items():
            assert value.shape == size
            region = tuple(slice(o, o + n) for o, n in zip(begin, size, strict=True))
            out.setdefault(key, np.zeros(shape, value.dtype))[region] = value
    return out


@pytest.fixture(scope="module")
def cube():
    """A 64^3 volume with default parameters at voxel size 1."""
    return whole((64, 64, 64), (1, 1, 1), (0, 0, 0), SyntheticParams())


def test_dtypes_and_shapes(cube):
    assert {k: v.dtype for k, v in cube.items()} == {
        "raw": np.uint8,
        "labels": np.uint64,
        "classes": np.uint8,
        "mask": np.uint8,
    }
    assert all(v.shape == (64, 64, 64) for v in cube.values())


def test_same_seed_same_volume_other_seed_other_volume(cube):
    again = whole((64, 64, 64), (1, 1, 1), (0, 0, 0), SyntheticParams())
    for key in KEYS:
        assert np.array_equal(cube[key], again[key]), key
    other = whole((64, 64, 64), (1, 1, 1), (0, 0, 0), SyntheticParams(seed=1))
    for key in ("raw", "labels", "classes"):
        assert not np.array_equal(cube[key], other[key]), key
    assert np.array_equal(cube["mask"], other["mask"])  # the mask depends on the volume only


@pytest.mark.parametrize(
    "voxel_size, offset, params",
    [
        ((1, 1, 1), (0, 0, 0), SyntheticParams()),
        ((8, 4, 4), (-40, 1000, 12), SyntheticParams(seed=5)),
        ((40, 4, 4), (400, -100, 400000), SyntheticParams(seed=3, cell_size=100, blur_sigma=1.5)),
    ],
)
def test_block_independence_3d(voxel_size, offset, params):
    shape = (48, 64, 64)
    reference = whole(shape, voxel_size, offset, params)
    for block in [(16, 32, 32), (20, 24, 40)]:
        blocks = stitched(shape, voxel_size, offset, block, params)
        for key in KEYS:
            assert np.array_equal(reference[key], blocks[key]), (block, key)


@pytest.mark.parametrize(
    "voxel_size, offset, params",
    [
        ((1, 1), (0, 0), SyntheticParams(seed=2)),
        ((3, 2), (0.5, 7.25), SyntheticParams(seed=2, blur_sigma=2.0, membrane_width=5.0)),
    ],
)
def test_block_independence_2d(voxel_size, offset, params):
    shape = (128, 128)
    reference = whole(shape, voxel_size, offset, params)
    assert len(np.unique(reference["labels"])) > 5
    assert set(np.unique(reference["classes"])) == {0, 1, 2}
    for block in [(32, 32), (50, 70)]:
        blocks = stitched(shape, voxel_size, offset, block, params)
        for key in KEYS:
            assert np.array_equal(reference[key], blocks[key]), (block, key)


def test_content_is_a_function_of_world_position():
    voxel_size, params = (8, 4, 4), SyntheticParams(seed=7)
    big = whole((40, 80, 80), voxel_size, (0, 0, 0), params)
    shift, shape = (10, 17, 5), (24, 48, 60)
    small = whole(shape, voxel_size, tuple(s * v for s, v in zip(shift, voxel_size, strict=True)), params)
    region = tuple(slice(s, s + n) for s, n in zip(shift, shape, strict=True))
    assert np.array_equal(big["raw"][region], small["raw"])
    assert np.array_equal(big["classes"][region], small["classes"])
    # Ids are relative to the volume, but the partition into instances is the same.
    pairs = np.unique(np.stack([big["labels"][region].ravel(), small["labels"].ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_classes_and_labels_agree(cube):
    classes, labels = cube["classes"], cube["labels"]
    assert set(np.unique(classes)) == {0, 1, 2}
    assert np.array_equal(labels == 0, classes == 0)
    cell_ids = set(np.unique(labels[classes == 1]).tolist())
    organelle_ids = np.unique(labels[classes == 2]).tolist()
    assert len(cell_ids) >= 5  # several cells in a 64^3 volume of cells 40 voxels across
    assert organelle_ids and not cell_ids & set(organelle_ids)
    for organelle in organelle_ids:
        inside = labels == organelle
        rim = ndimage.binary_dilation(inside) & ~inside
        around = set(np.unique(labels[rim]).tolist()) - {0}
        assert len(around) == 1 and around <= cell_ids  # one enclosing cell, with another id


def test_membranes_are_thin_dark_and_not_a_threshold(cube):
    classes, raw = cube["classes"], cube["raw"].astype(np.float64)
    membrane = classes == 0
    assert 0.03 < membrane.mean() < 0.25
    assert raw[classes == 1].mean() - raw[membrane].mean() >= 40
    # IoU of {raw <= t} with the membranes, for every threshold t, from cumulative histograms.
    below = np.cumsum(np.bincount(cube["raw"].ravel(), minlength=256))
    both = np.cumsum(np.bincount(cube["raw"][membrane], minlength=256))
    iou = both / (below + membrane.sum() - both)
    assert 0.2 < iou.max() < 0.8


def test_mask_is_a_central_ellipsoid(cube):
    mask = cube["mask"]
    assert set(np.unique(mask)) == {0, 1}
    assert mask[32, 32, 32] == 1 and mask[0, 0, 0] == 0 and mask[32, 32, 2] == 0 and mask[32, 32, 10] == 1
    assert 0.2 < mask.mean() < 0.35  # 4/3 pi 0.4^3 = 0.268 of the box


def test_block_outside_the_volume_is_refused():
    with pytest.raises(ValueError):
        generate_block((32, 32, 32), (1, 1, 1), (0, 0, 0), (16, 0, 0), (32, 32, 32), SyntheticParams())
    with pytest.raises(ValueError):
        generate_block((32, 32, 32), (1, 1), (0, 0, 0), (0, 0, 0), (8, 8, 8), SyntheticParams())
