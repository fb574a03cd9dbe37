"""The pieces of relabelling: face pairs (from the volume and from records), union-find, numbering, ids."""

import itertools

import numpy as np
import pytest

from alfine.segmentation import records
from alfine.segmentation.faces import (
    adjacent_pairs,
    boundary_ids,
    face_slab,
    half_neighbourhood,
    layer_slab,
    outer_layers,
    overlap_pairs,
    slab_pairs,
    unique_pairs,
)
from alfine.segmentation.numbering import number_objects
from alfine.segmentation.per_block import BLOCK_VOXELS, _block_unique, block_unique, default_block_shape
from alfine.segmentation.relabel import map_ids
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


@pytest.mark.parametrize(("shape", "block"), [((9, 10, 11), (4, 5, 3)), ((5, 50, 50), (2, 45, 45))])
def test_adjacent_pairs_equal_a_brute_force_count(shape, block):
    """Every voxel its own id: the second case's slabs hold over a thousand ids (the keys of pairs are not a table)."""
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(shape) > 0.5, np.arange(1, np.prod(shape) + 1).reshape(shape), 0).astype(np.uint64)
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


def test_join_equals_the_components_of_the_pair_graph():
    """Random graphs (chains in shuffled order among them) against scipy's connected components of the graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(7)
    for trial in range(60):
        ids = np.unique(rng.integers(0, 2**63, int(rng.integers(1, 300)), dtype=np.uint64))
        if trial % 3 == 0:  # one long chain visited in a random order: many rounds for a naive propagation
            order = rng.permutation(len(ids))
            pairs = np.stack([ids[order[:-1]], ids[order[1:]]], axis=1)
        else:
            pairs = ids[rng.integers(0, len(ids), (int(rng.integers(0, 2 * len(ids) + 1)), 2))]
        nodes = np.searchsorted(ids, pairs)
        graph = coo_matrix((np.ones(len(pairs)), (nodes[:, 0], nodes[:, 1])), shape=(len(ids), len(ids)))
        _, component = connected_components(graph, directed=False)
        smallest = {c: ids[component == c].min() for c in np.unique(component)}
        assert join(ids, pairs).tolist() == [smallest[c] for c in component]


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


def _blocks(shape, block):
    """The blocks of ``block`` voxels over ``shape``: grid index -> slices (the last ones cut to the volume)."""
    grid = tuple(-(-s // b) for s, b in zip(shape, block, strict=True))
    return grid, {index: tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(index, block, shape, strict=True))
                  for index in itertools.product(*map(range, grid))}


@pytest.mark.parametrize("shape, block", [((9, 10, 11), (4, 5, 3)), ((7, 8, 6), (7, 3, 2)), ((13, 11), (4, 5)),
                                          ((5, 9), (1, 4))])
def test_slabs_from_outer_layers_equal_those_of_the_grown_block(shape, block):
    """What relabel builds from postprocess-block's records is what it would read from the volume."""
    rng = np.random.default_rng(1)
    ndim = len(shape)
    labels = np.where(rng.random(shape) > 0.4, rng.integers(1, 50, shape), 0).astype(np.uint64)
    grid, pieces = _blocks(shape, block)
    layers = {}
    for index, piece in pieces.items():
        lower = tuple(i > 0 for i in index)
        upper = tuple(i + 1 < g for i, g in zip(index, grid, strict=True))
        layers[index] = outer_layers(labels[piece], lower, upper)
    for index, piece in pieces.items():
        size = tuple(p.stop - p.start for p in piece)
        grown = np.zeros(tuple(s + 1 for s in size), np.uint64)
        part = labels[tuple(slice(p.start, p.stop + 1) for p in piece)]
        grown[tuple(slice(0, s) for s in part.shape)] = part
        neighbours = {}
        for step in itertools.product((0, 1), repeat=ndim):
            other = tuple(i + s for i, s in zip(index, step, strict=True))
            if any(step) and other in layers:
                neighbours[step] = layers[other][0]
        first, last = layers[index]
        for axis in last:
            np.testing.assert_array_equal(layer_slab(size, axis, last[axis], neighbours), face_slab(grown, axis))
        for connectivity in (4, 8) if ndim == 2 else (6, 18, 26):
            offsets = half_neighbourhood(ndim, connectivity)
            from_layers = [slab_pairs(layer_slab(size, a, last[a], neighbours), a, offsets) for a in last]
            found = unique_pairs(np.concatenate([np.zeros((0, 2), np.uint64), *from_layers]))
            np.testing.assert_array_equal(found, adjacent_pairs(grown, offsets))


def test_unique_pairs_sorts_and_drops_repeats():
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, 2**63, (500, 2), dtype=np.uint64)
    pairs = np.concatenate([pairs, pairs[::-1, ::-1], pairs[:7]])
    expected = np.unique(np.sort(pairs, axis=1), axis=0)
    np.testing.assert_array_equal(unique_pairs(pairs), expected)
    assert unique_pairs(np.zeros((0, 2), np.uint64)).shape == (0, 2)


