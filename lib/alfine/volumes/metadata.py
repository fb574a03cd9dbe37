"""A volume's geometry and the attribute dialects it is read from and written to.

Readers, tried in this order for an array named ``NAME`` in group ``G``:

1. funlib/daisy attributes on the array: ``voxel_size`` (or legacy ``resolution``),
   ``offset``, ``axis_names`` (channel axes end in ``^``), ``units``;
2. OME-NGFF multiscales on ``G``: 0.4 (``multiscales`` in zarr v2 ``.zattrs``) or 0.5
   (``ome.multiscales`` in zarr v3 ``zarr.json``), the dataset whose ``path`` is ``NAME``;
   scale and translation are physical units, the translation is the first voxel's centre (the
   offset, its corner, is half a voxel less), channel axes have no scale;
3. N5 attributes on the dataset (``resolution`` or ``pixelResolution``, ``offset``,
   ``axes``/``units``), listed x,y,z and reversed to z,y,x;
4. otherwise voxel size 1 and offset 0 for every spatial axis.

Writers (:mod:`.ngff`) make every volume an OME-NGFF image group whose level arrays carry
funlib attributes, so funlib/daisy, neuroglancer and OME tools open it as it is.
World coordinates are integers (funlib's ``Coordinate`` truncates floats): fractional
micrometre scales are converted to nanometres, anything else fractional is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from funlib.geometry import Coordinate, Roi

from ..errors import VolumeError

SPATIAL_AXES = ("z", "y", "x")
# funlib writes short unit names, OME-NGFF the UDUNITS-2 names.
OME_UNITS = {"nm": "nanometer", "um": "micrometer", "µm": "micrometer", "mm": "millimeter", "pm": "picometer",
              "A": "angstrom", "m": "meter", "s": "second", "ms": "millisecond", "": ""}
_SHORT_UNITS = {v: k for k, v in OME_UNITS.items() if k != "µm"}
# How many of the unit on the right make one of the unit on the left, for fractional scales.
_FINER_UNIT = {"micrometer": ("nanometer", 1000), "millimeter": ("micrometer", 1000), "nanometer": ("picometer", 1000)}


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels lie in the world.

    ``voxel_size`` and ``offset`` (the world position of voxel 0's corner) cover the spatial
    axes only; ``axis_names`` covers every axis, channel axes first and marked with ``^``;
    ``units`` covers the spatial axes.
    """

    voxel_size: Coordinate
    offset: Coordinate
    axis_names: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def spatial_dims(self) -> int:
        return len(self.voxel_size)

    @property
    def channel_dims(self) -> int:
        return len(self.axis_names) - self.spatial_dims

    def roi(self, spatial_shape: Sequence[int]) -> Roi:
        """The world region covered by an array of this spatial shape."""
        return Roi(self.offset, Coordinate(spatial_shape) * self.voxel_size)

    @classmethod
    def default(cls, ndim: int, spatial_dims: int | None = None, voxel_size=None, offset=None, units=None):
        """A geometry for an array of ``ndim`` axes; trailing ``spatial_dims`` (default: up to 3) are spatial."""
        if spatial_dims is None:
            spatial_dims = len(voxel_size) if voxel_size is not None else min(ndim, 3)
        if spatial_dims > ndim:
            raise VolumeError(f"{spatial_dims} spatial axes given for an array of {ndim} axes")
        channel_dims = ndim - spatial_dims
        names = default_axis_names(channel_dims, spatial_dims)
        return cls(
            voxel_size=Coordinate(voxel_size if voxel_size is not None else (1,) * spatial_dims),
            offset=Coordinate(offset if offset is not None else (0,) * spatial_dims),
            axis_names=names,
            units=tuple(units) if units is not None else ("nm",) * spatial_dims,
        )

    def funlib_attributes(self) -> dict:
        return {
            "voxel_size": list(self.voxel_size),
            "offset": list(self.offset),
            "axis_names": list(self.axis_names),
            "units": list(self.units),
        }


def default_axis_names(channel_dims: int, spatial_dims: int) -> tuple[str, ...]:
    channels = ("c^",) if channel_dims == 1 else tuple(f"c{i}^" for i in range(channel_dims))
    spatial = SPATIAL_AXES[-spatial_dims:] if spatial_dims <= 3 else tuple(f"d{i}" for i in range(spatial_dims))
    return channels + spatial


def _integral(values: Sequence[float], unit: str, what: str) -> tuple[list[int], str]:
    """World values as integers, moving to a finer unit where they are fractional."""
    values = [float(v) for v in values]
    while not all(v.is_integer() for v in values):
        finer = _FINER_UNIT.get(unit)
        if finer is None:
            raise VolumeError(f"{what} {values} in unit {unit!r} is fractional; alfine needs integer world units")
        unit, factor = finer
        values = [round(v * factor, 6) for v in values]
    return [int(v) for v in values], unit


