"""Volumes: URLs, geometry round-trips through every reader, ROI reads and writes, prepare."""

import json

import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi

from alfine.errors import UserError, VolumeError
from alfine.volumes import Geometry, open_volume, parse_volume_url, prepare_volume

VOXEL_SIZE = (8, 4, 2)
OFFSET = (40, -12, 6)


def _data(shape, dtype=np.uint16):
    return (np.arange(int(np.prod(shape))) % 60000).reshape(shape).astype(dtype)


def _assert_geometry(volume, voxel_size=VOXEL_SIZE, offset=OFFSET, axis_names=("z", "y", "x")):
    assert tuple(volume.voxel_size) == voxel_size
    assert tuple(volume.offset) == offset
    assert volume.geometry.axis_names == axis_names
    assert volume.geometry.units == ("nm",) * len(voxel_size)


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, container, path",
    [
        ("data.zarr/raw", "data.zarr", "raw"),
        ("/abs/data.zarr/pred/affs/", "/abs/data.zarr", "pred/affs"),
        ("s3://bucket/x.zarr/pred/affs", "s3://bucket/x.zarr", "pred/affs"),
        ("file:///tmp/a.zarr/raw", "file:///tmp/a.zarr", "raw"),
        ("out/raw", "out", "raw"),
        ("raw", ".", "raw"),
        ("x.n5/volumes/raw", "x.n5", "volumes/raw"),
        ("gs://b/outer.zarr/inner.zarr/raw", "gs://b/outer.zarr/inner.zarr", "raw"),
    ],
)
def test_url_splits_container_and_array(url, container, path):
    parsed = parse_volume_url(url)
    assert (parsed.container, parsed.path) == (container, path)


@pytest.mark.parametrize("url", ["", "   ", "data.zarr/../etc/raw"])
def test_bad_urls_are_refused(url):
    with pytest.raises(VolumeError):
        parse_volume_url(url)


# -- geometry round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format, shards", [(2, None), (3, None), (3, (16, 16, 16))])
def test_funlib_and_ome_attributes_round_trip(tmp_path, zarr_format, shards):
    roi = Roi(OFFSET, Coordinate(20, 24, 32) * Coordinate(VOXEL_SIZE))
    url = f"{tmp_path}/d.zarr/raw"
    volume = prepare_volume(url, roi, VOXEL_SIZE, "uint16", (8, 8, 8), zarr_format=zarr_format, shards=shards)
    data = _data((20, 24, 32))
    volume.write(roi, data)

    reopened = open_volume(url)
    _assert_geometry(reopened)
    assert reopened.roi == roi
    np.testing.assert_array_equal(reopened.read(), data)
    assert reopened.array.metadata.zarr_format == zarr_format
    if shards:
        assert tuple(reopened.chunk_shape) == shards

    # The OME-NGFF reader alone (funlib attributes removed) gives the same geometry.
    array = zarr.open_array(f"{url}/s0", mode="r+")
    for key in ("voxel_size", "offset", "axis_names", "units"):
        del array.attrs[key]
    ome_only = open_volume(url)
    _assert_geometry(ome_only)
    group = zarr.open_group(url, mode="r").attrs.asdict()
    if zarr_format == 2:
        assert group["multiscales"][0]["version"] == "0.4"
    else:
        assert group["ome"]["version"] == "0.5" and "multiscales" not in group


def test_ome_reader_follows_the_0_4_specification(tmp_path):
    """A zarr v2 image written by another tool: OME 0.4 group attributes, channel axis, micrometres; the
    translation is the first voxel's centre, so the offset (its corner) is half a voxel less."""
    group = zarr.open_group(f"{tmp_path}/img.ome.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 10, 10, 10), chunks=(1, 5, 5, 5), dtype="uint8")
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "c", "type": "channel"}]
        + [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1, 0.008, 0.004, 0.004]},
            {"type": "translation", "translation": [0, 0.4, 0.0, 1.2]}]}],
    }]
    for url in (f"{tmp_path}/img.ome.zarr/0", f"{tmp_path}/img.ome.zarr"):  # the array, or the image group
        volume = open_volume(url)
        assert tuple(volume.voxel_size) == (8, 4, 4)
        assert tuple(volume.offset) == (400 - 4, 0 - 2, 1200 - 2)
        assert volume.geometry.units == ("nm", "nm", "nm")
        assert volume.geometry.axis_names == ("c^", "z", "y", "x")
        assert volume.channel_shape == (2,)


