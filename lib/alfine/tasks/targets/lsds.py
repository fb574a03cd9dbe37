"""Local shape descriptors (Sheridan et al. 2023, "Local shape descriptors for neuron segmentation").

Every object voxel ``v`` gets statistics of its own object seen through a Gaussian window centred
on ``v``: how much of the window the object fills, where the object's centre of mass in the
window lies relative to ``v``, and how the object spreads around that centre.

The window is ``scipy.ndimage.gaussian_filter``'s: per axis a sampled Gaussian of std
``sigma / voxel_size`` voxels, cut at ``radius = int(truncate * sigma / voxel_size + 0.5)`` voxels
and normalised to sum 1, so the whole window has mass 1. Per object the separable window sums
run over the object's bounding box as products with banded matrices (BLAS), which equals
correlating with the truncated kernel under zero padding, but costs one matrix product instead
of many small filters; no padding is needed because only voxels inside the box are asked for.
The sums are float32 (about 1e-6 off float64). The work per voxel grows with the box's side
(not with sigma), which suits training crops of a few hundred voxels per side, not whole volumes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import fastremap
import numpy as np
from scipy import ndimage

# The Pearson correlation of two axes is 0 where the product of their variances (in units of
# sigma^2 each) is below this: the object is (almost) flat along one of them.
_FLAT = 1e-6


def local_shape_descriptors(
    labels: np.ndarray,
    sigma: float | Sequence[float],
    voxel_size: Sequence[int],
    mask: np.ndarray | None = None,
    truncate: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """LSDs ``[C, *spatial]`` and where they are known, both float32; ``C`` is 10 in 3D, 6 in 2D.

    ``sigma`` is the window's std in world units (one value, or one per axis). For a voxel ``v``
    of object ``k`` (``labels[v] == k != 0``) with window ``G`` (see the module docstring),
    ``m = sum_x G(x - v) [labels[x] == k]`` and, over the same weights normalised by ``m``,
    ``mean`` the average of ``x - v`` and ``cov`` the covariance of ``x`` (world units), the
    channels, for ``N`` axes, are in this order:

    - ``N`` offsets ``mean[a] / sigma[a] * 0.5 + 0.5`` (0.5: centred; < 0.5: the object lies
      towards lower indices);
    - ``N`` variances ``cov[a, a] / sigma[a]**2`` (a full window gives the variance of the cut,
      sampled Gaussian: slightly below 1, e.g. 0.984 for sigma = 3 voxels and ``truncate=3``);
    - ``N(N-1)/2`` correlations ``cov[a, b] / sqrt(cov[a, a] cov[b, b]) * 0.5 + 0.5`` for axis
      pairs ``(0, 1), (0, 2), (1, 2)`` (3D) or ``(0, 1)`` (2D); 0.5 where the object is flat
      along ``a`` or ``b``;
    - the mass ``m``, the fraction of the window's weight that falls on the object (1: all).

    Every channel is clipped to ``[0, 1]`` (a sigmoid's range); only offsets beyond one sigma
    (tips of thin objects) and variances beyond ``sigma**2`` are clipped. Background voxels are
    0 in every channel. Objects never see each other: a voxel's descriptors depend only on the
    voxels of its own object.

    ``known`` is 1 where the window lies inside the array and, when ``mask`` is given (nonzero
    where labels are known), inside the mask, so that the descriptors there cannot change with
    labels the array does not show; it is the same for every channel.

    Raises ``ValueError`` on a non-positive ``sigma``, a ``sigma`` or ``voxel_size`` with a length
    other than the number of axes, or a ``mask`` of another shape.
    """
    labels = np.asarray(labels)
    sigma_world = _per_axis(sigma, labels.ndim, "sigma")
    voxel_size = _per_axis(voxel_size, labels.ndim, "voxel_size")
    radius = _radius(sigma_world, voxel_size, truncate)
    kernels = [
        _moment_kernels(size, s / v, r, v)
        for size, s, v, r in zip(labels.shape, sigma_world, voxel_size, radius, strict=True)
    ]
    compact, _ = fastremap.renumber(labels, in_place=False)
    lsds = np.zeros((_channels(labels.ndim),) + labels.shape, np.float32)
    for index, box in enumerate(ndimage.find_objects(compact), start=1):  # renumbered: no index lacks a box
        inside = compact[box] == index
        boxed = [kernel[:, :n, :n] for kernel, n in zip(kernels, inside.shape, strict=True)]
        lsds[(slice(None),) + box][:, inside] = _descriptors(_window_moments(inside, boxed), sigma_world)
    known = _window_known(labels.shape, radius, mask)
    return lsds, np.broadcast_to(known, lsds.shape).astype(np.float32)


def lsd_context(sigma: float | Sequence[float], voxel_size: Sequence[int], truncate: float = 3.0) -> tuple[int, ...]:
    """World-unit context per axis a crop needs on each side for its interior LSDs to be known.

    That is the window radius in voxels (see the module docstring) times the voxel size.
    """
    ndim = len(voxel_size)
    voxel_size = _per_axis(voxel_size, ndim, "voxel_size")
    radius = _radius(_per_axis(sigma, ndim, "sigma"), voxel_size, truncate)
    return tuple(int(r * v) for r, v in zip(radius, voxel_size, strict=True))


def _channels(ndim: int) -> int:
    """Offsets, variances, correlations and the mass: 10 in 3D, 6 in 2D."""
    return ndim + ndim + ndim * (ndim - 1) // 2 + 1


def _per_axis(value: float | Sequence[float], ndim: int, what: str) -> tuple[float, ...]:
    """``value`` repeated to ``ndim`` axes, or checked to have them; all entries positive."""
    values = np.asarray(value, dtype=np.float64).ravel()
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim or not np.all(values > 0):
        raise ValueError(f"{what} must be positive, one value or one per axis ({ndim}), got {value!r}")
    return tuple(values.tolist())


def _radius(sigma: tuple[float, ...], voxel_size: tuple[float, ...], truncate: float) -> tuple[int, ...]:
    """The window radius in voxels per axis, as ``scipy.ndimage.gaussian_filter`` cuts its kernel."""
    return tuple(int(truncate * s / v + 0.5) for s, v in zip(sigma, voxel_size, strict=True))


def _moment_kernels(size: int, sigma: float, radius: int, voxel_size: float) -> np.ndarray:
    """Banded float32 matrices ``K[q, o, i] = g(i - o) * ((i - o) * voxel_size)**q`` for ``q = 0, 1, 2``.

    ``g`` is the Gaussian of std ``sigma`` voxels cut at ``radius`` and normalised to sum 1;
    ``K[q] @ x`` correlates ``x`` (zero outside) with ``g`` times the q-th power of the offset.
    """
    step = np.arange(size)[None, :] - np.arange(size)[:, None]
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weight = np.where(np.abs(step) <= radius, weights[np.clip(step + radius, 0, 2 * radius)] / weights.sum(), 0.0)
    return np.stack([weight * (step * voxel_size) ** q for q in range(3)]).astype(np.float32)


def _window_moments(inside: np.ndarray, kernels: list[np.ndarray]) -> dict[tuple[int, ...], np.ndarray]:
    """Window moments of a region, at the region's voxels, in float32.

    For every ``orders`` with ``sum(orders) <= 2``, the values at the ``inside`` voxels ``v`` of
    ``sum_x G(x - v) inside[x] prod_a (x_a - v_a)**orders[a]``, with ``G`` the product of the
    per-axis ``kernels[a][0]`` and the powers from ``kernels[a][q]`` (see :func:`_moment_kernels`).
    The shortest axis goes last, as the last pass has the most moments to carry.
    """
    partial = {(0,) * inside.ndim: inside.astype(np.float32)}
    for axis in sorted(range(inside.ndim), key=lambda a: -inside.shape[a]):
        partial = {
            orders[:axis] + (q,) + orders[axis + 1 :]: moment
            for orders, values in partial.items()
            for q, moment in enumerate(_along(values, kernels[axis][: 3 - sum(orders)], axis))
        }
    return {orders: values[inside] for orders, values in partial.items()}


def _along(values: np.ndarray, kernels: np.ndarray, axis: int) -> np.ndarray:
    """``out[q] = kernels[q] @ values`` along ``axis``, for a C-contiguous ``values``."""
    size = values.shape[axis]
    before = math.prod(values.shape[:axis])
    out = np.empty((len(kernels),) + values.shape, values.dtype)
    if axis == values.ndim - 1:
        for kernel, result in zip(kernels, out, strict=True):
            np.matmul(values.reshape(before, size), kernel.T, out=result.reshape(before, size))
    else:
        rows = values.reshape(before, size, -1)
        for kernel, result in zip(kernels, out, strict=True):
            np.matmul(kernel, rows, out=result.reshape(rows.shape))
    return out


def _descriptors(moments: dict[tuple[int, ...], np.ndarray], sigma: tuple[float, ...]) -> np.ndarray:
    """The normalised channels of :func:`local_shape_descriptors` from raw window moments."""
    ndim = len(sigma)
    unit = np.eye(ndim, dtype=int)
    mass = moments[(0,) * ndim]
    mean = [moments[tuple(unit[a])] / mass for a in range(ndim)]

    def cov(a: int, b: int) -> np.ndarray:
        return (moments[tuple(unit[a] + unit[b])] / mass - mean[a] * mean[b]) / (sigma[a] * sigma[b])

    variance = [cov(a, a) for a in range(ndim)]
    correlation = []
    for a, b in itertools.combinations(range(ndim), 2):
        spread = variance[a] * variance[b]
        correlation.append(np.where(spread > _FLAT, cov(a, b) / np.sqrt(np.maximum(spread, _FLAT)), 0.0))
    channels = (
        [m / s * 0.5 + 0.5 for m, s in zip(mean, sigma, strict=True)]
        + variance
        + [c * 0.5 + 0.5 for c in correlation]
        + [mass]
    )
    return np.clip(np.stack(channels), 0.0, 1.0)


def _window_known(shape: tuple[int, ...], radius: tuple[int, ...], mask: np.ndarray | None) -> np.ndarray:
    """1 where the box of ``radius`` around a voxel lies inside the array and inside ``mask``."""
    if mask is None:
        region = np.ones(shape, np.uint8)
    else:
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise ValueError(f"mask has shape {mask.shape}, the labels {shape}")
        region = (mask != 0).astype(np.uint8)
    size = tuple(2 * r + 1 for r in radius)
    return ndimage.minimum_filter(region, size=size, mode="constant", cval=0)
