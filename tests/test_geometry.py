"""Regions as text and as voxel indices."""

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.errors import UserError
from alfine.geometry import format_roi, parse_ints, parse_roi, region_mask, voxel_slices


def test_roi_text_round_trips():
    roi = parse_roi("-8,0,16:40,64,80")
    assert roi == Roi((-8, 0, 16), (48, 64, 64))
    assert parse_roi(format_roi(roi)) == roi
    assert parse_roi([[0, 0], [4, 8]]) == Roi((0, 0), (4, 8))
    assert parse_ints("64x64x64") == (64, 64, 64) and parse_ints([1, 2]) == (1, 2)


@pytest.mark.parametrize("text", ["0,0:8", "0,0,0", "8,8:4,16", "a:b", "0,0:8,8:16,16"])
def test_bad_roi_text_is_refused(text):
    with pytest.raises(UserError):
        parse_roi(text)


def test_voxel_slices_and_region_mask():
    voxel_size = Coordinate(8, 4)
    array_roi = Roi((16, -8), (40, 24))  # 5 x 6 voxels
    region = Roi((24, 0), (16, 8))
    assert voxel_slices(region, array_roi.begin, voxel_size) == (slice(1, 3), slice(2, 4))
    mask = region_mask(Roi((40, 8), (64, 64)), array_roi, voxel_size)  # overlaps the far corner only
    expected = np.zeros((5, 6), bool)
    expected[3:, 4:] = True
    np.testing.assert_array_equal(mask, expected)
    assert not region_mask(Roi((1000, 0), (8, 4)), array_roi, voxel_size).any()
