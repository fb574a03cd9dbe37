"""The daisy task of a layout: its blocks as a row of N units, whose numbers are alfine's ids.

daisy schedules a layout's blocks as a one-axis task of ``len(layout)`` unit blocks (block ``i`` writes
``[i, i + 1)``); the blocks' regions, reads and context are alfine's (:class:`~alfine.blockwise.layout.Block`),
which daisy never needs: blocks are independent (no read/write conflicts), so their geometry plays no part
in scheduling. daisy numbers the blocks of a one-axis task by their position (its number of the block at
grid index ``(i,)`` is the Cantor number ``C(i, 1) = i``), so a worker reads a block's id off daisy's number,
which costs nothing, where asking a daisy block for its region builds a ``Roi`` (tens of microseconds, as much
as daisy's own work per block when blocks are small), and where turning a spatial grid's Cantor numbers back
into grid positions took a few microseconds more a block. The numbering is daisy's, not a documented promise:
:func:`agrees` checks it against daisy's own blocks before a run relies on it, and workers fall back to the
block's region where it does not hold. Blocks go out in id order, the layout's C order.
"""

from __future__ import annotations


def task_rois(blocks: int):
    """The total, read and write regions (``daisy.Roi``) of the task of ``blocks`` unit blocks."""
    import daisy

    return daisy.Roi((0,), (blocks,)), daisy.Roi((0,), (1,)), daisy.Roi((0,), (1,))


def id_of_region(write_roi) -> int:
    """The id of the block whose daisy region is ``write_roi`` (the fallback of :func:`agrees`)."""
    return int(write_roi.begin[0])


def agrees(blocks: int) -> bool:
    """Whether daisy numbers the unit blocks of a task of ``blocks`` by their position, checked on a few blocks
    against ``daisy.Block``."""
    import daisy

    total, _, _ = task_rois(blocks)
    for block_id in sorted({0, 1, blocks // 2, blocks - 1} & set(range(blocks))):
        region = daisy.Roi((block_id,), (1,))
        if daisy.Block(total, region, region).block_id[1] != block_id:
            return False
    return True
