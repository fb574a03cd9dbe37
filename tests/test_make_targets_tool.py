"""alfine-make-targets: blockwise targets equal the whole-volume computation; resume; errors."""

import json

import numpy as np
import pytest
from funlib.geometry import Roi

from alfine.synthetic import SyntheticParams, generate_block
from alfine.tasks import task_from_dict
from alfine.volumes import open_volume, prepare_volume
from alfine_tools.make_targets import main

VOXEL = (8, 4, 4)
SHAPE = (24, 48, 48)
TASKS = {
    "affinities": ({"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -6, 0], [2, 0, 0]],
                    "lsds": True, "lsd_sigma": 12}, "labels"),
    "distance": ({"kind": "distance", "classes": {"cell": 1, "organelle": 2}, "scale": 12}, "classes"),
    "inner_distance": ({"kind": "inner_distance", "scale": 8}, "labels"),
    "semantic": ({"kind": "semantic", "classes": {"cell": 1, "organelle": 2}}, "classes"),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A synthetic volume with a mask, written with chunks of 8 x 16 x 16 voxels."""
    root = tmp_path_factory.mktemp("targets")
    arrays = generate_block(SHAPE, VOXEL, (16, 0, 8), (0, 0, 0), SHAPE, SyntheticParams(seed=5, cell_size=100.0))
    roi = Roi((16, 0, 8), tuple(s * v for s, v in zip(SHAPE, VOXEL, strict=True)))
    for name in ("labels", "classes", "mask"):
        prepare_volume(f"{root}/d.zarr/{name}", roi, VOXEL, arrays[name].dtype, (8, 16, 16)).write(roi, arrays[name])
    return root, arrays


def _run(capsys, *args):
    code = main(["--no-progress", "--chunk-shape", "8,16,16", *args])
    captured = capsys.readouterr()
    return code, captured


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_blockwise_equals_the_whole_volume(kind, data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root, arrays = data
    config, source = TASKS[kind]
    (tmp_path / "task.json").write_text(json.dumps(config))
    out = f"{tmp_path}/t.zarr"
    code, captured = _run(capsys, "--labels", f"{root}/d.zarr/{source}", "--task", "task.json", "--mask",
                          f"{root}/d.zarr/mask", "--output", f"{out}/target", "--weights", f"{out}/known",
                          "--block-shape", "8,16,16", "--workers", "2" if kind == "affinities" else "1")
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["blocks"] == 3 * 3 * 3 and summary["processed"] == 27

    task = task_from_dict(config)
    expected, expected_known = task.targets(arrays[source], VOXEL, arrays["mask"] != 0)
    target, known = open_volume(f"{out}/target"), open_volume(f"{out}/known")
    assert target.array.attrs["channel_names"] == task.channel_names()
    assert target.geometry.axis_names == ("c^", "z", "y", "x") and tuple(target.offset) == (16, 0, 8)
    np.testing.assert_array_equal(known.read(), expected_known.astype(np.uint8))
    sure = expected_known > 0
    np.testing.assert_allclose(target.read()[sure], expected[sure], atol=1e-5)


def test_resume_one_block_and_listing(data, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root, _ = data
    (tmp_path / "task.json").write_text(json.dumps({"kind": "binary", "from_instances": True}))
    args = ["--labels", f"{root}/d.zarr/labels", "--task", "task.json", "--output", f"{tmp_path}/t.zarr/fg",
            "--block-shape", "8,16,16"]
    code, captured = _run(capsys, *args, "--list-blocks")
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert code == 0 and [b["block_id"] for b in lines[:-1]] == list(range(27)) and lines[-1]["blocks"] == 27
    assert lines[5]["write_roi"] == "16,64,136:80,128,200"  # block (0, 1, 2) of a 3 x 3 x 3 grid
    code, captured = _run(capsys, *args, "--block-id", "5")
    assert code == 0 and json.loads(captured.out)["processed"] == 1
    code, captured = _run(capsys, *args)
    assert code == 0 and json.loads(captured.out)["processed"] == 26
    code, captured = _run(capsys, *args, "--block-shape", "16,16,16")
    assert code == 2 and "this output was started with blocks" in captured.err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--roi", "0,0,0:64,64,64"], "is not inside"),
        (["--block-shape", "12,16,16"], "two workers would write one chunk"),
        (["--task", "missing.json"], "missing.json: no such file"),
        (["--task", "2d.json"], "a 2D task for the 3D labels"),
    ],
)
def test_bad_requests_exit_2(data, capsys, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    root, _ = data
    (tmp_path / "task.json").write_text(json.dumps({"kind": "binary", "from_instances": True}))
    (tmp_path / "2d.json").write_text(json.dumps({"kind": "affinities", "neighborhood": [[1, 0], [0, 1]]}))
    args = ["--labels", f"{root}/d.zarr/labels", "--task", "task.json", "--output", f"{tmp_path}/t.zarr/x"]
    code, captured = _run(capsys, *args, *extra)
    assert code == 2 and message in captured.err and captured.out == ""
