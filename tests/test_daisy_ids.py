"""daisy's block numbers turned back into alfine's ids: checked against daisy's own scheduler."""

import random

import daisy
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.blockwise import BlockLayout
from alfine.blockwise.daisy_ids import agrees, daisy_number, grid_index


@pytest.mark.parametrize("roi, block, context", [
    (Roi((8, 0, -16), (40, 24, 40)), (16, 12, 16), (4, 0, 8)),  # last blocks cut to the region
    (Roi((0, 0), (100, 70)), (20, 30), (5, 5)),
    (Roi((0, 0, 0), (64, 64, 64)), (8, 8, 8), (0, 0, 0)),
])
def test_every_block_daisy_hands_out_maps_to_the_layout_id_of_its_write_region(roi, block, context):
    layout = BlockLayout(roi, Coordinate(block), Coordinate(context))
    total = roi.grow(layout.context, layout.context)
    task = daisy.Task("t", total, daisy.Roi((0,) * roi.dims, layout.block_shape + layout.context * 2),
                      daisy.Roi(layout.context, layout.block_shape), process_function=lambda b: None,
                      read_write_conflict=False, fit="shrink")
    scheduler = daisy.Scheduler(task)
    seen = []
    while (handed := scheduler.acquire_block("t")) is not None:
        index = grid_index(handed.block_id[1], roi.dims)
        assert layout.id_at(index) == layout.block_id_of(handed.write_roi)
        seen.append(layout.id_at(index))
        handed.status = daisy.BlockStatus.SUCCESS
        scheduler.release_block(handed)
    assert sorted(seen) == list(range(len(layout))) and agrees(layout, total)


def test_numbers_and_grid_positions_are_inverse():
    rng = random.Random(1)
    for dims in (1, 2, 3, 4):
        for _ in range(2000):
            index = tuple(rng.randrange(rng.choice([3, 50, 5000])) for _ in range(dims))
            assert grid_index(daisy_number(index), dims) == index
    assert [grid_index(n, 3) for n in range(4)] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)]


def test_a_numbering_that_disagrees_is_found_and_workers_fall_back_to_the_write_region(tmp_path, monkeypatch):
    from alfine.blockwise import DoneMarkers, daisy_ids, run_blocks, runner

    layout = BlockLayout(Roi((0, 0, 0), (24, 16, 40)), Coordinate(8, 8, 8), Coordinate(0, 0, 0))
    total = layout.roi
    with monkeypatch.context() as patched:
        patched.setattr(daisy_ids, "daisy_number", lambda index: sum(index))
        assert agrees(layout, total) is False
    monkeypatch.setattr(runner, "agrees", lambda layout, total: False)
    monkeypatch.chdir(tmp_path)  # daisy's worker logs
    markers = DoneMarkers(f"{tmp_path}/m", layout)
    assert run_blocks("ids", layout, RecordId(str(tmp_path)), markers, workers=2)["processed"] == len(layout)
    for block in layout:  # every block got the id of its own region
        assert (tmp_path / f"{block.id}").read_text() == str(block.write_roi)


class RecordId:
    """A block function writing its block's region into a file named by its id."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, block) -> None:
        with open(f"{self.folder}/{block.id}", "w") as f:
            f.write(str(block.write_roi))
