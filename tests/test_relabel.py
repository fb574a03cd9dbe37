"""postprocess-block + relabel give exactly the global answer: cc3d of the whole volume, min-size on global sizes."""

import json

import cc3d
import numpy as np
import pytest
from funlib.geometry import Roi

from alfine.segmentation import records as record_files
from alfine.synthetic import SyntheticParams, generate_block
from alfine.volumes import open_volume, prepare_volume
from alfine_tools.postprocess_block import main as postprocess
from alfine_tools.relabel import main as relabel


def assert_same_partition(result, expected):
    """The same background and a one-to-one correspondence of object ids (a renumbering)."""
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result == 0, expected == 0)
    pairs = np.unique(np.stack([result.ravel().astype(np.uint64), expected.ravel().astype(np.uint64)]), axis=1)
    assert pairs.shape[1] == len(np.unique(result)) == len(np.unique(expected))


def assert_consecutive(labels):
    assert labels.dtype == np.uint64
    ids = np.unique(labels[labels != 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


def write(url, data, voxel, offset, chunks, channels=False):
    spatial = data.shape[1:] if channels else data.shape
    roi = Roi(offset, tuple(s * v for s, v in zip(spatial, voxel, strict=True)))
    volume = prepare_volume(url, roi, voxel, data.dtype, chunks, channels=data.shape[:1] if channels else ())
    volume.write(roi, data)
    return volume


def run(tool, capsys, *args):
    code = tool(["--no-progress", *args])
    captured = capsys.readouterr()
    return code, captured


def segment(capsys, prediction, output, params, *extra, method="connected_components", workers=1, min_size=()):
    """postprocess-block then relabel; the relabelled array and the two summaries."""
    code, first = run(postprocess, capsys, "--input", prediction, "--output", f"{output}/fragments", "--method",
                      method, "--params", json.dumps(params), "--workers", str(workers), *extra)
    assert code == 0, first.err
    code, second = run(relabel, capsys, "--input", f"{output}/fragments", "--output", f"{output}/segmentation",
                       "--workers", str(workers), *min_size)
    assert code == 0, second.err
    return open_volume(f"{output}/segmentation").read(), json.loads(first.out), json.loads(second.out)


def components(mask, connectivity):
    """cc3d of the whole volume (of uint8: cc3d 4.1.1 mislabels 2D bool masks with 8-connectivity)."""
    return cc3d.connected_components(np.asarray(mask, np.uint8), connectivity=connectivity)


def noise(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def synthetic_raw(shape, voxel, offset):
    arrays = generate_block(shape, voxel, offset, (0,) * len(shape), shape, SyntheticParams(seed=3, cell_size=60.0))
    return arrays["raw"].astype(np.float32) / 255


# volume, shape, voxel size, offset, chunk = block shape (never dividing the volume), connectivity, threshold, workers
CASES = [
    ("noise", (21, 30, 27), (2, 1, 1), (4, -3, 8), (8, 8, 8), 6, 0.6, 1),
    ("noise", (21, 30, 27), (2, 1, 1), (4, -3, 8), (8, 8, 8), 18, 0.78, 1),
    ("noise", (21, 30, 27), (2, 1, 1), (4, -3, 8), (8, 8, 8), 26, 0.85, 1),
    ("noise", (21, 30, 27), (1, 1, 1), (0, 0, 0), (5, 7, 9), 26, 0.88, 2),
    ("noise", (45, 61), (3, 2), (9, -4), (8, 16), 4, 0.45, 1),
    ("noise", (45, 61), (3, 2), (9, -4), (8, 16), 8, 0.62, 2),
    ("noise", (45, 61), (3, 2), (9, -4), (7, 5), 8, 0.62, 1),
    ("synthetic", (20, 44, 50), (8, 4, 4), (16, 8, -12), (8, 16, 16), 6, 0.5, 2),
    ("synthetic", (20, 44, 50), (8, 4, 4), (16, 8, -12), (8, 16, 16), 26, 0.45, 1),
    ("synthetic", (20, 44, 50), (8, 4, 4), (16, 8, -12), (8, 16, 16), 18, 0.45, 4),
    ("synthetic", (70, 90), (4, 4), (12, 0), (16, 32), 4, 0.5, 2),
    ("synthetic", (70, 90), (4, 4), (12, 0), (16, 32), 8, 0.45, 1),
]


@pytest.mark.parametrize("kind, shape, voxel, offset, block, connectivity, threshold, workers", CASES)
def test_connected_components_equal_cc3d_of_the_whole_volume(kind, shape, voxel, offset, block, connectivity,
                                                              threshold, workers, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = noise(shape) if kind == "noise" else synthetic_raw(shape, voxel, offset)
    chunks = ",".join(map(str, block))
    write(f"{tmp_path}/d.zarr/pred", data[None], voxel, offset, block, channels=True)
    result, first, second = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/s.zarr",
                                    {"threshold": threshold, "connectivity": connectivity}, "--chunk-shape", chunks,
                                    "--block-shape", chunks, workers=workers)
    expected = components(data > threshold, connectivity)
    assert first["blocks"] == first["processed"] > 1 and first["join"]["connectivity"] == connectivity
    assert second["objects"] == int(expected.max()) > 1
    assert second["block_ids"] > second["objects"]  # objects did cross block faces
    assert_consecutive(result)
    assert_same_partition(result, expected)


def test_forked_workers_write_the_bytes_of_worker_threads(capsys, tmp_path, monkeypatch):
    """Enough blocks a worker and both commands fork their workers (postprocess-block's labelling and relabel's
    faces and writes, each worker with its own journal): the same fragments, segmentation and records as threads."""
    from alfine.blockwise import forked

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALFINE_TENSORSTORE", "0")  # a test process has used tensorstore: it would not fork
    shape, block = (24, 40, 36), (8, 8, 12)  # 45 blocks: over FORK_BLOCKS_PER_WORKER * 2
    assert np.prod([-(-s // b) for s, b in zip(shape, block, strict=True)]) >= 2 * forked.FORK_BLOCKS_PER_WORKER
    data = synthetic_raw(shape, (4, 4, 4), (0, 0, 0))
    write(f"{tmp_path}/d.zarr/pred", data[None], (4, 4, 4), (0, 0, 0), block, channels=True)
    params, chunks = {"threshold": 0.5, "connectivity": 26}, ",".join(map(str, block))
    results = {}
    for kind, switch in (("threads", "0"), ("forked", "")):
        monkeypatch.setenv("ALFINE_FORK", switch)
        result, first, second = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/{kind}.zarr", params,
                                        "--chunk-shape", chunks, "--block-shape", chunks, workers=2)
        fragments = open_volume(f"{tmp_path}/{kind}.zarr/fragments").read()
        journals = {p.name for p in (tmp_path / f"{kind}.zarr" / ".alfine-blocks" / "fragments" / "done").iterdir()}
        results[kind] = result, fragments, second["objects"], journals
    (threads, thread_fragments, objects, thread_journals), (forked, forked_fragments, forked_objects, journals) = (
        results["threads"], results["forked"])
    np.testing.assert_array_equal(forked_fragments, thread_fragments)
    np.testing.assert_array_equal(forked, threads)
    assert forked_objects == objects == int(components(data > 0.5, 26).max())
    assert len(thread_journals) == 1 and len(journals) == 2 and not journals & thread_journals  # two other processes


def test_min_size_applies_to_sizes_over_the_whole_volume(capsys, tmp_path, monkeypatch):
    """A component of 5 voxels split over 5 blocks stays; one of 4 voxels in one block goes."""
    monkeypatch.chdir(tmp_path)
    mask = np.zeros((12, 12), np.float32)
    mask[1, 0:5] = 1  # 5 voxels over 3 blocks of 2 x 2
    mask[8:10, 8:10] = 1  # 4 voxels in one block
    mask[5, 5] = 1  # 1 voxel
    write(f"{tmp_path}/d.zarr/pred", mask, (1, 1), (0, 0), (2, 2))
    params = {"threshold": 0.5, "min_size": 5}
    result, first, second = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/s.zarr", params,
                                    "--block-shape", "2,2")
    assert first["min_size"] == 5 and second["objects"] == 1
    assert_same_partition(result, cc3d.dust(components(mask > 0.5, 4), 5))
    # an explicit --min-size wins, and a new output numbers again
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/all", "--min-size", "1")
    assert code == 0 and json.loads(captured.out)["objects"] == 3
    sizes = np.load(f"{tmp_path}/s.zarr/.alfine-relabel/all/objects.npz")["sizes"]
    assert sorted(sizes.tolist()) == [1, 4, 5]


@pytest.mark.parametrize("ndim", [2, 3])
def test_user_function_from_a_file(ndim, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(
        "import scipy.ndimage\n\n\n"
        "def segment(prediction, level=0.5):\n"
        "    return scipy.ndimage.label(prediction[0] > level)[0]\n"
    )
    shape = (13, 17, 19) if ndim == 3 else (33, 41)
    data = noise(shape, seed=ndim)
    block = (4, 8, 8) if ndim == 3 else (8, 8)
    write(f"{tmp_path}/d.zarr/pred", data, (1,) * ndim, (0,) * ndim, block)
    result, first, _ = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/s.zarr", {"level": 0.6},
                               "--block-shape", ",".join(map(str, block)), method="mine.py:segment", workers=2)
    assert first["join"] == {"rule": "adjacency", "connectivity": 6 if ndim == 3 else 4}
    assert_same_partition(result, components(data > 0.6, 6 if ndim == 3 else 4))


def test_a_killed_postprocess_run_is_finished_by_a_re_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = noise((19, 23, 21), seed=4)
    write(f"{tmp_path}/d.zarr/pred", data, (1, 1, 1), (0, 0, 0), (8, 8, 8))
    args = ["--input", f"{tmp_path}/d.zarr/pred", "--output", f"{tmp_path}/s.zarr/fragments", "--method",
            "connected_components", "--params", '{"threshold": 0.7, "connectivity": 18}', "--block-shape", "8,8,8"]
    for block in (0, 5, 7):  # what a killed run leaves: some blocks done ...
        assert run(postprocess, capsys, *args, "--block-id", str(block))[0] == 0
    fragments = open_volume(f"{tmp_path}/s.zarr/fragments", mode="r+")
    garbage = Roi((8, 8, 8), (8, 8, 8))  # ... and one written but not recorded as done
    fragments.write(garbage, np.full((8, 8, 8), 12345, np.uint64))
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/segmentation")
    assert code == 2 and "finished 3 of 27 blocks" in captured.err and captured.out == ""
    code, captured = run(postprocess, capsys, *args, "--workers", "2")
    assert code == 0 and json.loads(captured.out)["processed"] == 24
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/segmentation")
    assert code == 0, captured.err
    resumed = open_volume(f"{tmp_path}/s.zarr/segmentation").read()
    clean, _, _ = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/clean.zarr",
                          {"threshold": 0.7, "connectivity": 18}, "--block-shape", "8,8,8")
    np.testing.assert_array_equal(resumed, clean)
    assert_same_partition(resumed, components(data > 0.7, 18))


def test_overwrite_computes_every_block_again(capsys, tmp_path, monkeypatch):
    """--overwrite creates the output anew, so its done markers are stale: every block is computed again
    (before, the blocks marked done were skipped and left empty in the new array)."""
    monkeypatch.chdir(tmp_path)
    data = noise((16, 16, 16), seed=5)
    write(f"{tmp_path}/d.zarr/pred", data, (1, 1, 1), (0, 0, 0), (8, 8, 8))
    args = ["--input", f"{tmp_path}/d.zarr/pred", "--output", f"{tmp_path}/s.zarr/fragments", "--method",
            "connected_components", "--params", '{"threshold": 0.6}', "--block-shape", "8,8,8"]
    code, captured = run(postprocess, capsys, *args)
    assert code == 0 and json.loads(captured.out)["processed"] == 8
    first = open_volume(f"{tmp_path}/s.zarr/fragments").read()
    assert (first != 0).any()
    code, captured = run(postprocess, capsys, *args)
    assert code == 0 and json.loads(captured.out)["processed"] == 0  # a plain re-run reuses every block
    code, captured = run(postprocess, capsys, *args, "--overwrite")
    assert code == 0 and json.loads(captured.out)["processed"] == 8, captured.err
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/fragments").read(), first)


def test_relabel_block_by_block_and_in_place(capsys, tmp_path, monkeypatch):
    """A job array run twice (--block-id N for every N) relabels in place; a re-run does nothing."""
    monkeypatch.chdir(tmp_path)
    data = noise((24, 20), seed=7)
    write(f"{tmp_path}/d.zarr/pred", data, (1, 1), (0, 0), (8, 8))
    code, _ = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output", f"{tmp_path}/s.zarr/seg",
                  "--method", "connected_components", "--params", '{"threshold": 0.5, "connectivity": 8}',
                  "--block-shape", "8,8")
    assert code == 0
    args = ["--input", f"{tmp_path}/s.zarr/seg", "--output", f"{tmp_path}/s.zarr/seg"]
    steps = []
    for _ in range(2):
        for block in range(9):
            code, captured = run(relabel, capsys, *args, "--block-id", str(block))
            assert code == 0, captured.err
            steps.append(json.loads(captured.out)["step"])
    assert steps == ["faces"] * 9 + ["write"] * 9
    seg = open_volume(f"{tmp_path}/s.zarr/seg")
    result = seg.read()
    assert_consecutive(result)
    assert_same_partition(result, components(data > 0.5, 8))
    assert seg.array.attrs["alfine_postprocess"]["block_records"] is False  # its ids changed: records are stale
    code, captured = run(relabel, capsys, *args)
    assert code == 0 and json.loads(captured.out)["skipped"] == 9
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/seg").read(), result)


@pytest.mark.parametrize("case", ["empty", "one small object", "one object in every block"])
def test_degenerate_volumes(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = np.zeros((10, 25, 25), np.float32)
    if case == "one small object":
        data[3:5, 3:5, 3:5] = 1
    elif case == "one object in every block":
        data[:, 12, :] = data[:, :, 12] = data[5, :, :] = 1
    write(f"{tmp_path}/d.zarr/pred", data, (1, 1, 1), (0, 0, 0), (4, 8, 8))
    result, first, second = segment(capsys, f"{tmp_path}/d.zarr/pred", f"{tmp_path}/s.zarr", {"threshold": 0.5},
                                    "--block-shape", "4,8,8")
    assert first["blocks"] == 3 * 4 * 4
    assert second["objects"] == {"empty": 0, "one small object": 1, "one object in every block": 1}[case]
    assert_consecutive(result)
    assert_same_partition(result, components(data > 0.5, 6))


def test_listing_blocks_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(f"{tmp_path}/d.zarr/pred", noise((10, 12)), (1, 1), (0, 0), (4, 8))
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/seg", "--method", "connected_components", "--list-blocks",
                         "--block-shape", "4,8")
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert code == 0 and len(lines) == 3 * 2 + 1 and lines[-1]["blocks"] == 6
    # by default, the chunks (4 x 8) doubled up to about 128^3 voxels, here no larger than the volume needs
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/seg", "--method", "connected_components", "--list-blocks")
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert code == 0 and len(lines) == 2 and lines[-1]["blocks"] == 1 and lines[-1]["block_shape_voxels"] == [16, 16]
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "{root}/d.zarr/missing", "--method", "connected_components"], "no zarr array or group found"),
        (["--method", "slic"], "unknown post-processing method 'slic'"),
        (["--method", "connected_components", "--params", '{"treshold": 0.5}'], "has no parameter 'treshold'"),
        (["--method", "connected_components", "--params", '{"connectivity": 7}'], "connectivity must be one of"),
        (["--method", "connected_components", "--params", '{"threshold": "high"}'], "bad parameters"),
        (["--method", "nothere.py:segment"], "does not exist"),
        (["--method", "connected_components", "--context", "4"], "needs no context"),
        (["--params-from", "{root}/none.json"], "no such file"),
        ([], "no post-processing method"),
    ],
)
def test_bad_postprocess_requests_exit_2_writing_nothing(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(f"{tmp_path}/d.zarr/pred", noise((10, 12)), (1, 1), (0, 0), (4, 8))
    args = [a.replace("{root}", str(tmp_path)) for a in args]
    if "--input" not in args:
        args = ["--input", f"{tmp_path}/d.zarr/pred", *args]
    code, captured = run(postprocess, capsys, *args, "--output", f"{tmp_path}/s.zarr/seg")
    assert code == 2 and message in captured.err and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "s.zarr").exists()


