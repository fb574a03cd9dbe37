"""postprocess-block with context (watershed-type methods): objects are not split at block faces."""

import json

import edt
import numpy as np
import pytest
from test_postprocess import affinities_from
from test_relabel import assert_consecutive, assert_same_partition, run, write

from alfine.postprocess import mutex_watershed, watershed
from alfine.synthetic import SyntheticParams, generate_block
from alfine.volumes import open_volume
from alfine_tools.postprocess_block import main as postprocess
from alfine_tools.relabel import main as relabel

OFFSETS = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -5], [0, 5, 0]]


def synthetic_labels(shape=(16, 64, 64), voxel=(8, 4, 4)):
    """Cells with organelles (objects that touch without a membrane between them)."""
    arrays = generate_block(shape, voxel, (0, 0, 0), (0, 0, 0), shape, SyntheticParams(seed=2, cell_size=120.0))
    return arrays["labels"]


def assert_not_split(result, expected, share=0.9):
    """Every object of ``expected`` is mostly (``share``) one object of ``result``, a different one for each."""
    pairs, counts = np.unique(np.stack([expected.ravel(), result.ravel()]), axis=1, return_counts=True)
    objects = pairs[0] != 0
    pairs, counts = pairs[:, objects], counts[objects]
    main = {}
    for (e, r), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if n > main.get(e, (0, 0))[1]:
            main[e] = (r, n)
    sizes = dict(zip(*np.unique(expected[expected != 0], return_counts=True), strict=True))
    assert all(n >= share * sizes[e] and r != 0 for e, (r, n) in main.items())
    assert len({r for r, _ in main.values()}) == len(main) == len(sizes)


def _segment(capsys, tmp_path, *args, workers=2):
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/fragments", "--workers", str(workers), *args)
    assert code == 0, captured.err
    first = json.loads(captured.out)
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/segmentation", "--workers", str(workers))
    assert code == 0, captured.err
    return open_volume(f"{tmp_path}/s.zarr/segmentation").read(), first, json.loads(captured.out)


def test_mutex_watershed_from_model_json_is_not_split_at_faces(capsys, tmp_path, monkeypatch):
    """Offsets from the model's task; touching cells and organelles stay apart, no object is cut by a face."""
    monkeypatch.chdir(tmp_path)
    labels = synthetic_labels()
    affinities = affinities_from(labels, OFFSETS)
    write(f"{tmp_path}/d.zarr/pred", np.concatenate([affinities, np.zeros_like(affinities[:1])]), (8, 4, 4),
          (0, 0, 0), (8, 16, 16), channels=True)
    model = {"postprocessing": {"method": "mutex_watershed", "params": {"bias": -0.5, "strides": 1},
                                "channels": [0, 5]},
             "task": {"kind": "affinities", "neighborhood": OFFSETS}}
    (tmp_path / "model.json").write_text(json.dumps(model))
    result, first, second = _segment(capsys, tmp_path, "--params-from", "model.json", "--block-shape", "8,16,16")
    assert first["method"] == "mutex_watershed" and first["join"]["rule"] == "overlap" and first["context"] == [16] * 3
    expected = mutex_watershed(affinities, OFFSETS, bias=-0.5, strides=1)
    assert second["block_ids"] > second["objects"] == int(expected.max())
    assert_consecutive(result)
    assert_same_partition(result, expected)
    assert (result[labels != 0] != 0).mean() > 0.999  # all but voxels without an attractive edge


def test_mutex_watershed_tidied_blockwise_matches_the_whole_volume(capsys, tmp_path, monkeypatch):
    """Noisy affinities, fragments merged away and every voxel filled, block by block: the objects of the whole
    volume's run, none cut at faces, no 0 left."""
    monkeypatch.chdir(tmp_path)
    labels = synthetic_labels()
    rng = np.random.default_rng(3)
    affinities = np.clip(affinities_from(labels, OFFSETS) + rng.normal(0, 0.2, (len(OFFSETS), *labels.shape)), 0, 1)
    affinities = affinities.astype(np.float32)
    write(f"{tmp_path}/d.zarr/pred", affinities, (8, 4, 4), (0, 0, 0), (8, 16, 16), channels=True)
    params = {"bias": -0.5, "offsets": OFFSETS, "min_fragment": 20, "fill": 0.0}
    result, _, _ = _segment(capsys, tmp_path, "--method", "mutex_watershed", "--params", json.dumps(params),
                            "--block-shape", "8,32,32")
    expected = mutex_watershed(affinities, OFFSETS, bias=-0.5, min_fragment=20, fill=0.0)
    assert expected.all() and result.all()
    assert_not_split(result, expected, share=0.98)


