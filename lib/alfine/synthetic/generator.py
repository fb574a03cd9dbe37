"""A synthetic EM-like volume, generated block by block as a pure function of world position.

Cells are a Voronoi packing of seeds on a jittered grid (one seed per grid cell of side
``cell_size``), computed on coordinates warped by a smooth random vector field so that
membranes are curved. Some cells hold one mitochondrion-like organelle; the cytoplasm carries
unlabelled dark vesicles and a granular texture; membranes are dark but fade in places. The
image is blurred and gets per-voxel noise.

Every random quantity comes from a counter-based integer hash of (seed, what, integer
position), never from a sequential generator, so any block of any volume is bit-identical to
the same voxels generated as part of any other block. The image content (raw, classes) is a
function of world position only; instance ids and the mask are relative to the volume.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

__all__ = ["VERSION", "SyntheticParams", "generate_block"]

VERSION = 1
"""The version of the generated content: bump it whenever the same parameters give other voxels."""

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Hash domains, one per kind of random quantity.
_WARP, _SEED, _CELL, _TEXTURE, _MEMBRANE, _ORGANELLE, _VESICLE, _NOISE = range(1, 9)
_JITTER = 0.8  # a cell's seed lies in the central 80% of its grid cell, per axis
_WARP_AMPLITUDE = 0.25  # of the cell size
_BLUR_TRUNCATE = 3.0  # kernel radius in standard deviations


@dataclass(frozen=True)
class SyntheticParams:
    """What the volume looks like; world units unless stated otherwise."""

    seed: int = 0
    cell_size: float | None = None  # mean cell diameter in world units; None -> 40 * min(voxel_size)
    membrane_width: float | None = None  # world units; None -> 2.0 * min(voxel_size)
    organelle_fraction: float = 0.5  # fraction of cells that contain an organelle
    noise: float = 12.0  # std of Gaussian noise, in uint8 grey levels
    blur_sigma: float = 1.0  # in voxels (of the smallest voxel dimension; scale per axis for anisotropy)


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A 1D array shaped to lie along ``axis`` of an ``ndim``-dimensional grid (for broadcasting)."""
    return v.reshape([-1 if a == axis else 1 for a in range(ndim)])


def _mix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijection of uint64 with full avalanche (wraps around)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _hash(seed: int, domain: int, *coords: np.ndarray | int) -> np.ndarray:
    """uint64 hash of (seed, domain, *coords), broadcast over the integer arrays ``coords``.

    Pass 1D arrays shaped to broadcast against each other (e.g. ``i[:, None], j[None, :]``):
    only the last combination is done at full size.
    """
    h = _mix(np.array([(seed * 0x100000001B3 + domain) & _MASK64], dtype=np.uint64))
    for c in coords:
        h = _mix(h * _GOLDEN + np.asarray(c, dtype=np.int64).astype(np.uint64))
    return h


def _uniform(h: np.ndarray) -> np.ndarray:
    """Hashes -> float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _gaussian(h: np.ndarray) -> np.ndarray:
    """Hashes -> approximately standard normal float32 (Irwin-Hall sum of four 16-bit uniforms,
    rescaled; tails end at +-3.46). Integer arithmetic and IEEE float operations only, so the
    result is bit-reproducible on any array layout (no transcendental functions)."""
    m = np.uint64(0xFFFF)
    s = (h & m) + ((h >> np.uint64(16)) & m) + ((h >> np.uint64(32)) & m) + (h >> np.uint64(48))
    return ((s.astype(np.float32) + 2.0) / 65536.0 - 2.0) * np.float32(math.sqrt(3.0))


def _value_noise(seed: int, domain: int, coords: Sequence[np.ndarray], wavelength: float) -> np.ndarray:
    """Smooth noise in [-1, 1] (float32) on the grid spanned by the 1D world coordinates ``coords``.

    Hashed values on an integer lattice of spacing ``wavelength`` are interpolated with
    smoothstep weights, one axis at a time; a voxel's value depends only on its world position.
    """
    starts, rows, weights = [], [], []
    for x in coords:
        u = x / wavelength
        i = np.floor(u)
        t = (u - i).astype(np.float32)
        i = i.astype(np.int64)
        starts.append(i.min())
        rows.append(i - i.min())
        weights.append(t * t * (3 - 2 * t))
    ndim = len(coords)
    lattice = [
        _along(np.arange(s, s + r.max() + 2), a, ndim) for a, (s, r) in enumerate(zip(starts, rows, strict=True))
    ]
    values = (_uniform(_hash(seed, domain, *lattice)) * 2 - 1).astype(np.float32)
    for a, (r, w) in enumerate(zip(rows, weights, strict=True)):
        low, high = values.take(r, axis=a), values.take(r + 1, axis=a)
        high -= low
        high *= _along(w, a, ndim)
        low += high
        values = low
    return values


def _seeds(seed: int, cell_size: float, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (n, ndim) int64, in lexicographic order, and world positions (n, ndim) of the
    cell seeds of every grid cell in the inclusive index box ``lo .. hi``."""
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)], indexing="ij"), -1)
    grid = grid.reshape(-1, len(lo))
    jitter = [_uniform(_hash(seed, _SEED, a, *grid.T)) for a in range(len(lo))]
    positions = (grid + (1 - _JITTER) / 2 + _JITTER * np.stack(jitter, -1)) * cell_size
    return grid, positions


