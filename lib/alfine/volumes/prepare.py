"""Creating output volumes: an array with its geometry, or a matching one reopened.

:func:`prepare_volume` makes the array an output is written into: an OME-NGFF image group at the
URL (see :mod:`.ngff`) whose level ``s0`` is a zarr format 2 or 3 array, chunked (and sharded) as
asked, compressed, with funlib attributes. An existing array that matches is reopened (so a re-run resumes
into it); one that differs is refused, naming both. Each creation records a new token
(``alfine_created``), which tells done markers of an earlier creation from current ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import VolumeError
from ..geometry import check_aligned
from . import metadata as md
from . import ngff
from .urls import VolumeUrl, parse_volume_url
from .volume import COMPRESSIONS, Volume, open_volume

log = logging.getLogger(__name__)

ZSTD_LEVEL = 3
"""blosc zstd level of written volumes: on uint64 labels level 3 compresses 3x faster than level 5 (21 vs 62 ms
for 128^3 synthetic labels) to a 14% larger file (1.8% vs 1.6% of the raw bytes)."""


LZ4_LEVEL = 5
"""blosc lz4 level (``compression="lz4"``): on uint64 labels of 64^3 about 4x faster to compress and 1.5x faster to
decompress than zstd level 3, to files about 3x larger (1.2 vs 4-8 ms and 0.7 vs 1.1 ms a chunk; 6% vs 2% of
the raw bytes): for intermediate volumes that are read once, such as postprocess-block's fragments. Integers
(labels) are stored without blosc's byte shuffle: on 128^3 uint64 fragments it encodes about 30% and decodes
about 35% faster, to files of about the same size (17x smaller than raw against 11-29x with the shuffle);
floats keep the shuffle, which groups their exponent bytes."""

BITSHUFFLE_LABELS = True
"""zstd label volumes (``label=True``, integers: segmentations, masks, class maps) are stored with blosc's bit
shuffle instead of its byte shuffle: their ids change in few bits from voxel to voxel. Measured on 2 cores, relabelled
uint64 ids of the synthetic volume: 64^3 chunks encode in 1.8 instead of 6.6 ms, decode in 0.9 instead of 1.1 ms,
to 0.9 % instead of 3.3 % of the raw bytes (128^3: 16 against 56 ms, 7.8 against 10.2 ms, 1.1 % against 3.6 %);
a uint8 mask of 128^3 2.8 against 10.3 ms, 6 % against 9 %. Images (raw, predictions) keep the byte shuffle."""


def _shuffle(name: str, dtype: np.dtype, label: bool) -> str:
    """blosc's shuffle for a volume: see :data:`LZ4_LEVEL` and :data:`BITSHUFFLE_LABELS`."""
    if dtype.kind not in "ui":
        return "shuffle"
    if name == "lz4":
        return "noshuffle"
    return "bitshuffle" if label and BITSHUFFLE_LABELS else "shuffle"


def _compressor(name: str, zarr_format: int, dtype: np.dtype, label: bool = False):
    if name not in COMPRESSIONS:
        raise VolumeError(f"unknown compression {name!r}; choose one of {', '.join(COMPRESSIONS)}")
    if name == "none":
        return None
    cname, level = ("lz4", LZ4_LEVEL) if name == "lz4" else ("zstd", ZSTD_LEVEL)
    shuffle = _shuffle(name, dtype, label)
    if zarr_format == 2:
        import numcodecs

        if name == "gzip":
            return numcodecs.GZip(level=5)
        modes = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                 "bitshuffle": numcodecs.Blosc.BITSHUFFLE}
        return numcodecs.Blosc(cname=cname, clevel=level, shuffle=modes[shuffle])
    import zarr.codecs

    if name == "gzip":
        return zarr.codecs.GzipCodec(level=5)
    return zarr.codecs.BloscCodec(cname=cname, clevel=level, shuffle=shuffle, typesize=dtype.itemsize)


