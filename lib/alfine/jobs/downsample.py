"""downsample: coarser scale levels of an OME-NGFF image, block by block, for viewers.

Level ``k`` is made from level ``k-1`` (mean for raw data and predictions, the most frequent id
for segmentations), one level after the other; each level is its own blockwise run with the
usual contract (blocks of its chunks, done markers beside it, resumable, ``--block-id``), and
is listed in the image's multiscales as soon as it is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..blockwise import contract as blockwise
from ..blockwise.contract import WHOLE, BlockRequest
from ..errors import UserError
from ..geometry import region_mask
from ..volumes.pyramid import Image, default_factor, level_geometry, level_roi, reduce_mean, reduce_mode


@dataclass
class DownsampleBlock:
    """The block function of one level (picklable: URLs and numbers only)."""

    image: str
    level: int
    factor: tuple[int, ...]
    label: bool

    def __call__(self, block) -> None:
        image = Image(self.image)
        finer = image.open_level(self.level - 1)
        output = image.open_level(self.level, "r+")
        data = finer.read(block.write_roi, fill_value=0)
        inside = region_mask(finer.roi, block.write_roi, finer.voxel_size)
        if self.label:
            result = reduce_mode(data, inside, self.factor)
        else:
            result = reduce_mean(data, inside, self.factor, finer.geometry.channel_dims)
            if output.scale is None and output.dtype.kind in "ui":
                info = np.iinfo(output.dtype)
                result = np.clip(np.rint(result), info.min, info.max)
        output.write(block.write_roi, result.astype(np.float32 if output.scale else output.dtype))


def plan_factors(voxel_size: Coordinate, spatial_shape: Coordinate, chunk_shape: Coordinate, levels: int | None,
                 factor: tuple[int, ...] | None) -> list[Coordinate]:
    """The factor of each coarser level: ``levels`` of them (default: until a level fits in one chunk)."""
    if factor is not None and (len(factor) != len(voxel_size) or any(f < 1 for f in factor)):
        raise UserError(f"--factor {factor}: expected {len(voxel_size)} whole numbers of 1 or more")
    if levels is not None and levels < 1:
        raise UserError(f"--levels {levels}: expected 1 or more")
    factors: list[Coordinate] = []
    while (len(factors) < levels) if levels is not None else (
            any(s > c for s, c in zip(spatial_shape, chunk_shape, strict=True)) and len(factors) < 20):
        step = Coordinate(factor) if factor is not None else default_factor(voxel_size)
        if all(f == 1 for f in step):
            raise UserError(f"--factor {factor} does not make a level coarser")
        factors.append(step)
        voxel_size = voxel_size * step
        spatial_shape = Coordinate(math.ceil(s / f) for s, f in zip(spatial_shape, step, strict=True))
    return factors


def downsample(image_url: str, *, levels: int | None = None, level: int | None = None,
               factor: tuple[int, ...] | None = None, root: bool = False, request: BlockRequest = WHOLE) -> dict:
    """Write levels 1..``levels`` of the image at ``image_url`` (or only ``level``, from the level before it) and
    list them in its multiscales; a JSON-ready summary. ``request.roi`` (world units) limits the blocks to those
    that cover it; ``request.block_id`` runs one block of the one level named by ``level``. ``root`` then also
    describes the image on its container's root (see :meth:`Image.describe_on_root`), once every level is
    listed."""
    block_id, list_blocks = request.block_id, request.list_blocks
    image = Image(image_url)
    if root:
        image.check_root()
    base = image.open_level(0)
    factors = plan_factors(base.voxel_size, base.spatial_shape, base.chunk_shape, levels, factor)
    if level is not None and not 1 <= level <= max(len(factors), 1):
        raise UserError(f"--level {level}: this image gets levels 1..{len(factors)} (see --levels)")
    if (block_id is not None or list_blocks) and level is None and len(factors) > 1:
        raise UserError("--block-id and --list-blocks need --level K: levels are made one after the other")
    chosen = [level] if level is not None else list(range(1, len(factors) + 1))
    if level is not None and level > len(factors):  # --level beyond the default plan: the default factor
        factors = factors + [Coordinate(factor) if factor else default_factor(base.voxel_size)]
    if level is not None and level - 1 not in image.existing_levels():
        raise UserError(f"--level {level}: level {level - 1} of {image_url} does not exist yet; make it first")
    summaries = []
    for k in chosen:
        summaries.append(_one_level(image, k, factors[k - 1], request))
    if root and not list_blocks and block_id is None:
        image.describe_on_root()
    return {"image": image_url, "label": image.label, "method": "mode" if image.label else "mean",
            "levels": summaries}


def _one_level(image: Image, level: int, factor: Coordinate, request: BlockRequest) -> dict:
    finer = image.open_level(level - 1)
    geometry = level_geometry(finer.geometry, factor)
    whole = level_roi(finer.roi, geometry)
    chunks = Coordinate(min(c, s) for c, s in zip(finer.chunk_shape, whole.shape / geometry.voxel_size,
                                                  strict=True))
    region = whole if request.roi is None else _snapped(request.roi, whole, chunks * geometry.voxel_size)
    blocks = blockwise.layout(region, geometry.voxel_size, request.block_shape, chunks,
                              Coordinate((0,) * region.dims))
    if request.list_blocks:
        return {"level": level, **blockwise.print_blocks(blocks, geometry.voxel_size)}
    blockwise.check_plan(blocks, image.level_url(level), chunks, geometry.voxel_size, request.block_id,
                         request.workers)
    output = image.prepare_level(level, factor)
    process = DownsampleBlock(image.url.url, level, tuple(factor), image.label)
    counts = blockwise.run(f"downsample-s{level}", blocks, output, process, request.workers,
                            request.block_id, request.launcher)
    return {"level": level, "url": image.level_url(level), "factor": list(factor), "shape": list(output.shape),
            **blockwise.geometry(blocks, geometry.voxel_size), **counts}


def _snapped(roi: Roi, whole: Roi, chunk_world: Coordinate) -> Roi:
    """``roi`` grown outwards to whole chunks of a level covering ``whole``, and kept inside it."""
    if roi.dims != whole.dims:
        raise UserError(f"--roi has {roi.dims} dimensions, the image {whole.dims}")
    begin = Coordinate(b + math.floor((r - b) / c) * c for r, b, c in zip(roi.begin, whole.begin, chunk_world,
                                                                             strict=True))
    end = Coordinate(b + math.ceil((r - b) / c) * c for r, b, c in zip(roi.end, whole.begin, chunk_world,
                                                                        strict=True))
    snapped = Roi(begin, end - begin).intersect(whole)
    if snapped.empty:
        raise UserError(f"--roi {roi} does not overlap the image's region {whole}")
    return snapped


def status(image_url: str) -> dict:
    """``--status``: the blocks done of each level the image holds beyond ``s0`` (each level keeps its own done
    markers); runs and creates nothing. A :class:`UserError` when ``image_url`` is not an image."""
    from ..blockwise.markers import markers_url_for
    from ..blockwise.status import step_status, summarise

    image = Image(image_url)
    found = {}
    for level in image.existing_levels()[1:]:
        volume = image.open_level(level)
        found[f"s{level}"] = step_status(markers_url_for(volume.url.url), volume.array.attrs.get("alfine_created"))
    return summarise(image_url, found)
