"""Crop centres for training: which dataset a sample comes from, and where in it.

Conventions (world units throughout):

- a centre lies on its dataset's raw voxel grid, ``region.begin + i * raw_voxel_size``, and so on
  the labels and mask grids too (see :class:`~alfine.datasplits.config.DatasetGeometry`);
- a crop of ``shape`` voxels of ``voxel_size`` around a centre is :func:`centred_roi`: it starts
  ``shape // 2`` voxels before the centre, so it is aligned to its grid whatever the shape;
- ``needed`` is the full world extent a sample reads around its centre (not a half-extent);
  the sampler guarantees that ``Roi(centre - needed // 2, needed)`` lies inside the usable region.

Every centre that satisfies this is equally likely. With ``min_masked > 0`` and a mask, only
centres whose label crop holds at least that fraction of non-zero mask voxels are drawn, and
this holds exactly, not approximately: the mask is read once, block by block, into masked
voxel counts per cell of a coarse grid (at most ``max_cells`` cells). Centres are grouped in
bins of one cell; the counts give every bin a lower bound (cells inside every crop of the bin)
and an upper bound (cells touching any crop of the bin) on its crops' masked voxels. Bins whose
upper bound falls short are never drawn; a centre from a bin whose lower bound suffices is
accepted at once; one from an undecided bin (near the mask's edges) is accepted only after its
label crop's mask is read and counted, else drawn again. Without a mask every labelled voxel is
known, so ``min_masked`` holds everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import UserError
from ..volumes import Volume
from .config import DatasetGeometry

BLOCK_VOXELS = 2**24  # mask voxels read at once while counting
MAX_TRIES = 1000  # draws from undecided bins before a dataset is declared hopeless


def centred_roi(centre: Sequence[int], shape: Sequence[int], voxel_size: Sequence[int]) -> Roi:
    """The region of ``shape`` voxels of ``voxel_size`` that starts ``shape // 2`` voxels before ``centre``."""
    shape, voxel_size = np.asarray(shape), np.asarray(voxel_size)
    return Roi(Coordinate(np.asarray(centre) - shape // 2 * voxel_size), Coordinate(shape * voxel_size))


class CropSampler:
    """Draws (dataset index, centre) pairs: datasets in proportion to their weights, centres uniformly.

    ``datasets`` holds ``(weight, geometry, mask volume or None)``. ``label_shape`` is the label
    crop (in label voxels, see :func:`centred_roi`) whose masked fraction ``min_masked`` bounds;
    by default the largest one inside the needed extent. A dataset whose region cannot hold
    ``needed``, or (with ``min_masked``) whose mask has no crop masked enough, is a
    :class:`UserError` naming it.
    """

    def __init__(
        self,
        datasets: Sequence[tuple[float, DatasetGeometry, Volume | None]],
        needed: Sequence[int],
        min_masked: float = 0.0,
        label_shape: Sequence[int] | None = None,
        max_cells: int = 2**20,
    ):
        weights = np.asarray([w for w, _, _ in datasets], dtype=float)
        if not len(weights) or not np.all(weights > 0):
            raise ValueError(f"a sampler needs datasets of positive weight, got weights {weights.tolist()}")
        if not 0 <= min_masked <= 1 or max_cells < 1:
            raise ValueError(f"min_masked must be in [0, 1] and max_cells >= 1, got {min_masked}, {max_cells}")
        self.probabilities = weights / weights.sum()
        self.centres = [_Centres(g, mask, np.asarray(needed), min_masked, label_shape, max_cells)
                        for _, g, mask in datasets]

    def sample(self, rng: np.random.Generator) -> tuple[int, Coordinate]:
        """A dataset index and a centre in it; a function of ``rng``'s state only."""
        which = int(rng.choice(len(self.centres), p=self.probabilities))
        return which, self.centres[which].draw(rng)


@dataclass
class _Bins:
    """Centre indices grouped in a grid of bins, with what is known about their label crops."""

    starts: list[np.ndarray]  # per axis, each bin's first centre index
    sizes: list[np.ndarray]  # per axis, how many centre indices each bin holds
    candidates: np.ndarray  # flat indices of the bins that may hold a qualifying centre
    cumulative: np.ndarray  # cumulative centre counts of the candidates
    sure: np.ndarray  # per candidate: every centre in it qualifies


class _Centres:
    """The centres of one dataset: ``region.begin + i * raw_voxel_size`` for ``first <= i <= last``."""

    def __init__(self, geometry: DatasetGeometry, mask: Volume | None, needed: np.ndarray, min_masked: float,
                 label_shape: Sequence[int] | None, max_cells: int):
        self.geometry, self.mask, self.min_masked = geometry, mask, min_masked
        self.begin, self.step = np.asarray(geometry.region.begin), np.asarray(geometry.raw_voxel_size)
        if len(needed) != len(self.step):
            raise ValueError(f"needed extent {needed.tolist()} has {len(needed)} axes, the data {len(self.step)}")
        half = needed // 2
        first = -(-half // self.step)
        last = (np.asarray(geometry.region.shape) - needed + half) // self.step
        if np.any(last < first):
            raise UserError(f"dataset {geometry.name}: its usable region {tuple(geometry.region.shape)} (where raw "
                            f"and labels overlap) is smaller than the needed extent {tuple(needed.tolist())}")
        voxel = np.asarray(geometry.labels_voxel_size)
        shape = np.asarray(label_shape) if label_shape is not None else 2 * (half // voxel)
        self.label_shape = shape
        crop = centred_roi(np.zeros_like(shape), shape, voxel)  # relative to the centre
        if np.any(shape < 1) or not Roi(Coordinate(-half), Coordinate(needed)).contains(crop):
            raise ValueError(f"label crop {shape.tolist()} voxels of {voxel.tolist()} must lie inside the needed "
                             f"extent {needed.tolist()}")
        if mask is None or min_masked == 0:
            self.bins = _Bins([np.array([f]) for f in first], [np.array([n]) for n in last - first + 1],
                              np.zeros(1, int), np.array([np.prod(last - first + 1)]), np.ones(1, bool))
        else:
            self.bins = self._mask_bins(first, last, crop, max_cells)

    def draw(self, rng: np.random.Generator) -> Coordinate:
        """A uniformly drawn centre among those that qualify."""
        bins = self.bins
        shape = tuple(len(s) for s in bins.starts)
        for _ in range(MAX_TRIES):
            pick = int(np.searchsorted(bins.cumulative, rng.integers(bins.cumulative[-1]), side="right"))
            index = np.unravel_index(bins.candidates[pick], shape)
            i = np.array([rng.integers(start[j], start[j] + size[j])
                          for start, size, j in zip(bins.starts, bins.sizes, index, strict=True)])
            centre = Coordinate(self.begin + i * self.step)
            if bins.sure[pick] or self._masked_enough(centre):
                return centre
        raise UserError(f"dataset {self.geometry.name}: no crop of {self.label_shape.tolist()} label voxels with at "
                        f"least {self.min_masked:g} of mask {self.mask.url.url} set found in {MAX_TRIES} tries")

    def _masked_enough(self, centre: Coordinate) -> bool:
        crop = centred_roi(centre, self.label_shape, self.geometry.labels_voxel_size)
        mask = self.mask.read(crop, fill_value=0)
        return np.count_nonzero(mask) >= self.min_masked * mask.size

    def _mask_bins(self, first: np.ndarray, last: np.ndarray, crop: Roi, max_cells: int) -> _Bins:
        """Bins of ``k`` centres per axis over mask cells of ``k`` raw voxels.

        ``k`` starts at 1 and doubles, until at most ``max_cells`` cells remain, on the axis where
        the label crop spans the most cells, so cells stay small against the crop on every axis.
        """
        extent = np.asarray(self.geometry.region.shape)
        k = np.ones_like(self.step)
        while np.prod(cells := -(-extent // (k * self.step))) > max_cells:
            spans = np.where(cells > 1, np.asarray(crop.shape) / (k * self.step), 0)
            k[np.argmax(spans)] *= 2
        cell = k * self.step
        counts = _mask_counts(self.mask, self.begin, cell, cells)
        integral = np.zeros(tuple(n + 1 for n in counts.shape), np.int64)
        integral[(slice(1, None),) * counts.ndim] = counts
        for axis in range(counts.ndim):
            np.cumsum(integral, axis=axis, out=integral)
        starts, sizes, inner, touched = [], [], [], []
        for a in range(len(k)):
            j = np.arange(first[a] // k[a], last[a] // k[a] + 1)
            lo, hi = np.maximum(j * k[a], first[a]), np.minimum(j * k[a] + k[a] - 1, last[a])
            starts.append(lo)
            sizes.append(hi - lo + 1)
            # label crop starts, relative to the region, of the bin's first and last centre
            x_lo, x_hi = lo * self.step[a] + crop.begin[a], hi * self.step[a] + crop.begin[a]
            n, c, length = counts.shape[a], cell[a], crop.shape[a]
            full_lo = np.clip(-(-x_hi // c), 0, n)
            inner.append((full_lo, np.clip((x_lo + length) // c, full_lo, n)))
            touched.append((np.clip(x_lo // c, 0, n), np.clip(-(-(x_hi + length) // c), 0, n)))
        threshold = self.min_masked * np.prod(self.label_shape)
        lower, upper = _box_sums(integral, inner).ravel(), _box_sums(integral, touched).ravel()
        candidates = np.flatnonzero(upper >= threshold)
        if not len(candidates):
            raise UserError(f"dataset {self.geometry.name}: no crop of {self.label_shape.tolist()} label voxels has at "
                            f"least {self.min_masked:g} of mask {self.mask.url.url} set")
        weights = np.prod(np.meshgrid(*sizes, indexing="ij"), axis=0).ravel()[candidates]
        return _Bins(starts, sizes, candidates, np.cumsum(weights), lower[candidates] >= threshold)


def _mask_counts(mask: Volume, begin: np.ndarray, cell: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Non-zero voxels of ``mask`` in each cell of the grid ``begin + j * cell`` (``cells`` per axis).

    The mask is read in blocks of at most :data:`BLOCK_VOXELS` voxels; outside it counts as zero.
    Cells at the far end may reach past the usable region and count voxels there too.
    """
    per_cell = cell // np.asarray(mask.voxel_size)
    block = cells.copy()
    while np.prod(block * per_cell) > BLOCK_VOXELS and np.any(block > 1):
        widest = int(np.argmax(block * per_cell * (block > 1)))
        block[widest] = -(-block[widest] // 2)
    counts = np.zeros(tuple(cells), np.int64)
    for corner in itertools.product(*(range(0, n, b) for n, b in zip(cells, block, strict=True))):
        size = np.minimum(block, cells - corner)
        roi = Roi(Coordinate(begin + np.asarray(corner) * cell), Coordinate(size * cell))
        data = mask.read(roi, fill_value=0) != 0
        split = data.reshape(tuple(itertools.chain.from_iterable(zip(size, per_cell, strict=True))))
        where = tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))
        counts[where] = split.sum(axis=tuple(range(1, 2 * len(size), 2)))
    return counts


def _box_sums(integral: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Counts summed over every combination of per-axis cell ranges ``[lo, hi)``, from their integral image."""
    total = np.zeros(tuple(len(lo) for lo, _ in boxes), np.int64)
    for corner in itertools.product((0, 1), repeat=len(boxes)):
        index = np.ix_(*(box[c] for box, c in zip(boxes, corner, strict=True)))
        total += (-1) ** (len(boxes) - sum(corner)) * integral[index]
    return total
