"""Writing a synthetic EM-like volume (raw, labels, classes, mask) block by block.

The content comes from :mod:`.generator`, a pure function of world position and seed, so any
block layout and any number of workers write the same volume. The blocks follow the contract of
every blockwise command (:mod:`alfine.blockwise.contract`: ``--list-blocks``, ``--block-id``, done
markers, ``--workers`` on daisy, a re-run skipping what is done); the markers are those of ``raw``.
A finished volume records its parameters on its container; asking again for the same volume reuses it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..blockwise import contract
from ..blockwise.contract import WHOLE, BlockRequest
from ..blockwise.layout import Block, BlockLayout
from ..errors import UserError
from ..volumes import open_volume, parse_volume_url, prepare_volume
from .generator import VERSION, SyntheticParams, generate_block

log = logging.getLogger(__name__)

ARRAYS = {"raw": np.uint8, "labels": np.uint64, "classes": np.uint8, "mask": np.uint8}
DONE_ATTRIBUTE = "alfine_synthesize"  # the parameters of the volume the container holds whole
WRITING_ATTRIBUTE = "alfine_synthesize_writing"  # those of the volume whose blocks are being written


class SyntheticBlock:
    """Writes one block of the synthetic volume ``spec`` into ``container`` (picklable: daisy's workers get it)."""

    def __init__(self, container: str, spec: dict):
        self.container = container
        self.spec = spec

    def __call__(self, block: Block) -> None:
        voxel_size, offset = Coordinate(self.spec["voxel_size"]), Coordinate(self.spec["offset"])
        roi = block.write_roi
        begin, size = (roi.begin - offset) / voxel_size, roi.shape / voxel_size
        arrays = generate_block(tuple(self.spec["shape"]), tuple(voxel_size), tuple(offset), tuple(begin),
                                tuple(size), SyntheticParams(**self.spec["params"]))
        for name in ARRAYS:
            open_volume(f"{self.container}/{name}", mode="r+").write(roi, arrays[name])


def synthesize(
    container: str,
    shape: tuple[int, ...],
    voxel_size: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
    params: SyntheticParams | None = None,
    storage: dict[str, Any] | None = None,
    request: BlockRequest = WHOLE,
) -> dict:
    """Write ``raw``, ``labels``, ``classes`` and ``mask`` into ``container`` over the blocks ``request`` asks for
    (its ``block_shape`` defaults to the chunk or shard shape and must be a multiple of it, so that no two
    workers write one chunk); a JSON-ready summary. ``storage`` holds ``prepare_volume`` options (chunk shape,
    zarr format, shards, compression, overwrite).
    """
    params = params or SyntheticParams()
    storage = dict(storage or {})
    dims = len(shape)
    if dims not in (2, 3):
        raise UserError(f"--shape must have 2 or 3 axes, got {shape}")
    if request.roi is not None:
        raise UserError("--roi: synthesize writes the whole --shape (choose the region with --shape and --offset)")
    voxel_size = Coordinate(voxel_size or (1,) * dims)
    offset = Coordinate(offset or (0,) * dims)
    for name, value in (("--voxel-size", voxel_size), ("--offset", offset)):
        if len(value) != dims:
            raise UserError(f"{name} {tuple(value)} has {len(value)} axes, --shape has {dims}")
    if any(o % v for o, v in zip(offset, voxel_size, strict=True)):
        raise UserError(f"--offset {tuple(offset)} must be a multiple of --voxel-size {tuple(voxel_size)}")
    chunk_shape = Coordinate(storage.pop("chunk_shape", None) or (64,) * dims)[-dims:]
    unit = Coordinate(storage.get("shards") or chunk_shape)
    block_shape = Coordinate(request.block_shape or unit)
    if len(block_shape) != dims or any(b % c for b, c in zip(block_shape, unit, strict=True)):
        raise UserError(f"--block-shape {tuple(block_shape)} must be a multiple of the chunk/shard shape {tuple(unit)}")
    workers = request.workers
    if workers > 1 and parse_volume_url(f"{container}/raw").protocol == "memory":
        workers = 1  # other processes cannot see this process's memory store
    roi = Roi(offset, Coordinate(shape) * voxel_size)
    blocks = BlockLayout(roi, block_shape * voxel_size, Coordinate((0,) * dims))
    if request.list_blocks:
        return contract.print_blocks(blocks, voxel_size)
    contract.check_request(blocks, request.block_id, workers)
    spec = {"shape": list(shape), "voxel_size": list(voxel_size), "offset": list(offset),
            "params": dataclasses.asdict(params), "generator_version": VERSION}

    recorded = _recorded_specs(container)
    if recorded.get(DONE_ATTRIBUTE) == spec and not storage.get("overwrite"):
        log.info("%s already holds this synthetic volume; reusing it", container)
        return _summary(container, spec, reused=True)
    # another volume there (other parameters or generator): its arrays are made anew, so its done blocks go too
    other = any(value not in (None, spec) for value in recorded.values())
    for name, dtype in ARRAYS.items():
        prepare_volume(f"{container}/{name}", roi, voxel_size, dtype, chunk_shape, label=name != "raw",
                       **{**storage, "overwrite": bool(storage.get("overwrite") or other)})
    _record_specs(container, {WRITING_ATTRIBUTE: spec, DONE_ATTRIBUTE: None})
    raw = open_volume(f"{container}/raw", mode="r+")
    counts = contract.run("synthesize", blocks, raw, SyntheticBlock(container, spec), workers, request.block_id,
                          request.launcher)
    if request.block_id is None:
        _record_specs(container, {DONE_ATTRIBUTE: spec})
    return {**_summary(container, spec, reused=False), **counts}


def _recorded_specs(container: str) -> dict:
    """The volume ``container`` holds whole (:data:`DONE_ATTRIBUTE`) and the one last started there
    (:data:`WRITING_ATTRIBUTE`), as recorded on it; none for a container that does not exist yet."""
    import zarr

    try:
        attrs = zarr.open_group(container, mode="r").attrs
    except Exception:  # no container yet
        return {}
    return {key: attrs.get(key) for key in (DONE_ATTRIBUTE, WRITING_ATTRIBUTE)}


def _record_specs(container: str, specs: dict) -> None:
    """Record ``specs`` (attribute -> spec, None: remove) on ``container``."""
    import zarr

    attrs = zarr.open_group(container, mode="a").attrs
    for key, spec in specs.items():
        if spec is not None:
            attrs[key] = spec
        elif key in attrs:
            del attrs[key]


def _summary(container: str, spec: dict, reused: bool) -> dict:
    volumes = {name: open_volume(f"{container}/{name}").describe() for name in ARRAYS}
    labels = volumes["labels"]
    return {"container": container, "reused": reused, "shape": spec["shape"], "voxel_size": spec["voxel_size"],
            "offset": spec["offset"], "seed": spec["params"]["seed"], "arrays": volumes,
            "voxels": int(np.prod(labels["shape"]))}


def write_preview(container: str, path: str) -> str:
    """A PNG of the central z slice: raw, labels, classes and mask side by side."""
    from ..png import label_colors, write_png

    raw = open_volume(f"{container}/raw")
    dims = raw.roi.dims
    if dims == 3:
        z = raw.roi.begin[0] + (raw.roi.shape[0] // raw.voxel_size[0] // 2) * raw.voxel_size[0]
        section = Roi((z,) + tuple(raw.roi.begin[1:]), (raw.voxel_size[0],) + tuple(raw.roi.shape[1:]))
    else:
        section = raw.roi

    def plane(name: str) -> np.ndarray:
        data = open_volume(f"{container}/{name}").read(section)
        return data.reshape(data.shape[-2:])

    grey = plane("raw")
    panels = [np.repeat(grey[..., None], 3, axis=-1), label_colors(plane("labels")),
              label_colors(plane("classes")), np.repeat((plane("mask") * 255)[..., None], 3, axis=-1)]
    gap = np.full((grey.shape[0], 4, 3), 255, np.uint8)
    write_png(path, np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1))
    return path