@pytest.mark.parametrize("ids", [np.arange(101, 160, dtype=np.uint64),  # one run: a lookup table
                                 np.array([3, 2**40, 2**62 + 5], np.uint64),  # far apart: a binary search
                                 np.arange(0, 40, dtype=np.uint64),  # a table from 0
                                 np.arange(2**64 - 50, 2**64 - 1, dtype=np.uint64),  # a table up to the top
                                 np.zeros(0, np.uint64)])
def test_map_ids_maps_every_id_and_drops_the_rest(ids):
    rng = np.random.default_rng(3)
    new_ids = rng.integers(0, 1000, len(ids), dtype=np.uint64)
    others = np.array([0, 1, 100, 160, 2**63, 2**64 - 1], np.uint64)  # not in ids: 0
    labels = rng.choice(np.concatenate([ids, others]), (6, 7, 8)).astype(np.uint64)
    table = dict(zip(ids.tolist(), new_ids.tolist(), strict=True))
    expected = np.vectorize(lambda v: table.get(v, 0), otypes=[np.uint64])(labels)
    result = map_ids(labels, ids, new_ids)
    assert result.dtype == np.uint64
    np.testing.assert_array_equal(result, expected)
    reused = labels.copy()  # overwrite: the same result, written into the labels' own memory where it can be
    in_place = map_ids(reused, ids, new_ids, overwrite=True)
    np.testing.assert_array_equal(in_place, expected)
    assert np.shares_memory(in_place, reused) == (len(ids) > 0 and int(ids[-1] - ids[0]) < 4 * len(ids) + 1024)


@pytest.mark.parametrize("unit, region, expected", [
    ((64, 64, 64), (512, 512, 512), (128, 128, 128)),
    ((64, 64, 64), (100, 1000, 1000), (128, 128, 128)),
    ((64, 64, 64), (60, 1000, 1000), (64, 256, 128)),  # never beyond the region
    ((8, 8, 8), (21, 30, 27), (32, 32, 32)),
    ((32, 256, 256), (1000, 1000, 1000), (32, 256, 256)),  # already at the budget
    ((64, 64), (10000, 10000), (2048, 1024)),
])
def test_default_block_shape_doubles_the_chunks_to_the_budget(unit, region, expected):
    shape = default_block_shape(unit, region)
    assert shape == expected
    assert all(s % u == 0 for s, u in zip(shape, unit, strict=True)) and np.prod(shape) <= BLOCK_VOXELS