@pytest.mark.parametrize("workers", [1, 2])
def test_watershed_of_distances_is_not_split_at_faces(workers, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    labels = synthetic_labels()
    distances = np.tanh(edt.edt(labels, anisotropy=(8, 4, 4)) / 40).astype(np.float32) * (labels != 0)
    write(f"{tmp_path}/d.zarr/pred", distances, (8, 4, 4), (0, 0, 0), (8, 16, 16))
    params = {"seed_threshold": 0.5, "mask_threshold": 0.0, "min_size": 20}
    result, first, second = _segment(capsys, tmp_path, "--method", "watershed", "--params", json.dumps(params),
                                     "--context", "8,24,24", "--block-shape", "8,16,16", workers=workers)
    assert first["min_size"] == 20 and first["context"] == [8, 24, 24]
    expected = watershed(distances[None], **params)
    assert second["block_ids"] > second["objects"] == int(expected.max())
    assert_not_split(result, expected)  # flooding breaks ties by position, so a few voxels may differ


def test_touching_objects_meeting_at_a_face_are_not_joined(capsys, tmp_path, monkeypatch):
    """Two objects whose boundary is a block face stay two (the overlap rule), one crossing it is one."""
    monkeypatch.chdir(tmp_path)
    labels = np.zeros((1, 32, 32), np.uint64)
    labels[0, 2:30, 2:16] = 1
    labels[0, 2:30, 16:30] = 2  # meets object 1 exactly at the face x = 16
    labels[0, 10:20, 10:22] = 3  # crosses that face
    offsets = [[0, 1, 0], [0, 0, 1]]
    write(f"{tmp_path}/d.zarr/pred", affinities_from(labels, offsets), (1, 1, 1), (0, 0, 0), (1, 16, 16),
          channels=True)
    params = {"bias": -0.5, "offsets": offsets}
    result, _, second = _segment(capsys, tmp_path, "--method", "mutex_watershed", "--params", json.dumps(params),
                                 "--context", "0,4,4", "--block-shape", "1,16,16", workers=1)
    assert second["objects"] == 3
    assert_same_partition(result, labels)
    # the overlap rule from postprocess-block's block records (above) and from the volume: the same
    fragments = open_volume(f"{tmp_path}/s.zarr/fragments", mode="r+")
    info = fragments.array.attrs["alfine_postprocess"]
    assert info["block_records"] is True
    fragments.array.attrs["alfine_postprocess"] = {**info, "block_records": False}
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/from-volume")
    assert code == 0, captured.err
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/from-volume").read(), result)


def test_semantic_methods_and_one_array_per_class(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prediction = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32)
    write(f"{tmp_path}/d.zarr/pred", prediction, (1, 1), (0, 0), (8, 8), channels=True)
    for method, params, expected in [
        ("argmax", {}, np.argmax(prediction, axis=0)),
        ("threshold", {"threshold": 0.5}, prediction > 0.5),
    ]:
        code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                             f"{tmp_path}/s.zarr/{method}", "--method", method, "--params", json.dumps(params))
        assert code == 0 and json.loads(captured.out)["instances"] is False
        np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/{method}").read(), expected)
    for channel in range(3):  # per class: one array each, relabelled on its own
        code, _ = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                      f"{tmp_path}/s.zarr/class{channel}", "--method", "connected_components", "--params",
                      json.dumps({"channel": channel, "threshold": 0.7}))
        assert code == 0
        code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/class{channel}", "--output",
                             f"{tmp_path}/s.zarr/class{channel}")
        assert code == 0, captured.err
        from test_relabel import components

        assert_same_partition(open_volume(f"{tmp_path}/s.zarr/class{channel}").read(),
                              components(prediction[channel] > 0.7, 4))


def test_listings_and_summaries_name_the_unit_of_every_shape(capsys, tmp_path):
    """--list-blocks and the runs of postprocess-block and relabel report the region in world units and the
    blocks in voxels, under names that say so, on anisotropic voxels where the two differ."""
    labels = synthetic_labels((16, 32, 32), (8, 4, 4))
    write(f"{tmp_path}/d.zarr/pred", (labels > 0).astype(np.float32), (8, 4, 4), (80, 0, 0), (8, 16, 16))
    common = ["--input", f"{tmp_path}/d.zarr/pred", "--output", f"{tmp_path}/s.zarr/fragments",
              "--method", "connected_components", "--block-shape", "8,16,16"]
    code, captured = run(postprocess, capsys, *common, "--list-blocks")
    listing = json.loads(captured.out.strip().splitlines()[-1])
    expected = {"roi_world": "80,0,0:208,128,128", "voxel_size": [8, 4, 4], "block_shape_voxels": [8, 16, 16]}
    assert code == 0 and {k: listing[k] for k in ("blocks", *expected)} == {"blocks": 8, **expected}
    first_block = json.loads(captured.out.splitlines()[0])
    assert first_block["write_roi"] == "80,0,0:144,64,64"  # each block's regions: world units, as --roi takes
    segmented, first, second = _segment(capsys, tmp_path, "--method", "connected_components",
                                        "--block-shape", "8,16,16", workers=1)
    for summary in (first, second):
        assert {k: summary[k] for k in expected} == expected and "block_shape" not in summary


