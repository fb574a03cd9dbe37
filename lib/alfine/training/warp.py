"""The geometric part of an augmentation: one world map applied to arrays on any voxel grid.

A :class:`WorldMap` sends a target world point ``p`` to the source point
``centre + matrix @ (p - centre) + d(p)``, where ``d`` is an :class:`ElasticField`. Voxel ``i``
of an array covering a region that begins at ``b`` is the world point ``b + (i + 0.5) * voxel_size``
(its centre), so the same map moves raw, labels and masks on different grids identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi
from scipy.ndimage import map_coordinates

_TOLERANCE = 1e-6  # voxels: closer than this to a whole voxel counts as on the grid
_SPLITMIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: well-spread 64-bit hashes of uint64 ``x`` (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _SPLITMIX[1]
    x = (x ^ (x >> np.uint64(27))) * _SPLITMIX[2]
    return x ^ (x >> np.uint64(31))


def _hash_uniform(seed: int, keys: list[np.ndarray]) -> np.ndarray:
    """A uniform number in (0, 1] for each integer key tuple; a pure function of ``seed`` and the keys."""
    h = np.full(keys[0].shape, np.uint64(seed))
    for key in keys:
        h = _mix(h + _SPLITMIX[0] + key.astype(np.int64).view(np.uint64))
    return ((h >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53


@dataclass(frozen=True)
class ElasticField:
    """A smooth random displacement field, a pure function of world position.

    Random vectors sit on the infinite lattice ``k * spacing`` (world units, anchored at the world
    origin): each displaced component is a normal deviate of std ``magnitude`` truncated at
    ``truncate`` stds, hashed from ``(seed, component, k)``. Between lattice points the field is
    interpolated (multi)linearly, so it never exceeds its largest lattice value and is the same
    wherever it is evaluated. Only the ``axes`` components are displaced (the others are zero).
    """

    seed: int
    spacing: float
    magnitude: float
    axes: tuple[int, ...]
    truncate: float = 3.0

    def _lattice(self, first: list[int], counts: list[int], axis: int) -> np.ndarray:
        """Component ``axis`` on the lattice block that starts at index ``first``."""
        ks = np.meshgrid(*(np.arange(f, f + n) for f, n in zip(first, counts, strict=True)), indexing="ij")
        u1 = _hash_uniform(self.seed, [np.full_like(ks[0], 2 * axis), *ks])
        u2 = _hash_uniform(self.seed, [np.full_like(ks[0], 2 * axis + 1), *ks])
        normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller
        return self.magnitude * np.clip(normal, -self.truncate, self.truncate)

    def _weights(self, positions: np.ndarray) -> tuple[int, np.ndarray]:
        """(first lattice index, linear interpolation weights [points, lattice]) along one axis."""
        u = positions / self.spacing
        below = np.floor(u)
        first = int(below.min())
        weights = np.zeros((len(u), int(below.max()) - first + 2))
        rows, cols = np.arange(len(u)), (below - first).astype(int)
        weights[rows, cols] = 1.0 - (u - below)
        weights[rows, cols + 1] = u - below
        return first, weights

    def _block(self, positions: list[np.ndarray]) -> tuple[list[int], list[np.ndarray]]:
        """(first lattice index, interpolation weights) per axis for the grid of ``positions``."""
        firsts, weights = zip(*(self._weights(p) for p in positions), strict=True)
        return list(firsts), list(weights)

    def evaluate(self, positions: list[np.ndarray]) -> dict[int, np.ndarray]:
        """Displaced component -> its values on the grid of world ``positions`` (one 1D array per axis)."""
        firsts, weights = self._block(positions)
        field = {}
        for axis in self.axes:
            values = self._lattice(firsts, [w.shape[1] for w in weights], axis)
            for a, w in enumerate(weights):
                values = np.moveaxis(np.tensordot(w, values, axes=(1, a)), 0, a)
            field[axis] = values
        return field

    def bound(self, positions: list[np.ndarray]) -> np.ndarray:
        """Per axis, an upper bound of the absolute displacement on the grid of ``positions``: the
        largest lattice value that the interpolation there mixes."""
        firsts, weights = self._block(positions)
        out = np.zeros(len(positions))
        for axis in self.axes:
            out[axis] = np.abs(self._lattice(firsts, [w.shape[1] for w in weights], axis)).max()
        return out


def _centres(roi: Roi, voxel_size: np.ndarray) -> list[np.ndarray]:
    """World positions of the voxel centres of ``roi`` along each axis."""
    return [b + (np.arange(s // v) + 0.5) * v for b, s, v in zip(roi.begin, roi.shape, voxel_size, strict=True)]


@dataclass
class WorldMap:
    """``p -> centre + matrix @ (p - centre) + elastic(p)``; ``centre`` is fixed at the first use if not given."""

    matrix: np.ndarray
    elastic: ElasticField | None = None
    centre: np.ndarray | None = None

    def _fix_centre(self, target_roi: Roi) -> np.ndarray:
        """The centre; the first call without one takes the centre of ``target_roi`` for good."""
        if self.centre is None:
            self.centre = (np.asarray(target_roi.begin, float) + np.asarray(target_roi.end, float)) / 2
        return self.centre

    def _index_map(self, target_roi: Roi, voxel_size: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(A, q0, exact): the source world point of target voxel ``j`` is ``q0 + voxel_size * (A @ j)``
        before elastic displacement; ``exact`` when that always lands on a source voxel centre."""
        centre = self._fix_centre(target_roi)
        first = np.asarray(target_roi.begin, float) + 0.5 * voxel_size
        q0 = centre + self.matrix @ (first - centre)
        a = self.matrix * voxel_size[np.newaxis, :] / voxel_size[:, np.newaxis]
        on_grid = (q0 - 0.5 * voxel_size) / voxel_size
        exact = (self.elastic is None and np.allclose(a, np.round(a), atol=_TOLERANCE)
                 and np.allclose(on_grid, np.round(on_grid), atol=_TOLERANCE))
        return (np.round(a) if exact else a), q0, exact

    def source_roi(self, target_roi: Roi, voxel_size) -> Roi:
        """The smallest region on the grid of ``voxel_size`` (multiples of it) whose voxels cover every
        point :meth:`warp` samples for ``target_roi``, including both neighbours of linear interpolation.

        The elastic part is bounded by its largest lattice vector near the target, so the region is
        at most that much larger than the exact need; a flip/transpose needs exactly the moved target."""
        v = np.asarray(voxel_size, float)
        a, q0, exact = self._index_map(target_roi, v)
        span = a @ np.diag(np.asarray(target_roi.shape, float) / v - 1)  # columns: edge vectors of the box
        corners = q0[:, np.newaxis] + v[:, np.newaxis] * (span @ _unit_corners(len(v)))
        low, high = corners.min(axis=1), corners.max(axis=1)
        if self.elastic is not None:
            reach = self.elastic.bound(_centres(target_roi, v))
            low, high = low - reach, high + reach
        first, last = (low - 0.5 * v) / v, (high + 0.5 * v) / v  # in voxels of the grid
        if exact:  # whole voxels already, up to rounding
            begin, end = np.round(first) * v, np.round(last) * v
        else:  # a margin against rounding: interpolation never reaches past the outermost voxel centres
            begin, end = np.floor(first - _TOLERANCE) * v, np.ceil(last + _TOLERANCE) * v
        return Roi(Coordinate(begin.astype(int)), Coordinate((end - begin).astype(int)))

    def warp(self, source: np.ndarray, source_roi: Roi, target_roi: Roi, voxel_size, order: int,
             mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
        """``source`` (leading channel axes allowed) on ``source_roi`` resampled onto ``target_roi``.

        ``order`` 1 interpolates linearly and returns floats (at least float32); ``order`` 0 takes the
        nearest voxel and keeps the dtype (exact for any label id). A map that is a pure flip/transpose
        on this grid is done by slicing, without interpolation. ``mode`` ("nearest" or "constant" with
        ``cval``) only matters where ``source_roi`` is smaller than :meth:`source_roi` asks for.
        """
        if order not in (0, 1) or mode not in ("nearest", "constant"):
            raise ValueError(f"order must be 0 or 1 and mode 'nearest' or 'constant', got {order}, {mode!r}")
        v = np.asarray(voxel_size, float)
        shape = tuple(int(s // vs) for s, vs in zip(target_roi.shape, v, strict=True))
        lead = source.ndim - len(v)
        dtype = np.result_type(source.dtype, np.float32) if order == 1 else source.dtype
        a, q0, exact = self._index_map(target_roi, v)
        offset = (q0 - np.asarray(source_roi.begin, float)) / v - 0.5
        if exact:
            return np.array(_slice(source, a.astype(int), np.round(offset).astype(int), shape), dtype, order="C")
        coords = np.empty((len(v),) + shape)
        coords[:] = offset.reshape((-1,) + (1,) * len(v))
        for s in range(len(v)):
            for axis in np.flatnonzero(a[s]):
                coords[s] += (a[s, axis] * np.arange(shape[axis])).reshape(_along(axis, len(v)))
        if self.elastic is not None:
            for axis, d in self.elastic.evaluate(_centres(target_roi, v)).items():
                coords[axis] += d / v[axis]
        flat = source.reshape((-1,) + source.shape[lead:])
        out = np.stack([_sample(channel, coords, order, mode, cval, dtype) for channel in flat])
        return out.reshape(source.shape[:lead] + shape)


def _unit_corners(dims: int) -> np.ndarray:
    """[dims, 2**dims] 0/1 columns: the corners of the unit box."""
    return np.array(np.meshgrid(*([[0.0, 1.0]] * dims), indexing="ij")).reshape(dims, -1)


def _along(axis: int, dims: int) -> tuple[int, ...]:
    return tuple(-1 if a == axis else 1 for a in range(dims))


def _slice(source: np.ndarray, a: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Target voxel ``j`` is source voxel ``offset + a @ j`` (``a`` a signed permutation): slice, flip, transpose."""
    lead = source.ndim - len(shape)
    slices, flips, order = [], [], [0] * len(shape)
    for s, row in enumerate(a):
        axis = int(np.flatnonzero(row)[0])
        first, last = offset[s], offset[s] + row[axis] * (shape[axis] - 1)
        low, high = min(first, last), max(first, last)
        if low < 0 or high >= source.shape[lead + s]:
            raise ValueError(f"the source region does not cover the target on axis {s}")
        slices.append(slice(low, high + 1))
        order[axis] = lead + s
        if row[axis] < 0:
            flips.append(lead + s)
    out = np.flip(source[(Ellipsis, *slices)], axis=flips)
    return out.transpose(list(range(lead)) + order)


def _sample(channel: np.ndarray, coords: np.ndarray, order: int, mode: str, cval: float,
            dtype: np.dtype) -> np.ndarray:
    """``channel`` at fractional voxel ``coords``: linear (``order`` 1) or nearest (``order`` 0)."""
    if order == 1:
        return map_coordinates(channel, coords, output=dtype, order=1, mode=mode, cval=cval)
    index = [np.rint(c).astype(np.intp) for c in coords]
    inside = np.ones(index[0].shape, bool)
    for axis, i in enumerate(index):
        inside &= (i >= 0) & (i < channel.shape[axis])
        np.clip(i, 0, channel.shape[axis] - 1, out=i)
    out = channel[tuple(index)]
    if mode == "constant":
        out = np.where(inside, out, np.asarray(cval).astype(dtype))
    return out
