"""OME-NGFF images: the group every volume alfine writes is, with its scale levels.

A volume URL such as ``pred.zarr/affs`` names an image group holding one array per scale level:
``s0`` (the data) and, once ``alfine-downsample`` has run, coarser ``s1``, ``s2``, ... Its
``multiscales`` metadata (OME-NGFF 0.4 on zarr format 2, 0.5 on format 3) lists the levels finest
first; a segmentation's group also carries ``image-label``. Each level array keeps funlib
attributes (``voxel_size``, ``offset``, ``axis_names``, ``units``), which alfine reads first.

Translations follow the specification: the world position of a level's first voxel *centre*,
``offset + voxel_size / 2``, where alfine's ``offset`` is that voxel's corner; the reader
(:func:`alfine.volumes.metadata.from_ome`) subtracts the half voxel again, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .metadata import OME_UNITS, Geometry

LEVEL_PREFIX = "s"


def level_name(level: int) -> str:
    """The array name of scale level ``level`` inside its image group (``s0`` is the data)."""
    return f"{LEVEL_PREFIX}{level}"


def level_of(name: str) -> int | None:
    """The level number of an array named like :func:`level_name`, or None."""
    digits = name[len(LEVEL_PREFIX):]
    return int(digits) if name.startswith(LEVEL_PREFIX) and digits.isdigit() else None


def centre_translation(geometry: Geometry) -> list[float]:
    """The OME-NGFF translation of the spatial axes: the first voxel's centre."""
    return [o + v / 2 for o, v in zip(geometry.offset, geometry.voxel_size, strict=True)]


def _axes(geometry: Geometry) -> list[dict]:
    axes = [{"name": n.rstrip("^"), "type": "channel"} for n in geometry.axis_names[: geometry.channel_dims]]
    for n, unit in zip(geometry.axis_names[geometry.channel_dims:], geometry.units, strict=True):
        axes.append({"name": n, "type": "space", "unit": OME_UNITS.get(unit, unit)})
    return axes


def multiscale(name: str, levels: Sequence[tuple[str, Geometry]], zarr_format: int) -> dict:
    """The one ``multiscales`` entry of an image whose levels are ``(path, geometry)``, finest first."""
    datasets = []
    for path, geometry in levels:
        ones = [1.0] * geometry.channel_dims
        zeros = [0.0] * geometry.channel_dims
        datasets.append({"path": path, "coordinateTransformations": [
            {"type": "scale", "scale": ones + [float(v) for v in geometry.voxel_size]},
            {"type": "translation", "translation": zeros + centre_translation(geometry)},
        ]})
    entry = {"name": name, "axes": _axes(levels[0][1]), "datasets": datasets}
    return {"version": "0.4", **entry} if zarr_format == 2 else entry


def image_attributes(attrs: Mapping, name: str, levels: Sequence[tuple[str, Geometry]], zarr_format: int,
                     label: bool) -> dict:
    """The group attributes ``attrs`` with the image's metadata replaced by that of ``levels``."""
    attrs = {k: v for k, v in attrs.items() if k not in ("multiscales", "image-label", "ome")}
    entry = multiscale(name, levels, zarr_format)
    if zarr_format == 2:
        attrs["multiscales"] = [entry]
        if label:
            attrs["image-label"] = {"version": "0.4"}
    else:
        attrs["ome"] = {"version": "0.5", "multiscales": [entry], **({"image-label": {}} if label else {})}
    return attrs


def is_label(attrs: Mapping) -> bool:
    """Whether an image group's attributes mark it as a segmentation (``image-label``)."""
    ome = attrs.get("ome")
    return "image-label" in attrs or (isinstance(ome, Mapping) and "image-label" in ome)


def level_paths(attrs: Mapping) -> list[str]:
    """The dataset paths of an image group's (first) multiscales entry, finest first."""
    ome = attrs.get("ome")
    entries = ome.get("multiscales", []) if isinstance(ome, Mapping) else attrs.get("multiscales", [])
    return [str(d["path"]) for d in entries[0].get("datasets", [])] if entries else []