def _zarray(array_dir) -> dict:
    return json.loads((array_dir / "s0" / ".zarray").read_text())


def test_a_run_resumes_with_the_blocks_it_started_with(capsys, tmp_path, monkeypatch):
    """An output that an earlier run began with other blocks than today's default (another version's, or flags
    since dropped) is resumed with its own blocks and chunks, the blocks it finished skipped, not refused."""
    from test_relabel import components

    monkeypatch.chdir(tmp_path)
    prediction = np.random.default_rng(4).random((40, 40, 40)).astype(np.float32)
    write(f"{tmp_path}/d.zarr/pred", prediction, (1, 1, 1), (0, 0, 0), (8, 8, 8))
    common = ["--input", f"{tmp_path}/d.zarr/pred", "--output", f"{tmp_path}/s.zarr/fragments", "--method",
              "connected_components"]
    code, captured = run(postprocess, capsys, *common, "--block-shape", "16,16,16", "--chunk-shape", "16,16,16",
                         "--block-id", "0")
    assert code == 0, captured.err
    code, captured = run(postprocess, capsys, *common, "--list-blocks")
    assert code == 0, captured.err
    assert json.loads(captured.out.splitlines()[-1])["block_shape_voxels"] == [16, 16, 16]
    code, captured = run(postprocess, capsys, *common, "--workers", "2")
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (summary["blocks"], summary["skipped"], summary["processed"]) == (27, 1, 26)
    assert _zarray(tmp_path / "s.zarr" / "fragments")["chunks"] == [16, 16, 16]
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/segmentation")
    assert code == 0, captured.err
    assert_same_partition(open_volume(f"{tmp_path}/s.zarr/segmentation").read(), components(prediction > 0.5, 6))
    # a new output over the same input takes today's default blocks (whole granules, one chunk a block)
    code, captured = run(postprocess, capsys, *common[:3], f"{tmp_path}/s.zarr/other", *common[4:])
    assert code == 0, captured.err
    assert json.loads(captured.out)["blocks"] == 1


def test_fragments_default_to_lz4_and_the_final_segmentation_keeps_zstd(capsys, tmp_path, monkeypatch):
    """Instance labels (an intermediate relabel reads once) are stored with blosc lz4 unless --compression says
    otherwise, one chunk a default block unless --chunk-shape says otherwise; class maps and relabel's output keep
    zstd and the input's chunks; every choice reads back the same labels."""
    monkeypatch.chdir(tmp_path)
    prediction = np.random.default_rng(3).random((24, 24, 24)).astype(np.float32)
    write(f"{tmp_path}/d.zarr/pred", prediction, (1, 1, 1), (0, 0, 0), (8, 8, 8))
    common = ["--input", f"{tmp_path}/d.zarr/pred", "--method", "connected_components"]
    code, captured = run(postprocess, capsys, *common, "--output", f"{tmp_path}/s.zarr/fragments")
    assert code == 0, captured.err
    code, captured = run(postprocess, capsys, *common, "--output", f"{tmp_path}/s.zarr/zstd", "--compression", "zstd",
                         "--chunk-shape", "8,8,8")
    assert code == 0, captured.err
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/mask", "--method", "threshold")
    assert code == 0, captured.err
    code, captured = run(relabel, capsys, "--input", f"{tmp_path}/s.zarr/fragments", "--output",
                         f"{tmp_path}/s.zarr/segmentation")
    assert code == 0, captured.err
    found = {name: _zarray(tmp_path / "s.zarr" / name) for name in ("fragments", "zstd", "mask", "segmentation")}
    assert {name: (z["compressor"]["cname"], z["chunks"]) for name, z in found.items()} == {
        "fragments": ("lz4", [24, 24, 24]), "zstd": ("zstd", [8, 8, 8]), "mask": ("zstd", [1, 8, 8, 8]),
        "segmentation": ("zstd", [24, 24, 24])}
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/fragments").read(),
                                  open_volume(f"{tmp_path}/s.zarr/zstd").read())
    from test_relabel import components

    assert_same_partition(open_volume(f"{tmp_path}/s.zarr/segmentation").read(), components(prediction > 0.5, 6))
