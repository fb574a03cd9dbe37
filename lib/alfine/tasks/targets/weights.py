"""Loss weights that balance rare and common target values.

Every function takes the ``known`` weights (0 where a target is unknown: outside the labelled
mask, or depending on labels outside the crop) and returns weights that are 0 there too.
"""

from __future__ import annotations

import numpy as np


def balance_binary(target: np.ndarray, known: np.ndarray, clip: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Per-channel weights under which the 1s and the 0s of a binary target weigh the same in total.

    ``target`` and ``known`` have shape ``[C, ...]``. The fraction of 1s among the known voxels
    of each channel is clipped to ``clip`` so a channel with (almost) no positives does not get
    a huge weight; a channel with nothing known gets weight 0.
    """
    target = np.asarray(target, dtype=np.float32)
    known = np.asarray(known, dtype=np.float32)
    axes = tuple(range(1, target.ndim))
    count = known.sum(axis=axes)
    positive = (target * known).sum(axis=axes)
    fraction = np.clip(np.divide(positive, count, out=np.full_like(count, 0.5), where=count > 0), *clip)
    shape = (-1,) + (1,) * (target.ndim - 1)
    w_pos = (0.5 / fraction).reshape(shape)
    w_neg = (0.5 / (1.0 - fraction)).reshape(shape)
    return (known * np.where(target > 0.5, w_pos, w_neg)).astype(np.float32)


def balance_classes(
    classes: np.ndarray,
    num_classes: int,
    known: np.ndarray,
    clip: tuple[float, float] = (0.01, 1.0),
    frequencies: np.ndarray | None = None,
) -> np.ndarray:
    """Per-voxel weights under which every class weighs the same in total.

    ``classes`` holds class indices ``0..num_classes-1``; ``known`` has the same spatial shape.
    Class frequencies are measured on the known voxels, or taken from ``frequencies`` (e.g. a
    running average over many crops), and clipped to ``clip`` before inverting.
    """
    classes = np.asarray(classes)
    known = np.asarray(known, dtype=np.float32)
    if frequencies is None:
        counts = np.bincount(classes[known > 0].ravel().astype(np.int64), minlength=num_classes)[:num_classes]
        total = counts.sum()
        frequencies = counts / total if total else np.full(num_classes, 1.0 / num_classes)
    frequencies = np.clip(np.asarray(frequencies, dtype=np.float64), *clip)
    per_class = (1.0 / (num_classes * frequencies)).astype(np.float32)
    return (known * per_class[np.clip(classes, 0, num_classes - 1).astype(np.int64)]).astype(np.float32)
