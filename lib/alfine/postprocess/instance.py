"""Instance post-processing of one channel: connected components and seeded watershed.

Both return uint64 labels of the spatial shape, 0 = background, objects numbered 1..n in the
order they first appear (C order), after removing objects smaller than ``min_size`` voxels.
"""

from __future__ import annotations

import cc3d
import numpy as np

from ..errors import UserError
from .arrays import check_connectivity, face_connectivity, select_channel
from .labels import finish_instances

WATERSHED_KINDS = ("distance", "boundary")


def label_components(mask: np.ndarray, connectivity: int | None = None) -> np.ndarray:
    """uint64 connected components of the nonzero voxels of ``mask``, numbered 1..n in the C order of their first
    voxel (cc3d's numbering); face connectivity by default."""
    connectivity = check_connectivity(connectivity, mask.ndim)
    # uint8, not bool: cc3d 4.1.1 labels some background voxels of 2D bool masks with 8-connectivity
    foreground = (mask if mask.dtype == bool else mask != 0).view(np.uint8)
    foreground = np.ascontiguousarray(foreground)
    return cc3d.connected_components(foreground, connectivity=connectivity, out_dtype=np.uint64)


def connected_components(
    prediction: np.ndarray,
    threshold: float = 0.5,
    connectivity: int | None = None,
    channel: int = 0,
    min_size: int = 0,
) -> np.ndarray:
    """The connected components of ``prediction[channel] > threshold`` (cc3d).

    ``connectivity``: 6, 18 or 26 in 3D, 4 or 8 in 2D; None means face neighbours (6 in 3D, 4 in 2D).
    """
    labels = label_components(select_channel(prediction, channel) > threshold, connectivity)
    if isinstance(min_size, (int, np.integer)) and not isinstance(min_size, bool) and 0 <= min_size <= 1:
        return labels  # nothing to remove, and cc3d numbers 1..n in C order of first appearance already
    return finish_instances(labels, min_size)


def watershed(
    prediction: np.ndarray,
    seed_threshold: float,
    mask_threshold: float,
    channel: int = 0,
    kind: str = "distance",
    min_seed_distance: int | None = None,
    min_size: int = 0,
) -> np.ndarray:
    """Seeded watershed (``skimage.segmentation.watershed``, face connectivity) of ``prediction[channel]``.

    ``kind="distance"``: the channel is a distance-like map ``d``, high inside objects (e.g. tanh
    distances in [-1, 1]). The mask is ``d > mask_threshold``; seeds are the connected components
    (face connectivity) of ``d > seed_threshold`` or, with ``min_seed_distance=k``, single voxels at
    the local maxima of ``d`` above ``seed_threshold`` that are at least ``k`` voxels apart
    (``skimage.feature.peak_local_max``). ``-d`` is flooded from the seeds inside the mask.

    ``kind="boundary"``: the channel is a boundary map ``b``, high between objects. The mask is
    ``b < mask_threshold``; seeds are the components of ``b < seed_threshold`` or, with
    ``min_seed_distance``, the local minima of ``b`` below ``seed_threshold``; ``b`` is flooded.

    Flooding visits voxels in order of rising level and gives each unlabelled face neighbour the
    label of the voxel it is reached from, so a voxel belongs to the seed that reaches it at the
    lowest level. Seeds outside the mask are ignored. Every mask voxel gets an object: a connected
    component of the mask (face neighbours) that holds no seed is one object of its own (an object
    too faint for the seed threshold is still an object; it is never joined to another across
    voxels outside the mask).
    """
    from skimage.segmentation import watershed as flood

    if kind not in WATERSHED_KINDS:
        raise UserError(f"watershed kind must be one of {', '.join(WATERSHED_KINDS)}, got {kind!r}")
    values = select_channel(prediction, channel)
    height, seed_level, mask_level = (
        (values, seed_threshold, mask_threshold) if kind == "distance" else (-values, -seed_threshold, -mask_threshold)
    )
    mask = height > mask_level
    seeds = _seeds(height, seed_level, min_seed_distance)
    labels = flood(-height, markers=seeds, mask=mask, connectivity=1).astype(np.uint64, copy=False)
    unseeded = label_components(mask & (labels == 0))
    labels = np.where(unseeded != 0, unseeded + labels.max(), labels)
    return finish_instances(labels, min_size)


def _seeds(height: np.ndarray, level: float, min_distance: int | None) -> np.ndarray:
    """Seed labels where ``height > level``: its components, or its local maxima ``min_distance`` apart."""
    if min_distance is None:
        return label_components(height > level, face_connectivity(height.ndim))
    from skimage.feature import peak_local_max

    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, np.integer)) or min_distance < 1:
        raise UserError(f"min_seed_distance must be a positive integer, got {min_distance!r}")
    peaks = peak_local_max(height, min_distance=int(min_distance), threshold_abs=level, exclude_border=False)
    seeds = np.zeros(height.shape, np.uint64)
    seeds[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.uint64)
    return seeds
