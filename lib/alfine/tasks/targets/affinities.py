"""Affinity targets: whether a voxel and its neighbour at a given offset belong to the same object.

Labels are instance ids (0 = background) with spatial shape ``[*spatial]`` (2D or 3D); a
neighbourhood is a list of integer offsets in voxels, one per output channel, each as long as
the labels have axes. Offsets may be negative and long-range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def affinities(
    labels: np.ndarray,
    neighborhood: Sequence[Sequence[int]],
    background_as_object: bool = False,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Affinities ``[C, *spatial]`` and where they are known, both float32.

    Channel ``c`` at voxel ``v`` is 1 iff ``labels[v] == labels[v + neighborhood[c]]`` and
    ``labels[v]`` is an object (nonzero, or anything if ``background_as_object``); else 0.
    ``known`` is 1 iff ``v`` and ``v + neighborhood[c]`` both lie inside the array and, when
    ``mask`` is given, both have a nonzero ``mask``. Where the neighbour lies outside the array
    the affinity is 0 and unknown: a crop edge never reads as a known boundary.

    Raises ``ValueError`` if an offset's length differs from the number of axes of ``labels``
    or ``mask`` has another shape than ``labels``.
    """
    labels = np.asarray(labels)
    offsets = _offsets(neighborhood, labels.ndim)
    labelled = None if mask is None else _mask(mask, labels.shape)
    is_object = None if background_as_object else labels != 0
    affs = np.zeros((len(offsets),) + labels.shape, np.float32)
    known = np.zeros_like(affs)
    for channel, offset in enumerate(offsets):
        here, there = _overlap(labels.shape, offset)
        same = labels[here] == labels[there]
        if is_object is not None:
            same &= is_object[here]
        affs[channel][here] = same
        known[channel][here] = 1.0 if labelled is None else labelled[here] & labelled[there]
    return affs, known


def affinity_context(neighborhood: Sequence[Sequence[int]], voxel_size: Sequence[int]) -> tuple[int, ...]:
    """World-unit context per axis a crop needs on each side for its interior affinities to be known.

    That is the largest ``|offset|`` along each axis times the voxel size along it.
    """
    offsets = _offsets(neighborhood, len(voxel_size))
    return tuple(int(reach) * int(size) for reach, size in zip(np.abs(offsets).max(axis=0), voxel_size, strict=True))


def _offsets(neighborhood: Sequence[Sequence[int]], ndim: int) -> np.ndarray:
    """The neighbourhood as an int array ``[C, ndim]``; ``ValueError`` if it is not one."""
    offsets = np.asarray(neighborhood)
    if offsets.ndim != 2 or offsets.shape[0] == 0 or offsets.shape[1] != ndim:
        raise ValueError(f"neighborhood must be a non-empty list of offsets of length {ndim}, got {neighborhood!r}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"neighborhood offsets must be integers, got {neighborhood!r}")
    return offsets.astype(np.int64)


def _mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask != 0``; ``ValueError`` if its shape is not ``shape``."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask has shape {mask.shape}, the labels {shape}")
    return mask != 0


def _overlap(shape: tuple[int, ...], offset: np.ndarray) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices ``here`` and ``there`` with ``there = here + offset``, both inside ``shape`` and as large as can be."""
    here, there = [], []
    for size, step in zip(shape, offset.tolist(), strict=True):
        length = max(size - abs(step), 0)
        here.append(slice(max(-step, 0), max(-step, 0) + length))
        there.append(slice(max(step, 0), max(step, 0) + length))
    return tuple(here), tuple(there)
