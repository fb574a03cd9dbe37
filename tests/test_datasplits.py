"""Datasplits: loading (CSV, JSON), volume checks, normalisation, percentiles and crop sampling."""

import json

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.configs import from_dict, to_dict
from alfine.datasplits import (
    CropSampler,
    Dataset,
    Datasplit,
    DtypeRange,
    MinMax,
    Percentile,
    centred_roi,
    check_dataset,
    load_datasplit,
    measure_percentiles,
    normalise,
    resolve_normalisations,
)
from alfine.errors import ConfigError, UserError
from alfine.volumes import open_volume, prepare_volume


def make_volume(tmp_path, name, data, voxel_size, offset=None, channels=0):
    """A zarr volume ``tmp_path/d.zarr/name`` holding ``data`` (channel axis first when ``channels``)."""
    spatial = data.shape[1:] if channels else data.shape
    offset = offset or (0,) * len(spatial)
    url = str(tmp_path / "d.zarr" / name)
    roi = Roi(offset, Coordinate(spatial) * Coordinate(voxel_size))
    volume = prepare_volume(url, roi, voxel_size, data.dtype, chunk_shape=(16,) * len(spatial),
                            channels=(data.shape[0],) if channels else ())
    volume.write(roi, data)
    return url


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- loading ---------------------------------------------------------------------------------


def test_csv_with_optional_columns_and_defaults(tmp_path):
    url = write(tmp_path, "split.csv", "role,raw,labels,mask,weight\n"
                "train,a.zarr/raw,a.zarr/labels,a.zarr/mask,3\n"
                "\n"
                "validate,b.zarr/raw,b.zarr/labels,,\n")
    split = load_datasplit(url)
    (train,), (validate,) = split.train, split.validate
    assert (train.raw, train.labels, train.mask, train.weight) == (  # relative paths: beside the file
        f"{tmp_path}/a.zarr/raw", f"{tmp_path}/a.zarr/labels", f"{tmp_path}/a.zarr/mask", 3.0)
    assert (validate.mask, validate.weight, validate.name) == (None, 1.0, "b/raw")
    assert isinstance(train.normalisation, DtypeRange)

    url = write(tmp_path, "short.csv", "labels,raw,role\nx.zarr/gt,x.zarr/em,train\n")
    (only,) = load_datasplit(url).train
    assert (only.raw, only.labels, only.mask, only.weight) == (f"{tmp_path}/x.zarr/em", f"{tmp_path}/x.zarr/gt",
                                                              None, 1.0)


@pytest.mark.parametrize("rows, message", [
    ("role,raw,labels\ntrain,a.zarr/r,a.zarr/l\ntain,b.zarr/r,b.zarr/l\n",
     "split.csv: row 3: role must be train or validate, got 'tain'"),
    ("role,raw,labels,weight\ntrain,a.zarr/r,a.zarr/l,heavy\n", "split.csv: row 2: column weight: expected a number"),
    ("role,raw,labels,weight\ntrain,a.zarr/r,a.zarr/l,-1\n", "split.csv: row 2: weight must be a positive number"),
    ("role,raw,labels\ntrain,,a.zarr/l\n", "split.csv: row 2: column raw is empty"),
    ("role,raw,labels\ntrain,a.zarr/r,a.zarr/l,extra\n", "split.csv: row 2: 4 cells, but the header names 3"),
    ("role,raw\ntrain,a.zarr/r\n", "split.csv: row 1: the header must name columns role,raw,labels"),
    ("role,raw,labels,colour\n", "split.csv: row 1: the header must name"),
    ("role,raw,labels\nvalidate,a.zarr/r,a.zarr/l\n", "split.csv: train must list at least one dataset"),
    ("role,raw,labels\ntrain,a.zarr/r,a.zarr/l\ntrain,a.zarr/r,b.zarr/l\n", "dataset name 'a/r' is used twice"),
])
def test_csv_errors_name_file_and_row(tmp_path, rows, message):
    with pytest.raises(ConfigError) as error:
        load_datasplit(write(tmp_path, "split.csv", rows))
    assert message in str(error.value)


