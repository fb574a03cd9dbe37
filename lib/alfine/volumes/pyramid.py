"""Scale levels of an OME-NGFF image: their geometry, their arrays, and the reductions that fill them.

Level ``k`` (array ``sk``) has the voxel size of level ``k-1`` times a per-axis factor (1 or 2) and
starts on its own voxel grid (its offset is a multiple of its voxel size, as funlib expects), so
each of its voxels covers whole voxels of level ``k-1``; those outside level ``k-1`` are left out
of the reduction. Raw data and predictions are reduced by their mean, segmentations
(``image-label``) by their most frequent id (the smallest of equally frequent ones).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import VolumeError
from . import metadata as md
from . import ngff
from .prepare import creating
from .urls import parse_volume_url
from .volume import Volume, open_volume

# Attributes of level 0 that hold for every level (what the values mean, not where they lie).
_KEPT_ATTRIBUTES = ("alfine_scale", "alfine_offset", "channel_names")


def default_factor(voxel_size: Sequence[int]) -> Coordinate:
    """2 along the axes finer than the coarsest one (all axes when isotropic), else 1: anisotropic
    volumes become isotropic first, then all axes halve together."""
    coarsest = max(voxel_size)
    factor = [2 if v < coarsest else 1 for v in voxel_size]
    return Coordinate([2] * len(voxel_size) if not any(f == 2 for f in factor) else factor)


def level_geometry(finer: md.Geometry, factor: Sequence[int]) -> md.Geometry:
    """The geometry of the level made from ``finer`` by ``factor``: its offset snapped down to its voxel grid."""
    voxel_size = finer.voxel_size * Coordinate(factor)
    offset = Coordinate(math.floor(o / v) * v for o, v in zip(finer.offset, voxel_size, strict=True))
    return md.Geometry(voxel_size, offset, finer.axis_names, finer.units)


def level_roi(finer_roi: Roi, geometry: md.Geometry) -> Roi:
    """The region a level of ``geometry`` covers: ``finer_roi`` grown outwards to whole voxels of it."""
    end = Coordinate(math.ceil(e / v) * v for e, v in zip(finer_roi.end, geometry.voxel_size, strict=True))
    return Roi(geometry.offset, end - geometry.offset)


class Image:
    """An OME-NGFF image group written by alfine: its levels and whether it is a segmentation."""

    def __init__(self, url: str):
        import zarr

        self.url = parse_volume_url(url)
        try:
            self.group = zarr.open_group(self.url.store, path=self.url.path or None, mode="r+")
        except Exception:
            raise VolumeError(f"{url}: not an OME-NGFF image group (alfine writes volumes as images with "
                              "their data at s0; a bare array has no levels to add)") from None
        attrs = self.group.attrs.asdict()
        self.paths = ngff.level_paths(attrs)
        if not self.paths or self.paths[0] != ngff.level_name(0):
            raise VolumeError(f"{url}: not an image written by alfine (its OME-NGFF multiscales do not start "
                              f"at {ngff.level_name(0)})")
        self.label = ngff.is_label(attrs)
        self.zarr_format = self.group.metadata.zarr_format

    def level_url(self, level: int) -> str:
        return f"{self.url.url}/{ngff.level_name(level)}"

    def open_level(self, level: int, mode: str = "r") -> Volume:
        return open_volume(self.level_url(level), mode)

    def existing_levels(self) -> list[int]:
        """The levels with an array in the group, 0, 1, ... without gaps."""
        names = set(self.group.array_keys())
        levels = [0]
        while ngff.level_name(levels[-1] + 1) in names:
            levels.append(levels[-1] + 1)
        return levels

    def prepare_level(self, level: int, factor: Sequence[int]) -> Volume:
        """Create level ``level`` from level ``level - 1`` by ``factor`` (or reopen it when it matches), and list
        it (and every level before it) in the image's multiscales."""
        finer = self.open_level(level - 1)
        geometry = level_geometry(finer.geometry, factor)
        roi = level_roi(finer.roi, geometry)
        shape = finer.channel_shape + tuple(roi.shape / geometry.voxel_size)
        name = ngff.level_name(level)
        with creating(self.url):
            if name in set(self.group.array_keys()):
                volume = self.open_level(level, "r+")
                have = (volume.shape, tuple(volume.voxel_size), tuple(volume.offset), volume.dtype)
                if have != (shape, tuple(geometry.voxel_size), tuple(geometry.offset), finer.dtype):
                    raise VolumeError(f"{self.level_url(level)} exists with shape {volume.shape}, voxel size "
                                      f"{tuple(volume.voxel_size)}, offset {tuple(volume.offset)}; this step makes "
                                      f"shape {shape}, voxel size {tuple(geometry.voxel_size)}, offset "
                                      f"{tuple(geometry.offset)}; remove it or use another --factor")
            else:
                self._create(name, finer, geometry, shape)
                volume = self.open_level(level, "r+")
            self._list_levels(level)
        return volume

    def _create(self, name: str, finer: Volume, geometry: md.Geometry, shape: tuple) -> None:
        source = finer.array
        channels = len(finer.channel_shape)
        chunks = tuple(source.chunks[:channels]) + tuple(min(c, s) for c, s in
                                                         zip(source.chunks[channels:], shape[channels:], strict=True))
        shards = getattr(source, "shards", None)
        if shards is not None:  # a whole number of chunks, no larger than needed
            shards = tuple(c * min(math.ceil(s / c), math.ceil(n / c)) for c, s, n in zip(chunks, shards, shape,
                                                                                          strict=True))
        kept = {k: v for k, v in source.attrs.asdict().items() if k in _KEPT_ATTRIBUTES}
        kwargs = {"dimension_names": source.metadata.dimension_names} if self.zarr_format == 3 else {
            "chunk_key_encoding": {"name": "v2", "separator": "/"}}
        self.group.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=source.dtype,
                                fill_value=source.fill_value, compressors=source.compressors,
                                attributes={**geometry.funlib_attributes(), **kept,
                                            "alfine_created": uuid.uuid4().hex}, **kwargs)

    def describe_on_root(self) -> None:
        """Make the container's root an image of this image's levels (paths ``IMAGE/sK``), so that a viewer
        opening the container (``seg.zarr``) opens this image; whatever image the root described is replaced."""
        import zarr

        levels = [(f"{self.url.path}/{p}", self.open_level(ngff.level_of(p)).geometry) for p in
                  ngff.level_paths(self.group.attrs.asdict())]
        self.check_root()
        root = zarr.open_group(self.url.store, mode="r+")
        root.attrs.put(ngff.image_attributes(root.attrs.asdict(), self.url.name, levels, self.zarr_format,
                                             self.label))

    def check_root(self) -> None:
        """Refuse (:class:`VolumeError`) a container whose root cannot become an image: one holding a volume
        named ``labels``, a name OME-NGFF reserves inside images for their segmentations."""
        import zarr

        root = zarr.open_group(self.url.store, mode="r")
        if "labels" in root:
            attrs = root["labels"].attrs.asdict()
            if "labels" not in attrs and "labels" not in attrs.get("ome", {}):
                raise VolumeError(f"{self.url.container} holds a volume named 'labels', a name OME-NGFF reserves "
                                  "for the segmentations of an image, so its root cannot describe an image")

    def _list_levels(self, last: int) -> None:
        levels = [(ngff.level_name(k), self.open_level(k).geometry) for k in range(last + 1)]
        attrs = self.group.attrs.asdict()
        self.group.attrs.put(ngff.image_attributes(attrs, self.url.name, levels, self.zarr_format, self.label))