def _tiled(a: np.ndarray, tile: Sequence[int]) -> np.ndarray:
    """(n0*t0, n1*t1, ..) -> (n0*n1*.., t0*t1*..): one row per tile."""
    n = [s // t for s, t in zip(a.shape, tile, strict=True)]
    split = a.reshape([v for pair in zip(n, tile, strict=True) for v in pair])
    tiles_first = list(range(0, 2 * a.ndim, 2)) + list(range(1, 2 * a.ndim, 2))
    return split.transpose(tiles_first).reshape(math.prod(n), -1)


def _untiled(a: np.ndarray, shape: Sequence[int], tile: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`_tiled`."""
    n = [s // t for s, t in zip(shape, tile, strict=True)]
    ndim = len(shape)
    split = a.reshape(list(n) + list(tile))
    return split.transpose([v for a in range(ndim) for v in (a, ndim + a)]).reshape(shape)


def _voronoi(
    q: list[np.ndarray], tile: Sequence[int], seeds: np.ndarray, d_cut: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest seed (index into ``seeds``) of every point ``q`` (one array per axis), and the
    point's distance to the boundary of its Voronoi cell, capped at ``d_cut``.

    Exact: the grid is cut into tiles (``tile`` points per axis; the shape must be a multiple),
    each tile gets every seed that can, for some point in the tile's bounding box, be the
    nearest one or have its bisector with the nearest one closer than ``d_cut``, and points are
    compared against those by brute force. Distances are computed the same way whatever the
    tiling and exact ties go to the lower index, so the result depends only on each point as
    long as ``seeds`` is in a consistent order (lexicographic grid index) and holds every seed
    within ``nearest seed distance + 2 * tile half-diagonal + 2 * d_cut`` of each tile centre.
    The boundary distance is the minimum over the cell's bisector planes: exact, continuous.
    """
    shape = q[0].shape
    qt = [_tiled(c, tile) for c in q]
    lo = np.stack([c.min(axis=1) for c in qt], -1)
    hi = np.stack([c.max(axis=1) for c in qt], -1)
    centre, half = (lo + hi) / 2, np.linalg.norm(hi - lo, axis=-1) / 2
    tree = cKDTree(seeds)
    nearest, _ = tree.query(centre)
    eps = 1e-9 * (1 + np.abs(seeds).max())
    lists = tree.query_ball_point(centre, nearest + 2 * half + 2 * d_cut + 2 * eps, return_sorted=True)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    found = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=counts.sum())
    cand = np.full((len(lists), counts.max()), len(seeds), dtype=np.int64)  # padding: a seed far away
    cand[
        np.arange(len(lists)).repeat(counts), np.arange(counts.sum()) - (np.cumsum(counts) - counts).repeat(counts)
    ] = found
    # A seed matters for a point only if its distance is at most the nearest one's + 2 d_cut (a
    # bisector is at least half the difference away); prune with the tile's bounding box.
    padded = np.concatenate([seeds, np.full((1, seeds.shape[1]), 1e100)])
    pos = padded[cand]  # (tiles, k, ndim)
    below, above = lo[:, None] - pos, pos - hi[:, None]
    near = np.linalg.norm(np.maximum(np.maximum(below, above), 0), axis=-1)
    far = np.linalg.norm(np.maximum(np.abs(below), np.abs(above)), axis=-1)
    keep = near <= far.min(axis=1, keepdims=True) + 2 * d_cut + eps
    first = np.argsort(~keep, axis=1, kind="stable")  # kept seeds first, in order
    counts = keep.sum(axis=1)
    k = counts.max()
    cand = np.where(np.arange(k) < counts[:, None], np.take_along_axis(cand, first[:, :k], axis=1), len(seeds))
    pos = padded[cand]
    index = np.empty(qt[0].shape, dtype=np.int64)
    dist = np.empty(qt[0].shape, dtype=np.float32)
    # Brute force over chunks of tiles with the same candidate count, a few hundred kB at a time.
    chunks = []
    for n in np.unique(counts):
        same, size = np.flatnonzero(counts == n), max(1, (1 << 16) // (n * (qt[0].shape[1] + n)))
        chunks += [same[i : i + size] for i in range(0, len(same), size)]
    with np.errstate(divide="ignore", invalid="ignore"):
        for tiles in chunks:
            p = pos[tiles, : counts[tiles[0]]]  # (tiles, n, ndim)
            n = p.shape[1]
            pair = 2 * np.sqrt(sum((c[:, :, None] - c[:, None, :]) ** 2 for c in p.transpose(2, 0, 1))).reshape(-1)
            qc = [c[tiles] for c in qt]
            d2 = np.empty((n,) + qc[0].shape)
            t = np.empty_like(qc[0])
            for j in range(n):
                np.subtract(qc[0], p[:, j, 0, None], out=d2[j])
                d2[j] *= d2[j]
                for a in range(1, len(qc)):
                    np.subtract(qc[a], p[:, j, a, None], out=t)
                    t *= t
                    d2[j] += t
            d1 = d2.min(axis=0)
            local = np.zeros(d1.shape, dtype=np.int64)
            for j in reversed(range(1, n)):  # the lowest index among exact ties
                np.copyto(local, j, where=d2[j] == d1)
            row = np.arange(len(tiles))[:, None] * n + local  # (tile, nearest) in the chunk
            bound = np.full(d1.shape, d_cut)
            for j in range(n):  # 0 / 0 = nan at the nearest seed itself, which fmin ignores
                np.fmin(bound, (d2[j] - d1) / pair.take(row * n + j), out=bound)
            dist[tiles] = bound
            index[tiles] = cand[tiles, :n].reshape(-1).take(row)
    return _untiled(index, shape, tile), _untiled(dist, shape, tile)


def generate_block(
    volume_shape: Sequence[int],
    voxel_size: Sequence[float],
    offset: Sequence[float],
    block_begin: Sequence[int],
    block_shape: Sequence[int],
    params: SyntheticParams,
) -> dict[str, np.ndarray]:
    """Returns {"raw": uint8, "labels": uint64, "classes": uint8, "mask": uint8} for the voxels
    block_begin .. block_begin+block_shape (voxel indices into the volume of shape volume_shape,
    whose voxel (0,..) sits at world position `offset`, voxel i at offset + i*voxel_size).

    Works for any number of dimensions (2D and 3D). Bit-identical for the same voxels whatever
    the block; raw and classes depend only on world position and ``params``. ``classes``: 0
    membrane, 1 cytoplasm, 2 organelle; ``labels``: 0 on membranes, else a cell id (1 + index
    of the cell's seed in the grid of seed cells covering the volume grown by two grid cells)
    or an organelle id (the same plus the number of such grid cells). ``mask`` is 1 inside the
    ellipsoid centred in the volume with semi-axes 0.4 of its extent. The per-voxel noise is
    keyed on the world voxel index round(position / voxel_size), so raw of volumes whose
    offsets differ by whole voxels agrees on their common voxels. A block not inside the
    volume, mismatched lengths or negative sizes raise ValueError.
    """
    shape, begin, size = (np.asarray(v, dtype=np.int64) for v in (volume_shape, block_begin, block_shape))
    vs, off = np.asarray(voxel_size, dtype=np.float64), np.asarray(offset, dtype=np.float64)
    ndim = len(shape)
    if not all(len(v) == ndim for v in (vs, off, begin, size)):
        raise ValueError("volume_shape, voxel_size, offset, block_begin and block_shape need the same length")
    if np.any(size <= 0) or np.any(begin < 0) or np.any(begin + size > shape) or np.any(vs <= 0):
        raise ValueError(f"block {begin.tolist()}+{size.tolist()} is not inside the volume {shape.tolist()}")
    seed, vmin = params.seed, float(vs.min())
    cs = params.cell_size if params.cell_size is not None else 40.0 * vmin
    hw = (params.membrane_width if params.membrane_width is not None else 2.0 * vmin) / 2
    if cs <= 0 or hw < 0 or params.blur_sigma < 0 or params.noise < 0:
        raise ValueError(f"cell_size must be positive, the other sizes not negative: {params}")
    clear = 3 * hw  # organelles keep one membrane width clear of the membrane
    d_cut = clear + vmin

    # The block grown by the blur radius, padded up to whole Voronoi tiles.
    sigma = params.blur_sigma * vmin / vs
    radius = np.ceil(_BLUR_TRUNCATE * sigma).astype(np.int64)
    grown = size + 2 * radius
    tile = np.clip(np.round(0.2 * cs / vs), 1, 16).astype(np.int64)
    padded = -(-grown // tile) * tile
    x = [o + np.arange(b - r, b - r + p) * v for o, b, r, p, v in zip(off, begin, radius, padded, vs, strict=True)]

    # Cells: Voronoi of warped coordinates, with every seed that _voronoi may need.
    amplitude = _WARP_AMPLITUDE * cs
    q = [_along(x[a], a, ndim) + amplitude * _value_noise(seed, _WARP + 16 * a, x, cs) for a in range(ndim)]
    # Tile centres lie within `amplitude` of the grid's box, the nearest seed within the seed's
    # own grid cell's reach, tiles' half-diagonals are bounded by their size and the warp.
    nearest_max = (1 - (1 - _JITTER) / 2) * math.sqrt(ndim) * cs
    reach = amplitude + nearest_max + np.linalg.norm(tile * vs) + 2 * math.sqrt(ndim) * amplitude + 2 * d_cut
    g_lo = np.floor((np.array([c[0] for c in x]) - reach) / cs).astype(np.int64)
    g_hi = np.floor((np.array([c[-1] for c in x]) + reach) / cs).astype(np.int64)
    grid, seeds = _seeds(seed, cs, g_lo, g_hi)
    cell, dm = _voronoi(q, tile, seeds, d_cut)
    crop = tuple(slice(0, g) for g in grown)  # everything else on the grown block only
    cell, dm, q, x = cell[crop], dm[crop], [c[crop] for c in q], [c[:g] for c, g in zip(x, grown, strict=True)]

    # Per-cell properties (looked up per voxel with .take(cell)): u[0] brightness, u[1] vesicle
    # richness, u[2] organelle or not, u[3] and u[4] organelle radii, `axis` its orientation.
    u = [_uniform(_hash(seed, _CELL, k, *grid.T)).astype(np.float32) for k in range(5)]
    axis = np.stack([_uniform(_hash(seed, _CELL, 8 + k, *grid.T)) - 0.5 for k in range(ndim)])
    axis = (axis / np.linalg.norm(axis, axis=0)).astype(np.float32)
    long_r, short_r = (0.3 + 0.15 * u[3]) * cs, (0.15 + 0.07 * u[4]) * cs

    # Organelle: a bumpy spheroid around the seed along `axis`, clear of the membrane.
    d = [(c - seeds[:, a].take(cell)).astype(np.float32) for a, c in enumerate(q)]
    del q
    along = sum(c * axis[a].take(cell) for a, c in enumerate(d))
    inv_short, inv_long = 1 / (short_r * short_r), 1 / (long_r * long_r)
    f = sum(c * c for c in d) * inv_short.take(cell) + along * along * (inv_long - inv_short).take(cell)
    bumps = _value_noise(seed, _ORGANELLE, x, 0.3 * cs)
    rho = np.sqrt(f / (1 + 0.3 * bumps))
    organelle = (u[2] < params.organelle_fraction).take(cell) & (rho < 1) & (dm > clear)
    classes = np.where(dm < hw, 0, np.where(organelle, 2, 1)).astype(np.uint8)

    # Cytoplasm: per-cell brightness, granular texture, dark unlabelled vesicles. A vesicle may sit
    # in each cell of a finer grid (spacing `fine`), wholly inside it, so only that one is checked.
    raw = (170 + 30 * (u[0] - 0.5)).take(cell)
    raw += 10 * _value_noise(seed, _TEXTURE, x, 2.5 * vmin) + 5 * _value_noise(seed, _TEXTURE + 16, x, 6 * vmin)
    fine = max(0.25 * cs, 10 * vmin)
    cells = [np.floor(c / fine).astype(np.int64) for c in x]
    box = [c[-1] - c[0] + 1 for c in cells]
    flat = sum(_along(c - c[0], a, ndim) * math.prod(box[a + 1 :]) for a, c in enumerate(cells))
    lattice = [_along(np.arange(c[0], c[-1] + 1), a, ndim) for a, c in enumerate(cells)]
    vu = [_uniform(_hash(seed, _VESICLE, k, *lattice)).astype(np.float32).ravel() for k in range(ndim + 2)]
    vr = (2 + 1.5 * vu[-2]) * vmin
    vd2 = sum(
        (_along((x[a] - cells[a] * fine).astype(np.float32), a, ndim) - (vr + (fine - 2 * vr) * vu[a]).take(flat)) ** 2
        for a in range(ndim)
    )
    cover = np.clip(vr.take(flat) - np.sqrt(vd2), 0, vmin) / vmin
    cover *= (vu[-1].take(flat) < np.where(u[1] < 0.35, 0.9, 0.15).astype(np.float32).take(cell)) & (classes == 1)
    raw += cover * (70 - raw)

    # Membranes: dark, fading in places; organelles: dark rim, grey interior with cristae.
    if hw > 0:
        t = np.clip((1.75 * hw - dm) / hw, 0, 1)
        fade = np.clip(0.4 + 0.8 * _value_noise(seed, _MEMBRANE, x, 0.8 * cs), 0, 1)
        raw += t * t * (3 - 2 * t) * (45 + 85 * fade * fade * fade - raw)
    phase = along / np.float32(0.12 * cs) + 0.5 * bumps
    stripe = np.clip((0.35 - 2 * np.abs(phase - np.floor(phase) - 0.5)) / 0.15, 0, 1)
    raw = np.where(organelle, np.where(rho > 0.75, 65, 130 - 55 * stripe), raw)

    # Blur (exact inside the grown block), crop, per-voxel noise.
    for a in range(ndim):
        if radius[a] > 0:
            raw = gaussian_filter1d(raw, sigma[a], axis=a, mode="nearest", radius=int(radius[a]))
    inner = tuple(slice(r, r + s) for r, s in zip(radius, size, strict=True))
    # Noise keyed on the world voxel index, so that it too depends on world position only.
    index = [_along(np.floor(x[a][inner[a]] / vs[a] + 0.5).astype(np.int64), a, ndim) for a in range(ndim)]
    raw = raw[inner] + np.float32(params.noise) * _gaussian(_hash(seed, _NOISE, *index))
    raw = np.clip(np.rint(raw), 0, 255).astype(np.uint8)

    # Ids relative to the volume's grid of seed cells.
    id_lo = np.floor((off - vs / 2) / cs).astype(np.int64) - 2
    id_dims = np.floor((off + (shape - 0.5) * vs) / cs).astype(np.int64) + 3 - id_lo
    rel = grid - id_lo
    known = np.all((rel >= 0) & (rel < id_dims), axis=1)
    linear = np.ravel_multi_index(tuple(np.clip(rel, 0, id_dims - 1).T), tuple(id_dims))
    cell_id = np.where(known, 1 + linear, 0).astype(np.uint64)
    cell, classes = cell[inner], classes[inner]
    labels = cell_id.take(cell)
    if np.any((labels == 0) & (classes > 0)):
        raise RuntimeError("a voxel's cell lies outside the volume's id grid")
    labels[classes == 2] += np.uint64(math.prod(id_dims))
    labels[classes == 0] = 0

    radial = [
        ((np.arange(begin[a], begin[a] + size[a]) + 0.5 - shape[a] / 2) / (0.4 * shape[a])) ** 2 for a in range(ndim)
    ]
    mask = sum(_along(c, a, ndim) for a, c in enumerate(radial)) < 1
    return {"raw": raw, "labels": labels, "classes": classes, "mask": mask.astype(np.uint8)}
