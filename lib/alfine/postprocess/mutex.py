"""Mutex watershed of affinities (``mwatershed.agglom``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UserError
from .affinities import check_affinities
from .agglomeration import tidy
from .labels import finish_instances
from .reuse import digest, last_or_compute


def mutex_watershed(
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    bias: float | Sequence[float] = -0.5,
    strides: int | Sequence[Sequence[int]] = 2,
    randomized_strides: bool = False,
    min_size: int = 0,
    min_fragment: int = 0,
    fill: float | None = None,
) -> np.ndarray:
    """The mutex watershed segmentation of ``affinities + bias``, uint64 labels 1..n (0 = background).

    Channel ``c`` at voxel ``v`` is the affinity between ``v`` and ``v + offsets[c]`` (mwatershed's
    convention). ``bias`` is added to every channel, or per channel when it is a list (typically
    more negative for long-range offsets); edges with a positive sum attract, the others repel,
    and all are processed in order of decreasing magnitude. A voxel with no attractive edge is
    background (0), as mwatershed makes it.

    ``strides``: an integer ``s`` keeps every edge of the short-range offsets (at most one voxel
    along every axis) and, of every longer-range offset, the edges of every ``s``-th voxel along
    each axis (``s=1`` keeps all); or an explicit per-channel list of per-axis strides, as
    mwatershed takes them. With ``randomized_strides`` each edge of a channel is kept with
    probability ``1 / prod(stride)`` instead, drawn anew on every call (so the result is not
    reproducible).

    Then :func:`.agglomeration.tidy` on the nearest-neighbour channels (at least one is needed
    for it): segments smaller than ``min_fragment`` voxels merge into the adjacent segment of
    highest mean affinity (those with no adjacent segment become background), and with ``fill``
    the voxels at 0 joined to segments by edges of affinity at least ``fill`` join them
    (``fill=0``: every voxel connected to a segment; None: none). Last, objects smaller than
    ``min_size`` voxels become background.
    """
    import mwatershed

    affinities, offsets = check_affinities(affinities, offsets)
    edges = affinities.astype(np.float64) + _per_channel(bias, len(offsets)).reshape((-1,) + (1,) * offsets.shape[1])
    if np.isnan(edges).any():
        raise UserError("affinities contain NaN")
    chosen = _strides(strides, offsets)

    def segmented() -> np.ndarray:
        return mwatershed.agglom(edges, offsets.tolist(), strides=chosen, randomized_strides=bool(randomized_strides))

    if randomized_strides:  # a new draw every call: nothing to reuse
        labels = segmented()
    else:
        labels = last_or_compute("mutex_watershed", (digest(edges), offsets.tobytes(), str(chosen)), segmented)
    return finish_instances(tidy(labels, affinities, offsets, min_fragment, fill), min_size)


def _per_channel(bias: float | Sequence[float], channels: int) -> np.ndarray:
    """``bias`` as one float per channel; a :class:`UserError` unless it is a number or ``channels`` numbers."""
    try:
        return np.broadcast_to(np.asarray(bias, dtype=np.float64), (channels,))
    except (TypeError, ValueError):
        message = f"bias must be a number or a list of {channels} numbers (one per channel), got {bias!r}"
        raise UserError(message) from None


def _strides(strides: int | Sequence[Sequence[int]], offsets: np.ndarray) -> list[list[int]]:
    """Per-channel, per-axis strides for mwatershed from ``strides`` (see :func:`mutex_watershed`)."""
    channels, ndim = offsets.shape
    if isinstance(strides, (int, np.integer)) and not isinstance(strides, bool) and strides >= 1:
        long_range = np.abs(offsets).max(axis=1) > 1
        return [[int(strides) if far else 1] * ndim for far in long_range]
    array = np.asarray(strides if not isinstance(strides, (str, bool)) else [])
    if array.shape != (channels, ndim) or not np.issubdtype(array.dtype, np.integer) or (array < 1).any():
        raise UserError(
            f"strides must be a positive integer or {channels} lists of {ndim} positive integers, got {strides!r}"
        )
    return array.tolist()