def test_json_with_grouping_normalisation_and_names(tmp_path):
    data = {"train": [{"raw": "s3://b/c1.zarr/em/raw", "labels": "s3://b/c1.zarr/gt", "weight": 2,
                       "class_of_label": {"1": 2, "7": 2, "3": 1},
                       "normalisation": {"kind": "minmax", "min": 10, "max": 200}}],
            "validate": [{"raw": "v.zarr/raw", "labels": "v.zarr/gt", "name": "held-out",
                          "normalisation": {"kind": "percentile", "high": 99.5}}]}
    split = load_datasplit(write(tmp_path, "split.json", json.dumps(data)))
    (train,), (validate,) = split.train, split.validate
    assert train.name == "c1/em/raw" and train.weight == 2.0
    assert train.label_classes() == {1: 2, 7: 2, 3: 1}
    assert train.normalisation == MinMax(min=10.0, max=200.0)
    assert validate.name == "held-out" and validate.label_classes() is None
    assert validate.normalisation == Percentile(low=1.0, high=99.5)
    assert from_dict(Datasplit, to_dict(split)) == split


@pytest.mark.parametrize("split, message", [
    ({"train": [{"raw": "a.zarr/r", "labels": "a.zarr/l", "class_of_label": {"x": 1}}]},
     "split.json: train[0]: class_of_label: key 'x' is not a label id"),
    ({"train": [{"raw": "a.zarr/r", "labels": "a.zarr/l", "normalisation": {"kind": "zscore"}}]},
     "split.json: train[0].normalisation.kind: unknown kind"),
    ({"train": [{"raw": "a.zarr/r", "labels": "a.zarr/l", "normalisation": {"kind": "minmax", "min": 5, "max": 5}}]},
     "split.json: train[0].normalisation: minmax needs finite min < max"),
    ({"train": [{"raw": "a.zarr/r", "labels": "a.zarr/l", "weight": 0}]},
     "split.json: train[0]: weight must be a positive number"),
    ({"train": [{"raw": "a.zarr/r"}]}, "split.json: train[0].labels: missing key"),
    ({"train": []}, "split.json: train must list at least one dataset"),
])
def test_json_errors_name_file_and_key(tmp_path, split, message):
    with pytest.raises(ConfigError) as error:
        load_datasplit(write(tmp_path, "split.json", json.dumps(split)))
    assert message in str(error.value)


# -- volume checks ---------------------------------------------------------------------------


def dataset_of(tmp_path, raw_voxel, labels_voxel, mask_voxel=None, raw_channels=0, labels_offset=None):
    raw_shape = ((2,) if raw_channels else ()) + (4, 16, 16)
    raw = make_volume(tmp_path, "raw", np.zeros(raw_shape, np.uint8), raw_voxel, channels=raw_channels)
    labels = make_volume(tmp_path, "labels", np.zeros((4, 16, 16), np.uint32), labels_voxel, labels_offset)
    mask = make_volume(tmp_path, "mask", np.ones((4, 16, 16), np.uint8), mask_voxel) if mask_voxel else None
    return Dataset(raw=raw, labels=labels, mask=mask)


def test_equal_voxel_sizes_give_the_overlap_and_channels(tmp_path):
    geometry = check_dataset(dataset_of(tmp_path, (4, 4, 4), (4, 4, 4), (4, 4, 4), raw_channels=2,
                                        labels_offset=(4, 8, 0)))
    assert geometry.raw_voxel_size == geometry.labels_voxel_size == (4, 4, 4)
    assert geometry.region == Roi((4, 8, 0), (12, 56, 64))
    assert geometry.channels == 2


def test_labels_finer_by_the_upsample_factor(tmp_path):
    geometry = check_dataset(dataset_of(tmp_path, (8, 8, 8), (8, 4, 4), (8, 4, 4)), (1, 2, 2))
    assert geometry.labels_voxel_size == (8, 4, 4) and geometry.raw_voxel_size == (8, 8, 8)
    assert geometry.region == Roi((0, 0, 0), (32, 64, 64))  # labels cover half of raw in y and x
    assert geometry.channels == 1


@pytest.mark.parametrize("raw, labels, factor", [
    ((8, 8, 8), (8, 4, 4), None),  # finer labels without an upsample factor
    ((8, 8, 8), (8, 4, 4), (2, 2, 2)),  # a factor that does not match
    ((4, 4, 4), (8, 8, 8), None),  # coarser labels
])
def test_mismatched_voxel_sizes_name_both_volumes(tmp_path, raw, labels, factor):
    dataset = dataset_of(tmp_path, raw, labels)
    with pytest.raises(UserError) as error:
        check_dataset(dataset, factor)
    text = str(error.value)
    assert dataset.raw in text and dataset.labels in text
    assert str(raw) in text and str(labels) in text