def test_bad_relabel_requests_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(f"{tmp_path}/d.zarr/pred", noise((10, 12)), (1, 1), (0, 0), (4, 8))
    out = f"{tmp_path}/s.zarr"
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/d.zarr/missing", "--output", f"{out}/x")
    assert code == 2 and "no zarr array or group found" in captured.err
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output", f"{out}/x")
    assert code == 2 and "needs integer labels" in captured.err
    assert not (tmp_path / "s.zarr").exists()
    code, _ = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output", f"{out}/mask", "--method",
                  "threshold", "--params", '{"channel": 0}')
    assert code == 0 and open_volume(f"{out}/mask").dtype == np.uint8
    code, captured = run(relabel, capsys, "--input", f"{out}/mask", "--output", f"{out}/x")
    assert code == 2 and "not instance labels" in captured.err
    code, _ = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output", f"{out}/seg", "--method",
                  "connected_components")
    code, captured = run(relabel, capsys, "--input", f"{out}/seg", "--output", f"{out}/x", "--block-shape", "8,8")
    assert code == 2 and "must be those postprocess-block used" in captured.err


@pytest.mark.parametrize("shape, block, connectivity, threshold", [((17, 20, 19), (6, 7, 8), 26, 0.85),
                                                                   ((45, 61), (16, 13), 8, 0.62)])
