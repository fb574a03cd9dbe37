"""synthesize: an EM-like volume (raw, labels, classes, mask) written block by block, and a preview of it."""

from __future__ import annotations

from ..blockwise.contract import WHOLE, BlockRequest
from ..synthetic import SyntheticParams
from ..synthetic.writer import synthesize as write_volume
from ..synthetic.writer import write_preview

__all__ = ["SyntheticParams", "synthesize"]


def synthesize(output: str, shape: tuple[int, ...], voxel_size: tuple[int, ...] | None = None,
               offset: tuple[int, ...] | None = None, params: SyntheticParams | None = None,
               storage: dict | None = None, request: BlockRequest = WHOLE, preview: str | None = None) -> dict:
    """Write the synthetic volume of ``params`` (its seed and look) of ``shape`` voxels of ``voxel_size`` at
    ``offset`` into the container ``output`` over the blocks ``request`` asks for, stored as ``storage`` says,
    and (once the volume is whole) a PNG of its central slice to ``preview``; a summary."""
    summary = write_volume(output, shape, voxel_size, offset, params, storage, request)
    if preview and not request.list_blocks and request.block_id is None:
        summary["preview"] = write_preview(output, preview)
    return summary
