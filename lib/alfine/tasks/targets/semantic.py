"""Semantic targets: classes from instance labels, one-hot channels and independent binary channels.

Targets have shape ``[C, *spatial]`` and come with ``known`` (or loss weights) of the same shape:
1 where the labels are known (``mask`` nonzero; everywhere without a mask), 0 elsewhere. A class
target depends on its own voxel only, so crop edges never make it unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import fastremap
import numpy as np


def known_voxels(shape: tuple[int, ...], mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean array of ``shape``: True where the labels are known, i.e. ``mask != 0`` (all True without a mask)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask has shape {mask.shape}, the labels {tuple(shape)}")
    return mask != 0


def classes_from_labels(labels: np.ndarray, class_of_label: Mapping[int, int] | None = None) -> np.ndarray:
    """Semantic classes of instance ``labels`` (same shape, unsigned; uint8 while every class is < 256).

    Without ``class_of_label`` every id > 0 becomes class 1 and 0 stays 0. With it, each id in the
    mapping becomes its class, and every id not in the mapping (0 too, unless mapped) becomes class 0.
    """
    labels = np.asarray(labels)
    if class_of_label is None:
        return (labels > 0).astype(np.uint8)
    if any(c < 0 for c in class_of_label.values()):
        raise ValueError(f"classes must be >= 0, got {dict(class_of_label)}")
    dtype = np.min_scalar_type(max(class_of_label.values(), default=0))
    class_of_present = {int(i): class_of_label.get(int(i), 0) for i in fastremap.unique(labels)}
    return fastremap.remap(labels, class_of_present).astype(dtype)


def binary_channels(
    classes: np.ndarray, class_ids: Sequence[int], mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Independent (sigmoid) channels: channel ``i`` is 1.0 where ``classes == class_ids[i]``, else 0.0.

    Returns ``(target, known)``, both float32 ``[len(class_ids), *classes.shape]``.
    """
    classes = np.asarray(classes)
    ids = np.asarray(class_ids).reshape((-1,) + (1,) * classes.ndim)
    target = (classes[np.newaxis] == ids).astype(np.float32)
    known = np.broadcast_to(known_voxels(classes.shape, mask), target.shape).astype(np.float32)
    return target, known


def one_hot(classes: np.ndarray, num_classes: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-hot (softmax) target: channel ``c`` is 1.0 where ``classes == c``, for ``c`` in ``0..num_classes-1``.

    Returns ``(target, known)``, both float32 ``[num_classes, *classes.shape]``. A known voxel with
    a class >= ``num_classes`` is a ``ValueError`` (its one-hot vector would be all 0).
    """
    classes = np.asarray(classes)
    largest = np.max(classes, where=known_voxels(classes.shape, mask), initial=0)
    if largest >= num_classes:
        raise ValueError(f"class {largest} found, but num_classes is {num_classes}")
    return binary_channels(classes, range(num_classes), mask)