def test_mask_voxel_size_must_equal_the_labels(tmp_path):
    dataset = dataset_of(tmp_path, (4, 4, 4), (4, 4, 4), mask_voxel=(4, 8, 8))
    with pytest.raises(UserError, match=r"mask .*mask \(voxel size \(4, 8, 8\).* labels .*labels \(voxel size "
                                        r"\(4, 4, 4\)"):
        check_dataset(dataset)


def test_labels_with_channels_or_outside_raw_are_refused(tmp_path):
    raw = make_volume(tmp_path, "raw", np.zeros((4, 8, 8), np.uint8), (1, 1, 1))
    labels = make_volume(tmp_path, "multi", np.zeros((2, 4, 8, 8), np.uint8), (1, 1, 1), channels=2)
    with pytest.raises(UserError, match="multi has channel axes"):
        check_dataset(Dataset(raw=raw, labels=labels))
    far = make_volume(tmp_path, "far", np.zeros((4, 8, 8), np.uint8), (1, 1, 1), offset=(0, 100, 0))
    with pytest.raises(UserError, match="far .* do not overlap raw"):
        check_dataset(Dataset(raw=raw, labels=far))


# -- normalisation ----------------------------------------------------------------------------


def test_normalisation_kinds_on_known_values():
    uint8 = np.array([0, 51, 255], np.uint8)
    assert np.allclose(normalise(uint8, DtypeRange()), [-1.0, -0.6, 1.0])
    assert np.allclose(normalise(np.array([-128, 127], np.int8), DtypeRange()), [-1, 1])
    assert np.allclose(normalise(np.array([0, 65535], np.uint16), DtypeRange()), [-1, 1])
    floats = np.array([-3.5, 0.25, 7.0], np.float64)
    out = normalise(floats, DtypeRange())
    assert out.dtype == np.float32 and np.array_equal(out, floats.astype(np.float32))
    clipped = normalise(np.array([0, 10, 60, 110, 250], np.uint8), MinMax(min=10, max=110))
    assert clipped.dtype == np.float32 and np.allclose(clipped, [-1, -1, 0, 1, 1])
    with pytest.raises(ValueError, match="measured first"):
        normalise(uint8, Percentile())


def test_percentiles_of_a_small_volume_are_exact_and_resolved_into_minmax(tmp_path):
    data = np.random.default_rng(1).gamma(2.0, 20.0, (8, 40, 40)).astype(np.float32)
    url = make_volume(tmp_path, "raw", data, (1, 1, 1))
    volume = open_volume(url)
    low, high = measure_percentiles(volume, 1.0, 99.0, block_shape=(8, 16, 16))  # 9 blocks: read whole
    assert np.allclose([low, high], np.percentile(data, [1.0, 99.0]))
    split = Datasplit(train=[Dataset(raw=url, labels=url, normalisation=Percentile())])
    resolved = resolve_normalisations(split, seed=3)
    assert resolved.train[0].normalisation == MinMax(min=low, max=high)


def test_subsampled_percentiles_are_deterministic_and_close(tmp_path):
    data = np.random.default_rng(2).normal(100.0, 15.0, (16, 64, 64)).astype(np.float32)
    volume = open_volume(make_volume(tmp_path, "raw", data, (1, 1, 1)))
    first = measure_percentiles(volume, 5.0, 95.0, seed=7, max_blocks=8, block_shape=(4, 8, 8))  # 8 of 256
    assert first == measure_percentiles(volume, 5.0, 95.0, seed=7, max_blocks=8, block_shape=(4, 8, 8))
    assert first != measure_percentiles(volume, 5.0, 95.0, seed=8, max_blocks=8, block_shape=(4, 8, 8))
    assert np.allclose(first, np.percentile(data, [5.0, 95.0]), atol=2.5)  # sd of 2048 draws' 5th pct: ~0.7


def test_a_constant_volume_cannot_be_percentile_normalised(tmp_path):
    url = make_volume(tmp_path, "flat", np.full((4, 8, 8), 9, np.uint8), (1, 1, 1))
    with pytest.raises(UserError, match="flat: its 1.0th and 99.0th percentiles are both 9"):
        Percentile().measure(open_volume(url))


