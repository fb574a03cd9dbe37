"""Blockwise processing: block ids and geometry, resuming, failures, one-block runs, daisy workers."""

import os
import sys

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.blockwise import BlockLayout, DoneMarkers, check_chunk_aligned, markers_url_for, run_blocks
from alfine.errors import BlocksFailed, UserError
from alfine.volumes import open_volume, prepare_volume

ROI = Roi((8, 0, -16), (40, 24, 40))  # world units; voxel size (4, 4, 8) -> 10 x 6 x 5 voxels
VOXEL = (4, 4, 8)


def _layout(block=(16, 12, 16), context=(4, 0, 8)):
    return BlockLayout(ROI, Coordinate(block), Coordinate(context))


def test_blocks_tile_the_region_in_c_order():
    layout = _layout()
    assert layout.grid_shape == (3, 2, 3) and len(layout) == 18
    first, second, last = layout.block(0), layout.block(1), layout.block(17)
    assert first.write_roi == Roi((8, 0, -16), (16, 12, 16))
    assert first.read_roi == Roi((4, 0, -24), (24, 12, 32))
    assert second.write_roi.begin == Coordinate(8, 0, 0)  # x moves fastest
    assert layout.block(3).write_roi.begin == Coordinate(8, 12, -16)
    assert last.write_roi == Roi((40, 12, 16), (8, 12, 8))  # cut to the region
    covered = np.zeros(ROI.shape / Coordinate(4, 4, 8), dtype=int)
    for block in layout:
        assert layout.block_id_of(block.write_roi) == block.id
        index = tuple(slice(b, e) for b, e in zip((block.write_roi.begin - ROI.begin) / Coordinate(VOXEL),
                                                  (block.write_roi.end - ROI.begin) / Coordinate(VOXEL), strict=True))
        covered[index] += 1
    assert (covered == 1).all()


def test_bad_layouts_and_ids_are_refused():
    with pytest.raises(UserError, match="out of range: this layout has blocks 0..17"):
        _layout().block(18)
    with pytest.raises(UserError, match="must have the 3 axes"):
        BlockLayout(ROI, Coordinate(8, 8), Coordinate(0, 0, 0))
    assert _layout().fingerprint != _layout(context=(0, 0, 0)).fingerprint


def test_chunk_alignment_is_checked():
    check_chunk_aligned(_layout(), Coordinate(8, 12, 16), ROI.begin, "out")
    with pytest.raises(UserError, match="two workers would write one chunk"):
        check_chunk_aligned(_layout(), Coordinate(12, 12, 16), ROI.begin, "out")
    # one block along an axis (x: a 48-wide block over 40, chunks clamped to 40): nothing to share
    check_chunk_aligned(_layout(block=(16, 12, 48)), Coordinate(8, 12, 40), ROI.begin, "out")
    with pytest.raises(UserError, match="two workers would write one chunk"):  # two blocks along x again
        check_chunk_aligned(_layout(block=(16, 12, 24)), Coordinate(8, 12, 40), ROI.begin, "out")


class WriteBlockId:
    """A block function: writes id + 1 into its write region; fails on `fail_on`."""

    def __init__(self, url, fail_on=()):
        self.url, self.fail_on = url, set(fail_on)

    def __call__(self, block):
        if block.id in self.fail_on:
            raise ValueError(f"block {block.id} is broken")
        volume = open_volume(self.url, mode="r+")
        shape = block.write_roi.shape / volume.voxel_size
        volume.write(block.write_roi, np.full(shape, block.id + 1, dtype=np.uint16))


class ThreadedWriteBlockId(WriteBlockId):
    """The same, declared safe to run in threads: local multi-worker runs call it in threads of this process (or,
    with many blocks, in forked processes: it says it holds the GIL)."""

    threads = True
    holds_gil = True

    def __init__(self, url, fail_on=(), bad_input_on=()):
        super().__init__(url, fail_on)
        self.bad_input_on = set(bad_input_on)
        self.threads_seen: set[str] = set()

    def __call__(self, block):
        import threading

        if block.id in self.bad_input_on:
            raise UserError("bad input")
        self.threads_seen.add(threading.current_thread().name)
        super().__call__(block)