def test_relabel_from_block_records_equals_relabel_from_the_volume(shape, block, connectivity, threshold, capsys,
                                                                   tmp_path, monkeypatch):
    """postprocess-block's records (no volume read), the volume (other inputs), a mix of both (a record
    missing), and the records on daisy workers: the same pairs, the same result, cc3d's partition."""
    from alfine.segmentation import relabel as relabelling

    monkeypatch.chdir(tmp_path)
    data = noise(shape, seed=5)
    chunks = ",".join(map(str, block))
    write(f"{tmp_path}/d.zarr/pred", data, (1,) * len(shape), (0,) * len(shape), block)
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/fragments", "--method", "connected_components", "--params",
                         json.dumps({"threshold": threshold, "connectivity": connectivity}), "--block-shape", chunks)
    assert code == 0, captured.err
    blocks = json.loads(captured.out)["blocks"]
    fragments = open_volume(f"{tmp_path}/s.zarr/fragments", mode="r+")
    info = fragments.array.attrs["alfine_postprocess"]
    assert info["block_records"] is True
    assert len(list((tmp_path / "s.zarr" / ".alfine-segments" / "fragments").glob("*.arrays"))) == blocks
    reads = []
    from_volume = relabelling.FacesOfBlock._from_volume
    monkeypatch.setattr(relabelling.FacesOfBlock, "_from_volume", lambda self, b: reads.append(b.id) or
                        from_volume(self, b))

    def relabelled(name, *extra):
        reads.clear()
        code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                             f"{tmp_path}/s.zarr/{name}", *extra)
        assert code == 0, captured.err
        faces = [record_files.load_arrays(f"{tmp_path}/s.zarr/.alfine-relabel/{name}/faces/{b}.arrays")
                 for b in range(blocks)]
        return open_volume(f"{tmp_path}/s.zarr/{name}").read(), faces, sorted(reads)

    records, records_faces, read = relabelled("records")
    assert read == []
    fragments.array.attrs["alfine_postprocess"] = {**info, "block_records": False}
    volume, volume_faces, read = relabelled("volume")
    assert read == list(range(blocks))
    np.testing.assert_array_equal(records, volume)
    for ours, theirs in zip(records_faces, volume_faces, strict=True):
        for key in ("ids", "counts", "pairs"):
            np.testing.assert_array_equal(ours[key], theirs[key])
    fragments.array.attrs["alfine_postprocess"] = info
    (tmp_path / "s.zarr" / ".alfine-segments" / "fragments" / "5.arrays").unlink()
    mixed, _, read = relabelled("mixed")
    assert 5 in read and len(read) < blocks
    np.testing.assert_array_equal(mixed, records)
    monkeypatch.setattr(relabelling.FacesOfBlock, "threads", False)  # the faces step on daisy workers
    workers, _, _ = relabelled("workers", "--workers", "2")
    np.testing.assert_array_equal(workers, records)
    assert_consecutive(records)
    assert_same_partition(records, components(data > threshold, connectivity))