def prepare_volume(
    url: str,
    roi: Roi,
    voxel_size: Sequence[int],
    dtype,
    chunk_shape: Sequence[int],
    channels: Sequence[int] = (),
    axis_names: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    zarr_format: int = 2,
    shards: Sequence[int] | None = None,
    compression: str = "zstd",
    fill_value: float = 0,
    overwrite: bool = False,
    scale: tuple[float, float] | None = None,
    label: bool = False,
) -> Volume:
    """Create the volume at ``url`` (open for writing), or reopen it when it already matches.

    A volume that exists with another shape, dtype, chunking or geometry is refused with an
    error naming both, unless ``overwrite`` (which deletes it first). ``roi`` must lie on the
    grid of ``voxel_size``; ``chunk_shape`` (and ``shards``, zarr format 3 only) are spatial
    shapes in voxels; channel axes are chunked whole. ``scale`` ``(scale, offset)`` makes an
    integer volume quantised (see :class:`Volume`). ``label`` marks a segmentation (OME-NGFF
    ``image-label``). A bare array at ``url`` (written before volumes were images) is reopened as it is.
    """
    parsed = parse_volume_url(url)
    voxel_size = Coordinate(voxel_size)
    dtype = np.dtype(dtype)
    channels = tuple(int(c) for c in channels)
    chunk_shape = Coordinate(chunk_shape)
    if parsed.read_only or parsed.is_n5:
        raise VolumeError(f"{url}: cannot create a volume here (read-only protocol or N5); write zarr")
    if not parsed.path:
        raise VolumeError(f"{url}: names a container, not an array inside it (e.g. {url}/raw)")
    if zarr_format not in (2, 3):
        raise VolumeError(f"{url}: zarr format must be 2 or 3, not {zarr_format}")
    if shards is not None and zarr_format != 3:
        raise VolumeError(f"{url}: sharding needs zarr format 3")
    if scale is not None:
        if dtype.kind not in "ui":
            raise VolumeError(f"{url}: only integer volumes can be quantised, not {dtype}")
        scale = (float(scale[0]), float(scale[1]))
    check_aligned(roi, voxel_size, roi.begin, url)
    if roi.begin % voxel_size != Coordinate((0,) * roi.dims):
        raise VolumeError(f"{url}: offset {tuple(roi.begin)} is not a multiple of the voxel size {tuple(voxel_size)}")
    spatial_shape = roi.shape / voxel_size
    if len(chunk_shape) != roi.dims:
        raise VolumeError(f"{url}: chunk shape {tuple(chunk_shape)} has {len(chunk_shape)} axes, the region {roi.dims}")
    geometry = md.Geometry.default(len(channels) + roi.dims, roi.dims, voxel_size, roi.begin, units)
    if axis_names is not None:
        geometry = md.Geometry(geometry.voxel_size, geometry.offset, tuple(axis_names), geometry.units)
    shape = channels + tuple(spatial_shape)
    chunks = channels + tuple(min(c, s) for c, s in zip(chunk_shape, spatial_shape, strict=True))
    shard_shape = None if shards is None else channels + tuple(shards)

    # Job array elements start at once and each creates the output if it is missing: one creates it, the
    # others wait for it (an OS lock in the container, locally) and reopen it.
    args = (url, parsed, roi, voxel_size, dtype, channels, geometry, shape, chunks, shard_shape, zarr_format,
            compression, fill_value, overwrite, scale, label)
    existing = _reopen(*args)
    if existing is not None:  # reopened or refused: nothing to create, so no lock to leave behind
        return existing
    with creating(parsed):
        for attempt in range(20):
            try:
                return _create_or_reopen(*args)
            except Exception as e:  # another process created it between our look and our write (object stores)
                if type(e).__name__ not in ("ContainsArrayError", "ContainsGroupError") or attempt == 19:
                    raise
                time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def creating(parsed: VolumeUrl) -> Iterator[None]:
    """Hold an OS lock on the container's folder while creating in it (local containers; elsewhere
    nothing). The lock is on the folder itself, so it leaves no file behind."""
    if not parsed.is_local:
        yield
        return
    import fcntl

    os.makedirs(parsed.local_container, exist_ok=True)
    folder = os.open(parsed.local_container, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def _wanted(roi, voxel_size, dtype, geometry, shape, chunks, shard_shape, scale) -> dict:
    """The properties an existing output must have to be reopened, as :func:`_reopened` compares them."""
    wanted = {"shape": shape, "dtype": str(dtype), "chunks": chunks, "voxel_size": tuple(voxel_size),
              "offset": tuple(roi.begin), "axis_names": geometry.axis_names, "scale": scale}
    if shard_shape is not None:
        wanted["shards"] = shard_shape
    return wanted


def _reopen(url, parsed, roi, voxel_size, dtype, channels, geometry, shape, chunks, shard_shape, zarr_format,
            compression, fill_value, overwrite, scale, label) -> Volume | None:
    """The existing output at ``url`` where it has this step's properties (:func:`_reopened`); None where there
    is none or ``overwrite`` replaces it; a :class:`VolumeError` where it differs."""
    existing = None if overwrite else _existing(url, parsed)
    if existing is None:
        return None
    return _reopened(existing, url, _wanted(roi, voxel_size, dtype, geometry, shape, chunks, shard_shape, scale))


def _existing(url: str, parsed: VolumeUrl) -> Volume | None:
    """The volume at ``url`` (parsed: ``parsed``) open for writing, or None where there is none."""
    if parsed.is_local and not os.path.lexists(os.path.join(parsed.local_container, parsed.path)):
        return None  # a local node's keys all lie in its folder: none, no node (and no zarr probes, 1.2 ms)
    try:
        return open_volume(url, mode="r+")
    except VolumeError:
        return None


def _reopened(existing: Volume, url: str, wanted: dict) -> Volume:
    """``existing``, where it has the properties ``wanted`` (those of this step's output); otherwise a
    :class:`VolumeError` naming both."""
    have = {"shape": existing.shape, "dtype": str(existing.dtype), "chunks": tuple(existing.array.chunks),
            "voxel_size": tuple(existing.voxel_size), "offset": tuple(existing.offset),
            "axis_names": existing.geometry.axis_names, "scale": existing.scale}
    if "shards" in wanted:
        have["shards"] = tuple(existing.array.shards or ())
    diff = [k for k in wanted if wanted[k] != have[k]]
    if diff:
        mine = ", ".join(f"{k}={wanted[k]}" for k in diff)
        theirs = ", ".join(f"{k}={have[k]}" for k in diff)
        raise VolumeError(f"{url} exists with {theirs}, but this step writes {mine}; "
                          "remove it or write to another --output")
    log.info("reopening existing %s", url)
    return existing


def _create_or_reopen(*args) -> Volume:
    """The output of :func:`prepare_volume`'s ``args``: reopened where another process created it while this
    one waited for the lock, else created."""
    existing = _reopen(*args)
    return existing if existing is not None else _create(*args)


def _create(url, parsed, roi, voxel_size, dtype, channels, geometry, shape, chunks, shard_shape,
            zarr_format, compression, fill_value, overwrite, scale, label) -> Volume:
    import zarr

    try:
        root = zarr.open_group(parsed.store, mode="a", zarr_format=zarr_format, use_consolidated=False)
    except Exception as e:
        raise VolumeError(
            f"{parsed.container}: cannot create or open a zarr container ({type(e).__name__}: {e})"
        ) from None
    group_format = root.metadata.zarr_format
    if group_format != zarr_format:
        raise VolumeError(f"{url}: the container is zarr format {group_format}, asked for format {zarr_format}")
    parent = root.require_group(parsed.parent_path) if parsed.parent_path else root
    image = parent.create_group(parsed.name, overwrite=True) if overwrite else parent.require_group(parsed.name)
    # The metadata first: an image whose s0 is missing (a creation killed halfway) is not a volume yet, so a
    # re-run creates s0; the other order would leave an s0 that no metadata names and no re-run could create.
    levels = [(ngff.level_name(0), geometry)]
    image.attrs.put(ngff.image_attributes(image.attrs.asdict(), parsed.name, levels, zarr_format, label))
    kwargs: dict[str, Any] = {}
    if zarr_format == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        kwargs["dimension_names"] = [n.rstrip("^") for n in geometry.axis_names]
    compressor = _compressor(compression, zarr_format, dtype, label)
    array = image.create_array(
        ngff.level_name(0),
        shape=shape,
        chunks=chunks,
        shards=shard_shape,
        dtype=dtype,
        fill_value=fill_value,
        compressors=compressor if compressor is not None else None,
        attributes={**geometry.funlib_attributes(), "alfine_created": uuid.uuid4().hex,
                    **({"alfine_scale": scale[0], "alfine_offset": scale[1]} if scale else {})},
        overwrite=overwrite,
        **kwargs,
    )
    return Volume(parsed, array, geometry, writable=True, scale=scale)
