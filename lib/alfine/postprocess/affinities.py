"""Affinities and their offsets, as the affinity-based methods take them.

Convention (the same as ``mwatershed`` and alfine's affinity targets): channel ``c`` of an
affinity array ``[C, *spatial]`` at voxel ``v`` is the affinity between ``v`` and
``v + offsets[c]``; high means "same object". Offsets are integer vectors, one per channel, as
long as there are spatial axes, and may be negative. Nearest-neighbour offsets are those with
a single nonzero component of size 1 (``[0, 0, 1]``, ``[-1, 0, 0]``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UserError
from .arrays import check_prediction

Slices = tuple[slice, ...]


def check_affinities(affinities: np.ndarray, offsets: Sequence[Sequence[int]] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(affinities, offsets)`` as arrays ``[C, *spatial]`` and int64 ``[C, ndim]``.

    Raises :class:`UserError` unless there is one nonzero integer offset per channel, each with
    one entry per spatial axis.
    """
    affinities = check_prediction(affinities)
    ndim = affinities.ndim - 1
    array = np.asarray(offsets if offsets is not None else [])
    if array.shape != (len(affinities), ndim) or not np.issubdtype(array.dtype, np.integer):
        raise UserError(
            f"expected {len(affinities)} integer offsets of length {ndim} (one per affinity channel), got {offsets!r}"
        )
    if not np.abs(array).sum(axis=1).all():
        raise UserError(f"an affinity offset cannot be all zeros, got {offsets!r}")
    return affinities, array.astype(np.int64)


def nearest_neighbour_channels(offsets: np.ndarray) -> np.ndarray:
    """Indices of the nearest-neighbour offsets; a :class:`UserError` if there are none."""
    channels = np.flatnonzero(np.abs(offsets).sum(axis=1) == 1)
    if len(channels) == 0:
        raise UserError(f"no nearest-neighbour offset (like [0, 0, 1]) among {offsets.tolist()}")
    return channels


def edge_slices(shape: Sequence[int], offset: Sequence[int]) -> tuple[Slices, Slices]:
    """``(here, there)``: the slices of all voxels ``v`` with ``v`` and ``v + offset`` inside ``shape``, and of
    those ``v + offset``."""
    here, there = [], []
    for size, step in zip(shape, offset, strict=True):
        length = max(size - abs(step), 0)
        here.append(slice(max(-step, 0), max(-step, 0) + length))
        there.append(slice(max(step, 0), max(step, 0) + length))
    return tuple(here), tuple(there)