def from_funlib(attrs: Mapping, ndim: int) -> Geometry | None:
    """Geometry from funlib/daisy array attributes, or None when they hold none."""
    voxel_size = attrs.get("voxel_size", attrs.get("resolution"))
    if voxel_size is None and "offset" not in attrs:
        return None
    spatial_dims = len(voxel_size if voxel_size is not None else attrs["offset"])
    names = attrs.get("axis_names")
    geometry = Geometry.default(ndim, spatial_dims, voxel_size, attrs.get("offset"), attrs.get("units"))
    if names is not None:
        if len(names) != ndim:
            raise VolumeError(f"axis_names {names} has {len(names)} entries for an array of {ndim} axes")
        geometry = Geometry(geometry.voxel_size, geometry.offset, tuple(names), geometry.units)
    return geometry


def ome_multiscales(group_attrs: Mapping) -> list:
    """The multiscales list of OME-NGFF 0.5 (``ome.multiscales``) or 0.4 (``multiscales``)."""
    ome = group_attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        return list(ome["multiscales"])
    return list(group_attrs.get("multiscales", []))


def _transform(transforms: Sequence[Mapping], kind: str, ndim: int, neutral: float) -> list[float]:
    for t in transforms or []:
        if t.get("type") == kind:
            return [float(v) for v in t[kind]]
    return [neutral] * ndim


def from_ome(group_attrs: Mapping, array_name: str, ndim: int) -> Geometry | None:
    """Geometry of dataset ``array_name`` from its group's OME-NGFF multiscales, or None."""
    for multiscale in ome_multiscales(group_attrs):
        for dataset in multiscale.get("datasets", []):
            if str(dataset.get("path")) != array_name:
                continue
            axes = multiscale.get("axes") or [{"name": n, "type": "space"} for n in SPATIAL_AXES[-ndim:]]
            axes = [{"name": a, "type": "space"} if isinstance(a, str) else a for a in axes]
            if len(axes) != ndim:
                raise VolumeError(f"OME-NGFF axes {axes} do not match an array of {ndim} axes")
            scale = _transform(dataset.get("coordinateTransformations"), "scale", ndim, 1.0)
            translation = _transform(dataset.get("coordinateTransformations"), "translation", ndim, 0.0)
            outer = multiscale.get("coordinateTransformations")
            if outer:  # a transform of the whole multiscale applies after the dataset's own
                outer_scale = _transform(outer, "scale", ndim, 1.0)
                outer_translation = _transform(outer, "translation", ndim, 0.0)
                translation = [t * s + u for t, s, u in zip(translation, outer_scale, outer_translation, strict=True)]
                scale = [a * b for a, b in zip(scale, outer_scale, strict=True)]
            spatial = [i for i, a in enumerate(axes) if a.get("type") not in ("channel", "time")]
            names = tuple(a["name"] + ("^" if i not in spatial else "") for i, a in enumerate(axes))
            unit = axes[spatial[0]].get("unit", "") if spatial else ""
            n = len(spatial)
            corner = [t - s / 2 for t, s in zip(translation, scale, strict=True)]
            world, unit = _integral([scale[i] for i in spatial] + [corner[i] for i in spatial], unit,
                                    "OME-NGFF scale and translation")
            voxel_size, offset = world[:n], world[n:]
            short = _SHORT_UNITS.get(unit, unit)
            return Geometry(Coordinate(voxel_size), Coordinate(offset), names, (short,) * len(spatial))
    return None


def from_n5(attrs: Mapping, ndim: int) -> Geometry | None:
    """Geometry from N5 dataset attributes (lists in x,y,z order), as z,y,x, or None."""
    resolution = attrs.get("resolution")
    unit = None
    pixel = attrs.get("pixelResolution")
    if resolution is None and isinstance(pixel, Mapping):
        resolution, unit = pixel.get("dimensions"), pixel.get("unit")
    elif resolution is None and isinstance(pixel, Sequence):
        resolution = pixel
    if resolution is None and "offset" not in attrs:
        return None
    spatial_dims = len(resolution if resolution is not None else attrs["offset"])
    reverse = lambda v: None if v is None else list(v)[::-1]  # noqa: E731
    units = reverse(attrs.get("units")) or ([unit] * spatial_dims if unit else None)
    geometry = Geometry.default(ndim, spatial_dims, reverse(resolution), reverse(attrs.get("offset")), units)
    names = attrs.get("axis_names", attrs.get("axes"))
    if names is not None and len(names) == ndim:
        geometry = Geometry(geometry.voxel_size, geometry.offset, tuple(names)[::-1], geometry.units)
    return geometry