def _function(output, workers, **kwargs):
    """The block function and the number of workers of a parameter: 1, 2 (daisy processes), "2 threads" (a
    thread-safe function that releases the GIL) or "2 forked" (one that holds it, in 2 processes forked from this
    one: see _forking)."""
    if workers in ("2 threads", "2 forked"):
        function = ThreadedWriteBlockId(output, **kwargs)
        function.holds_gil = workers == "2 forked"
        return function, 2
    return WriteBlockId(output, **kwargs), workers


@pytest.fixture(autouse=True)
def _forking(request, monkeypatch):
    """Thread-safe block functions run in threads, unless the test's ``workers`` parameter is "2 forked" (then in
    forked processes from 2 blocks a worker on, doing their I/O through zarr-python)."""
    from alfine.blockwise import forked

    forking = getattr(request.node, "callspec", None) and request.node.callspec.params.get("workers") == "2 forked"
    monkeypatch.setattr(forked, "FORK_BLOCKS_PER_WORKER", 2 if forking else 10**9)
    if forking:  # (a test process has used tensorstore: its forked workers could not, and it would not fork)
        monkeypatch.setenv("ALFINE_TENSORSTORE", "0")


def _expected(layout, skip=()):
    out = np.zeros(ROI.shape / Coordinate(VOXEL), np.uint16)
    for block in layout:
        if block.id not in skip:
            begin = (block.write_roi.begin - ROI.begin) / Coordinate(VOXEL)
            end = (block.write_roi.end - ROI.begin) / Coordinate(VOXEL)
            out[tuple(slice(b, e) for b, e in zip(begin, end, strict=True))] = block.id + 1
    return out


@pytest.fixture
def output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # daisy's worker logs
    url = f"{tmp_path}/out.zarr/ids"
    prepare_volume(url, ROI, VOXEL, "uint16", (4, 3, 2))
    return url


@pytest.mark.parametrize("workers", [1, 2, "2 threads", "2 forked"])
def test_every_block_runs_once_and_is_marked(output, workers, tmp_path):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    kind = workers
    function, workers = _function(output, workers)
    summary = run_blocks("ids", layout, function, markers, workers=workers)
    assert summary == {"blocks": 18, "processed": 18, "skipped": 0}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))
    assert markers.done_ids() == set(range(18))
    done = tmp_path / "out.zarr" / ".alfine-blocks" / "ids" / "done"
    journals = {p.name.rpartition("-")[2] for p in done.iterdir()}
    if kind == "2 threads":  # in threads of this process, no worker processes (logs)
        assert len(function.threads_seen) == 2 and all(name.startswith("block") for name in function.threads_seen)
        assert not (tmp_path / "alfine-logs").exists() and journals == {f"{os.getpid()}.ids"}
    if kind == "2 forked":  # two processes forked from this one, each with its journal; no threads here, no logs
        assert not function.threads_seen and not (tmp_path / "alfine-logs").exists()
        assert len(journals) == 2 and f"{os.getpid()}.ids" not in journals


class OrderedWriteBlockId(ThreadedWriteBlockId):
    """Records the order in which blocks are processed and read ahead, and each block's thread."""

    def __init__(self, url):
        super().__init__(url)
        self.events: list[tuple[str, int, str]] = []

    def prefetch(self, block):
        import threading

        self.events.append(("read ahead", block.id, threading.current_thread().name))

    def __call__(self, block):
        import threading

        self.events.append(("process", block.id, threading.current_thread().name))
        super().__call__(block)