def test_ome_0_5_reader_on_a_foreign_v3_image(tmp_path):
    group = zarr.open_group(f"{tmp_path}/img.zarr", mode="w", zarr_format=3)
    group.create_array("s0", shape=(10, 10, 10), chunks=(5, 5, 5), dtype="uint8")
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": list(map(float, VOXEL_SIZE))},
            {"type": "translation", "translation": [o + v / 2 for o, v in zip(OFFSET, VOXEL_SIZE, strict=True)]}]}],
    }]}
    _assert_geometry(open_volume(f"{tmp_path}/img.zarr/s0"))


def test_legacy_funlib_resolution_attribute(tmp_path):
    array = zarr.create_array(f"{tmp_path}/old.zarr/raw", shape=(3, 4, 5), chunks=(3, 4, 5), dtype="uint8",
                              zarr_format=2)
    array.attrs.update({"resolution": list(VOXEL_SIZE), "offset": list(OFFSET)})
    _assert_geometry(open_volume(f"{tmp_path}/old.zarr/raw"))


@pytest.mark.parametrize("style", ["funlib", "bigdataviewer"])
def test_n5_reader_reverses_xyz(tmp_path, style):
    """N5 lists dimensions and attributes x,y,z; alfine reads z,y,x."""
    import tensorstore as ts

    data = _data((6, 7, 8), np.uint8)  # z, y, x
    spec = {"driver": "n5", "kvstore": {"driver": "file", "path": f"{tmp_path}/d.n5"}, "path": "raw",
            "metadata": {"dimensions": [8, 7, 6], "blockSize": [4, 4, 4], "dataType": "uint8",
                         "compression": {"type": "gzip"}}}
    store = ts.open(spec, create=True).result()
    store.write(data.T).result()
    attrs_path = tmp_path / "d.n5" / "raw" / "attributes.json"
    attrs = json.loads(attrs_path.read_text())
    if style == "funlib":
        attrs.update(resolution=list(VOXEL_SIZE)[::-1], offset=list(OFFSET)[::-1])
    else:
        attrs.update(pixelResolution={"dimensions": list(VOXEL_SIZE)[::-1], "unit": "nm"}, offset=list(OFFSET)[::-1])
    attrs_path.write_text(json.dumps(attrs))

    volume = open_volume(f"{tmp_path}/d.n5/raw")
    _assert_geometry(volume)
    np.testing.assert_array_equal(volume.read(), data)
    sub = Roi(Coordinate(OFFSET) + Coordinate(VOXEL_SIZE) * Coordinate(1, 2, 3), Coordinate(VOXEL_SIZE) * 2)
    np.testing.assert_array_equal(volume.read(sub), data[1:3, 2:4, 3:5])
    with pytest.raises(VolumeError, match="read-only"):
        open_volume(f"{tmp_path}/d.n5/raw", mode="r+")


def test_channels_come_first(tmp_path):
    roi = Roi((0, 0, 0), (16, 16, 16))
    volume = prepare_volume(f"{tmp_path}/p.zarr/affs", roi, (2, 2, 2), "float32", (4, 4, 4), channels=(3,))
    data = np.random.default_rng(0).random((3, 8, 8, 8), dtype=np.float32)
    volume.write(roi, data)
    reopened = open_volume(f"{tmp_path}/p.zarr/affs")
    assert reopened.geometry.axis_names == ("c^", "z", "y", "x")
    assert reopened.channel_shape == (3,) and tuple(reopened.chunk_shape) == (4, 4, 4)
    part = Roi((4, 0, 8), (4, 16, 2))
    np.testing.assert_array_equal(reopened.read(part), data[:, 2:4, :, 4:5])


def test_two_dimensional_volume(tmp_path):
    roi = Roi((4, 8), (20, 40))
    volume = prepare_volume(f"{tmp_path}/2d.zarr/img", roi, (2, 4), "uint8", (8, 8))
    volume.write(roi, _data((10, 10), np.uint8))
    reopened = open_volume(f"{tmp_path}/2d.zarr/img")
    assert reopened.geometry.axis_names == ("y", "x") and reopened.roi == roi


