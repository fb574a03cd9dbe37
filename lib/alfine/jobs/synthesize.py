"""synthesize: an EM-like volume (raw, labels, classes, mask) written block by block, and a preview of it."""

from __future__ import annotations

from ..synthesis import synthesize as write_volume
from ..synthesis import write_preview
from ..synthetic import SyntheticParams

__all__ = ["SyntheticParams", "synthesize"]


def synthesize(output: str, shape: tuple[int, ...], voxel_size: tuple[int, ...] | None = None,
               offset: tuple[int, ...] | None = None, params: SyntheticParams | None = None,
               block_shape: tuple[int, ...] | None = None, storage: dict | None = None, workers: int = 1,
               preview: str | None = None) -> dict:
    """Write the synthetic volume of ``params`` (its seed and look) of ``shape`` voxels of ``voxel_size`` at
    ``offset`` into the container ``output`` in blocks of ``block_shape`` with ``workers`` processes, stored as
    ``storage`` says, and a PNG of its central slice to ``preview``; a summary."""
    summary = write_volume(output, shape, voxel_size, offset, params, block_shape, storage, workers)
    if preview:
        summary["preview"] = write_preview(output, preview)
    return summary
