"""Writing a synthetic EM-like volume (raw, labels, classes, mask) block by block.

The content comes from :mod:`alfine.synthetic`, a pure function of world position and
seed, so any block layout and any number of workers write the same volume. A finished
volume records its parameters on its container; asking again for the same volume reuses it.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from . import progress
from .errors import UserError
from .synthetic import VERSION, SyntheticParams, generate_block
from .volumes import open_volume, parse_volume_url, prepare_volume

log = logging.getLogger(__name__)

ARRAYS = {"raw": np.uint8, "labels": np.uint64, "classes": np.uint8, "mask": np.uint8}
DONE_ATTRIBUTE = "alfine_synthesize"


def _blocks(shape: Coordinate, block_shape: Coordinate) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(begin, shape) in voxels of every block of a grid over ``shape``, clipped at its end."""
    grid = [range(0, s, b) for s, b in zip(shape, block_shape, strict=True)]
    blocks = []
    for begin in np.array(np.meshgrid(*grid, indexing="ij")).reshape(len(shape), -1).T:
        size = tuple(min(b, s - o) for o, b, s in zip(begin, block_shape, shape, strict=True))
        blocks.append((tuple(int(v) for v in begin), size))
    return blocks


def _write_block(container: str, spec: dict, begin: tuple[int, ...], size: tuple[int, ...]) -> None:
    params = SyntheticParams(**spec["params"])
    voxel_size = Coordinate(spec["voxel_size"])
    offset = Coordinate(spec["offset"])
    arrays = generate_block(tuple(spec["shape"]), tuple(voxel_size), tuple(offset), begin, size, params)
    roi = Roi(offset + Coordinate(begin) * voxel_size, Coordinate(size) * voxel_size)
    for name in ARRAYS:
        open_volume(f"{container}/{name}", mode="r+").write(roi, arrays[name])


def synthesize(
    container: str,
    shape: tuple[int, ...],
    voxel_size: tuple[int, ...] | None = None,
    offset: tuple[int, ...] | None = None,
    params: SyntheticParams | None = None,
    block_shape: tuple[int, ...] | None = None,
    storage: dict[str, Any] | None = None,
    workers: int = 1,
) -> dict:
    """Write ``raw``, ``labels``, ``classes`` and ``mask`` into ``container``; a JSON-ready summary.

    ``storage`` holds ``prepare_volume`` options (chunk shape, zarr format, shards,
    compression, overwrite). ``block_shape`` (default: the chunk shape) must be a multiple
    of the chunk (or shard) shape so that no two workers write one chunk.
    """
    params = params or SyntheticParams()
    storage = dict(storage or {})
    dims = len(shape)
    if dims not in (2, 3):
        raise UserError(f"--shape must have 2 or 3 axes, got {shape}")
    voxel_size = Coordinate(voxel_size or (1,) * dims)
    offset = Coordinate(offset or (0,) * dims)
    for name, value in (("--voxel-size", voxel_size), ("--offset", offset)):
        if len(value) != dims:
            raise UserError(f"{name} {tuple(value)} has {len(value)} axes, --shape has {dims}")
    if any(o % v for o, v in zip(offset, voxel_size, strict=True)):
        raise UserError(f"--offset {tuple(offset)} must be a multiple of --voxel-size {tuple(voxel_size)}")
    chunk_shape = Coordinate(storage.pop("chunk_shape", None) or (64,) * dims)[-dims:]
    unit = Coordinate(storage.get("shards") or chunk_shape)
    block_shape = Coordinate(block_shape or unit)
    if len(block_shape) != dims or any(b % c for b, c in zip(block_shape, unit, strict=True)):
        raise UserError(f"--block-shape {tuple(block_shape)} must be a multiple of the chunk/shard shape {tuple(unit)}")
    if workers > 1 and parse_volume_url(f"{container}/raw").protocol == "memory":
        workers = 1  # other processes cannot see this process's memory store
    roi = Roi(offset, Coordinate(shape) * voxel_size)
    spec = {"shape": list(shape), "voxel_size": list(voxel_size), "offset": list(offset),
            "params": dataclasses.asdict(params), "generator_version": VERSION}

    done = _finished_spec(container)
    if done == spec and not storage.get("overwrite"):
        log.info("%s already holds this synthetic volume; reusing it", container)
        return _summary(container, spec, reused=True)
    for name, dtype in ARRAYS.items():
        prepare_volume(f"{container}/{name}", roi, voxel_size, dtype, chunk_shape, label=name != "raw", **storage)
    _set_finished_spec(container, None)

    blocks = _blocks(Coordinate(shape), block_shape)
    log.info("writing %d blocks of %s voxels with %d worker(s)", len(blocks), tuple(block_shape), workers)
    with progress.bar(total=len(blocks), desc="synthesize", unit="block") as bar:
        if workers <= 1:
            for begin, size in blocks:
                _write_block(container, spec, begin, size)
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for future in [pool.submit(_write_block, container, spec, b, s) for b, s in blocks]:
                    future.result()
                    bar.update()
    _set_finished_spec(container, spec)
    return _summary(container, spec, reused=False)


def _container_attrs(container: str):
    import zarr

    return zarr.open_group(container, mode="a").attrs


def _finished_spec(container: str) -> dict | None:
    try:
        import zarr

        return zarr.open_group(container, mode="r").attrs.get(DONE_ATTRIBUTE)
    except Exception:  # no container yet
        return None


def _set_finished_spec(container: str, spec: dict | None) -> None:
    attrs = _container_attrs(container)
    if spec is None:
        if DONE_ATTRIBUTE in attrs:
            del attrs[DONE_ATTRIBUTE]
    else:
        attrs[DONE_ATTRIBUTE] = spec


def _summary(container: str, spec: dict, reused: bool) -> dict:
    volumes = {name: open_volume(f"{container}/{name}").describe() for name in ARRAYS}
    labels = volumes["labels"]
    return {"container": container, "reused": reused, "shape": spec["shape"], "voxel_size": spec["voxel_size"],
            "offset": spec["offset"], "seed": spec["params"]["seed"], "arrays": volumes,
            "voxels": int(np.prod(labels["shape"]))}


def write_preview(container: str, path: str) -> str:
    """A PNG of the central z slice: raw, labels, classes and mask side by side."""
    from .png import label_colors, write_png

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