# -- reading and writing regions ------------------------------------------------------------------


@pytest.fixture
def volume(tmp_path):
    roi = Roi(OFFSET, Coordinate(10, 12, 14) * Coordinate(VOXEL_SIZE))
    v = prepare_volume(f"{tmp_path}/v.zarr/raw", roi, VOXEL_SIZE, "uint16", (4, 4, 4))
    v.write(roi, _data((10, 12, 14)))
    return v


def test_read_fills_outside_only_when_asked(volume):
    vs = Coordinate(VOXEL_SIZE)
    outside = Roi(volume.roi.begin - vs * 2, vs * 4)
    with pytest.raises(VolumeError, match="outside the volume"):
        volume.read(outside)
    padded = volume.read(outside, fill_value=7)
    expected = np.full((4, 4, 4), 7, np.uint16)
    expected[2:, 2:, 2:] = _data((10, 12, 14))[:2, :2, :2]
    np.testing.assert_array_equal(padded, expected)
    far = Roi(volume.roi.end + vs, vs * 2)
    assert (volume.read(far, fill_value=3) == 3).all()


def test_mirrored_reads_equal_the_whole_volume_mirrored_by_numpy(volume, tmp_path):
    vs = Coordinate(VOXEL_SIZE)
    whole = np.pad(_data((10, 12, 14)), 30, mode="reflect")  # the reference: numpy mirrors the whole volume
    for begin, shape in (((-3, -5, 2), (6, 9, 4)), ((7, 9, 11), (8, 8, 8)), ((-2, 0, 0), (10, 12, 14)),
                         ((-25, -1, 13), (45, 3, 20)), ((2, 3, 4), (3, 3, 3))):
        roi = Roi(volume.roi.begin + Coordinate(begin) * vs, Coordinate(shape) * vs)
        where = tuple(slice(b + 30, b + 30 + n) for b, n in zip(begin, shape, strict=True))
        np.testing.assert_array_equal(volume.read_mirrored(roi), whole[where], err_msg=str(begin))
    affs = prepare_volume(f"{tmp_path}/p.zarr/affs", Roi((0, 0), (6, 5)), (1, 1), "float32", (3, 3), channels=(2,))
    data = np.random.default_rng(1).random((2, 6, 5), dtype=np.float32)
    affs.write(affs.roi, data)
    np.testing.assert_array_equal(affs.read_mirrored(Roi((-2, 3), (9, 4))),
                                  np.pad(data, ((0, 0), (2, 1), (0, 2)), mode="reflect")[:, :9, 3:7])


def test_misaligned_regions_are_refused(volume):
    with pytest.raises(UserError, match="not aligned"):
        volume.read(Roi(Coordinate(OFFSET) + Coordinate(1, 0, 0), (8, 4, 2)))
    with pytest.raises(UserError, match="not aligned"):
        volume.read(Roi(OFFSET, (8, 4, 3)))


def test_writes_are_checked(volume, tmp_path):
    roi = Roi(OFFSET, Coordinate(VOXEL_SIZE) * 2)
    with pytest.raises(VolumeError, match="shape"):
        volume.write(roi, np.zeros((3, 2, 2)))
    with pytest.raises(VolumeError, match="outside"):
        volume.write(Roi(volume.roi.end, Coordinate(VOXEL_SIZE)), np.zeros((1, 1, 1)))
    with pytest.raises(VolumeError, match="read-only"):
        open_volume(volume.url.url).write(roi, np.zeros((2, 2, 2)))


def test_missing_volume_names_the_url(tmp_path):
    with pytest.raises(VolumeError, match="no zarr array or group"):
        open_volume(f"{tmp_path}/nothing.zarr/raw")
    prepare_volume(f"{tmp_path}/c.zarr/raw", Roi((0, 0, 0), (4, 4, 4)), (1, 1, 1), "uint8", (4, 4, 4))
    with pytest.raises(VolumeError, match="labels: no zarr array"):
        open_volume(f"{tmp_path}/c.zarr/labels")


# -- prepare: reopen what matches, refuse what does not ---------------------------------------------


