"""alfine-synthesize end to end: outputs, geometry, independence of blocks and workers, reuse, errors."""

import json

import numpy as np
import pytest

from alfine.volumes import open_volume
from alfine_tools.synthesize import main

ARRAYS = ("raw", "labels", "classes", "mask")


def _synthesize(capsys, *args):
    code = main(["--no-progress", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _arrays(container):
    return {name: open_volume(f"{container}/{name}").read() for name in ARRAYS}


def test_writes_four_arrays_with_geometry(tmp_path, capsys):
    out = f"{tmp_path}/d.zarr"
    summary = _synthesize(capsys, "--output", out, "--shape", "24,40,40", "--voxel-size", "8,4,4",
                          "--offset", "80,-40,0", "--chunk-shape", "8,16,16", "--seed", "3")
    assert summary["reused"] is False and summary["voxels"] == 24 * 40 * 40
    dtypes = {"raw": "uint8", "labels": "uint64", "classes": "uint8", "mask": "uint8"}
    for name, dtype in dtypes.items():
        volume = open_volume(f"{out}/{name}")
        assert str(volume.dtype) == dtype
        assert volume.shape == (24, 40, 40)
        assert tuple(volume.voxel_size) == (8, 4, 4) and tuple(volume.offset) == (80, -40, 0)
        assert tuple(volume.array.chunks) == (8, 16, 16)
        assert summary["arrays"][name]["url"] == f"{out}/{name}"
    arrays = _arrays(out)
    assert len(np.unique(arrays["labels"])) > 3
    assert set(np.unique(arrays["classes"])) <= {0, 1, 2}
    assert ((arrays["labels"] == 0) == (arrays["classes"] == 0)).all()


def test_same_volume_for_any_block_shape_and_worker_count(tmp_path, capsys):
    common = ["--shape", "32,48,48", "--chunk-shape", "16,16,16", "--seed", "7"]
    _synthesize(capsys, "--output", f"{tmp_path}/a.zarr", *common, "--block-shape", "32,48,48")
    _synthesize(capsys, "--output", f"{tmp_path}/b.zarr", *common, "--block-shape", "16,16,16", "--workers", "2")
    a, b = _arrays(f"{tmp_path}/a.zarr"), _arrays(f"{tmp_path}/b.zarr")
    for name in ARRAYS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_finished_volume_is_reused_and_a_changed_one_rewritten(tmp_path, capsys):
    out = f"{tmp_path}/d.zarr"
    args = ["--output", out, "--shape", "16,32,32", "--chunk-shape", "16,16,16"]
    first = _synthesize(capsys, *args)
    stamp = (tmp_path / "d.zarr" / "raw" / "s0" / "0" / "0" / "0").stat().st_mtime_ns
    second = _synthesize(capsys, *args)
    assert (first["reused"], second["reused"]) == (False, True)
    assert (tmp_path / "d.zarr" / "raw" / "s0" / "0" / "0" / "0").stat().st_mtime_ns == stamp
    before = _arrays(out)["raw"]
    third = _synthesize(capsys, *args, "--seed", "1")
    assert third["reused"] is False
    assert not np.array_equal(_arrays(out)["raw"], before)


def test_a_volume_from_another_generator_version_is_not_reused(tmp_path, capsys, monkeypatch):
    import alfine.synthetic.writer

    args = ["--output", f"{tmp_path}/d.zarr", "--shape", "16,32,32", "--chunk-shape", "16,16,16"]
    assert _synthesize(capsys, *args)["reused"] is False
    monkeypatch.setattr(alfine.synthetic.writer, "VERSION", alfine.synthetic.writer.VERSION + 1)
    assert _synthesize(capsys, *args)["reused"] is False
    assert _synthesize(capsys, *args)["reused"] is True


def test_two_dimensional(tmp_path, capsys):
    out = f"{tmp_path}/2d.zarr"
    _synthesize(capsys, "--output", out, "--shape", "96,96", "--voxel-size", "4,4", "--chunk-shape", "32,32")
    raw = open_volume(f"{out}/raw")
    assert raw.shape == (96, 96) and raw.geometry.axis_names == ("y", "x")
    assert len(np.unique(open_volume(f"{out}/labels").read())) > 3


def test_zarr_3_with_shards(tmp_path, capsys):
    out = f"{tmp_path}/v3.zarr"
    _synthesize(capsys, "--output", out, "--shape", "32,32,32", "--chunk-shape", "8,8,8", "--zarr-format", "3",
                "--shards", "16,16,16")
    raw = open_volume(f"{out}/raw")
    assert raw.array.metadata.zarr_format == 3
    assert tuple(raw.array.shards) == (16, 16, 16) and tuple(raw.array.chunks) == (8, 8, 8)
    _synthesize(capsys, "--output", f"{tmp_path}/v2.zarr", "--shape", "32,32,32", "--chunk-shape", "16,16,16")
    np.testing.assert_array_equal(raw.read(), open_volume(f"{tmp_path}/v2.zarr/raw").read())


def test_writes_to_s3(s3_bucket, tmp_path, capsys):
    args = ["--shape", "16,32,32", "--chunk-shape", "16,16,16", "--seed", "2"]
    _synthesize(capsys, "--output", f"s3://{s3_bucket}/d.zarr", *args)
    _synthesize(capsys, "--output", f"{tmp_path}/local.zarr", *args)
    remote, local = _arrays(f"s3://{s3_bucket}/d.zarr"), _arrays(f"{tmp_path}/local.zarr")
    for name in ARRAYS:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)


def test_preview_shows_the_central_slice(tmp_path, capsys):
    from skimage.io import imread

    out = f"{tmp_path}/d.zarr"
    summary = _synthesize(capsys, "--output", out, "--shape", "16,32,48", "--chunk-shape", "16,16,16",
                          "--preview", f"{tmp_path}/p.png")
    picture = imread(summary["preview"])
    assert picture.shape == (32, 4 * 48 + 3 * 4, 3)
    raw = open_volume(f"{out}/raw").read()
    np.testing.assert_array_equal(picture[:, :48, 0], raw[8])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shape", "4,4,4,4"], "--shape must have 2 or 3 axes"),
        (["--shape", "32,32,32", "--offset", "3,0,0"], "--offset (3, 0, 0) must be a multiple of --voxel-size"),
        (["--shape", "32,32", "--voxel-size", "8,8,8"], "--voxel-size (8, 8, 8) has 3 axes, --shape has 2"),
        (["--shape", "32,32,32", "--block-shape", "24,24,24"], "must be a multiple of the chunk/shard shape"),
        (["--shape", "32,32,32", "--shards", "32,32,32"], "sharding needs zarr format 3"),
        (["--shape", "32,32,32", "--block-id", "8"], "--block-id 8 is out of range: this layout has blocks 0..7"),
        (["--shape", "32,32,32", "--roi", "0,0,0:8,8,8"], "--roi: synthesize writes the whole --shape"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    code = main(["--output", f"{tmp_path}/bad.zarr", "--chunk-shape", "16,16,16", *args])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and captured.out == ""
    assert not (tmp_path / "bad.zarr" / "raw").exists()


def test_the_blocks_follow_the_block_contract(tmp_path, capsys):
    """--list-blocks, one --block-id per job (a job array) giving the bytes of a whole run, --status counting the
    done blocks of raw, and a whole run after part of the blocks writing only the rest."""
    common = ["--shape", "32,32,32", "--chunk-shape", "16,16,16", "--seed", "4"]
    whole = _synthesize(capsys, "--output", f"{tmp_path}/whole.zarr", *common, "--workers", "2")
    assert whole["blocks"] == whole["processed"] == 8 and whole["block_shape_voxels"] == [16, 16, 16]
    code = main(["--output", f"{tmp_path}/jobs.zarr", *common, "--list-blocks"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert code == 0 and [b["block_id"] for b in lines[:-1]] == list(range(8)) and lines[-1]["blocks"] == 8
    assert not (tmp_path / "jobs.zarr").exists()
    for block in (0, 3, 5):
        one = _synthesize(capsys, "--output", f"{tmp_path}/jobs.zarr", *common, "--block-id", str(block))
        assert one["processed"] == 1
    status = _synthesize(capsys, "--output", f"{tmp_path}/jobs.zarr", *common, "--status")
    assert (status["done"], status["blocks"], status["complete"]) == (3, 8, False)
    rest = _synthesize(capsys, "--output", f"{tmp_path}/jobs.zarr", *common)
    assert (rest["skipped"], rest["processed"]) == (3, 5)
    for name, data in _arrays(f"{tmp_path}/jobs.zarr").items():
        np.testing.assert_array_equal(data, _arrays(f"{tmp_path}/whole.zarr")[name], err_msg=name)
    assert _synthesize(capsys, "--output", f"{tmp_path}/jobs.zarr", *common)["reused"] is True
