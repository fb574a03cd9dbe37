"""Distance targets: signed distances to class boundaries, and distances inside instances.

Convention: distances are Euclidean, in world units, between voxel centres. A voxel inside a region
has the distance to the nearest voxel centre outside it, a voxel outside has minus the distance to
the nearest voxel centre inside: the voxels on either side of a boundary normal to axis ``i`` have
``+voxel_size[i]`` and ``-voxel_size[i]``, so no known signed distance is 0. Distances are clipped
to ``[-clip_distance, clip_distance]``; a region with nothing outside it in the array gets the clip.

Known voxels: the edges of the array are not boundaries (what lies beyond is not looked at), and
unknown voxels (``mask == 0``, value 0) count as boundaries while computing. With ``|d|`` the
clipped distance found, ``e_edge`` the distance to the nearest voxel centre beyond the array and
``e_mask`` the distance to the nearest unknown voxel, a value is known iff ``|d| <= e_edge`` and
(``|d| < e_mask`` or ``|d| == clip_distance``). Then every voxel closer than ``|d|`` lies in the
array, is known and on the same side, and the boundary voxel found (if ``|d|`` is below the clip)
is known: nothing beyond the array or under the mask can change the value. This is
``min(|d|, clip) <= min(e_edge, e_mask)`` except where the nearest boundary ties with an unknown
voxel: that value may be right, but is marked unknown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import edt
import numpy as np

from .semantic import known_voxels

CLIP_IN_SCALES = 3.0
"""Default ``clip_distance`` of the tanh targets, in units of ``scale``: tanh(3) = 0.995, nearly flat."""


class _Reach(NamedTuple):
    """How far the labels are known around each voxel, in world units."""

    edge: np.ndarray  # distance to the nearest voxel centre beyond the array (broadcastable)
    mask: np.ndarray | None  # distance to the nearest unknown voxel; None when every voxel is known


def _edge_reach(shape: tuple[int, ...], voxel_size: Sequence[int]) -> np.ndarray:
    """Distance from each voxel centre to the nearest voxel centre beyond the array: along axis ``a``,
    voxel ``i`` of ``n`` is ``min(i + 1, n - i)`` voxels from the outside."""
    per_axis = []
    for axis, (n, v) in enumerate(zip(shape, voxel_size, strict=True)):
        steps = np.minimum(np.arange(1, n + 1, dtype=np.float32), np.arange(n, 0, -1, dtype=np.float32)) * np.float32(v)
        per_axis.append(steps.reshape([n if a == axis else 1 for a in range(len(shape))]))
    return functools.reduce(np.minimum, per_axis)


def _reach(known: np.ndarray, voxel_size: Sequence[int]) -> _Reach:
    """The reach of labels known where ``known`` is True."""
    mask = None if known.all() else edt.edt(known, anisotropy=tuple(map(float, voxel_size)), black_border=False)
    return _Reach(_edge_reach(known.shape, voxel_size), mask)


def _check(shape: tuple[int, ...], voxel_size: Sequence[int], clip_distance: float) -> None:
    if len(voxel_size) != len(shape):
        raise ValueError(f"voxel_size {tuple(voxel_size)} does not fit an array of shape {shape}")
    if not clip_distance > 0:
        raise ValueError(f"clip_distance must be positive, got {clip_distance}")


def _boundary_distance(
    regions: np.ndarray, voxel_size: Sequence[int], clip_distance: float, reach: _Reach
) -> tuple[np.ndarray, np.ndarray]:
    """Clipped distance from each voxel with ``regions > 0`` to the nearest voxel of another region value
    (0 included), 0 where ``regions == 0``; and where that is known (see the module docstring)."""
    distance = edt.edt(regions, anisotropy=tuple(map(float, voxel_size)), black_border=False)
    np.minimum(distance, clip_distance, out=distance)
    known = distance <= reach.edge
    if reach.mask is not None:
        known &= (distance < reach.mask) | (distance == np.float32(clip_distance))
    return distance, known.astype(np.float32)


def _signed(
    inside: np.ndarray, known: np.ndarray, voxel_size: Sequence[int], clip_distance: float, reach: _Reach
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`signed_distance` with the known voxels and their reach computed already."""
    regions = inside.astype(np.uint8) + 1
    regions *= known
    distance, known_distance = _boundary_distance(regions, voxel_size, clip_distance, reach)
    np.negative(distance, out=distance, where=~inside)
    return distance, known_distance


