"""The blocks of a blockwise prediction, from an architecture's shapes (no torch).

A block writes one network output: ``output_shape(input_shape)`` output voxels (voxel size
``raw / upsample_factor``), and reads its write region grown by the network's context, which
is exactly the network's input region. The last block of an axis is cut to the region by
:class:`~alfine.blockwise.BlockLayout`; it still runs the network on a full input
(:func:`full_read_roi`) and keeps only the part of the output it writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from funlib.geometry import Coordinate, Roi

from ..architectures import ArchitectureConfig
from ..blockwise import Block, BlockLayout
from ..errors import UserError


def output_voxel_size(architecture: ArchitectureConfig, raw_voxel_size: Sequence[int]) -> Coordinate:
    """``raw_voxel_size / upsample_factor``; a :class:`UserError` if that is not whole on every axis."""
    raw, factor = Coordinate(raw_voxel_size), Coordinate(architecture.upsample_factor())
    if len(raw) != architecture.dims():
        raise UserError(f"raw voxel size {tuple(raw)} has {len(raw)} axes; the architecture is "
                        f"{architecture.dims()}D")
    if any(r % f for r, f in zip(raw, factor, strict=True)):
        raise UserError(f"raw voxel size {tuple(raw)} is not divisible by the architecture's upsample factor "
                        f"{tuple(factor)}")
    return raw / factor


def prediction_layout(
    architecture: ArchitectureConfig,
    raw_voxel_size: Sequence[int],
    roi: Roi,
    input_shape: Sequence[int] | None = None,
) -> tuple[BlockLayout, Coordinate]:
    """``(layout, output_voxel_size)``: blocks over ``roi`` (world units) that each write one network
    output of ``input_shape`` (default ``architecture.input_shape``, checked to be valid) and read
    its input (the write region grown by ``architecture.context()`` raw voxels per side)."""
    shape = tuple(int(s) for s in (input_shape if input_shape is not None else architecture.input_shape))
    architecture.check_input_shape(shape)
    out_voxel = output_voxel_size(architecture, raw_voxel_size)
    block = Coordinate(architecture.output_shape(shape)) * out_voxel
    context = Coordinate(architecture.context()) * Coordinate(raw_voxel_size)
    return BlockLayout(roi, block, context), out_voxel


def full_read_roi(layout: BlockLayout, block: Block) -> Roi:
    """The whole network input of ``block``: its read region before any cut at the end of the layout."""
    return Roi(block.read_roi.begin, layout.block_shape + layout.context * 2)