def test_prepare_reopens_a_matching_volume_and_keeps_its_data(volume):
    again = prepare_volume(volume.url.url, volume.roi, VOXEL_SIZE, "uint16", (4, 4, 4))
    np.testing.assert_array_equal(again.read(), _data((10, 12, 14)))
    assert again.writable


@pytest.mark.parametrize(
    "change, named",
    [
        ({"dtype": "uint8"}, "dtype"),
        ({"chunk_shape": (2, 4, 4)}, "chunks"),
        ({"voxel_size": (4, 4, 2)}, "voxel_size"),
        ({"roi_shift": (8, 0, 0)}, "offset"),
        ({"channels": (2,)}, "shape"),
    ],
)
def test_prepare_refuses_a_mismatch_naming_both(volume, change, named):
    kwargs = {"dtype": "uint16", "chunk_shape": (4, 4, 4), "voxel_size": VOXEL_SIZE, "channels": ()}
    roi = volume.roi
    if "roi_shift" in change:
        roi = roi.shift(Coordinate(change.pop("roi_shift")))
    kwargs.update(change)
    with pytest.raises(VolumeError, match=f"exists with .*{named}=.*this step writes .*{named}="):
        prepare_volume(volume.url.url, roi, **kwargs)
    # The existing data is untouched, and --overwrite replaces it.
    np.testing.assert_array_equal(open_volume(volume.url.url).read(), _data((10, 12, 14)))
    replaced = prepare_volume(volume.url.url, roi, overwrite=True, **kwargs)
    assert str(replaced.dtype) == str(np.dtype(kwargs["dtype"]))


def test_prepare_refuses_bad_requests(tmp_path):
    roi = Roi((0, 0, 0), (8, 8, 8))
    with pytest.raises(VolumeError, match="sharding needs zarr format 3"):
        prepare_volume(f"{tmp_path}/a.zarr/x", roi, (1, 1, 1), "uint8", (4, 4, 4), shards=(8, 8, 8))
    with pytest.raises(VolumeError, match="names a container"):
        prepare_volume(f"{tmp_path}/a.zarr", roi, (1, 1, 1), "uint8", (4, 4, 4))
    with pytest.raises(UserError, match="not aligned"):
        prepare_volume(f"{tmp_path}/a.zarr/x", roi, (3, 1, 1), "uint8", (4, 4, 4))
    with pytest.raises(VolumeError, match="compression"):
        prepare_volume(f"{tmp_path}/a.zarr/x", roi, (1, 1, 1), "uint8", (4, 4, 4), compression="lz9")


