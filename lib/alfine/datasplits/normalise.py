"""Raw intensities to the network's range, and the percentiles that set that range.

:func:`normalise` maps a normalisation's value range linearly onto ``[-1, 1]`` (clipping what
lies outside) or, where the normalisation gives no range, only converts to float32.
:func:`measure_percentiles` estimates intensity percentiles of a volume from a bounded,
seeded random subset of its blocks, so the estimate costs the same for any volume size and
is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..volumes import Volume

if TYPE_CHECKING:
    from .config import Normalisation


def normalise(raw: np.ndarray, norm: Normalisation) -> np.ndarray:
    """``raw`` as float32, ``norm``'s value range mapped linearly onto [-1, 1] and clipped to it."""
    out = np.asarray(raw, dtype=np.float32).copy()
    bounds = norm.value_range(np.dtype(raw.dtype))
    if bounds is None:
        return out
    low, high = bounds
    out -= np.float32(low)
    out *= np.float32(2.0 / (high - low))
    out -= np.float32(1.0)
    return np.clip(out, -1.0, 1.0, out=out)


def check_raw_dtype(norm: Normalisation, dtype, url: str) -> None:
    """A :class:`UserError` when ``norm`` does not say how raw values of ``dtype`` become network input: not a
    number, or the ``dtype`` normalisation (an integer type's full range) on floats or on integers wider than
    16 bits (whose full range is no intensity range); ``minmax`` and ``percentile`` say how for any number."""
    from ..errors import UserError
    from .config import DtypeRange

    dtype = np.dtype(dtype)
    if dtype.kind not in "buif":
        raise UserError(f"{url}: raw of type {dtype} is not numbers")
    if isinstance(norm, DtypeRange) and (dtype.kind == "f" or (dtype.kind in "ui" and dtype.itemsize > 2)):
        raise UserError(f"{url}: raw of type {dtype}, but the model normalises by the dtype's full range, which "
                        "suits 8 and 16 bit integers only; convert the raw to the type it was trained on, or train "
                        "with a minmax or percentile normalisation")


def measure_percentiles(
    volume: Volume,
    low: float,
    high: float,
    seed: int = 0,
    max_blocks: int = 32,
    block_shape: Sequence[int] | None = None,
) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles (0..100) of ``volume``'s values, all channels pooled.

    The volume is tiled into blocks of ``block_shape`` voxels (default 64 per axis; edge blocks
    are cut at the volume's end); ``max_blocks`` of them, chosen by a generator seeded with
    ``seed``, are read and their values pooled. A volume of at most ``max_blocks`` blocks is
    read whole, so the result is its exact percentiles. The same volume and arguments always
    give the same result.
    """
    shape = np.asarray(volume.spatial_shape)
    block = np.minimum(np.asarray(block_shape or (64,) * len(shape)), shape)
    blocks_per_axis = -(-shape // block)
    total = int(np.prod(blocks_per_axis))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(total, max_blocks), replace=False))
    values = []
    for flat in chosen:
        begin = np.asarray(np.unravel_index(flat, tuple(blocks_per_axis))) * block
        roi = Roi(volume.offset + Coordinate(begin) * volume.voxel_size, Coordinate(block) * volume.voxel_size)
        values.append(volume.read(roi.intersect(volume.roi)).ravel())
    found = np.percentile(np.concatenate(values), [low, high])
    return float(found[0]), float(found[1])
