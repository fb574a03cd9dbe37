"""Semantic post-processing: class or mask arrays from per-class predictions."""

from __future__ import annotations

import numpy as np

from .arrays import check_prediction, select_channel


def threshold(prediction: np.ndarray, threshold: float = 0.5, channel: int | None = None) -> np.ndarray:
    """``prediction > threshold`` as uint8 (1 above, 0 otherwise).

    The threshold is on the network's output scale (0.5 for probabilities, 0.0 for tanh
    distances in [-1, 1]). Without ``channel`` every channel is thresholded (uint8 ``[C, *spatial]``);
    with it, only that channel (uint8 ``[*spatial]``).
    """
    selected = check_prediction(prediction) if channel is None else select_channel(prediction, channel)
    return (selected > threshold).astype(np.uint8)


def argmax(prediction: np.ndarray) -> np.ndarray:
    """The index 0..C-1 of the largest channel per voxel (the first one on ties).

    The dtype is the smallest unsigned one that holds C-1: uint8 up to 256 classes, uint16 up to 65536.
    """
    prediction = check_prediction(prediction)
    return np.argmax(prediction, axis=0).astype(np.min_scalar_type(len(prediction) - 1))