def test_a_function_that_holds_the_gil_in_too_few_blocks_to_fork_runs_in_this_thread_in_turn(output):
    """Threads would take turns holding the lock: its blocks run one after another in this thread, each next one
    read ahead while the one before is processed."""
    layout = _layout()  # 18 blocks: fewer than _forking's 10**9 a worker
    markers = DoneMarkers(markers_url_for(output), layout)
    function = OrderedWriteBlockId(output)
    assert run_blocks("ids", layout, function, markers, workers=2) == {"blocks": 18, "processed": 18, "skipped": 0}
    processed = [(block, thread) for kind, block, thread in function.events if kind == "process"]
    assert processed == [(i, "MainThread") for i in range(18)]
    ahead = [block for kind, block, _ in function.events if kind == "read ahead"]
    assert ahead == list(range(1, 18))  # each next block, told before the one before is processed
    assert function.events.index(("read ahead", 1, "MainThread")) < function.events.index(("process", 0, "MainThread"))
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))
    function.holds_gil = False  # the same function releasing the lock: 2 threads
    function.events.clear()
    assert run_blocks("ids2", layout, function, DoneMarkers(markers_url_for(output) + "2", layout), workers=2)[
        "processed"] == 18
    assert {thread for kind, _, thread in function.events if kind == "process"} == {"block_0", "block_1"}


@pytest.mark.parametrize("workers", ["2 threads", "2 forked"])
def test_bad_input_in_a_block_run_in_threads_stops_the_job(output, workers):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    with pytest.raises(UserError, match="block 3: bad input"):
        run_blocks("ids", layout, _function(output, workers, bad_input_on={3})[0], markers, workers=2)
    done = markers.done_ids()
    assert 3 not in done and len(done) < 17  # the blocks after those running were never started
    summary = run_blocks("ids", layout, _function(output, workers)[0], markers, workers=2)
    assert summary == {"blocks": 18, "processed": 18 - len(done), "skipped": len(done)}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))


def test_a_rerun_skips_finished_blocks(output):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    markers.start()
    for block_id in (0, 5, 17):
        markers.mark(block_id)  # "finished" earlier, though nothing was written
    summary = run_blocks("ids", layout, WriteBlockId(output), markers, workers=2)
    assert summary == {"blocks": 18, "processed": 15, "skipped": 3}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout, skip={0, 5, 17}))
    assert run_blocks("ids", layout, WriteBlockId(output), markers) == {"blocks": 18, "processed": 0, "skipped": 18}


@pytest.mark.parametrize("workers", [1, 2, "2 threads", "2 forked"])
def test_failing_blocks_raise_and_keep_the_rest(output, workers):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    function, workers = _function(output, workers, fail_on={4, 9})
    with pytest.raises(BlocksFailed, match=r"2 of 18 blocks failed .*block (4|9) is broken.*re-run") as failure:
        run_blocks("ids", layout, function, markers, workers=workers, max_retries=1)
    assert failure.value.exit_code == 3
    assert markers.done_ids() == set(range(18)) - {4, 9}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout, skip={4, 9}))
    summary = run_blocks("ids", layout, WriteBlockId(output), markers, workers=workers)
    assert summary == {"blocks": 18, "processed": 2, "skipped": 16}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))


class FailsOnce(WriteBlockId):
    """Fails the first attempt of each block in ``flaky`` (a file beside the output remembers it, across workers)."""

    def __init__(self, url, flaky):
        super().__init__(url)
        self.flaky = set(flaky)

    def __call__(self, block):
        tried = f"{self.url.rpartition('/out.zarr')[0]}/tried-{block.id}"
        if block.id in self.flaky and not os.path.exists(tried):
            open(tried, "x").close()
            raise OSError(f"block {block.id}: the disk hiccupped")
        super().__call__(block)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_block_that_fails_once_is_retried_and_done(output, workers):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    summary = run_blocks("ids", layout, FailsOnce(output, {2, 11}), markers, workers=workers, max_retries=1)
    assert summary == {"blocks": 18, "processed": 18, "skipped": 0} and markers.done_ids() == set(range(18))
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))


