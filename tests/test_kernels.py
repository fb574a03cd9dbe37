"""The single passes over labels (alfine.segmentation.kernels): the compiled module and numpy's fallback both give
what np.bincount and a Python dictionary give, at any length, with ids anywhere in uint64."""

import numpy as np
import pytest
from compiler_helpers import skip_without_c_compiler

from alfine.segmentation import kernels


@pytest.fixture(params=["compiled", "numpy"])
def passes(request, monkeypatch):
    """kernels with the compiled module (skipped where it was not built) or with numpy's fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(kernels, "_labels", None)
    elif not kernels.COMPILED:
        pytest.skip("alfine._labels was not built (no C compiler at install)")
    return kernels


def test_the_compiled_module_is_built_where_a_c_compiler_is():
    skip_without_c_compiler()
    assert kernels.COMPILED


def _runs(rng, length: int, objects: int) -> np.ndarray:
    """uint64 labels 0..objects in runs of 1-12 voxels (as a block's rows hold them), ``length`` of them."""
    ids = rng.integers(0, objects + 1, length)
    runs = rng.integers(1, 13, length)
    return np.repeat(ids, runs)[:length].astype(np.uint64)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 17, 10_001])
@pytest.mark.parametrize("base", [0, 7, 2**40])
def test_count_and_offset_counts_like_bincount_and_raises_nonzero_ids(passes, length, base):
    rng = np.random.default_rng(length + base)
    objects = 40
    labels = _runs(rng, length, objects)
    flat = labels.copy()
    counts = passes.count_and_offset(flat, objects, base)
    assert counts.dtype == np.int64 and len(counts) == objects + 1
    np.testing.assert_array_equal(counts, np.bincount(labels.astype(np.intp), minlength=objects + 1))
    np.testing.assert_array_equal(flat, np.where(labels != 0, labels + np.uint64(base), 0))


def test_count_and_offset_counts_a_block_of_connected_components(passes):
    from alfine.postprocess.instance import connected_components

    prediction = np.random.default_rng(1).random((1, 30, 31, 33)).astype(np.float32)
    labels = connected_components(prediction, threshold=0.75, connectivity=6)
    objects = int(labels.max())
    assert objects > 10
    counts = passes.count_and_offset(labels.reshape(-1).copy(), objects, 0)
    ids, expected = np.unique(labels, return_counts=True)
    np.testing.assert_array_equal(counts[ids], expected)
    assert counts.sum() == labels.size


@pytest.mark.parametrize("where", [0, 5, 9998, 9999])
def test_count_and_offset_refuses_an_id_beyond_objects(passes, where):
    flat = _runs(np.random.default_rng(2), 10_000, 10)
    flat[where] = 11
    with pytest.raises(ValueError, match="id 11"):
        passes.count_and_offset(flat, 10, 3)


def test_the_passes_refuse_other_arrays(passes):
    with pytest.raises(TypeError, match="uint64"):
        passes.count_and_offset(np.zeros(4, np.int64), 0, 1)
    with pytest.raises(TypeError, match="contiguous"):
        passes.map_through(np.zeros(8, np.uint64)[::2], 0, np.zeros(3, np.uint64))
    read_only = np.zeros(4, np.uint64)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        passes.count_and_offset(read_only, 0, 1)
    with pytest.raises(ValueError, match="out holds"):
        passes.map_through(np.zeros(4, np.uint64), 0, np.zeros(3, np.uint64), out=np.zeros(5, np.uint64))


@pytest.mark.parametrize("low", [0, 1, 1000, 2**63, 2**64 - 30])
@pytest.mark.parametrize("into", ["new", "labels", "other"])
def test_map_through_looks_ids_up_and_zeroes_the_rest(passes, low, into):
    rng = np.random.default_rng(low % 1000)
    table = rng.integers(1, 2**63, 20, dtype=np.uint64)
    inside = (np.uint64(low) + np.arange(len(table), dtype=np.uint64)).tolist()
    outside = [(low - 1) % 2**64, (low + len(table)) % 2**64, 0, 2**64 - 1, 2**63 + 5]
    choices = np.array(inside + [v for v in outside if v not in inside], np.uint64)
    labels = rng.choice(choices, 5001).astype(np.uint64)
    lookup = dict(zip(inside, table.tolist(), strict=True))
    expected = np.array([lookup.get(v, 0) for v in labels.tolist()], np.uint64)
    flat = labels.copy()
    out = {"new": None, "labels": flat, "other": np.full(len(flat), 3, np.uint64)}[into]
    result = passes.map_through(flat, low, table, out=out)
    np.testing.assert_array_equal(result, expected)
    if out is not None:
        assert result is out
    if into != "labels":
        np.testing.assert_array_equal(flat, labels)  # the labels themselves untouched


def test_map_through_of_no_labels(passes):
    assert len(passes.map_through(np.zeros(0, np.uint64), 5, np.ones(2, np.uint64))) == 0
