"""Watching a blockwise job: done markers kept as journals, --status (counts from the markers, creating
nothing) and progress logged as lines where stderr is not a terminal."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from markers_helpers import done_ids

from alfine import progress
from alfine.blockwise import BlockLayout, DoneMarkers, run_blocks
from alfine.blockwise.status import step_status
from alfine.volumes import prepare_volume

BIN = Path(sys.executable).parent
SLOW = '''\
import time
import numpy as np


def segment(prediction, seconds=0.0):
    """One object where the prediction is above 0.5, after sleeping."""
    time.sleep(seconds)
    return (prediction[0] > 0.5).astype(np.uint64)
'''
LINE = re.compile(r"postprocess-block: (\d+)/(\d+) blocks done \((\d+)%\)(?:, ([\d.e+]+) blocks/s)?"
                  r"(?:, about (\d+) s left)?")


def layout(blocks: int = 10) -> BlockLayout:
    return BlockLayout(Roi((0, 0, 0), (blocks * 4, 4, 4)), Coordinate(4, 4, 4), Coordinate(0, 0, 0))


def nothing(block) -> None:
    pass


def test_journals_and_single_markers_together_and_a_torn_last_line(tmp_path):
    markers = DoneMarkers(f"{tmp_path}/m", layout())
    markers.start()
    markers.mark(7)  # a --block-id run
    markers.append(1)
    markers.append(2)
    markers.close()
    journals = list((tmp_path / "m/done").glob("*.ids"))
    assert len(journals) == 1 and journals[0].read_text() == "1\n2\n"
    with open(journals[0], "a") as f:
        f.write("3")  # a process killed in the middle of writing its line
    assert markers.done_ids() == done_ids(tmp_path / "m") == {1, 2, 7}
    assert markers.is_done(2) and markers.is_done(7) and not markers.is_done(3)


JOURNALING = """
import os, signal, sys, time
from alfine.blockwise.journal import Journal
journal = Journal(sys.argv[1])
journal.append(0)  # the first id is written at once
for block_id in range(1, 1000):  # the rest within a tenth of a second: held, written together
    journal.append(block_id)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(0.15)
