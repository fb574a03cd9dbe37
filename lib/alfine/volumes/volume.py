"""Open and read/write volumes by URL and world region (creating them: :mod:`.prepare`).

A :class:`Volume` is a zarr array (or an N5 dataset read through tensorstore) with its
:class:`~alfine.volumes.metadata.Geometry`. Regions are ``funlib.geometry.Roi`` in world
units over the spatial axes; channel axes come first and are always read whole.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import VolumeError
from ..geometry import check_aligned, format_roi, voxel_slices
from . import bulk
from . import metadata as md
from .urls import VolumeUrl, parse_volume_url

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "lz4", "gzip", "none")


class Volume:
    """An array with a geometry; read and write by world region.

    ``roi`` is the world region the array covers; ``read(roi)`` returns
    ``channels + roi.shape / voxel_size`` voxels, ``write(roi, data)`` stores them.

    A quantised volume (``scale``: the attributes ``alfine_scale`` and ``alfine_offset`` on the
    array) stores integers meaning ``stored * scale + offset``: ``read`` returns those values as
    float32 and ``write`` takes values, rounding them to the nearest stored integer (clipped to
    the dtype's range).
    """

    def __init__(self, url: VolumeUrl, array: Any, geometry: md.Geometry, writable: bool,
                 scale: tuple[float, float] | None = None):
        self.url = url
        self.array = array
        self.geometry = geometry
        self.writable = writable
        self.scale = scale
        if len(geometry.axis_names) != len(array.shape):
            raise VolumeError(
                f"{url.url}: axis_names {list(geometry.axis_names)} do not match the array's {len(array.shape)} axes"
            )

    def __repr__(self) -> str:
        return f"Volume({self.url.url!r}, roi={self.roi}, voxel_size={tuple(self.voxel_size)}, dtype={self.dtype})"

    # -- description -------------------------------------------------------------------
    @property
    def voxel_size(self) -> Coordinate:
        return self.geometry.voxel_size

    @property
    def offset(self) -> Coordinate:
        return self.geometry.offset

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def channel_shape(self) -> tuple[int, ...]:
        return self.shape[: self.geometry.channel_dims]

    @property
    def spatial_shape(self) -> Coordinate:
        return Coordinate(self.shape[self.geometry.channel_dims:])

    @property
    def roi(self) -> Roi:
        return self.geometry.roi(self.spatial_shape)

    @property
    def chunk_shape(self) -> Coordinate:
        """The spatial shape of one chunk in voxels (of one shard, where sharded)."""
        chunks = getattr(self.array, "shards", None) or self.array.chunks
        return Coordinate(chunks[self.geometry.channel_dims:])

    def describe(self) -> dict:
        """A JSON-ready summary for a command's output."""
        return {
            "url": self.url.url,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "voxel_size": list(self.voxel_size),
            "offset": list(self.offset),
            "axis_names": list(self.geometry.axis_names),
            "units": list(self.geometry.units),
        }

    # -- reading and writing ----------------------------------------------------------------
    def _voxel_slices(self, roi: Roi) -> tuple[slice, ...]:
        return voxel_slices(roi, self.offset, self.voxel_size)

    def _index(self, roi: Roi) -> tuple[tuple[slice, ...], bool]:
        """The array index of ``roi`` (channels whole) and whether it lies inside the volume; a region off the
        voxel grid is refused. Plain integers: this runs on every read and write."""
        check_aligned(roi, self.voxel_size, self.offset, self.url.url)
        spatial = tuple(slice((b - o) // v, (b - o + s) // v) for b, s, o, v in
                        zip(roi.begin, roi.shape, self.offset, self.voxel_size, strict=True))
        channels = self.geometry.channel_dims
        inside = all(0 <= i.start <= i.stop <= n for i, n in zip(spatial, self.shape[channels:], strict=True))
        return (slice(None),) * channels + spatial, inside

    def read(self, roi: Roi | None = None, fill_value: float | None = None) -> np.ndarray:
        """The voxels of ``roi`` (default: all), channels first.

        Parts of ``roi`` outside the volume are ``fill_value``; without one, such a region is
        refused. A region off the voxel grid is refused.
        """
        roi = self.roi if roi is None else roi
        index, inside = self._index(roi)
        if inside:
            return self._values(np.asarray(self._get(index)))
        if fill_value is None:
            raise VolumeError(
                f"{self.url.url}: region {format_roi(roi)} reaches outside the volume {format_roi(self.roi)}"
            )
        inside = roi.intersect(self.roi)
        dtype = np.float32 if self.scale else self.dtype
        out = np.full(self.channel_shape + tuple(roi.shape / self.voxel_size), fill_value, dtype=dtype)
        if not inside.empty:
            channels = (slice(None),) * self.geometry.channel_dims
            target = voxel_slices(inside, roi.begin, self.voxel_size)
            out[channels + target] = self._values(np.asarray(self._get(channels + self._voxel_slices(inside))))
        return out

    def read_mirrored(self, roi: Roi) -> np.ndarray:
        """The voxels of ``roi``, channels first; outside the volume, the volume mirrored across its
        faces (``... 2 1 | 0 1 2 ... n-1 | n-2 ...``, repeated as far as needed), so that a network's
        input at a face looks like data rather than like constant padding. Voxel ``i`` of any region
        is the same wherever the region starts, so blocks equal the whole volume read at once.
        """
        check_aligned(roi, self.voxel_size, self.offset, self.url.url)
        if roi.intersect(self.roi) == roi:
            return self.read(roi)
        first = (roi.begin - self.roi.begin) / self.voxel_size
        sources = [_mirror(np.arange(f, f + n), size) for f, n, size in
                   zip(first, roi.shape / self.voxel_size, self.roi.shape / self.voxel_size, strict=True)]
        low = Coordinate(int(s.min()) for s in sources)
        high = Coordinate(int(s.max()) + 1 for s in sources)
        box = self.read(Roi(self.roi.begin + low * self.voxel_size, (high - low) * self.voxel_size))
        channels = (slice(None),) * self.geometry.channel_dims
        return box[channels + np.ix_(*(s - b for s, b in zip(sources, low, strict=True)))]

    def _values(self, stored: np.ndarray) -> np.ndarray:
        """Stored voxels as the values they mean (float32 with the scale undone, where quantised)."""
        if self.scale is None:
            return stored
        values = stored.astype(np.float32)
        values *= np.float32(self.scale[0])
        values += np.float32(self.scale[1])
        return values

    def _stored(self, values: np.ndarray) -> np.ndarray:
        """Values as the voxels to store (rounded to the scale and clipped to the dtype, where quantised)."""
        if self.scale is None:
            return np.asarray(values, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        stored = (np.asarray(values, dtype=np.float32) - np.float32(self.scale[1])) / np.float32(self.scale[0])
        return np.clip(np.rint(stored), info.min, info.max).astype(self.dtype)

    def write(self, roi: Roi, data: np.ndarray) -> None:
        """Store ``data`` (channels first, the shape of ``roi`` in voxels) at ``roi``."""
        pending = self.start_write(roi, data)
        if pending is not None:
            pending.result()

    def start_write(self, roi: Roi, data: np.ndarray, handed_over: bool = False) -> Any | None:
        """:meth:`write`, where tensorstore does the I/O only started: returns what to wait on (``.result()``, which
        raises the write's error), or None where the data is written already (zarr-python).

        ``handed_over``: the caller will never change ``data`` again, so tensorstore may keep it rather than copy
        it (a block's result: a 16 MB block is written in 5 ms instead of 7)."""
        if not self.writable:
            raise VolumeError(f"{self.url.url}: volume is open read-only")
        index, inside = self._index(roi)
        if not inside:
            raise VolumeError(f"{self.url.url}: region {format_roi(roi)} is outside the volume {format_roi(self.roi)}")
        expected = self.channel_shape + tuple(i.stop - i.start for i in index[self.geometry.channel_dims:])
        if tuple(data.shape) != expected:
            raise VolumeError(
                f"{self.url.url}: data of shape {data.shape} for region {format_roi(roi)} needs shape {expected}"
            )
        target = self._io()
        if hasattr(target, "write"):  # tensorstore
            return target[index].write(self._stored(data), can_reference_source_data_indefinitely=handed_over)
        target[index] = self._stored(data)
        return None

    def _get(self, index: tuple[slice, ...]) -> np.ndarray:
        source = self._io()
        if hasattr(source, "read"):  # tensorstore
            return source[index].read().result()
        return source[index]

    def _io(self) -> Any:
        """What reads and writes the voxels: tensorstore's view of the array (:mod:`.bulk`) unless
        ``ALFINE_TENSORSTORE=0``, tensorstore cannot serve it or this process was forked from one that used
        tensorstore; else the array (zarr-python). Chosen on first use, and again after a fork."""
        if self.__dict__.get("_io_process") is not bulk.process:
            if bulk.forked and hasattr(self.array, "read"):  # N5, read through tensorstore alone
                raise VolumeError(f"{self.url.url}: N5 is read through tensorstore, which aborts a process forked "
                                  "from one that used it (this one): read it without forked workers or convert it")
            view = None
            if bulk.enabled() and not hasattr(self.array, "read"):
                view = bulk.open_bulk(self.url, self.array, self.writable)
            self._io_view, self._io_process = (self.array if view is None else view), bulk.process
        return self._io_view

    def __getstate__(self) -> dict:
        """Pickled without the I/O view: the receiving process chooses its own."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_io_view", "_io_process")}


# -- opening ----------------------------------------------------------------------------


def _zarr_node(parsed: VolumeUrl, mode: str, path: str, zarr_format: int | None = None):
    """The zarr group or array at ``path`` of ``parsed``'s container (FileNotFoundError where there is none);
    with ``zarr_format`` given, the array of that format there.

    Without a format, a group is looked for first (alfine's volume URLs name image groups), without
    consolidated metadata; the format that look finds opens an array there without probing the other format's
    metadata again. A store of objects answers each metadata read with a request, so opening costs a few
    requests, not one per metadata name zarr could try.
    """
    import zarr
    from zarr.errors import ContainsArrayError

    if zarr_format is not None:
        return zarr.open_array(parsed.store, path=path or None, mode=mode, zarr_format=zarr_format)
    try:
        return zarr.open_group(parsed.store, path=path or None, mode=mode, use_consolidated=False)
    except ContainsArrayError:  # zarr.json of an array: format 3
        zarr_format = 3
    except FileNotFoundError:  # neither zarr.json nor .zgroup: a format 2 array, or nothing
        zarr_format = 2
    return zarr.open_array(parsed.store, path=path or None, mode=mode, zarr_format=zarr_format)


def _open_zarr_node(parsed: VolumeUrl, mode: str, path: str, zarr_format: int | None = None,
                    missing: str = "no zarr array or group found"):
    """:func:`_zarr_node`, its failures as a :class:`VolumeError` (``missing`` where nothing is there)."""
    try:
        return _zarr_node(parsed, mode, path, zarr_format)
    except FileNotFoundError:
        raise VolumeError(f"{parsed.url}: {missing}") from None
    except Exception as e:  # zarr raises several types for unreadable metadata
        raise VolumeError(f"{parsed.url}: cannot open as zarr ({type(e).__name__}: {e})") from None


def _parent_attrs(parsed: VolumeUrl, path: str, zarr_format: int) -> dict | None:
    """The attributes of the group holding the array at ``path``, or None where there is none (zarr v2)."""
    import zarr

    try:
        parent = zarr.open_group(parsed.store, path=path.rpartition("/")[0] or None, mode="r",
                                 zarr_format=zarr_format, use_consolidated=False)
    except Exception:  # an array need not have a parent group (zarr v2)
        return None
    return parent.attrs.asdict()


def open_volume(url: str, mode: str = "r") -> Volume:
    """Open the volume at ``url`` for reading (``mode="r"``) or reading and writing (``"r+"``).

    A URL naming an OME-NGFF image group (what alfine writes) opens its first, finest scale level
    and keeps the image's URL; ``IMAGE/s1`` opens another level; a bare array opens as it is.
    """
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
    parsed = parse_volume_url(url)
    if mode != "r" and parsed.read_only:
        raise VolumeError(f"{url}: {parsed.protocol}:// URLs are read-only")
    if parsed.is_n5:
        from .n5 import open_n5

        if mode != "r":
            raise VolumeError(f"{url}: N5 volumes are read-only in alfine; write zarr instead")
        array, attrs = open_n5(parsed)
        geometry = md.from_n5(attrs, len(array.shape)) or md.Geometry.default(len(array.shape))
        return Volume(parsed, array, geometry, writable=False)

    import zarr

    node = _open_zarr_node(parsed, mode, parsed.path)
    name, path, parent_attrs = parsed.name, parsed.path, None
    if isinstance(node, zarr.Group):
        parent_attrs = node.attrs.asdict()
        multiscales = md.ome_multiscales(parent_attrs)
        if not multiscales or not multiscales[0].get("datasets"):
            raise VolumeError(f"{url}: is a group, not an array (and has no OME-NGFF multiscales)")
        name = str(multiscales[0]["datasets"][0]["path"])
        path = f"{parsed.path}/{name}" if parsed.path else name
        node = _open_zarr_node(parsed, mode, path, node.metadata.zarr_format,
                               missing=f"its OME-NGFF multiscales name {name!r}, which is not in it")
    ndim = len(node.shape)
    attrs = node.attrs.asdict()
    geometry = md.from_funlib(attrs, ndim)
    if geometry is None and path:  # the group's OME-NGFF metadata, read only where the array has no funlib attributes
        if parent_attrs is None:
            parent_attrs = _parent_attrs(parsed, path, node.metadata.zarr_format)
        geometry = md.from_ome(parent_attrs, name, ndim) if parent_attrs is not None else None
    geometry = geometry or md.Geometry.default(ndim)
    return Volume(parsed, node, geometry, writable=(mode == "r+"), scale=_scale_of(attrs, parsed.url))


def _scale_of(attrs: dict, url: str) -> tuple[float, float] | None:
    """``(alfine_scale, alfine_offset)`` of a quantised array's attributes, or None."""
    if "alfine_scale" not in attrs:
        return None
    try:
        scale, offset = float(attrs["alfine_scale"]), float(attrs.get("alfine_offset", 0.0))
    except (TypeError, ValueError):
        raise VolumeError(f"{url}: alfine_scale and alfine_offset must be numbers") from None
    if not (np.isfinite(scale) and np.isfinite(offset) and scale != 0):
        raise VolumeError(f"{url}: alfine_scale must be a finite non-zero number, got {scale}")
    return scale, offset


def exists(url: str) -> bool:
    """Whether an array (or OME image group) exists at ``url``."""
    try:
        open_volume(url)
    except VolumeError:
        return False
    return True


# -- creating -----------------------------------------------------------------------------


def _mirror(index: np.ndarray, size: int) -> np.ndarray:
    """Voxel indices ``index`` of an axis of ``size`` voxels, mirrored into ``[0, size)`` across its ends."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.mod(index, period)
    return np.where(folded < size, folded, period - folded)