def test_zstd_compression_is_the_default(tmp_path):
    prepare_volume(f"{tmp_path}/a.zarr/x", Roi((0, 0, 0), (8, 8, 8)), (1, 1, 1), "uint64", (4, 4, 4))
    meta = json.loads((tmp_path / "a.zarr" / "x" / "s0" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "zstd"
    assert meta["dimension_separator"] == "/"


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_lz4_compression_round_trips(tmp_path, zarr_format):
    roi = Roi((0, 0, 0), (8, 8, 8))
    data = np.random.default_rng(0).integers(0, 2**40, (8, 8, 8), dtype=np.uint64)
    prepare_volume(f"{tmp_path}/a.zarr/x", roi, (1, 1, 1), "uint64", (4, 4, 4), zarr_format=zarr_format,
                   compression="lz4").write(roi, data)
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/a.zarr/x").read(), data)
    array = zarr.open_array(f"{tmp_path}/a.zarr/x/s0", mode="r")
    assert [getattr(c, "cname", None) for c in array.compressors] in (["lz4"], [zarr.codecs.BloscCname.lz4])
    # labels without blosc's byte shuffle (faster), floats with it
    prepare_volume(f"{tmp_path}/a.zarr/f", roi, (1, 1, 1), "float32", (4, 4, 4), zarr_format=zarr_format,
                   compression="lz4").write(roi, data.astype(np.float32))
    floats = zarr.open_array(f"{tmp_path}/a.zarr/f/s0", mode="r")
    shuffles = [str(getattr(c.shuffle, "value", c.shuffle)) for a in (array, floats) for c in a.compressors]
    assert shuffles in (["0", "1"], ["noshuffle", "shuffle"])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zstd_label_volumes_bit_shuffle_and_read_back_the_same_either_way(tmp_path, monkeypatch, zarr_format):
    """Segmentations (``label=True``) are stored with blosc's bit shuffle (smaller and faster for ids), images with
    its byte shuffle; tensorstore and zarr-python write the same bytes and read each other's."""
    roi = Roi((0, 0, 0), (16, 16, 16))
    labels = np.repeat(np.arange(1, 17, dtype=np.uint64) + np.uint64(2**33), 256).reshape(16, 16, 16)
    shuffles = {}
    for bulk in ("1", "0"):
        monkeypatch.setenv("ALFINE_TENSORSTORE", bulk)
        for name, dtype, label in (("seg", np.uint64, True), ("mask", np.uint8, True), ("img", np.uint16, False)):
            url = f"{tmp_path}/{bulk}.zarr/{name}"
            data = labels.astype(dtype)
            prepare_volume(url, roi, (1, 1, 1), dtype, (8, 8, 8), zarr_format=zarr_format, label=label).write(roi, data)
            np.testing.assert_array_equal(open_volume(url).read(), data)
            array = zarr.open_array(f"{tmp_path}/{bulk}.zarr/{name}/s0", mode="r")
            shuffles[name] = [str(getattr(c.shuffle, "value", c.shuffle)) for c in array.compressors]
    assert shuffles["seg"] == shuffles["mask"] and shuffles["seg"] in (["2"], ["bitshuffle"])
    assert shuffles["img"] in (["1"], ["shuffle"])
    for name in ("seg", "mask", "img"):
        chunks = sorted(p.relative_to(tmp_path / "1.zarr") for p in (tmp_path / "1.zarr" / name).rglob("*")
                        if p.is_file() and not p.name.startswith((".z", "zarr.json")))
        assert chunks
        for chunk in chunks:
            assert (tmp_path / "1.zarr" / chunk).read_bytes() == (tmp_path / "0.zarr" / chunk).read_bytes()


def test_geometry_default_marks_channels():
    assert Geometry.default(4).axis_names == ("c^", "z", "y", "x")
    assert Geometry.default(5, 3).axis_names == ("c0^", "c1^", "z", "y", "x")


# -- other stores -------------------------------------------------------------------------------------


def test_s3_round_trip_through_the_environment(s3_bucket):
    """Endpoint and credentials come from the environment (AWS_ENDPOINT_URL, AWS_*), never from alfine."""
    url = f"s3://{s3_bucket}/data.zarr/raw"
    roi = Roi(OFFSET, Coordinate(8, 8, 8) * Coordinate(VOXEL_SIZE))
    volume = prepare_volume(url, roi, VOXEL_SIZE, "uint16", (4, 4, 4))
    data = _data((8, 8, 8))
    volume.write(roi, data)
    reopened = open_volume(url)
    _assert_geometry(reopened)
    np.testing.assert_array_equal(reopened.read(), data)
    again = prepare_volume(url, roi, VOXEL_SIZE, "uint16", (4, 4, 4))  # reopens
    np.testing.assert_array_equal(again.read(), data)


def test_memory_and_file_urls(tmp_path):
    for url in ("memory://m.zarr/raw", f"file://{tmp_path}/f.zarr/raw"):
        roi = Roi(OFFSET, Coordinate(4, 4, 4) * Coordinate(VOXEL_SIZE))
        prepare_volume(url, roi, VOXEL_SIZE, "uint16", (2, 2, 2)).write(roi, _data((4, 4, 4)))
        reopened = open_volume(url)
        _assert_geometry(reopened)
        np.testing.assert_array_equal(reopened.read(), _data((4, 4, 4)))


def test_http_is_read_only(http_root):
    directory, base = http_root
    roi = Roi(OFFSET, Coordinate(6, 6, 6) * Coordinate(VOXEL_SIZE))
    prepare_volume(f"{directory}/web.zarr/raw", roi, VOXEL_SIZE, "uint16", (4, 4, 4)).write(roi, _data((6, 6, 6)))
    volume = open_volume(f"{base}/web.zarr/raw")
    _assert_geometry(volume)
    np.testing.assert_array_equal(volume.read(), _data((6, 6, 6)))
    with pytest.raises(VolumeError, match="read-only"):
        open_volume(f"{base}/web.zarr/raw", mode="r+")
    with pytest.raises(VolumeError, match="cannot create"):
        prepare_volume(f"{base}/web.zarr/other", roi, VOXEL_SIZE, "uint8", (4, 4, 4))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_opening_on_s3_reads_each_metadata_object_once(s3_bucket, monkeypatch, zarr_format):
    """An image group opens with a few requests (its metadata, then its level's in the format found), not one per
    name zarr could probe; a level URL and a bare array open as well, to the same geometry and data."""
    import s3fs

    url = f"s3://{s3_bucket}/v{zarr_format}.zarr/raw"
    roi = Roi(OFFSET, Coordinate(8, 8, 8) * Coordinate(VOXEL_SIZE))
    data = _data((8, 8, 8))
    prepare_volume(url, roi, VOXEL_SIZE, "uint16", (8, 8, 8), zarr_format=zarr_format).write(roi, data)
    bare = zarr.create_array(f"s3://{s3_bucket}/v{zarr_format}.zarr/bare", shape=(3, 4, 5), dtype="uint8",
                             zarr_format=zarr_format)
    bare.attrs.update({"voxel_size": list(VOXEL_SIZE), "offset": list(OFFSET)})
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "s3", {"max_concurrency": 1})  # what the commands set (cli.runner)
    calls = []
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        calls.append((method, kwargs.get("Key")))
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    s3fs.S3FileSystem.clear_instance_cache()
    for mode in ("r", "r+"):
        del calls[:]
        volume = open_volume(url, mode)
        # format 2: zarr.json, .zgroup, .zattrs, .zmetadata of the image, then s0's .zarray and .zattrs;
        # format 3: the image's four, then s0's zarr.json
        assert len(calls) == (6 if zarr_format == 2 else 5), calls
        _assert_geometry(volume)
        np.testing.assert_array_equal(volume.read(), data)
    level = open_volume(f"{url}/s0")
    _assert_geometry(level)
    np.testing.assert_array_equal(level.read(), data)
    _assert_geometry(open_volume(f"s3://{s3_bucket}/v{zarr_format}.zarr/bare"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_local_metadata_is_read_and_written_in_place_and_is_zarrs_own(tmp_path, monkeypatch, zarr_format):
    """Creating and opening a local volume hands no metadata file to a thread (zarr's local store hands each to one:
    about 31 to create an image); chunks still go through threads; zarr's own store reads back the same
    metadata and data; opening a missing container to update it fails and creates no folder."""
    import asyncio

    hops = []
    real = asyncio.to_thread

    async def counted(function, *args, **kwargs):
        if getattr(function, "__name__", "") in ("_get", "_put", "is_file"):  # the store's (codecs have their own)
            hops.append(args[0] if args else function)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    url = f"{tmp_path}/c.zarr/group/seg"
    roi = Roi(OFFSET, Coordinate(8, 8, 8) * Coordinate(VOXEL_SIZE))
    volume = prepare_volume(url, roi, VOXEL_SIZE, "uint16", (4, 4, 4), zarr_format=zarr_format, label=True)
    again = open_volume(url, "r+")
    assert hops == []
    data = _data((8, 8, 8))
    volume.array[...] = data  # zarr-python's chunk writes: through threads, as before
    assert len(hops) == 8 and not any(str(h).endswith(("zarr.json", ".zarray", ".zattrs", ".zgroup")) for h in hops)
    monkeypatch.setattr(asyncio, "to_thread", real)

    theirs = zarr.open_group(f"{tmp_path}/c.zarr", mode="r")["group/seg"]  # zarr's own LocalStore
    assert theirs.attrs.asdict() == zarr.open_group(again.url.store, path="group/seg", mode="r").attrs.asdict()
    from alfine.volumes.metadata import ome_multiscales

    assert ome_multiscales(theirs.attrs.asdict())[0]["datasets"][0]["path"] == "s0"
    assert theirs["s0"].metadata == again.array.metadata
    np.testing.assert_array_equal(theirs["s0"][...], data)
    np.testing.assert_array_equal(open_volume(url).read(), data)
    _assert_geometry(open_volume(url))

    with pytest.raises(VolumeError, match="no zarr array or group"):
        open_volume(f"{tmp_path}/missing.zarr/raw", "r+")
    assert not (tmp_path / "missing.zarr").exists()
