"""Blocks that fail: one clear error line (no tracebacks without --debug), worker logs kept with alfine's own."""

import numpy as np
from funlib.geometry import Roi

from alfine.volumes import prepare_volume
from alfine_tools.dispatch import main as alfine


def test_failing_blocks_on_workers_report_one_line_and_log_beside_alfine(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALFINE_LOG_DIR", str(tmp_path / "logs"))
    (tmp_path / "boom.py").write_text("def segment(prediction):\n    raise RuntimeError('boom')\n")
    roi = Roi((0, 0, 0), (16, 16, 8))
    prepare_volume(f"{tmp_path}/d.zarr/pred", roi, (1, 1, 1), np.float32, (8, 8, 8), channels=(1,)).write(
        roi, np.ones((1, 16, 16, 8), np.float32))
    code = alfine(["postprocess-block", "--input", "d.zarr/pred", "--output", "s.zarr/seg", "--method",
                   "boom.py:segment", "--workers", "2", "--block-shape", "8,8,8", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and "4 of 4 blocks failed" in err and "RuntimeError: boom" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "daisy_logs").exists()
    logs = list((tmp_path / "logs").rglob("worker_*.err"))
    assert logs and any("Traceback" in log.read_text() for log in logs)
    assert str(tmp_path / "logs") in err
