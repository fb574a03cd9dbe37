"""The block contract every blockwise command shares: choosing the region and layout, listing blocks, running
one block (``--block-id``) or all of them on daisy (``--workers``), resumable through done markers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from funlib.geometry import Coordinate, Roi

from ..errors import UserError
from ..geometry import check_aligned, format_roi
from .layout import Block, BlockLayout, check_chunk_aligned
from .markers import DoneMarkers, markers_url_for
from .runner import check_request, read_first_block_ahead, run_blocks  # noqa: F401  (for the jobs)

if TYPE_CHECKING:
    from ..volumes import Volume


@dataclass(frozen=True)
class BlockRequest:
    """Which blocks a blockwise command runs and how: the region (None: the whole input), the write shape in
    voxels (None: the command's default), one block (``block_id``) or all, only listing them, the number of
    workers and the command prefix that starts each (``launcher``)."""

    roi: Roi | None = None
    block_shape: tuple[int, ...] | None = None
    block_id: int | None = None
    list_blocks: bool = False
    workers: int = 1
    launcher: str | None = None


WHOLE = BlockRequest()
"""Every block of the whole region, in this process: the request of a library call that says nothing else."""

STORAGE = {"chunk_shape": (64, 64, 64), "zarr_format": 2, "shards": None, "compression": "zstd", "overwrite": False}
"""How a blockwise command stores what it creates unless told otherwise (``prepare_volume``'s keywords)."""


def storage_of(storage: dict | None, **defaults) -> dict:
    """``storage`` (some of :data:`STORAGE`'s keys) completed with ``defaults``, then :data:`STORAGE`; an unknown
    key is an error."""
    unknown = (set(storage or {}) | set(defaults)) - set(STORAGE)
    if unknown:
        raise TypeError(f"unknown storage option(s) {sorted(unknown)}; known: {sorted(STORAGE)}")
    return {**STORAGE, **defaults, **(storage or {})}


def region(source: Volume, roi: Roi | None) -> Roi:
    """``roi`` (default: all of ``source``), checked to lie on its voxel grid and inside it."""
    if roi is None:
        return source.roi
    check_aligned(roi, source.voxel_size, source.offset, "--roi")
    if not source.roi.contains(roi):
        raise UserError(f"--roi {format_roi(roi)} is not inside {source.url.url} ({format_roi(source.roi)})")
    return roi


def layout(roi: Roi, voxel_size: Coordinate, block_shape, default_block, context: Coordinate) -> BlockLayout:
    """Blocks of ``block_shape`` voxels (default ``default_block``) over ``roi``, reading ``context`` more."""
    shape = Coordinate(block_shape or default_block)
    if len(shape) != roi.dims:
        raise UserError(f"--block-shape {tuple(shape)} has {len(shape)} axes, the volume {roi.dims}")
    return BlockLayout(roi, shape * voxel_size, context)


def check_plan(blocks: BlockLayout, output_url: str, chunk_voxels, voxel_size: Coordinate, block_id: int | None,
               workers: int) -> None:
    """Refuse before the output ``output_url`` is created what :func:`run` would refuse after: a block id out of
    range, fewer than one worker, blocks that would share its chunks of ``chunk_voxels`` (or shards)."""
    check_request(blocks, block_id, workers)
    check_chunk_aligned(blocks, Coordinate(chunk_voxels) * voxel_size, blocks.roi.begin, output_url)


def check_distinct(**urls: str | None) -> None:
    """A :class:`UserError` when two of the named volumes (``weights=URL``, ...) are one array."""
    from ..volumes import parse_volume_url

    seen: dict[tuple, str] = {}
    for name, url in urls.items():
        if not url:
            continue
        parsed = parse_volume_url(url)
        key = (parsed.container.rstrip("/"), parsed.path.strip("/"))
        flag = "--" + name.replace("_", "-")
        if key in seen:
            raise UserError(f"{flag} {url} is the same array as {seen[key]}; give each its own")
        seen[key] = f"{flag} {url}"


def geometry(blocks: BlockLayout, voxel_size: Coordinate) -> dict:
    """The blocks' geometry as every blockwise summary reports it, each key naming its unit: the region in
    world units (``roi_world``), the voxel size and the block shape in voxels (``block_shape_voxels``)."""
    return {"roi_world": format_roi(blocks.roi), "voxel_size": list(voxel_size),
            "block_shape_voxels": list(blocks.block_shape / Coordinate(voxel_size))}


def print_blocks(blocks: BlockLayout, voxel_size: Coordinate) -> dict:
    """Write one JSON line per block to stdout (``--list-blocks``; regions in world units); the summary of the
    listing."""
    for block in blocks:
        sys.stdout.write(json.dumps(block.describe()) + "\n")
    return {"blocks": len(blocks), **geometry(blocks, voxel_size)}


def run(name: str, blocks: BlockLayout, output: Volume, process: Callable[[Block], None], workers: int = 1,
        block_id: int | None = None, launcher: str | None = None) -> dict:
    """Run ``process`` over ``blocks`` writing ``output``: chunk-aligned, resumable, one block or all."""
    check_chunk_aligned(blocks, output.chunk_shape * output.voxel_size, output.offset, output.url.url)
    markers = DoneMarkers(markers_url_for(output.url.url), blocks, output.array.attrs.get("alfine_created"))
    counts = run_blocks(name, blocks, process, markers, workers=workers, block_id=block_id, launcher=launcher)
    return {**geometry(blocks, output.voxel_size), **counts}
