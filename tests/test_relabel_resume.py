"""In-place relabel re-run after a kill at any moment gives the same labels as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from markers_helpers import done_ids, unmark
from test_relabel import assert_consecutive, assert_same_partition, components, noise, run, write

from alfine.segmentation import records
from alfine.volumes import open_volume
from alfine_tools.postprocess_block import main as postprocess
from alfine_tools.relabel import main as relabel

BIN = os.path.dirname(sys.executable)


def fragments(capsys, tmp_path, shape=(16, 24, 24), block="8,8,8", name="frag"):
    """A per-block segmentation of noise; the thresholded mask whose components relabel must give."""
    data = noise(shape, seed=11)
    write(f"{tmp_path}/d.zarr/pred", data, (1,) * len(shape), (0,) * len(shape), (8,) * len(shape))
    code, captured = run(postprocess, capsys, "--input", f"{tmp_path}/d.zarr/pred", "--output",
                         f"{tmp_path}/s.zarr/{name}", "--method", "connected_components", "--params",
                         '{"threshold": 0.6, "connectivity": 6}', "--block-shape", block)
    assert code == 0, captured.err
    return data > 0.6


def in_place(capsys, tmp_path, *extra):
    url = f"{tmp_path}/s.zarr/frag"
    return run(relabel, capsys, "--input", url, "--output", url, *extra)


def test_a_block_written_but_not_marked_done_is_not_remapped(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mask = fragments(capsys, tmp_path)
    code, captured = in_place(capsys, tmp_path)
    assert code == 0, captured.err
    first = open_volume(f"{tmp_path}/s.zarr/frag").read()
    assert_same_partition(first, components(mask, 6))
    unmark(tmp_path / "s.zarr/.alfine-relabel/frag/write-done", 4)  # as a kill after the write leaves it
    code, captured = in_place(capsys, tmp_path)
    assert code == 0 and json.loads(captured.out)["processed"] == 1, captured.err
    np.testing.assert_array_equal(open_volume(f"{tmp_path}/s.zarr/frag").read(), first)


def test_a_block_killed_in_the_middle_of_its_write_is_mapped_from_its_old_ids(capsys, tmp_path, monkeypatch):
    """The volume holds new ids (all or some chunks), nothing says so: the saved original labels are used."""
    monkeypatch.chdir(tmp_path)
    mask = fragments(capsys, tmp_path, block="8,8,16")
    save_json = records.save_json

    def killed(url, value):
        if "/written/" in url and url.endswith("/3.json"):
            raise KeyboardInterrupt  # the process dies after writing block 3, before recording it
        save_json(url, value)

    monkeypatch.setattr(records, "save_json", killed)
    code, _ = in_place(capsys, tmp_path)
    assert code == 130
    assert (tmp_path / "s.zarr/.alfine-relabel/frag/originals/3.npz").exists()
    monkeypatch.setattr(records, "save_json", save_json)
    code, captured = in_place(capsys, tmp_path)
    assert code == 0, captured.err
    result = open_volume(f"{tmp_path}/s.zarr/frag").read()
    assert_consecutive(result)
    assert_same_partition(result, components(mask, 6))
    assert not os.listdir(tmp_path / "s.zarr/.alfine-relabel/frag/originals")  # kept only while needed


@pytest.mark.parametrize("wait_for", ["written", "write-done"])
def test_in_place_relabel_killed_and_re_run(wait_for, capsys, tmp_path, monkeypatch):
    """The real thing: alfine-relabel --workers 2 in place, killed during its write step, then re-run."""
    monkeypatch.chdir(tmp_path)
    mask = fragments(capsys, tmp_path, shape=(32, 32, 40), block="8,8,8")
    url = f"{tmp_path}/s.zarr/frag"
    command = [f"{BIN}/alfine-relabel", "--input", url, "--output", url, "--workers", "2", "--no-progress"]
    started = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = tmp_path / "s.zarr/.alfine-relabel/frag" / wait_for
    deadline = time.monotonic() + 60
    while started.poll() is None and time.monotonic() < deadline:
        if (len(done_ids(folder)) if wait_for == "write-done" else len(os.listdir(folder)) if folder.exists()
                else 0) >= 3:
            os.killpg(started.pid, signal.SIGKILL)  # the run and its workers
            break
        time.sleep(0.002)
    started.wait()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = open_volume(url).read()
    assert_consecutive(result)
    assert_same_partition(result, components(mask, 6))