def _stored_voxels(shape, region) -> int:
    """Voxels that blocks of ``shape`` store over ``region`` (whole blocks: zarr pads edge chunks)."""
    return int(np.prod([-(-r // s) * s for r, s in zip(region, shape, strict=True)]))


@pytest.mark.parametrize("unit, region, expected", [
    ((64, 64, 64), (161, 161, 161), (64, 64, 192)),  # 128^3 blocks would store 4x the voxels
    ((64, 64, 64), (406, 406, 406), (64, 64, 448)),  # 406 = 3 x 128 + 22: a quarter of 128^3 blocks thin
    ((64, 64, 64), (323, 323, 323), (128, 128, 128)),  # 6 units of 64 pad to 384 whatever the blocks
])
def test_default_block_shape_leaves_less_padding_where_the_region_is_not_whole_blocks(unit, region, expected):
    """Edge blocks cost whole chunks (zarr pads them), so a shape that pads less wins over the doubled chunk, within
    the same budget; where padding is the same, the doubled chunk stays."""
    shape = default_block_shape(unit, region)
    assert shape == expected
    assert all(s % u == 0 for s, u in zip(shape, unit, strict=True)) and np.prod(shape) <= BLOCK_VOXELS
    assert _stored_voxels(shape, region) <= _stored_voxels((128, 128, 128), region)
    if shape != (128, 128, 128):
        assert _stored_voxels(shape, region) < 0.8 * _stored_voxels((128, 128, 128), region)


@pytest.mark.parametrize("region, expected", [
    ((160, 160, 160), (80, 160, 160)),  # 2 blocks, nothing padded (whole 64^3 chunks: 9 blocks storing 1.7x)
    ((254, 254, 254), (128, 128, 128)),  # 2% padded: the doubled chunk stays
    ((4096, 4096, 4096), (128, 128, 128)),
])
def test_default_block_shape_of_blocks_that_are_their_own_chunks(region, expected):
    """Where the output's chunks will be the blocks (postprocess-block's fragments), the sides need only be whole
    granules, not whole input chunks."""
    shape = default_block_shape((64, 64, 64), region, granule=(8, 8, 8))
    assert shape == expected
    assert all(s % 8 == 0 for s in shape) and np.prod(shape) <= BLOCK_VOXELS
    assert _stored_voxels(shape, region) <= _stored_voxels(default_block_shape((64, 64, 64), region), region)


def test_default_block_shape_weighs_the_context_read():
    """With a wide context, thin blocks read much more beyond themselves: the shape stays compact."""
    region = (406, 406, 406)
    assert default_block_shape((64, 64, 64), region) == (64, 64, 448)
    compact = default_block_shape((64, 64, 64), region, context=(40, 40, 40))
    assert min(compact) >= 128 and np.prod(compact) <= BLOCK_VOXELS


def test_default_block_shape_of_small_units_over_huge_regions():
    """Teravoxel regions of small chunks: no overflow, the budget kept, and a shape without padding trouble."""
    shape = default_block_shape((1, 8, 8), (100_000, 100_000, 100_000))
    assert np.prod(shape) <= BLOCK_VOXELS and np.prod(shape) >= BLOCK_VOXELS // 2
    assert default_block_shape((4096, 4096), (100, 100)) == (4096, 4096)  # the unit alone exceeds the budget


def test_block_unique_counts_its_voxels():
    labels = np.array([[7, 7, 0], [0, 9, 7]])
    unique, local, counts = _block_unique(labels, 2, 6)
    assert unique.tolist() == [[13, 13, 0], [0, 14, 13]] and counts.tolist() == [3, 1]


def test_block_unique_of_labels_already_consecutive_equals_the_renumbering():
    """A registry method's labels (1..n in C order of first appearance) skip the renumbering: same result."""
    from alfine.postprocess.instance import connected_components

    prediction = np.random.default_rng(3).random((1, 12, 14, 16)).astype(np.float32)
    labels = connected_components(prediction, threshold=0.6, connectivity=6)
    assert labels.dtype == np.uint64 and labels.max() > 20
    slow, _, slow_counts = _block_unique(labels, 5, 12 * 14 * 16)
    fast, mapping, fast_counts = _block_unique(labels.copy(), 5, 12 * 14 * 16, consecutive=True)
    assert mapping is None
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fast_counts, slow_counts)
    assert fast_counts.sum() == (labels != 0).sum()


def test_blocks_run_in_threads_only_for_registry_methods_that_say_so():
    from alfine.segmentation.per_block import PostprocessBlock

    def block_function(method):
        return PostprocessBlock("in.zarr/p", "out.zarr/s", method, {}, None, None, True, 512, "[0:8,0:8,0:8]", False)

    assert block_function("connected_components").threads and block_function("threshold").threads
    assert block_function("watershed").threads  # skimage floods without the GIL
    assert not block_function("mutex_watershed").threads and not block_function("agglomerate").threads
    assert not block_function("my_post.py:segment").threads  # a user's function: worker processes


def test_records_round_trip_compressed_plain_and_packed(tmp_path):
    layer = np.repeat(np.arange(2**40, 2**40 + 64, dtype=np.uint64), 64).reshape(64, 64)
    arrays = {"first0": layer, "ids": np.arange(5, dtype=np.uint64), "empty": np.zeros((0, 2), np.uint64),
              "counts": np.array([3, 1], np.int64), "scalar": np.array(2.5), "flags": np.array([True, False])}
    for kind in ("compressed", "plain", "packed"):
        url = f"{tmp_path}/{kind}"
        if kind == "packed":
            records.save_packed(url, **arrays)
        else:
            records.save_arrays(url, compress=kind == "compressed", **arrays)
        loaded = records.load_arrays(url)
        assert list(loaded) == list(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
            np.testing.assert_array_equal(loaded[name], array)
        assert records.load_arrays(url, ["counts", "nothing"]).keys() == {"counts"}
    plain = (tmp_path / "plain").stat().st_size
    assert (tmp_path / "compressed").stat().st_size * 5 < plain and (tmp_path / "packed").stat().st_size * 5 < plain


def test_packed_records_fall_back_to_the_npz_of_earlier_versions(tmp_path):
    records.save_arrays(f"{tmp_path}/old.npz", ids=np.arange(3, dtype=np.uint64))
    records.save_packed(f"{tmp_path}/new.arrays", ids=np.arange(4, dtype=np.uint64))
    assert records.load_packed_or_npz(f"{tmp_path}/old.arrays")["ids"].tolist() == [0, 1, 2]
    assert records.load_packed_or_npz(f"{tmp_path}/new.arrays")["ids"].tolist() == [0, 1, 2, 3]
    with pytest.raises(FileNotFoundError):
        records.load_packed_or_npz(f"{tmp_path}/none.arrays")


def test_packed_records_refuse_objects_and_damage(tmp_path):
    with pytest.raises(TypeError, match="names"):
        records.save_packed(f"{tmp_path}/objects", names=np.array(["a", None], object))
    records.save_packed(f"{tmp_path}/cut", layer=np.arange(1000, dtype=np.uint64))
    blob = (tmp_path / "cut").read_bytes()
    (tmp_path / "cut").write_bytes(blob[:-10])
    with pytest.raises(ValueError, match="cut"):
        records.load_arrays(f"{tmp_path}/cut")