# -- sampling ---------------------------------------------------------------------------------


def geometry_of(tmp_path, name, labels_shape=(8, 32, 32), labels_voxel=(2, 2, 2), raw_voxel=(2, 4, 4),
                labels_offset=(0, 0, 0), mask=None):
    folder = tmp_path / name
    raw_shape = tuple(s * lv // rv + 2 for s, lv, rv in zip(labels_shape, labels_voxel, raw_voxel, strict=True))
    raw = make_volume(folder, "raw", np.zeros(raw_shape, np.uint8), raw_voxel, offset=tuple(-2 * v for v in raw_voxel))
    labels = make_volume(folder, "labels", np.zeros(labels_shape, np.uint8), labels_voxel, offset=labels_offset)
    mask_url = make_volume(folder, "mask", mask, labels_voxel, offset=labels_offset) if mask is not None else None
    factor = tuple(r // lv for r, lv in zip(raw_voxel, labels_voxel, strict=True))
    return check_dataset(Dataset(raw=raw, labels=labels, mask=mask_url, name=name), factor), mask_url


def test_centres_keep_crops_inside_and_on_both_grids(tmp_path):
    # labels start at (6, 2, 6): half a raw voxel off in y and x, so the usable region shrinks to raw voxels
    geometry, _ = geometry_of(tmp_path, "a", labels_shape=(16, 32, 32), labels_offset=(6, 2, 6))
    assert geometry.region == Roi((6, 4, 8), (26, 60, 56))
    needed = Coordinate(6, 24, 16)
    sampler = CropSampler([(1.0, geometry, None)], needed)
    rng = np.random.default_rng(0)
    centres = {sampler.sample(rng)[1] for _ in range(3000)}
    raw_grid, labels_grid = Coordinate(-4, -8, -8), Coordinate(6, 2, 6)  # the volumes' offsets
    for centre in centres:
        assert geometry.region.contains(Roi(centre - needed // 2, needed))
        assert not any((centre - raw_grid) % geometry.raw_voxel_size)
        raw_crop = centred_roi(centre, (3, 5, 4), geometry.raw_voxel_size)
        assert not any((raw_crop.begin - raw_grid) % geometry.raw_voxel_size)
        for shape in [(3, 12, 8), (2, 5, 7)]:
            label_crop = centred_roi(centre, shape, geometry.labels_voxel_size)
            assert not any((label_crop.begin - labels_grid) % geometry.labels_voxel_size)
    # every valid centre is reachable: 10 z positions (step 2) x 10 y (step 4) x 11 x (step 4)
    assert len(centres) > 0.85 * 10 * 10 * 11
    assert [(min(c[a] for c in centres), max(c[a] for c in centres)) for a in range(3)] == [(10, 28), (16, 52),
                                                                                           (16, 56)]


def test_datasets_drawn_by_weight_and_reproducibly(tmp_path):
    a, _ = geometry_of(tmp_path, "a")
    b, _ = geometry_of(tmp_path, "b")
    sampler = CropSampler([(3.0, a, None), (1.0, b, None)], (4, 16, 16))
    draws = [sampler.sample(np.random.default_rng([5, i])) for i in range(2000)]
    share = sum(which == 0 for which, _ in draws) / len(draws)
    assert abs(share - 0.75) < 0.04  # sd 0.01
    again = [sampler.sample(np.random.default_rng([5, i])) for i in range(50)]
    assert again == draws[:50]
    other = [sampler.sample(np.random.default_rng([6, i])) for i in range(50)]
    assert other != draws[:50]


def test_a_region_smaller_than_needed_names_the_dataset_and_sizes(tmp_path):
    geometry, _ = geometry_of(tmp_path, "small", labels_shape=(4, 8, 8))
    with pytest.raises(UserError, match=r"dataset small: .*\(8, 16, 16\).*smaller than the needed extent "
                                        r"\(8, 32, 8\)"):
        CropSampler([(1.0, geometry, None)], (8, 32, 8))


def masked_fraction(mask, centre, shape):
    crop = centred_roi(centre, shape, (1, 1, 1))
    return mask[tuple(slice(b, e) for b, e in zip(crop.begin, crop.end, strict=True))].mean()


@pytest.mark.parametrize("max_cells, draws", [(2**20, 600), (8, 300)])  # exact bins; coarse, all undecided
def test_min_masked_holds_for_every_crop_and_centres_stay_uniform(tmp_path, max_cells, draws):
    mask = np.zeros((4, 48, 48), np.uint8)
    mask[:, 10:30, 5:40] = 1
    geometry, mask_url = geometry_of(tmp_path, "m", labels_shape=mask.shape, labels_voxel=(1, 1, 1),
                                     raw_voxel=(1, 1, 1), mask=mask)
    needed, shape = Coordinate(2, 16, 16), (2, 12, 12)
    sampler = CropSampler([(1.0, geometry, open_volume(mask_url))], needed, 0.6, shape, max_cells=max_cells)
    valid = [Coordinate(z, y, x) for z in range(1, 4) for y in range(8, 41) for x in range(8, 41)]
    fractions = {c: masked_fraction(mask, c, shape) for c in valid}
    qualifying = [c for c in valid if fractions[c] >= 0.6]
    rng = np.random.default_rng(0)
    drawn = [sampler.sample(rng)[1] for _ in range(draws)]
    assert all(fractions[c] >= 0.6 for c in drawn)
    # uniform over the qualifying centres: partly masked crops as often, and the mean centre where, as
    # among all qualifying centres (within 3 standard deviations of a mean of uniform draws)
    partly = np.mean([fractions[c] < 1 for c in qualifying])
    assert 0.2 < partly < 0.8
    assert abs(np.mean([fractions[c] < 1 for c in drawn]) - partly) < 3 * np.sqrt(partly * (1 - partly) / draws)
    spread = 3 * np.std(qualifying, axis=0) / np.sqrt(draws)
    assert np.all(np.abs(np.mean(drawn, axis=0) - np.mean(qualifying, axis=0)) < spread)


def test_no_crop_masked_enough_names_the_mask(tmp_path):
    mask = np.zeros((4, 32, 32), np.uint8)
    mask[:, :4, :4] = 1
    geometry, mask_url = geometry_of(tmp_path, "sparse", labels_shape=mask.shape, labels_voxel=(1, 1, 1),
                                     raw_voxel=(1, 1, 1), mask=mask)
    with pytest.raises(UserError, match=r"dataset sparse: no crop .* least 0.5 of mask .*sparse/d.zarr/mask"):
        CropSampler([(1.0, geometry, open_volume(mask_url))], (2, 16, 16), min_masked=0.5)
    loose = CropSampler([(1.0, geometry, open_volume(mask_url))], (2, 16, 16), min_masked=0.01)
    crop_shape = (2, 16, 16)
    for seed in range(20):
        centre = loose.sample(np.random.default_rng(seed))[1]
        assert masked_fraction(mask, centre, crop_shape) >= 0.01


def test_centres_from_undecided_bins_of_unequal_size_stay_uniform(tmp_path):
    mask = np.ones((4, 48, 48), np.uint8)
    geometry, mask_url = geometry_of(tmp_path, "full", labels_shape=mask.shape, labels_voxel=(1, 1, 1),
                                     raw_voxel=(1, 1, 1), mask=mask)
    # 8 cells: y centres 8..40 fall in bins of 24 (8..31) and 9 (32..40) centres, none decided by the counts
    sampler = CropSampler([(1.0, geometry, open_volume(mask_url))], (2, 16, 16), 0.5, (2, 12, 12), max_cells=8)
    rng = np.random.default_rng(3)
    ys = np.array([sampler.sample(rng)[1][1] for _ in range(300)])
    assert ys.min() >= 8 and ys.max() <= 40
    assert abs(np.mean(ys >= 32) - 9 / 33) < 3 * np.sqrt(9 / 33 * 24 / 33 / 300)


def test_grids_shifted_by_part_of_a_voxel_are_refused(tmp_path):
    dataset = dataset_of(tmp_path, (2, 2, 2), (2, 2, 2))
    open_volume(dataset.labels, mode="r+").array.attrs["offset"] = [0, 1, 0]  # as OME translations allow
    with pytest.raises(UserError, match=r"raw \(voxel size \(2, 2, 2\).* is shifted by a fraction of a voxel "
                                        r"against labels"):
        check_dataset(dataset)
