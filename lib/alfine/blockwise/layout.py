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

import math
from dataclasses import dataclass
from functools import cached_property

from funlib.geometry import Coordinate, Roi

from ..errors import UserError
from ..geometry import format_roi


class Block:
    """One block of ``layout``: its id (0..N-1), the region it writes and the region it reads (both computed
    when first asked for: a scheduler hands out many blocks whose regions only the block function reads)."""

    __slots__ = ("id", "layout", "_rois")

    def __init__(self, id: int, layout: BlockLayout):
        self.id = id
        self.layout = layout
        self._rois: tuple[Roi, Roi] | None = None

    @property
    def write_roi(self) -> Roi:
        if self._rois is None:
            self._rois = self.layout.rois_of(self.id)
        return self._rois[0]

    @property
    def read_roi(self) -> Roi:
        if self._rois is None:
            self._rois = self.layout.rois_of(self.id)
        return self._rois[1]

    def __eq__(self, other) -> bool:
        return isinstance(other, Block) and (self.id, self.layout) == (other.id, other.layout)

    __hash__ = None  # as its regions: funlib's Roi is not hashable

    def __repr__(self) -> str:
        return f"Block({self.id}, write_roi={self.write_roi}, read_roi={self.read_roi})"

    def __getstate__(self):
        return (self.id, self.layout)

    def __setstate__(self, state) -> None:
        self.id, self.layout = state
        self._rois = None

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

    @cached_property
    def _count(self) -> int:
        return math.prod(self.grid_shape)

    def __len__(self) -> int:
        return self._count

    @cached_property
    def _ints(self) -> tuple[tuple[int, ...], ...]:
        """Begin, end, block shape and context as plain ints (a worker computes thousands of blocks)."""
        return (tuple(map(int, self.roi.begin)), tuple(map(int, self.roi.end)), tuple(map(int, self.block_shape)),
                tuple(map(int, self.context)))

    def block(self, block_id: int) -> Block:
        """Block ``block_id``; an id outside 0..N-1 is a :class:`UserError`."""
        if not 0 <= block_id < len(self):
            raise UserError(f"--block-id {block_id} is out of range: this layout has blocks 0..{len(self) - 1}")
        return Block(block_id, self)

    def rois_of(self, block_id: int) -> tuple[Roi, Roi]:
        """The write and read regions of block ``block_id`` (0..N-1)."""
        roi_begin, roi_end, shape, context = self._ints
        index, rest = [], block_id
        for n in reversed(self.grid_shape):  # C order: the last axis is the fastest
            rest, i = divmod(rest, n)
            index.append(i)
        begin = [b + i * s for b, i, s in zip(roi_begin, reversed(index), shape, strict=True)]
        end = [min(b + s, e) for b, s, e in zip(begin, shape, roi_end, strict=True)]
        write = Roi(begin, [e - b for b, e in zip(begin, end, strict=True)])
        read = Roi([b - c for b, c in zip(begin, context, strict=True)],
                   [e - b + 2 * c for b, e, c in zip(begin, end, context, strict=True)])
        return write, read

    def __iter__(self):
        return (self.block(i) for i in range(len(self)))

    def block_id_of(self, write_roi: Roi) -> int:
        """The id of the block that writes ``write_roi`` (as daisy hands it over)."""
        roi_begin, _, shape, _ = self._ints
        index = []
        for b, r, s in zip(write_roi.begin, roi_begin, shape, strict=True):
            i, off = divmod(int(b) - r, s)
            index.append(i if off == 0 else -1)
        block_id = self.id_at(index)
        if block_id is None:
            raise ValueError(f"{write_roi} is not a block of {self.to_json()}")
        return block_id

    def id_at(self, index) -> int | None:
        """The id of the block at grid position ``index`` (C order), or None outside the grid."""
        block_id = 0
        for i, n in zip(index, self.grid_shape, strict=True):
            if not 0 <= i < n:
                return None
            block_id = block_id * n + i
        return block_id

    def to_json(self) -> dict:
        return {"roi": format_roi(self.roi), "block_shape": list(self.block_shape), "context": list(self.context)}

    @classmethod
    def from_json(cls, data: dict) -> BlockLayout:
        """The layout :meth:`to_json` gave."""
        from ..geometry import parse_roi

        return cls(parse_roi(data["roi"]), Coordinate(data["block_shape"]), Coordinate(data["context"]))

    @property
    def fingerprint(self) -> str:
        """A short hash that changes whenever the blocks would."""
        import hashlib
        import json

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