def _by_factor(data: np.ndarray, factor: Sequence[int], channel_dims: int) -> np.ndarray:
    """``data`` (spatial axes a multiple of ``factor``) with the voxels each coarse voxel covers on one last axis."""
    spatial = data.shape[channel_dims:]
    split = data.shape[:channel_dims] + tuple(x for s, f in zip(spatial, factor, strict=True) for x in (s // f, f))
    n = len(spatial)
    order = (list(range(channel_dims)) + [channel_dims + 2 * i for i in range(n)]
             + [channel_dims + 2 * i + 1 for i in range(n)])
    coarse = data.shape[:channel_dims] + tuple(s // f for s, f in zip(spatial, factor, strict=True))
    return data.reshape(split).transpose(order).reshape(coarse + (math.prod(factor),))


def _sum_by_factor(data: np.ndarray, factor: Sequence[int], channel_dims: int) -> np.ndarray:
    """The sum (float64) of the voxels each coarse voxel covers (spatial axes a multiple of ``factor``)."""
    total = data
    for axis, f in enumerate(factor, start=channel_dims):  # an axis at a time: each step sums a smaller array
        if f == 1:
            continue
        parts = [total[(slice(None),) * axis + (slice(k, None, f),)] for k in range(f)]
        total = parts[0].astype(np.float64)  # a new array: the caller's data is left as it is
        for part in parts[1:]:
            total += part
    return total if total is not data else data.astype(np.float64)


def reduce_mean(data: np.ndarray, inside: np.ndarray, factor: Sequence[int], channel_dims: int) -> np.ndarray:
    """The mean of the voxels each coarse voxel covers, counting only those ``inside`` (spatial mask); float64."""
    if inside.all():
        return _sum_by_factor(data, factor, channel_dims) / math.prod(factor)
    total = _sum_by_factor(np.where(inside, data, 0), factor, channel_dims)
    count = _sum_by_factor(inside, factor, 0)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def reduce_mode(labels: np.ndarray, inside: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """The most frequent id among the voxels each coarse voxel covers that are ``inside`` (ties: the smallest); of
    a coarse voxel with none inside, its smallest id."""
    values = _by_factor(labels, factor, 0)
    if inside.all():
        ordered, count = np.sort(values, axis=-1), None
    else:  # the ids outside sort last (as the largest value) and count for nothing
        valid = _by_factor(inside, factor, 0)
        largest = np.iinfo(labels.dtype).max if labels.dtype.kind in "ui" else np.inf
        ordered, count = np.sort(np.where(valid, values, largest), axis=-1), valid.sum(axis=-1)
    # sorted, each id is one run; runs[i]: the length of the run that ends at place i
    places = np.moveaxis(ordered, -1, 0)
    runs = np.ones(places.shape, np.int16 if len(places) < 2**15 else np.int64)
    for i in range(1, len(places)):
        runs[i] += runs[i - 1] * (places[i] == places[i - 1])
    if count is not None:
        runs[np.arange(len(places)).reshape((-1,) + (1,) * count.ndim) >= count] = 0
    # the end of the first longest run: of equally frequent ids, the smallest
    mode = np.take_along_axis(ordered, runs.argmax(axis=0)[..., None], axis=-1)[..., 0]
    if count is not None:
        mode = np.where(count > 0, mode, values.min(axis=-1))
    return mode.astype(labels.dtype, copy=False)
