"""The pieces of relabelling: face pairs, union-find, numbering, block-unique ids."""

import itertools

import numpy as np
import pytest

from alfine.segmentation.blockwise import block_unique
from alfine.segmentation.faces import adjacent_pairs, boundary_ids, half_neighbourhood, overlap_pairs
from alfine.segmentation.numbering import number_objects
from alfine.segmentation.unionfind import join


@pytest.mark.parametrize("ndim, connectivity, count", [(2, 4, 2), (2, 8, 4), (3, 6, 3), (3, 18, 9), (3, 26, 13)])
def test_half_neighbourhood_holds_each_neighbour_pair_once(ndim, connectivity, count):
    offsets = half_neighbourhood(ndim, connectivity)
    assert len(offsets) == count
    assert not {tuple(o) for o in offsets} & {tuple(-o) for o in offsets}


def test_adjacent_pairs_cross_faces_edges_and_corners_once():
    """In a 2 x 2 grid of 2 x 2 blocks, block 0 finds the pairs to its right, below, and diagonally."""
    grown = np.array([[1, 0, 2],
                      [0, 3, 0],
                      [0, 0, 4]], np.uint64)  # block 0 is [:2, :2]; row 2 and column 2 belong to its neighbours
    assert adjacent_pairs(grown, half_neighbourhood(2, 4)).tolist() == []
    assert adjacent_pairs(grown, half_neighbourhood(2, 8)).tolist() == [[2, 3], [3, 4]]
    # the pair (2, 4) lies on the grown layer only: blocks 1 and 3 own it
    grown[1, 2] = 4
    assert [2, 4] not in adjacent_pairs(grown, half_neighbourhood(2, 4)).tolist()


def test_adjacent_pairs_equal_a_brute_force_count():
    rng = np.random.default_rng(0)
    labels = np.where(rng.random((9, 10, 11)) > 0.5, np.arange(1, 991).reshape(9, 10, 11), 0).astype(np.uint64)
    block = (4, 5, 3)
    for connectivity in (6, 18, 26):
        offsets = half_neighbourhood(3, connectivity)
        found = set()
        for corner in itertools.product(*(range(0, s, b) for s, b in zip(labels.shape, block, strict=True))):
            grown = np.zeros(tuple(b + 1 for b in block), np.uint64)
            piece = labels[tuple(slice(c, c + b + 1) for c, b in zip(corner, block, strict=True))]
            grown[tuple(slice(0, s) for s in piece.shape)] = piece
            size = tuple(min(b, s - c) for b, s, c in zip(block, labels.shape, corner, strict=True))
            grown = grown[tuple(slice(0, s + 1) for s in size)]  # blocks at the end are smaller
            found |= {tuple(p) for p in adjacent_pairs(grown, offsets).tolist()}
        expected = set()
        for v in np.argwhere(labels):
            for d in offsets:
                w = v + d
                if (w < 0).any() or (w >= labels.shape).any() or not labels[tuple(w)]:
                    continue
                if tuple(v // block) != tuple(w // block):
                    expected.add(tuple(sorted((int(labels[tuple(v)]), int(labels[tuple(w)])))))
        assert found == expected


def test_boundary_ids_and_overlap_pairs():
    labels = np.zeros((4, 4), np.uint64)
    labels[0, 1], labels[2, 2], labels[3, 0] = 5, 6, 7
    assert boundary_ids(labels).tolist() == [5, 7]
    view = np.array([1, 1, 1, 2, 2, 0], np.uint64)
    layer = np.array([9, 9, 8, 8, 3, 3], np.uint64)
    assert overlap_pairs(view, layer).tolist() == [[1, 9]]  # 2 is split half and half: no majority


def test_join_gives_the_smallest_id_of_each_component():
    ids = np.array([3, 5, 8, 13, 21, 34], np.uint64)
    roots = join(ids, np.array([[5, 21], [21, 34], [8, 13]], np.uint64))
    assert roots.tolist() == [3, 5, 8, 8, 5, 5]
    assert join(np.zeros(0, np.uint64), np.zeros((0, 2), np.uint64)).tolist() == []


def test_numbering_is_consecutive_with_global_sizes():
    records = {
        0: {"ids": np.array([1, 2, 3]), "counts": np.array([4, 1, 2]), "face": np.array([2, 3]),
            "pairs": np.array([[2, 11]])},
        1: {"ids": np.array([10, 11, 12]), "counts": np.array([1, 1, 5]), "face": np.array([11, 12]),
            "pairs": np.array([[3, 12]])},
    }
    maps = {}

    def save(block, ids, new):
        maps[block] = dict(zip(ids.tolist(), new.tolist(), strict=True))

    sizes = number_objects([0, 1], records.__getitem__, 3, save)
    # objects: {1}: 4, {2, 11}: 2 (removed), {3, 12}: 7, {10}: 1 (removed)
    assert maps == {0: {1: 1, 2: 0, 3: 2}, 1: {10: 0, 11: 0, 12: 2}}
    assert sizes.tolist() == [4, 7]


def test_block_unique_ids_do_not_collide():
    labels = np.array([[7, 7, 0], [0, 9, 9]])
    first, local = block_unique(labels, 0, 6)
    second, _ = block_unique(labels, 1, 6)
    assert first.tolist() == [[1, 1, 0], [0, 2, 2]] and local == {0: 0, 7: 1, 9: 2}
    assert second.tolist() == [[7, 7, 0], [0, 8, 8]] and second.dtype == np.uint64