def signed_distance(
    inside: np.ndarray, voxel_size: Sequence[int], clip_distance: float, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the boundary of ``inside``: positive inside, negative outside (module convention).

    Returns ``(distance, known)``, float32 of ``inside``'s shape; ``distance`` lies in
    ``[-clip_distance, clip_distance]`` and is 0 where ``mask == 0``.
    """
    inside = np.asarray(inside, dtype=bool)
    _check(inside.shape, voxel_size, clip_distance)
    known = known_voxels(inside.shape, mask)
    return _signed(inside, known, voxel_size, clip_distance, _reach(known, voxel_size))


def tanh_distance(distance: np.ndarray, scale: float) -> np.ndarray:
    """``tanh(distance / scale)`` as float32; ``scale`` in world units."""
    return np.tanh(np.asarray(distance, dtype=np.float32) / np.float32(scale))


def distance_targets(
    classes: np.ndarray,
    class_ids: Sequence[int],
    voxel_size: Sequence[int],
    scale: float,
    clip_distance: float | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One channel per class: ``tanh_distance`` of the signed distance to ``classes == class_ids[i]``.

    ``clip_distance`` defaults to ``CLIP_IN_SCALES * scale``. Returns ``(target, known)``, float32
    ``[len(class_ids), *classes.shape]``.
    """
    classes = np.asarray(classes)
    clip_distance = CLIP_IN_SCALES * scale if clip_distance is None else clip_distance
    _check(classes.shape, voxel_size, clip_distance)
    known = known_voxels(classes.shape, mask)
    reach = _reach(known, voxel_size)
    channels = [_signed(classes == c, known, voxel_size, clip_distance, reach) for c in class_ids]
    target = np.stack([tanh_distance(distance, scale) for distance, _ in channels])
    return target, np.stack([known_distance for _, known_distance in channels])


def inner_distance(
    labels: np.ndarray,
    voxel_size: Sequence[int],
    scale: float,
    clip_distance: float | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per instance, ``tanh_distance`` of the distance from each voxel to the nearest voxel not of its
    instance (background or another instance: touching instances are separated); 0 on background.

    ``clip_distance`` defaults to ``CLIP_IN_SCALES * scale``. Returns ``(target, known)``, float32
    ``[1, *labels.shape]``; background voxels are known wherever ``mask`` is.
    """
    labels = np.asarray(labels)
    clip_distance = CLIP_IN_SCALES * scale if clip_distance is None else clip_distance
    _check(labels.shape, voxel_size, clip_distance)
    known = known_voxels(labels.shape, mask)
    distance, known_distance = _boundary_distance(
        np.where(known, labels, 0), voxel_size, clip_distance, _reach(known, voxel_size)
    )
    return tanh_distance(distance, scale)[np.newaxis], known_distance[np.newaxis]


def distance_context(clip_distance: float, voxel_size: Sequence[int]) -> tuple[int, ...]:
    """Per axis, the world units of context a crop needs on each side so that every distance clipped
    at ``clip_distance`` in its interior is known (whatever the labels, without a mask).

    That is the fewest whole voxels ``k`` with ``(k + 1) * voxel_size >= clip_distance``: the nearest
    voxel beyond the crop is then at least ``clip_distance`` away from every interior voxel.
    """
    return tuple(max(math.ceil(clip_distance / v) - 1, 0) * v for v in voxel_size)
