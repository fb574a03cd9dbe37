"""alfine's blocks as daisy's task of unit blocks: daisy's numbers are alfine's ids, checked against daisy's own
scheduler, and a run where they are not (a future daisy) falls back to the blocks' regions."""

import daisy
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.blockwise import BlockLayout
from alfine.blockwise.daisy_ids import agrees, id_of_region, task_rois


@pytest.mark.parametrize("blocks", [1, 2, 17, 1000])
def test_every_block_daisy_hands_out_is_numbered_by_its_id_in_id_order(blocks):
    task = daisy.Task("t", *task_rois(blocks), process_function=lambda b: None, read_write_conflict=False)
    scheduler = daisy.Scheduler(task)
    seen = []
    while (handed := scheduler.acquire_block("t")) is not None:
        assert handed.block_id[1] == id_of_region(handed.write_roi)
        seen.append(handed.block_id[1])
        handed.status = daisy.BlockStatus.SUCCESS
        scheduler.release_block(handed)
    assert seen == list(range(blocks)) and list(task.block_grid_shape) == [blocks] and agrees(blocks)


class Renumbered(daisy.Block):
    """A daisy block numbered otherwise (as a future daisy might)."""

    @property
    def block_id(self):
        task, number = super().block_id
        return task, number + 1


def test_a_numbering_that_disagrees_is_found_and_workers_fall_back_to_the_write_region(tmp_path, monkeypatch):
    from alfine.blockwise import DoneMarkers, run_blocks, runner

    with monkeypatch.context() as patched:
        patched.setattr(daisy, "Block", Renumbered)
        assert agrees(10) is False
    layout = BlockLayout(Roi((0, 0, 0), (24, 16, 40)), Coordinate(8, 8, 8), Coordinate(0, 0, 0))
    monkeypatch.setattr(runner, "agrees", lambda blocks: False)
    monkeypatch.chdir(tmp_path)  # daisy's worker logs
    markers = DoneMarkers(f"{tmp_path}/m", layout)
    assert run_blocks("ids", layout, RecordId(str(tmp_path)), markers, workers=2)["processed"] == len(layout)
    for block in layout:  # every block once, with its own region
        assert (tmp_path / f"{block.id}").read_text() == str(block.write_roi)


class RecordId:
    """A block function writing its block's region into a file named by its id."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, block) -> None:
        with open(f"{self.folder}/{block.id}", "x") as f:  # a block run twice would fail
            f.write(str(block.write_roi))