journal.append(1000)  # the journal was written more than a tenth of a second ago: written at once
os.kill(os.getpid(), signal.SIGKILL) if sys.argv[2] == "kill-later" else None
"""


@pytest.mark.parametrize("end", ["exit", "kill", "kill-later"])
def test_a_journal_writes_ids_in_batches_and_a_kill_loses_only_the_last_tenth_of_a_second(tmp_path, end):
    subprocess.run([sys.executable, "-c", JOURNALING, str(tmp_path / "done"), end], check=end == "exit")
    (journal,) = (tmp_path / "done").glob("*.ids")
    lines = journal.read_text().split("\n")
    assert lines[-1] == ""  # whole lines only
    written = [int(line) for line in lines[:-1]]
    if end == "kill":  # the ids held were lost (a re-run computes those blocks again), the first one was not
        assert written == list(range(len(written))) and 1 <= len(written) < 1000
    else:  # a process that ends normally writes what it held; a late id writes those held before it
        assert written == list(range(1001))


def test_a_whole_volume_run_writes_one_journal_per_process_and_a_rerun_skips_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # daisy's worker logs
    markers = DoneMarkers(f"{tmp_path}/m", layout(30))
    assert run_blocks("nothing", layout(30), nothing, markers, workers=2)["processed"] == 30
    entries = list((tmp_path / "m/done").iterdir())
    assert 1 <= len(entries) <= 2 and all(e.name.endswith(".ids") for e in entries)  # one per worker, not per block
    assert done_ids(tmp_path / "m") == set(range(30))
    assert run_blocks("nothing", layout(30), nothing, markers, workers=2) == {"blocks": 30, "processed": 0,
                                                                             "skipped": 30}


def test_on_an_object_store_each_block_is_a_file(s3_server, monkeypatch):
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_server}, skip_instance_cache=True)
    fs.mkdir("journal-test")
    markers = DoneMarkers("s3://journal-test/m", layout())
    markers.start()
    markers.append(4)
    markers.append(5)
    assert markers.local is None and markers.done_ids() == {4, 5}
    assert sorted(p.rpartition("/")[2] for p in fs.ls("journal-test/m/done", refresh=True)) == ["4", "5"]


def test_a_worker_imports_only_what_it_needs():
    """A daisy worker imports the worker module to run its blocks: neither numpy nor fsspec (for local markers)
    nor the scheduling side come with it, so a worker starts fast; the scheduling side needs no numpy either."""
    code = ("import sys; import alfine.blockwise.worker; "
            "print(sorted(m for m in ('numpy', 'fsspec', 'zarr', 'alfine.blockwise.runner') if m in sys.modules)); "
            "import alfine.blockwise.runner; print(sorted(m for m in ('numpy', 'fsspec') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n[]\n"


def test_step_status_counts_the_markers_and_ignores_stale_ones(tmp_path):
    markers = DoneMarkers(f"{tmp_path}/m", layout(), output_token="first")
    assert step_status(f"{tmp_path}/m", "first") == {"blocks": None, "done": 0, "failed": 0}
    markers.start()
    markers.mark(0)
    markers.append(9)
    markers.fail(3, "broken")
    markers.close()
    assert step_status(f"{tmp_path}/m", "first") == {"blocks": 10, "done": 2, "failed": 1}
    assert step_status(f"{tmp_path}/m", "second") == {"blocks": None, "done": 0, "failed": 0}  # --overwrite since


@pytest.fixture
def prediction(tmp_path):
    """A 1-channel prediction of 8 blocks of 8³ voxels, and a slow user method."""
    roi = Roi((0, 0, 0), (8, 16, 32))
    values = np.random.default_rng(3).random((1, 8, 16, 32)).astype(np.float32)
    prepare_volume(f"{tmp_path}/d.zarr/pred", roi, (1, 1, 1), np.float32, (8, 8, 8), channels=(1,)).write(roi, values)
    (tmp_path / "slow.py").write_text(SLOW)
    return tmp_path


def post(root: Path, *extra: str, seconds: float = 0.0) -> subprocess.CompletedProcess:
    """alfine-postprocess-block with stderr a pipe (not a terminal)."""
    args = [str(BIN / "alfine-postprocess-block"), "--input", "d.zarr/pred", "--output", "d.zarr/seg", "--method",
            "slow.py:segment", "--params", json.dumps({"seconds": seconds}), "--block-shape", "8,8,8", *extra]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300)


def tree(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def test_status_counts_the_done_blocks_and_creates_nothing(prediction):
    missing = post(prediction, "--status")
    assert missing.returncode == 2 and "d.zarr/seg does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (prediction / "d.zarr/seg").exists()
    for block in (2, 5):
        assert post(prediction, "--block-id", str(block)).returncode == 0
    before = tree(prediction)
    status = post(prediction, "--status")
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    markers = prediction / "d.zarr/.alfine-blocks/seg"
    assert (summary["done"], summary["blocks"], summary["complete"]) == (len(done_ids(markers)), 8, False) == (
        2, 8, False)
    assert "blocks: 2/8 blocks done" in status.stderr and tree(prediction) == before
    assert post(prediction, "--status", "--block-id", "1").returncode == 2
    assert post(prediction, "--workers", "2", "--no-progress").returncode == 0
    summary = json.loads(post(prediction, "--status").stdout)
    assert (summary["done"], summary["complete"]) == (len(done_ids(markers)), True) == (8, True)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_progress_is_logged_as_lines_where_stderr_is_a_pipe(prediction, workers):
    done = post(prediction, "--workers", workers, "--progress-interval", "0.2", seconds=0.25)
    assert done.returncode == 0, done.stderr
    lines = [LINE.search(line) for line in done.stderr.splitlines() if "blocks done" in line]
    assert len(lines) >= 3 and all(lines), done.stderr  # a line every 0.2 s over 8 blocks of 0.25 s, and the last
    counts = [int(m[1]) for m in lines]
    assert counts == sorted(counts) and counts[-1] == 8 and {int(m[2]) for m in lines} == {8}
    assert all(int(m[3]) == 100 * int(m[1]) // 8 or int(m[3]) == round(100 * int(m[1]) / 8) for m in lines)
    assert any(m[5] is not None for m in lines), done.stderr  # an estimate of the time left while running
    assert "\r" not in done.stderr  # no bar
    quiet = post(prediction, "--workers", workers, "--overwrite", "--no-progress", seconds=0.25)
    assert quiet.returncode == 0 and "blocks done" not in quiet.stderr


def test_a_progress_line_says_done_total_rate_and_time_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    lines = progress.Lines(total=1000, desc="relabel (write)", unit="block", initial=200)
    now[0] = 110.0
    lines.update(50)
    assert lines.line() == "relabel (write): 250/1000 blocks done (25%), 5 blocks/s, about 2.5 min left"
    lines.set_postfix(loss="0.1234")
    assert lines.line().endswith("about 2.5 min left, loss=0.1234")
    lines.close()
    assert progress.format_seconds(42) == "42 s" and progress.format_seconds(3 * 3600) == "3.0 h"


def test_progress_turned_off_counts_without_a_bar_or_tqdm():
    code = ("import sys; from alfine import progress; progress.set_enabled(False)\n"
            "with progress.bar(total=3, desc='x', unit='block', initial=1) as bar:\n"
            "    bar.update(); bar.set_postfix(loss=1)\n"
            "items = list(progress.bar(range(4)))\n"
            "print(bar.n, bar.total, items, 'tqdm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "3", "[0,", "1,", "2,", "3]", "False"] and done.stderr == ""


def test_status_of_downsample_counts_each_level(prediction):
    def alfine(*args):
        return subprocess.run([str(BIN / "alfine"), "downsample", "--input", "d.zarr/pred", *args], cwd=prediction,
                              capture_output=True, text=True, timeout=120)

    before = json.loads(alfine("--status").stdout)
    assert before["steps"] == {} and before["done"] == 0  # no level yet: nothing to count, nothing created
    made = alfine("--levels", "1", "--no-progress")
    assert made.returncode == 0, made.stderr
    after = json.loads(alfine("--status").stdout)
    assert after["complete"] is True and after["steps"]["s1"]["done"] == after["steps"]["s1"]["blocks"] > 0
    refused = alfine("--status", "--block-id", "0", "--level", "1")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and "--status" in refused.stderr
