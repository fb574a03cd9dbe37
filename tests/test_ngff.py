"""Every volume alfine writes is an OME-NGFF image (0.4 on zarr v2, 0.5 on v3) that ome-zarr-models validates and
ome-zarr's reader opens; alfine-downsample adds pyramid levels equal to a brute-force reference."""

import itertools
import json
import os

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from ngff_helpers import ome_zarr_images, validate, validate_container

from alfine.volumes import open_volume, prepare_volume
from alfine.volumes.pyramid import level_geometry, reduce_mean, reduce_mode
from alfine_tools.downsample import main as downsample
from alfine_tools.make_targets import main as make_targets
from alfine_tools.postprocess_block import main as postprocess
from alfine_tools.relabel import main as relabel
from alfine_tools.synthesize import main as synthesize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tool, capsys, *args) -> dict:
    code = tool(["--no-progress", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def refused(tool, capsys, *args) -> str:
    code = tool(["--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def datasets(model) -> list:
    return list(model.ome_attributes.multiscales[0].datasets)


def transforms(dataset) -> tuple[list[float], list[float]]:
    scale, translation = dataset.coordinateTransformations
    return list(scale.scale), list(translation.translation)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_the_demo_outputs_made_small_are_valid_images_and_open_on_the_final_objects(zarr_format, capsys, tmp_path,
                                                                                  monkeypatch):
    """The demo's containers (data, predictions stand-in, segmentation), made small, with pyramids."""
    monkeypatch.chdir(tmp_path)
    fmt = ("--zarr-format", str(zarr_format))
    run(synthesize, capsys, "--output", "data.zarr", "--shape", "24,48,48", "--voxel-size", "8,4,4",
        "--chunk-shape", "8,16,16", *fmt)
    task = tmp_path / "affs.json"
    task.write_text(json.dumps({"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}))
    run(make_targets, capsys, "--labels", "data.zarr/labels", "--task", str(task), "--output",
        "predictions.zarr/affinities", "--chunk-shape", "8,16,16", *fmt)
    run(postprocess, capsys, "--input", "predictions.zarr/affinities", "--method",
        f"{ROOT}/examples/segment_min_affinity.py:segment", "--params", '{"threshold": 0.5}', "--output",
        "segmentation.zarr/fragments", "--chunk-shape", "8,16,16", *fmt)
    run(relabel, capsys, "--input", "segmentation.zarr/fragments", "--output", "segmentation.zarr/objects",
        "--chunk-shape", "8,16,16", *fmt)
    objects = run(downsample, capsys, "--input", "segmentation.zarr/objects", "--root")
    affinities = run(downsample, capsys, "--input", "predictions.zarr/affinities", "--levels", "2")
    assert (objects["method"], affinities["method"]) == ("mode", "mean")

    data = validate_container("data.zarr")
    assert sorted(data) == ["classes", "labels", "mask", "raw"]
    assert {p for p, m in data.items() if type(m).__name__ == "ImageLabel"} == {"classes", "labels", "mask"}
    predictions = validate_container("predictions.zarr")
    assert sorted(predictions) == ["affinities"] and type(predictions["affinities"]).__name__ == "Image"
    segmentation = validate_container("segmentation.zarr")
    assert sorted(segmentation) == ["", "fragments", "objects"]
    assert all(type(m).__name__ == "ImageLabel" for m in segmentation.values())
    for container, models in (("data.zarr", data), ("predictions.zarr", predictions),
                              ("segmentation.zarr", segmentation)):
        for path, model in models.items():
            attrs = zarr.open_group(f"{container}/{path}", mode="r").attrs.asdict()
            version = attrs["multiscales"][0]["version"] if zarr_format == 2 else attrs["ome"]["version"]
            assert version == ("0.4" if zarr_format == 2 else "0.5")
            assert len(model.ome_attributes.multiscales) == 1

    # Levels: scale = voxel size, translation = the first voxel's centre, for every level.
    levels = datasets(segmentation["objects"])
    assert [d.path for d in levels] == [f"s{k}" for k in range(len(objects["levels"]) + 1)] and len(levels) > 2
    for dataset in levels:
        volume = open_volume(f"segmentation.zarr/objects/{dataset.path}")
        scale, translation = transforms(dataset)
        assert scale == [float(v) for v in volume.voxel_size]
        assert translation == [o + v / 2 for o, v in zip(volume.offset, volume.voxel_size, strict=True)]
    scale, _ = transforms(datasets(predictions["affinities"])[2])
    assert scale == [1.0, 16.0, 16.0, 16.0]  # channels unscaled; 8,4,4 -> 8,8,8 -> 16,16,16

    # ome-zarr's reader: the segmentation container opens on the final objects, with their pyramid.
    shapes = [tuple(open_volume(f"segmentation.zarr/objects/{d.path}").shape) for d in levels]
    assert ome_zarr_images("segmentation.zarr") == [("objects", shapes)]
    assert ome_zarr_images("predictions.zarr/affinities")[0][0] == "affinities"
    assert ome_zarr_images("data.zarr/raw")[0] == ("raw", [(24, 48, 48)])
    # ... and so does alfine: the container's URL opens the objects' scale 0.
    np.testing.assert_array_equal(open_volume("segmentation.zarr").read(), open_volume("segmentation.zarr/objects")
                                  .read())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_translations_are_voxel_centres_and_round_trip_exactly(zarr_format, capsys, tmp_path):
    url = f"{tmp_path}/v.zarr/img"
    voxel, offset = Coordinate(5, 3, 2), Coordinate(10, -6, 4)
    volume = prepare_volume(url, Roi(offset, voxel * Coordinate(7, 9, 11)), voxel, "float32", (4, 4, 4),
                            zarr_format=zarr_format)
    volume.write(volume.roi, np.random.default_rng(0).random((7, 9, 11), dtype=np.float32))
    run(downsample, capsys, "--input", url, "--levels", "2", "--factor", "1,2,2")
    model = validate(zarr.open_group(url, mode="r"))
    expected = [(voxel, offset), (Coordinate(5, 6, 4), Coordinate(10, -6, 4)),
                (Coordinate(5, 12, 8), Coordinate(10, -12, 0))]  # offsets snapped to each level's grid
    for k, (dataset, (v, o)) in enumerate(zip(datasets(model), expected, strict=True)):
        assert transforms(dataset) == ([float(x) for x in v], [a + b / 2 for a, b in zip(o, v, strict=True)])
        for key in ("voxel_size", "offset", "axis_names", "units"):  # read from OME-NGFF alone
            del zarr.open_array(f"{url}/s{k}", mode="r+").attrs[key]
        level = open_volume(f"{url}/s{k}")
        assert (level.voxel_size, level.offset) == (v, o)


def brute_force(fine: np.ndarray, fine_voxel, fine_offset, coarse_voxel, coarse_offset, coarse_shape, reduce):
    """Each coarse voxel from the fine voxels whose corners lie in it, by looping over coarse voxels."""
    out = np.zeros(coarse_shape)
    corners = [o + v * np.arange(n) for o, v, n in zip(fine_offset, fine_voxel, fine.shape, strict=True)]
    for index in itertools.product(*map(range, coarse_shape)):
        begin = [o + v * i for o, v, i in zip(coarse_offset, coarse_voxel, index, strict=True)]
        picks = [np.flatnonzero((c >= b) & (c < b + v)) for c, b, v in zip(corners, begin, coarse_voxel,
                                                                            strict=True)]
        out[index] = reduce(fine[np.ix_(*picks)].ravel())
    return out


def mode(values):
    ids, counts = np.unique(values, return_counts=True)
    return ids[counts == counts.max()].min()


@pytest.mark.parametrize("dtype", [np.uint64, np.int32, np.float32])
@pytest.mark.parametrize("factor", [(2, 2, 2), (1, 2, 2), (4, 4, 4)])
def test_reduce_mode_equals_a_brute_force_mode(dtype, factor):
    """Few ids (many ties), some voxels outside, one coarse voxel with none inside (its smallest id), and the
    largest uint64 among the ids."""
    rng = np.random.default_rng(3)
    shape = tuple(4 * f for f in factor)
    labels = rng.integers(0, 3, shape).astype(dtype)
    if dtype == np.uint64:
        labels[rng.random(shape) < 0.2] = np.iinfo(np.uint64).max
    inside = rng.random(shape) < 0.7
    inside[: factor[0], : factor[1], : factor[2]] = False
    result, everywhere = reduce_mode(labels, inside, factor), reduce_mode(labels, np.ones(shape, bool), factor)
    assert result.dtype == everywhere.dtype == labels.dtype and result.shape == (4, 4, 4)
    for index in itertools.product(range(4), repeat=3):
        cell = tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factor, strict=True))
        values = labels[cell][inside[cell]]
        assert result[index] == (mode(values) if len(values) else labels[cell].min()), index
        assert everywhere[index] == mode(labels[cell]), index


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("factor", [(2, 2, 2), (1, 2, 2), (3, 1, 2)])
@pytest.mark.parametrize("channels", [(), (2,)])
def test_reduce_mean_equals_a_brute_force_mean(dtype, factor, channels):
    """Per channel, over the voxels inside (none inside: 0); exact for integers."""
    rng = np.random.default_rng(4)
    shape = tuple(3 * f for f in factor)
    data = (rng.random(channels + shape) * 255).astype(dtype)
    inside = rng.random(shape) < 0.7
    inside[: factor[0], : factor[1], : factor[2]] = False
    for mask in (inside, np.ones(shape, bool)):
        result = reduce_mean(data, mask, factor, len(channels))
        assert result.dtype == np.float64 and result.shape == channels + (3, 3, 3)
        for index in itertools.product(range(3), repeat=3):
            cell = tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factor, strict=True))
            values = data[(...,) + cell][..., mask[cell]].astype(np.float64)
            expected = values.mean(axis=-1) if values.shape[-1] else np.zeros(channels)
            np.testing.assert_allclose(result[(...,) + index], expected, rtol=1e-12, atol=0)
            if dtype == np.uint8 and values.shape[-1]:  # the exact sum, divided once
                np.testing.assert_array_equal(result[(...,) + index], values.sum(axis=-1) / values.shape[-1])


@pytest.mark.parametrize("kind", ["raw", "labels"])
def test_levels_equal_a_brute_force_reference(kind, capsys, tmp_path):
    """Odd shapes and an offset off the coarse grids: partial coarse voxels at both ends of every axis."""
    rng = np.random.default_rng(1)
    voxel, offset, shape = Coordinate(4, 4, 4), Coordinate(4, 8, 12), (9, 13, 11)
    data = rng.integers(0, 256, shape, dtype=np.uint8) if kind == "raw" else \
        rng.integers(0, 4, shape).astype(np.uint64) * 1000
    url = f"{tmp_path}/d.zarr/{kind}"
    prepare_volume(url, Roi(offset, voxel * Coordinate(shape)), voxel, data.dtype, (4, 4, 4),
                   label=kind == "labels").write(Roi(offset, voxel * Coordinate(shape)), data)
    summary = run(downsample, capsys, "--input", url, "--levels", "2", "--workers", "1")
    assert summary["method"] == ("mode" if kind == "labels" else "mean")
    fine, geometry = data, open_volume(url).geometry
    for k in (1, 2):
        coarse = open_volume(f"{url}/s{k}")
        expected_geometry = level_geometry(geometry, (2, 2, 2))
        assert (coarse.voxel_size, coarse.offset) == (expected_geometry.voxel_size, expected_geometry.offset)
        reduce = mode if kind == "labels" else (lambda v: np.rint(v.mean()))
        expected = brute_force(fine, geometry.voxel_size, geometry.offset, coarse.voxel_size, coarse.offset,
                               coarse.shape, reduce)
        np.testing.assert_array_equal(coarse.read(), expected.astype(data.dtype))
        fine, geometry = coarse.read(), coarse.geometry


def test_the_block_contract_one_level_at_a_time(capsys, tmp_path):
    """--list-blocks and --block-id take a level; blocks run one by one equal a whole run, byte for byte; a re-run
    skips what is done."""
    rng = np.random.default_rng(2)
    roi = Roi((0, 0, 0), (32, 64, 64))
    bytes_of = {}
    for name in ("whole", "blocks"):
        url = f"{tmp_path}/{name}.zarr/raw"
        prepare_volume(url, roi, (1, 1, 1), "uint8", (8, 16, 16)).write(roi, rng.integers(0, 255, (32, 64, 64),
                                                                                           dtype=np.uint8))
        rng = np.random.default_rng(2)
    whole = run(downsample, capsys, "--input", f"{tmp_path}/whole.zarr/raw", "--levels", "2")
    assert [level["processed"] for level in whole["levels"]] == [8, 1]
    again = run(downsample, capsys, "--input", f"{tmp_path}/whole.zarr/raw", "--levels", "2")
    assert [level["skipped"] for level in again["levels"]] == [8, 1]

    url = f"{tmp_path}/blocks.zarr/raw"
    assert "--level" in refused(downsample, capsys, "--input", url, "--levels", "2", "--block-id", "0")
    assert not os.path.exists(f"{url}/s1")
    for level in (1, 2):
        code = downsample(["--input", url, "--levels", "2", "--level", str(level), "--list-blocks"])
        lines = capsys.readouterr().out.strip().splitlines()
        assert code == 0 and len(lines) == 1 + whole["levels"][level - 1]["blocks"]
        for block in range(len(lines) - 1):
            run(downsample, capsys, "--input", url, "--levels", "2", "--level", str(level), "--block-id", str(block))
    for level in (1, 2):
        bytes_of = [open_volume(f"{tmp_path}/{n}.zarr/raw/s{level}").read() for n in ("whole", "blocks")]
        np.testing.assert_array_equal(*bytes_of)
    assert os.path.isdir(f"{tmp_path}/blocks.zarr/.alfine-blocks/raw/s1/done")


def test_bad_inputs_are_refused_before_anything_is_written(capsys, tmp_path):
    bare = zarr.create_array(f"{tmp_path}/old.zarr/raw", shape=(8, 8, 8), chunks=(4, 4, 4), dtype="uint8",
                             zarr_format=2)
    bare.attrs.update({"voxel_size": [1, 1, 1], "offset": [0, 0, 0]})
    assert "old.zarr/raw" in refused(downsample, capsys, "--input", f"{tmp_path}/old.zarr/raw")
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/old.zarr/raw").read(), 0)  # old outputs still open

    roi = Roi((0, 0, 0), (16, 16, 16))
    for name in ("labels", "objects"):
        prepare_volume(f"{tmp_path}/d.zarr/{name}", roi, (1, 1, 1), "uint64", (8, 8, 8), label=True)
    assert "'labels'" in refused(downsample, capsys, "--input", f"{tmp_path}/d.zarr/objects", "--root")
    assert "--factor" in refused(downsample, capsys, "--input", f"{tmp_path}/d.zarr/objects", "--factor", "1,1,1")
    assert not os.path.exists(f"{tmp_path}/d.zarr/objects/s1")
    assert "multiscales" not in zarr.open_group(f"{tmp_path}/d.zarr", mode="r").attrs


def test_an_image_whose_creation_was_killed_before_its_data_is_created_again(tmp_path):
    """prepare_volume writes the image's metadata before s0: metadata without s0 is no volume yet, and a re-run
    creates s0 into it."""
    url = f"{tmp_path}/k.zarr/pred"
    roi = Roi((0, 0, 0), (8, 8, 8))
    prepare_volume(url, roi, (1, 1, 1), "float32", (4, 4, 4))
    zarr.open_group(url, mode="r+").__delitem__("s0")  # as if killed between the metadata and the array
    with pytest.raises(Exception, match="s0"):
        open_volume(url)
    volume = prepare_volume(url, roi, (1, 1, 1), "float32", (4, 4, 4))
    assert volume.shape == (8, 8, 8) and validate(zarr.open_group(url, mode="r"))
