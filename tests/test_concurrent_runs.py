"""Two identical whole-volume runs into one output at once: the second is refused (exit 2), the first finishes."""

import os
import subprocess
import sys
import time

import numpy as np
from funlib.geometry import Roi

from alfine.volumes import open_volume, prepare_volume
from alfine_tools.dispatch import main as alfine

BIN = os.path.dirname(sys.executable)


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slow.py").write_text("import time\n\n\ndef segment(prediction):\n    time.sleep(0.5)\n"
                                      "    return (prediction[0] > 0.5).astype('uint32')\n")
    roi = Roi((0, 0, 0), (16, 16, 8))
    data = np.random.default_rng(0).random((1, 16, 16, 8)).astype(np.float32)
    prepare_volume(f"{tmp_path}/d.zarr/pred", roi, (1, 1, 1), np.float32, (8, 8, 8), channels=(1,)).write(roi, data)
    args = ["--input", "d.zarr/pred", "--output", "s.zarr/seg", "--method", "slow.py:segment", "--block-shape",
            "8,8,8", "--no-progress"]
    first = subprocess.Popen([f"{BIN}/alfine-postprocess-block", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "s.zarr/.alfine-blocks/seg/lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    code = alfine(["postprocess-block", *args])
    err = capsys.readouterr().err
    assert code == 2 and "being written by another run (pid" in err, err
    out, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert (open_volume(f"{tmp_path}/s.zarr/seg").read() > 0).sum() == (data[0] > 0.5).sum()
    assert alfine(["postprocess-block", *args]) == 0  # the lock goes with its run
