"""Block layouts: how a region is cut into blocks, and the ids of the blocks.

::

        total roi (what is written)
     ┌─────────────┬─────────────┬────────┐
     │  block 0    │  block 1    │ blk 2  │   blocks tile the total roi in C order
     │ ┌─────────┐ │             │(shrunk)│   (z slowest, x fastest); ids 0..N-1;
     │ │ write   │ │             │        │   the last block of an axis is cut to
     │ └─────────┘ │             │        │   the total roi.
     ├─────────────┼─────────────┼────────┤
   ┌─┼─ ─ ─ ─ ─ ─ ─┼─┐           │        │   a block reads its write roi grown by
   │ │  block 3    │ │  block 4  │ blk 5  │   `context` on every side (beyond the
   │ │             │ │           │        │   total roi too: readers fill or mark
   └─┼─ ─ ─ ─ ─ ─ ─┼─┘ read roi  │        │   what lies outside the volume).
     └─────────────┴─────────────┴────────┘

All regions are ``funlib.geometry`` ``Roi`` in world units.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import UserError
from ..geometry import format_roi


@dataclass(frozen=True)
class Block:
    """One block: its id (0..N-1), the region it writes and the region it reads."""

    id: int
    write_roi: Roi
    read_roi: Roi

    def describe(self) -> dict:
        return {"block_id": self.id, "write_roi": format_roi(self.write_roi), "read_roi": format_roi(self.read_roi)}


@dataclass(frozen=True)
class BlockLayout:
    """``roi`` cut into blocks of ``block_shape`` (world units), each reading ``context`` more per side."""

    roi: Roi
    block_shape: Coordinate
    context: Coordinate

    def __post_init__(self):
        object.__setattr__(self, "block_shape", Coordinate(self.block_shape))
        object.__setattr__(self, "context", Coordinate(self.context))
        if len(self.block_shape) != self.roi.dims or len(self.context) != self.roi.dims:
            raise UserError(f"block shape {tuple(self.block_shape)} and context {tuple(self.context)} "
                            f"must have the {self.roi.dims} axes of the region {format_roi(self.roi)}")
        if any(b <= 0 for b in self.block_shape) or any(c < 0 for c in self.context):
            raise UserError(f"block shape {tuple(self.block_shape)} must be positive and context "
                            f"{tuple(self.context)} non-negative")

    @cached_property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(-(-s // b) for s, b in zip(self.roi.shape, self.block_shape, strict=True))

    def __len__(self) -> int:
        return int(np.prod(self.grid_shape))

    def block(self, block_id: int) -> Block:
        """Block ``block_id``; an id outside 0..N-1 is a :class:`UserError`."""
        if not 0 <= block_id < len(self):
            raise UserError(f"--block-id {block_id} is out of range: this layout has blocks 0..{len(self) - 1}")
        index = Coordinate(np.unravel_index(block_id, self.grid_shape))
        begin = self.roi.begin + index * self.block_shape
        write = Roi(begin, self.block_shape).intersect(self.roi)
        return Block(block_id, write, write.grow(self.context, self.context))

    def __iter__(self):
        return (self.block(i) for i in range(len(self)))

    def block_id_of(self, write_roi: Roi) -> int:
        """The id of the block that writes ``write_roi`` (as daisy hands it over)."""
        index = (write_roi.begin - self.roi.begin) / self.block_shape
        return int(np.ravel_multi_index(tuple(index), self.grid_shape))

    def to_json(self) -> dict:
        return {"roi": format_roi(self.roi), "block_shape": list(self.block_shape), "context": list(self.context)}

    @property
    def fingerprint(self) -> str:
        """A short hash that changes whenever the blocks would."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def check_chunk_aligned(layout: BlockLayout, chunk_world: Coordinate, origin: Coordinate, what: str) -> None:
    """Refuse a layout whose blocks would share chunks of an output (chunks start at ``origin``); along an axis
    with a single block (the block covers the region), any block shape is aligned."""
    shapes = zip(layout.block_shape, chunk_world, layout.roi.shape, strict=True)
    misaligned = any(b % c for b, c, r in shapes if b < r) or any(
        (r - o) % c for r, o, c in zip(layout.roi.begin, origin, chunk_world, strict=True)
    )
    if misaligned:
        raise UserError(
            f"{what}: blocks of {tuple(layout.block_shape)} from {tuple(layout.roi.begin)} (world units) are not "
            f"aligned to its chunks of {tuple(chunk_world)} from {tuple(origin)}; two workers would write one chunk. "
            "Use a --block-shape that is a multiple of the chunk shape and a --roi that starts on a chunk"
        )
