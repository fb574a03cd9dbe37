"""Coordinates and regions in world units, as text and as funlib.geometry objects.

The command line and configs write a size as ``Z,Y,X`` and a region as
``Z0,Y0,X0:Z1,Y1,X1`` (begin inclusive, end exclusive, world units). These helpers
turn such text (or JSON lists) into ``funlib.geometry`` ``Coordinate``/``Roi`` (the types
daisy 2 uses) and check that a region lies on a voxel grid.
"""

from __future__ import annotations

from collections.abc import Sequence

from funlib.geometry import Coordinate, Roi

from .errors import UserError


def parse_ints(text: str | Sequence[int], what: str = "value", allow_negative: bool = True) -> tuple[int, ...]:
    """``"8,4,4"`` or ``[8, 4, 4]`` -> ``(8, 4, 4)``; anything else is a :class:`UserError` naming ``what``."""
    prefix = f"{what}: " if what else ""
    if isinstance(text, str):
        parts = [p.strip() for p in text.replace("x", ",").split(",")]
    elif isinstance(text, Sequence):
        parts = list(text)
    else:
        raise UserError(f"{prefix}expected comma-separated integers like 8,4,4, got {text!r}")
    values = []
    for part in parts:
        try:
            if isinstance(part, bool) or (isinstance(part, float) and not part.is_integer()):
                raise ValueError
            values.append(int(part))
        except (TypeError, ValueError):
            raise UserError(f"{prefix}expected comma-separated integers like 8,4,4, got {text!r}") from None
    if not values:
        raise UserError(f"{prefix}expected at least one integer, got {text!r}")
    if not allow_negative and any(v <= 0 for v in values):
        raise UserError(f"{prefix}every entry must be positive, got {text!r}")
    return tuple(values)


def parse_roi(text: str | Sequence, what: str = "") -> Roi:
    """A region from ``"Z0,Y0,X0:Z1,Y1,X1"`` (begin inclusive, end exclusive) or ``[[begin], [end]]``."""
    prefix = f"{what}: " if what else ""
    if isinstance(text, str):
        if text.count(":") != 1:
            raise UserError(f"{prefix}expected BEGIN:END like 0,0,0:64,64,64, got {text!r}")
        begin_text, end_text = text.split(":")
    elif isinstance(text, Sequence) and len(text) == 2:
        begin_text, end_text = text
    else:
        raise UserError(f"{prefix}expected BEGIN:END like 0,0,0:64,64,64, got {text!r}")
    begin, end = parse_ints(begin_text, what), parse_ints(end_text, what)
    if len(begin) != len(end):
        raise UserError(f"{prefix}begin and end have different dimensions in {text!r}")
    if any(e <= b for b, e in zip(begin, end, strict=True)):
        raise UserError(f"{prefix}end must be greater than begin on every axis in {text!r}")
    return Roi(begin, tuple(e - b for b, e in zip(begin, end, strict=True)))


def format_roi(roi: Roi) -> str:
    """The inverse of :func:`parse_roi`."""
    return ",".join(map(str, roi.begin)) + ":" + ",".join(map(str, roi.end))


def check_aligned(roi: Roi, voxel_size: Coordinate, offset: Coordinate, what: str) -> None:
    """Refuse a region whose faces do not fall on the voxel grid ``offset + i * voxel_size``."""
    if roi.dims != len(voxel_size):
        raise UserError(f"{what}: region {format_roi(roi)} has {roi.dims} dimensions, the volume {len(voxel_size)}")
    begin_off = [(b - o) % v for b, o, v in zip(roi.begin, offset, voxel_size, strict=True)]
    shape_off = [s % v for s, v in zip(roi.shape, voxel_size, strict=True)]
    if any(begin_off) or any(shape_off):
        raise UserError(
            f"{what}: region {format_roi(roi)} is not aligned to the voxel grid "
            f"(voxel size {tuple(voxel_size)}, offset {tuple(offset)})"
        )


def voxel_slices(region: Roi, origin: Coordinate, voxel_size: Coordinate) -> tuple[slice, ...]:
    """The index of ``region`` in an array whose voxel 0 has its corner at world ``origin``."""
    begin = (region.begin - origin) / voxel_size
    return tuple(slice(b, b + s) for b, s in zip(begin, region.shape / voxel_size, strict=True))


def region_mask(region: Roi, array_roi: Roi, voxel_size: Coordinate):
    """A boolean array over ``array_roi`` that is True where it overlaps ``region``."""
    import numpy as np

    mask = np.zeros(tuple(array_roi.shape / voxel_size), dtype=bool)
    overlap = region.intersect(array_roi)
    if not overlap.empty:
        mask[voxel_slices(overlap, array_roi.begin, voxel_size)] = True
    return mask