def test_one_block_at_a_time_as_a_job_array_would(output):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    for block_id in reversed(range(len(layout))):
        assert run_blocks("ids", layout, WriteBlockId(output), markers, block_id=block_id)["processed"] == 1
    assert run_blocks("ids", layout, WriteBlockId(output), markers, block_id=3) == {
        "blocks": 1, "processed": 0, "skipped": 1}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))


def test_a_changed_layout_is_refused(output):
    run_blocks("ids", _layout(), WriteBlockId(output), DoneMarkers(markers_url_for(output), _layout()), block_id=0)
    other = _layout(block=(8, 12, 16))
    with pytest.raises(UserError, match="this output was started with blocks"):
        run_blocks("ids", other, WriteBlockId(output), DoneMarkers(markers_url_for(output), other))


def test_markers_live_beside_the_output():
    assert markers_url_for("s3://b/x.zarr/pred/affs") == "s3://b/x.zarr/.alfine-blocks/pred/affs"


def test_a_read_started_ahead_is_taken_by_its_block_and_one_not_begun_runs_in_the_block():
    import threading

    from alfine.blockwise import read_ahead

    here = threading.current_thread()
    where, began, release = {}, threading.Event(), threading.Event()

    def read(name, hold=False):
        def run():
            where[name] = threading.current_thread()
            began.set()
            if hold:
                release.wait(10)
            if name == "bad":
                raise OSError("disk gone")
            return f"data of {name}"
        return run

    read_ahead.start(("in.zarr", 1), read("ahead", hold=True))
    assert began.wait(10)
    read_ahead.start(("in.zarr", 2), read("queued"))  # behind block 1's read: not begun when block 2 wants it
    assert read_ahead.take(("in.zarr", 2), read("block 2")) == "data of block 2" and where["block 2"] is here
    release.set()
    assert read_ahead.take(("in.zarr", 1), read("now")) == "data of ahead" and where["ahead"] is not here
    assert "queued" not in where and "now" not in where
    assert read_ahead.take(("in.zarr", 1), read("again")) == "data of again"  # taken once
    began.clear()
    read_ahead.start(("in.zarr", 3), read("bad", hold=True))
    assert began.wait(10)
    with pytest.raises(OSError, match="disk gone"):  # the read's error reaches the block that needs it
        read_ahead.take(("in.zarr", 3), read("now"))
    release.clear()
    began.clear()
    read_ahead.start(("in.zarr", 4), read("block 4", hold=True))
    assert began.wait(10)
    for block in range(5, 5 + read_ahead.KEEP):  # nobody takes them: the oldest (4) is dropped
        read_ahead.start(("in.zarr", block), read(f"block {block}"))
    release.set()
    assert read_ahead.take(("in.zarr", 4), lambda: "read again") == "read again"
    last = 4 + read_ahead.KEEP
    assert read_ahead.take(("in.zarr", last), lambda: f"data of block {last}") == f"data of block {last}"


def test_a_read_started_twice_runs_once_and_a_failed_command_leaves_no_read_behind():
    import threading

    from alfine.blockwise import read_ahead

    layout = BlockLayout(Roi((0, 0, 0), (8, 8, 8)), Coordinate(4, 8, 8), Coordinate(0, 0, 0))
    other = BlockLayout(Roi((0, 0, 0), (8, 8, 8)), Coordinate(8, 4, 8), Coordinate(0, 0, 0))
    assert read_ahead.key("in.zarr", layout.block(0)) != read_ahead.key("in.zarr", other.block(0))  # other regions
    reads, began, release = [], threading.Event(), threading.Event()

    def read(name):
        def run():
            reads.append(name)
            began.set()
            release.wait(10)
            return name
        return run

    block = layout.block(0)
    read_ahead.start(read_ahead.key("in.zarr", block), read("first"))
    assert began.wait(10)
    read_ahead.start(read_ahead.key("in.zarr", block), read("second"))  # the same read: not started again
    release.set()
    assert read_ahead.take(read_ahead.key("in.zarr", block), read("now")) == "first" and reads == ["first"]
    release.clear()
    with pytest.raises(RuntimeError, match="output refused"), read_ahead.dropped_on_error():
        read_ahead.start(read_ahead.key("in.zarr", block), read("held"))
        read_ahead.start(read_ahead.key("in.zarr", layout.block(1)), read("queued"))
        raise RuntimeError("output refused")
    release.set()
    # nothing left for a later command: both blocks are read anew, the queued read never ran
    assert read_ahead.take(read_ahead.key("in.zarr", block), lambda: "anew") == "anew"
    assert read_ahead.take(read_ahead.key("in.zarr", layout.block(1)), lambda: "anew") == "anew"
    assert "queued" not in reads