def test_blocks_in_this_process_use_the_commands_volumes_and_a_worker_opens_its_own(tmp_path):
    import pickle

    from alfine.segmentation.relabel import WriteBlock

    data = np.arange(8**3, dtype=np.uint64).reshape(8, 8, 8)
    volume = prepare_volume(f"{tmp_path}/d.zarr/seg", Roi((0, 0, 0), (8, 8, 8)), (1, 1, 1), np.uint64, (8, 8, 8))
    volume.write(volume.roi, data)
    block = WriteBlock(f"{tmp_path}/d.zarr/seg", f"{tmp_path}/d.zarr/seg", "work")
    block.share(f"{tmp_path}/d.zarr/seg", "r+", volume)
    assert block.volume(f"{tmp_path}/d.zarr/seg", mode="r+") is volume  # no second open
    opened = block.volume(f"{tmp_path}/d.zarr/seg")  # another mode: opened here
    assert opened is not volume and opened is block.volume(f"{tmp_path}/d.zarr/seg")
    worker = pickle.loads(pickle.dumps(block))  # what daisy sends a worker: no opened volume travels
    assert "_volumes" not in worker.__dict__
    mine = worker.volume(f"{tmp_path}/d.zarr/seg", mode="r+")
    assert mine is not volume and np.array_equal(mine.read(), data)
