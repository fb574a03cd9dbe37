"""A blockwise command killed (SIGKILL on its whole process group) part way and run again skips the blocks
its done markers hold (which --status counts, creating nothing) and gives the bytes of an uninterrupted
run. (predict-block, training and in-place relabel have their own kill tests in
test_predict_block_tool.py, test_training.py and test_relabel_resume.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Roi
from markers_helpers import done_ids

from alfine.synthetic import SyntheticParams, generate_block
from alfine.volumes import open_volume, prepare_volume

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
SHAPE = (32, 48, 48)
RELABEL_SHAPE = (48, 96, 96)  # 864 blocks of 8^3: relabel's write step maps a block in about a millisecond
TASK = {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 4]], "lsds": True,
        "lsd_sigma": 32}


def _write_prediction(url: str, shape: tuple[int, ...]) -> np.ndarray:
    """Synthetic cells of ``shape`` (8 nm voxels) and, written to ``url``, a noisy float32 prediction of them; their
    labels."""
    labels = generate_block(shape, (8, 8, 8), (0, 0, 0), (0, 0, 0), shape,
                            SyntheticParams(seed=5, cell_size=120.0))["labels"]
    roi = Roi((0, 0, 0), tuple(s * 8 for s in shape))
    noisy = (labels > 0) * 0.8 + np.random.default_rng(1).random(shape) * 0.3
    prepare_volume(url, roi, (8, 8, 8), np.float32, (16, 16, 16)).write(roi, noisy.astype(np.float32))
    return labels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    labels = _write_prediction(f"{root}/d.zarr/pred", SHAPE)
    roi = Roi((0, 0, 0), tuple(s * 8 for s in SHAPE))
    prepare_volume(f"{root}/d.zarr/labels", roi, (8, 8, 8), np.uint64, (16, 16, 16)).write(roi, labels)
    (root / "task.json").write_text(json.dumps(TASK))
    subprocess.run([str(BIN / "alfine-postprocess-block"), "--input", f"{root}/d.zarr/pred", "--output",
                    f"{root}/d.zarr/fragments", "--method", "connected_components", "--params", '{"threshold": 0.5}',
                    "--block-shape", "16,16,16", "--no-progress"], check=True, capture_output=True, cwd=root)
    # relabel's blocks are quick and its journals are written in batches (0.1 s): many small blocks, so that
    # a kill lands part way
    _write_prediction(f"{root}/d.zarr/pred_large", RELABEL_SHAPE)
    subprocess.run([str(BIN / "alfine-postprocess-block"), "--input", f"{root}/d.zarr/pred_large", "--output",
                    f"{root}/d.zarr/fragments8", "--method", "connected_components", "--params", '{"threshold": 0.5}',
                    "--block-shape", "8,8,8", "--chunk-shape", "8,8,8", "--no-progress"], check=True,
                   capture_output=True, cwd=root)
    return root


def command(name: str, data: Path, output: str) -> tuple[list[str], str]:
    """The command line writing ``output`` (a container), and the folder of its done markers."""
    if name == "make-targets":
        args = ["--labels", f"{data}/d.zarr/labels", "--task", f"{data}/task.json", "--output", f"{output}/targets",
                "--block-shape", "8,8,8", "--chunk-shape", "8,8,8"]
        markers = f"{output}/.alfine-blocks/targets"
    elif name == "postprocess-block":  # the larger volume: 144 blocks of 8^3 can end before a kill
        args = ["--input", f"{data}/d.zarr/pred_large", "--output", f"{output}/fragments", "--method", "watershed",
                "--params", '{"seed_threshold": 0.9, "mask_threshold": 0.5}', "--block-shape", "8,8,8",
                "--chunk-shape", "8,8,8"]
        markers = f"{output}/.alfine-blocks/fragments"
    elif name == "postprocess-block, forked":  # connected components: 864 blocks in 2 forked workers
        args = ["--input", f"{data}/d.zarr/pred_large", "--output", f"{output}/fragments", "--method",
                "connected_components", "--params", '{"threshold": 0.5}', "--block-shape", "8,8,8",
                "--chunk-shape", "8,8,8"]
        markers = f"{output}/.alfine-blocks/fragments"
    else:  # relabel into a new output
        args = ["--input", f"{data}/d.zarr/fragments8", "--output", f"{output}/objects"]
        markers = f"{output}/.alfine-relabel/objects/write-done"
    return [str(BIN / f"alfine-{name.partition(',')[0]}"), *args, "--workers", "2", "--no-progress"], markers


def array_of(name: str, output: str) -> np.ndarray:
    kinds = {'make-targets': 'targets', 'postprocess-block': 'fragments', 'postprocess-block, forked': 'fragments'}
    return open_volume(f"{output}/{kinds.get(name, 'objects')}").read()


def tree(folder: str) -> dict[str, int]:
    """Every file under ``folder`` and its size."""
    return {str(p): p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["make-targets", "postprocess-block", "postprocess-block, forked", "relabel"])
def test_a_killed_run_run_again_gives_the_bytes_of_a_clean_run(name, data, tmp_path):
    output = str(tmp_path / "out.zarr")
    line, markers = command(name, data, output)
    driver = subprocess.Popen(line, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None and len(done_ids(markers)) < 3:
        time.sleep(0.01)
    assert driver.poll() is None, "the run ended before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished = len(done_ids(markers))
    before = tree(output)
    status = subprocess.run([*line, "--status"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    step = json.loads(status.stdout)["steps"]["write" if name == "relabel" else "blocks"]
    assert step["done"] == finished and tree(output) == before
    assert f"{finished}/{step['blocks']} blocks done" in status.stderr
    again = subprocess.run(line, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["skipped"], summary["processed"]) == (finished, summary["blocks"] - finished)
    clean_output = str(tmp_path / "clean.zarr")
    clean = subprocess.run(command(name, data, clean_output)[0], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert clean.returncode == 0, clean.stderr
    np.testing.assert_array_equal(array_of(name, output), array_of(name, clean_output))
    if name.endswith("forked"):  # its blocks ran in two forked workers, each with its journal
        assert len(list(Path(command(name, data, clean_output)[1], "done").glob("*.ids"))) == 2
    total = json.loads(again.stdout)["blocks"]
    assert 3 <= finished < total, "the run must be killed part way"