class _HeldWrites:
    """A stand-in for a volume under :mod:`alfine.blockwise.write_behind`: each write (of a block id) goes on until
    the next block completes it, as if its compression ended while that block ran, or until it is waited for;
    ``broken`` writes fail once."""

    def __init__(self, events, broken=()):
        self.events, self.broken, self.futures = events, set(broken), {}

    def start_write(self, roi, data, handed_over=False):
        from concurrent.futures import Future

        assert handed_over  # a block's result is handed over, never copied
        self.futures[data] = Future()
        self.events.append(("write", data))
        volume = self

        class Held:
            def result(self):
                volume.complete(data)
                return volume.futures[data].result()

        return Held()

    def complete(self, block_id):
        future = self.futures.get(block_id)
        if future is not None and not future.done():
            if block_id in self.broken:
                self.broken.discard(block_id)
                future.set_exception(OSError(f"block {block_id}: disk full"))
            else:
                future.set_result(None)
            self.events.append(("written", block_id))


class WritesBehind:
    """A block function whose write is left running; it completes the block before's."""

    def __init__(self, volume):
        self.volume = volume

    def __call__(self, block):
        from alfine.blockwise import write_behind

        self.volume.events.append(("process", block.id))
        self.volume.complete(block.id - 1)
        write_behind.write(self.volume, block.write_roi, block.id)


def test_one_worker_marks_a_block_done_only_after_its_writes_end_while_the_next_block_runs(output):
    """Block k's writes go on while block k+1 is processed; k is marked done only once they have ended; a write
    that fails has its block processed again (its write then waited for), and the job still finishes."""
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    events = []
    real_append = markers.append
    markers.append = lambda block_id: (events.append(("marked", block_id)), real_append(block_id))
    volume = _HeldWrites(events, broken={4})
    summary = run_blocks("ids", layout, WritesBehind(volume), markers, workers=1, max_retries=1)
    assert summary == {"blocks": 18, "processed": 18, "skipped": 0}
    assert markers.done_ids() == set(range(18))
    position = {}
    for index, event in enumerate(events):
        position.setdefault(event, []).append(index)
    for block_id in range(18):
        marked = position[("marked", block_id)]
        assert len(marked) == 1 and position[("written", block_id)][-1] < marked[0]
        if block_id < 17:  # the next block ran while this one's write was still going
            assert position[("process", block_id + 1)][0] < position[("written", block_id)][0] < marked[0]
    assert len(position[("process", 4)]) == 2 and len(position[("write", 4)]) == 2  # processed again
    assert position[("process", 5)][0] < position[("process", 4)][1] < position[("marked", 4)][0]


def test_a_write_behind_outside_a_runners_collection_ends_before_it_returns():
    from alfine.blockwise import write_behind

    volume = _HeldWrites([])
    waited = []

    class Recorded:
        def result(self):
            waited.append(True)
            raise OSError("disk full")

    volume.start_write = lambda roi, data, handed_over=False: Recorded()
    with pytest.raises(OSError, match="disk full"):
        write_behind.write(volume, None, 7)
    assert waited == [True]
    with write_behind.collect() as writes:
        write_behind.write(volume, None, 8)
    assert waited == [True] and len(writes) == 1  # collected, not waited for
    with pytest.raises(OSError, match="disk full"):
        write_behind.finish(writes)
    assert writes == [] and waited == [True, True]


