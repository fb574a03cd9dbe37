"""Volume I/O through tensorstore (the default) against zarr-python (ALFINE_TENSORSTORE=0): the same bytes, each reads
the other's; a process forked after using tensorstore falls back to zarr-python instead of aborting."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from funlib.geometry import Roi

from alfine.volumes import bulk, open_volume, parse_volume_url, prepare_volume
from alfine.volumes.bulk import kvstore

CASES = [  # (zarr format, shards, dtype, channels)
    (2, None, np.uint8, ()), (2, None, np.uint64, ()), (2, None, np.float32, (3,)),
    (3, None, np.uint8, ()), (3, None, np.uint64, (2,)), (3, (16, 16, 16), np.uint64, ()),
]
SHAPE = (20, 24, 16)  # chunks of 8^3 cut at the far faces (24 = 3 x 8, 20 and 16 not all)


def _data(dtype, channels):
    rng = np.random.default_rng(0)
    blobs = np.kron(rng.integers(0, 5, (3, 3, 2)), np.ones((8, 8, 8), np.int64))[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    data = blobs * 1000 + rng.integers(0, 3, SHAPE)  # compressible, not constant; blobs of 0 chunks stay empty
    data[:8, :8, :8] = 0
    return np.broadcast_to(data, channels + SHAPE).astype(dtype)


def _files(container: str) -> dict[str, bytes]:
    """Every file below ``container`` but the attributes (their creation tokens differ), by relative path."""
    found = {}
    for folder, _, names in os.walk(container):
        for name in set(names) - {".zattrs", "zarr.json"}:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, container)] = open(path, "rb").read()
    return found


def _write(url, fmt, shards, dtype, channels, data, region=None):
    roi = Roi((0, 0, 0), SHAPE)
    volume = prepare_volume(url, roi, (1, 1, 1), dtype, (8, 8, 8), channels=channels, zarr_format=fmt, shards=shards)
    if region is None:
        volume.write(roi, data)
    else:  # a region off the chunk grid: partial chunks are read, changed and written back
        index = (slice(None),) * len(channels) + tuple(slice(b, e) for b, e in zip(region.begin, region.end,
                                                                                     strict=True))
        volume.write(region, data[index])
    return volume


@pytest.mark.parametrize("fmt,shards,dtype,channels", CASES)
def test_tensorstore_writes_the_bytes_zarr_writes_and_reads_them_back(tmp_path, monkeypatch, fmt, shards, dtype,
                                                                         channels):
    data = _data(dtype, channels)
    monkeypatch.setenv("ALFINE_TENSORSTORE", "0")
    plain = _write(f"{tmp_path}/z.zarr/a", fmt, shards, dtype, channels, data)
    assert plain._io() is plain.array  # switched off: zarr-python
    monkeypatch.delenv("ALFINE_TENSORSTORE")  # on by default
    fast = _write(f"{tmp_path}/t.zarr/a", fmt, shards, dtype, channels, data)
    assert fast._io() is not fast.array and hasattr(fast._io(), "read")
    theirs, ours = _files(f"{tmp_path}/z.zarr"), _files(f"{tmp_path}/t.zarr")
    assert sorted(ours) == sorted(theirs) and len(theirs) >= 4
    assert shards or not any(k.endswith("/0/0/0") for k in theirs)  # the empty first chunk is not stored
    if shards is None:  # a shard's chunks may lie in another order (its index says where): compared decoded only
        assert ours == theirs
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/z.zarr/a").read(), data)  # tensorstore reads zarr's
    monkeypatch.setenv("ALFINE_TENSORSTORE", "0")
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/t.zarr/a").read(), data)  # zarr reads tensorstore's


def test_partial_chunks_and_fill_values_match_zarr(tmp_path, monkeypatch):
    """A region off the chunk grid written into an existing array, and reads reaching outside the volume."""
    data = _data(np.uint64, ())
    region = Roi((3, 5, 2), (11, 9, 13))
    for name, switch in (("z", "0"), ("t", "1")):
        monkeypatch.setenv("ALFINE_TENSORSTORE", switch)
        _write(f"{tmp_path}/{name}.zarr/a", 2, None, np.uint64, (), data + 7)
        _write(f"{tmp_path}/{name}.zarr/a", 2, None, np.uint64, (), data, region)
    expected = data + 7
    expected[3:14, 5:14, 2:15] = data[3:14, 5:14, 2:15]
    monkeypatch.setenv("ALFINE_TENSORSTORE", "1")
    outside = Roi((-4, 0, 0), (8, 8, 8))
    for name in ("z", "t"):
        volume = open_volume(f"{tmp_path}/{name}.zarr/a")
        np.testing.assert_array_equal(volume.read(), expected)
        np.testing.assert_array_equal(volume.read(outside, fill_value=5)[:4], 5)
    assert _files(f"{tmp_path}/t.zarr/a") == _files(f"{tmp_path}/z.zarr/a")


def test_s3_through_tensorstore_and_zarr(s3_bucket, monkeypatch):
    """On S3 (endpoint and region from the environment) each reads what the other wrote."""
    data = _data(np.uint8, ())
    for name, switch in (("z", "0"), ("t", "1")):
        monkeypatch.setenv("ALFINE_TENSORSTORE", switch)
        volume = _write(f"s3://{s3_bucket}/{name}.zarr/a", 2, None, np.uint8, (), data)
        assert hasattr(volume._io(), "read") == (switch == "1")
    for name, switch in (("z", "1"), ("t", "0")):
        monkeypatch.setenv("ALFINE_TENSORSTORE", switch)
        np.testing.assert_array_equal(open_volume(f"s3://{s3_bucket}/{name}.zarr/a").read(), data)
    import s3fs

    fs = s3fs.S3FileSystem()
    keys = sorted(k.split("/a/", 1)[1] for k in fs.find(f"{s3_bucket}/z.zarr/a"))
    assert keys == sorted(k.split("/a/", 1)[1] for k in fs.find(f"{s3_bucket}/t.zarr/a"))
    assert not any(k.endswith("/0/0/0") for k in keys)  # the empty first chunk is not stored
    chunks = [k for k in keys if not k.rpartition("/")[2].startswith(".")]  # not the metadata: tokens differ
    assert len(chunks) >= 4 and all(fs.cat(f"{s3_bucket}/z.zarr/a/{k}") == fs.cat(f"{s3_bucket}/t.zarr/a/{k}")
                                    for k in chunks)


def test_other_protocols_stay_with_zarr(tmp_path, monkeypatch):
    monkeypatch.setenv("ALFINE_TENSORSTORE", "1")
    assert kvstore(parse_volume_url("gs://b/x.zarr/raw")) is None
    assert kvstore(parse_volume_url(f"file://{tmp_path}/x.zarr/raw")) == {"driver": "file",
                                                                          "path": f"{tmp_path}/x.zarr/"}
    url = f"memory://bulk-{tmp_path.name}.zarr/raw"  # the memory filesystem is shared by the process's tests
    volume = prepare_volume(url, Roi((0, 0, 0), (8, 8, 8)), (1, 1, 1), np.uint8, (4, 4, 4))
    volume.write(volume.roi, np.full((8, 8, 8), 3, np.uint8))
    assert volume._io() is volume.array and (volume.read() == 3).all()


@pytest.mark.parametrize("switch,fast", [(None, True), ("1", True), ("", True), ("0", False), (" Off ", False),
                                         ("false", False), ("no", False)])
def test_tensorstore_is_the_default_and_can_be_switched_off(tmp_path, monkeypatch, switch, fast):
    if switch is None:
        monkeypatch.delenv("ALFINE_TENSORSTORE", raising=False)
    else:
        monkeypatch.setenv("ALFINE_TENSORSTORE", switch)
    data = _data(np.uint8, ())
    volume = _write(f"{tmp_path}/a.zarr/a", 2, None, np.uint8, (), data)
    assert hasattr(volume._io(), "read") == fast and (volume._io() is volume.array) != fast
    np.testing.assert_array_equal(volume.read(), data)


def test_a_process_forked_after_tensorstore_uses_zarr_python_and_the_bytes_agree(tmp_path, monkeypatch):
    """tensorstore aborts a forked child that uses it once the parent has: the child (a fork data loader worker)
    must read and write through zarr-python, a volume opened before the fork included."""
    monkeypatch.delenv("ALFINE_TENSORSTORE", raising=False)
    data = _data(np.uint64, ())
    region = Roi((3, 5, 2), (11, 9, 13))
    inner = tuple(slice(b, e) for b, e in zip(region.begin, region.end, strict=True))
    volume = _write(f"{tmp_path}/f.zarr/a", 2, None, np.uint64, (), data)
    assert hasattr(volume._io(), "read") and bulk.started  # the parent used tensorstore
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only when every check passed (an abort is signal 6)
        status = 1
        try:
            again = open_volume(f"{tmp_path}/f.zarr/a", mode="r+")
            checks = [not bulk.enabled(), volume._io() is volume.array, again._io() is again.array,
                      np.array_equal(volume.read(), data)]
            again.write(region, data[inner] + 1)
            checks.append(np.array_equal(volume.read(region), data[inner] + 1))
            status = 0 if all(checks) else 10 + checks.index(False)
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
    assert hasattr(volume._io(), "read")  # the parent keeps tensorstore and reads what the child wrote
    expected = data.copy()
    expected[inner] += 1
    np.testing.assert_array_equal(volume.read(), expected)
    reference = _write(f"{tmp_path}/r.zarr/a", 2, None, np.uint64, (), data)  # the same written by tensorstore
    reference.write(region, data[inner] + 1)
    assert _files(f"{tmp_path}/f.zarr/a") == _files(f"{tmp_path}/r.zarr/a")


def test_a_pickled_volume_opens_its_own_view(tmp_path, monkeypatch):
    monkeypatch.delenv("ALFINE_TENSORSTORE", raising=False)
    data = _data(np.uint8, ())
    volume = _write(f"{tmp_path}/p.zarr/a", 2, None, np.uint8, (), data)
    assert hasattr(volume._io(), "read")
    copy = pickle.loads(pickle.dumps(volume))
    assert "_io_view" not in copy.__dict__ and "_io_view" in volume.__dict__
    np.testing.assert_array_equal(copy.read(), data)
    assert hasattr(copy._io(), "read") and copy._io() is not volume._io()


CHILD_OF_A_FRESH_PROCESS = """
import os, sys
import numpy as np
from alfine.volumes import bulk, open_volume
volume = open_volume(sys.argv[1])  # metadata only: this process has not started tensorstore
assert not bulk.started
pid = os.fork()
if pid == 0:
    ok = bulk.enabled() and hasattr(volume._io(), "read") and int(volume.read().sum()) == int(sys.argv[2])
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 4)
"""


def test_a_process_forked_before_any_tensorstore_use_uses_it(tmp_path):
    """Only a parent's use of tensorstore makes its forks fall back: a fork of a fresh process reads through it."""
    data = _data(np.uint64, ())
    _write(f"{tmp_path}/c.zarr/a", 2, None, np.uint64, (), data)
    env = {k: v for k, v in os.environ.items() if k != "ALFINE_TENSORSTORE"}
    command = [sys.executable, "-c", CHILD_OF_A_FRESH_PROCESS, f"{tmp_path}/c.zarr/a", str(int(data.sum()))]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_n5_in_a_process_forked_after_tensorstore_is_refused_in_one_line(tmp_path):
    """N5 has no zarr-python fallback: a forked child gets a VolumeError naming the volume, not an abort."""
    import tensorstore as ts

    from alfine.errors import VolumeError

    spec = {"driver": "n5", "kvstore": {"driver": "file", "path": f"{tmp_path}/d.n5"}, "path": "raw",
            "metadata": {"dimensions": [8, 8, 8], "blockSize": [4, 4, 4], "dataType": "uint8",
                         "compression": {"type": "gzip"}}}
    ts.open(spec, create=True).result().write(np.full((8, 8, 8), 5, np.uint8)).result()
    volume = open_volume(f"{tmp_path}/d.n5/raw")
    assert (volume.read() == 5).all() and bulk.started
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            refused = 0
            for attempt in (volume.read, lambda: open_volume(f"{tmp_path}/d.n5/raw")):
                try:
                    attempt()
                except VolumeError as e:
                    refused += "d.n5/raw" in str(e) and "forked" in str(e)
            status = 0 if refused == 2 else 3
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
    assert (volume.read() == 5).all()
