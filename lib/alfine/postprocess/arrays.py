"""Checks shared by the post-processing methods: prediction shapes, channels, connectivities."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def check_prediction(prediction: np.ndarray) -> np.ndarray:
    """``prediction`` as an array ``[C, *spatial]`` with 2 or 3 spatial axes; else a :class:`UserError`."""
    prediction = np.asarray(prediction)
    if prediction.ndim not in (3, 4) or prediction.shape[0] == 0:
        raise UserError(
            f"a prediction must be channel-first [C, *spatial] with 2 or 3 spatial axes, got shape {prediction.shape}"
        )
    return prediction


def select_channel(prediction: np.ndarray, channel: int) -> np.ndarray:
    """``prediction[channel]`` (spatial shape); a :class:`UserError` if there is no such channel."""
    prediction = check_prediction(prediction)
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < len(prediction):
        raise UserError(f"channel must be an integer in 0..{len(prediction) - 1}, got {channel!r}")
    return prediction[channel]


def face_connectivity(ndim: int) -> int:
    """The connectivity of face neighbours in cc3d's terms: 4 in 2D, 6 in 3D."""
    return 4 if ndim == 2 else 6


def check_connectivity(connectivity: int | None, ndim: int) -> int:
    """``connectivity`` if valid for ``ndim`` spatial axes (2D: 4, 8; 3D: 6, 18, 26), face connectivity if None."""
    if connectivity is None:
        return face_connectivity(ndim)
    valid = (4, 8) if ndim == 2 else (6, 18, 26)
    if connectivity not in valid:
        raise UserError(f"connectivity must be one of {', '.join(map(str, valid))} in {ndim}D, got {connectivity!r}")
    return int(connectivity)