class DiesOn(ThreadedWriteBlockId):
    """A thread-safe block function whose process dies (as if killed) at block ``dies_on``."""

    def __init__(self, url, dies_on):
        super().__init__(url)
        self.dies_on = dies_on

    def __call__(self, block):
        if block.id == self.dies_on:
            os._exit(9)
        super().__call__(block)


@pytest.mark.parametrize("workers", ["2 forked"])
def test_a_forked_worker_that_dies_fails_the_job_and_a_rerun_finishes_it(output, workers):
    layout = _layout()
    markers = DoneMarkers(markers_url_for(output), layout)
    with pytest.raises(BlocksFailed, match=r"blocks were not finished: 1 forked worker\(s\) ended with exit code\(s\) "
                                           r"\[9\].*re-run") as failure:
        run_blocks("ids", layout, DiesOn(output, dies_on=7), markers, workers=2)
    assert failure.value.exit_code == 3
    done = markers.done_ids()
    assert 7 not in done and len(done) >= 10  # the other worker went on to the end
    summary = run_blocks("ids", layout, ThreadedWriteBlockId(output), markers, workers=2)
    assert summary == {"blocks": 18, "processed": 18 - len(done), "skipped": len(done)}
    np.testing.assert_array_equal(open_volume(output).read(), _expected(layout))


def test_a_forked_process_reads_ahead_afresh():
    """Reads started before a fork belong to the parent's reader thread, which the child does not have: the child
    reads for itself, and its own reads ahead run."""
    import threading

    from alfine.blockwise import read_ahead

    release = threading.Event()
    read_ahead.start("before", lambda: release.wait(5) and "parent's")
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if both reads come back right, and at once
        ok = False
        try:
            ok = read_ahead.take("before", lambda: "own") == "own"
            began = threading.Event()
            read_ahead.start("ahead", lambda: began.set() or threading.current_thread().name)
            ok = ok and began.wait(5)  # the read ran, in the child's own reader thread
            ok = ok and read_ahead.take("ahead", lambda: "not ahead").startswith("alfine-read-ahead")
        finally:
            os._exit(0 if ok else 1)
    import signal
    import time

    deadline = time.monotonic() + 10
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if ended[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    release.set()
    assert ended[0] == pid, "the forked child waited for its parent's read"
    assert os.waitstatus_to_exitcode(ended[1]) == 0
    assert read_ahead.take("before", lambda: "own") == "parent's"


def test_a_process_that_used_tensorstore_does_not_fork(monkeypatch):
    """Forked workers of a process that has started tensorstore could not use it: such a process does not fork."""
    from alfine.blockwise import forked
    from alfine.volumes import bulk

    function = ThreadedWriteBlockId("out.zarr/ids")
    monkeypatch.setattr(forked, "FORK_BLOCKS_PER_WORKER", 8)  # (this module's tests set it otherwise)
    monkeypatch.setattr(bulk, "started", False)
    assert forked.forks(function, 64, 2) == (sys.platform == "linux")
    assert not forked.forks(function, 15, 2) and not forked.forks(function, 64, 1)
    assert not forked.forks(WriteBlockId("out.zarr/ids"), 64, 2)  # not thread-safe: daisy's worker processes
    function.holds_gil = False
    assert not forked.forks(function, 64, 2)  # its work releases the GIL: threads do as well
    function.holds_gil = True
    monkeypatch.setenv("ALFINE_FORK", "0")
    assert not forked.forks(function, 64, 2)
    monkeypatch.delenv("ALFINE_FORK")
    monkeypatch.setattr(bulk, "started", True)
    assert not forked.forks(function, 64, 2)
    monkeypatch.setenv("ALFINE_TENSORSTORE", "0")  # zarr-python does the I/O here and in the workers anyway
    assert forked.forks(function, 64, 2) == (sys.platform == "linux")
