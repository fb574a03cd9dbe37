"""Datasplits: which volumes a run trains and validates on, and how raw is normalised.

A datasplit is a JSON file in the form of :class:`Datasplit`, or a CSV file (any name ending
in ``.csv``) with a header row naming its columns, in any order::

    role,raw,labels,mask,weight,name
    train,data/a.zarr/raw,data/a.zarr/labels,data/a.zarr/mask,3
    validate,data/b.zarr/raw,data/b.zarr/labels,,

``role`` (``train`` or ``validate``), ``raw`` and ``labels`` are required; ``mask``,
``weight`` and ``name`` are optional columns, and an empty cell means the default (no mask,
weight 1, a name derived from the raw URL). Rows are numbered as lines of the file, the
header being row 1. Normalisation and label grouping need the JSON form.

Relative volume paths in a datasplit file are relative to the file's folder (see
:mod:`alfine.configs.paths`): ``../data/a.zarr/raw`` beside ``configs/split.csv`` is ``data/a.zarr/raw``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..configs import Tagged, from_dict, read_json
from ..configs.paths import anchor, folder_of
from ..errors import ConfigError, UserError, VolumeError
from ..geometry import format_roi
from ..volumes import Volume, open_volume, parse_volume_url
from .normalise import measure_percentiles

CSV_REQUIRED = ("role", "raw", "labels")
CSV_COLUMNS = CSV_REQUIRED + ("mask", "weight", "name")


class Normalisation(Tagged):
    """How raw values become network input: :meth:`value_range` is mapped onto [-1, 1]."""

    def value_range(self, dtype: np.dtype) -> tuple[float, float] | None:
        """The raw values that map to -1 and 1, or None to keep values as they are."""
        raise NotImplementedError


@dataclass(kw_only=True)
class DtypeRange(Normalisation):
    """The full range of an integer dtype (uint8: 0..255, int8: -128..127, bool: 0..1); floats unchanged."""

    kind: ClassVar[str] = "dtype"

    def value_range(self, dtype: np.dtype) -> tuple[float, float] | None:
        if dtype.kind == "b":
            return 0.0, 1.0
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        return None


@dataclass(kw_only=True)
class MinMax(Normalisation):
    """``min`` maps to -1 and ``max`` to 1; values beyond them are clipped."""

    kind: ClassVar[str] = "minmax"
    min: float
    max: float

    def __post_init__(self):
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min < self.max):
            raise ValueError(f"minmax needs finite min < max, got min={self.min}, max={self.max}")

    def value_range(self, dtype: np.dtype) -> tuple[float, float]:
        return self.min, self.max


@dataclass(kw_only=True)
class Percentile(Normalisation):
    """The ``low`` and ``high`` percentiles of the raw volume, measured once (:meth:`measure`) as a minmax."""

    kind: ClassVar[str] = "percentile"
    low: float = 1.0
    high: float = 99.0

    def __post_init__(self):
        if not 0 <= self.low < self.high <= 100:
            raise ValueError(f"percentile needs 0 <= low < high <= 100, got low={self.low}, high={self.high}")

    def value_range(self, dtype: np.dtype) -> tuple[float, float]:
        raise ValueError("percentile normalisation must be measured first (resolve_normalisations)")

    def measure(self, volume: Volume, seed: int = 0) -> MinMax:
        """The percentiles of ``volume`` (see :func:`measure_percentiles`) as a minmax normalisation."""
        low, high = measure_percentiles(volume, self.low, self.high, seed=seed)
        if not low < high:
            raise VolumeError(f"{volume.url.url}: its {self.low}th and {self.high}th percentiles are both {low}; "
                              "normalise it with minmax or dtype instead")
        return MinMax(min=low, max=high)


@dataclass(kw_only=True)
class Dataset:
    """One raw volume with its labels, an optional mask (non-zero: labelled) and its sampling weight.

    ``class_of_label`` groups label ids (JSON keys, strings of integers) into semantic classes;
    ``name`` defaults to the raw URL's container stem and array path (``a.zarr/raw`` -> ``a/raw``).
    """

    raw: str
    labels: str
    mask: str | None = None
    weight: float = 1.0
    normalisation: Normalisation = field(default_factory=DtypeRange)
    class_of_label: dict[str, int] | None = None
    name: str | None = None

    def __post_init__(self):
        for key in ("raw", "labels", "mask"):
            url = getattr(self, key)
            if url is not None:
                try:
                    parse_volume_url(url)
                except VolumeError as e:
                    raise ValueError(f"{key}: {e}") from None
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"weight must be a positive number, got {self.weight}")
        for key, value in (self.class_of_label or {}).items():
            try:
                int(key)
            except ValueError:
                raise ValueError(f"class_of_label: key {key!r} is not a label id (an integer)") from None
            if value < 0:
                raise ValueError(f"class_of_label: {key}: classes must be >= 0, got {value}")
        if self.name is None:
            url = parse_volume_url(self.raw)
            stem = url.container.rstrip("/").rpartition("/")[2]
            for suffix in (".zarr", ".n5"):
                stem = stem.removesuffix(suffix)
            self.name = f"{stem}/{url.path}"

    def label_classes(self) -> dict[int, int] | None:
        """``class_of_label`` with integer keys, or None where labels are not grouped."""
        if self.class_of_label is None:
            return None
        return {int(k): v for k, v in self.class_of_label.items()}


@dataclass(kw_only=True)
class Datasplit:
    """The datasets a run trains on and those it validates on; names are unique within each list."""

    train: list[Dataset]
    validate: list[Dataset] = field(default_factory=list)

    def __post_init__(self):
        if not self.train:
            raise ValueError("train must list at least one dataset")
        for role in ("train", "validate"):
            names = [d.name for d in getattr(self, role)]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{role}: dataset name {twice[0]!r} is used twice; give the datasets distinct names")


def load_datasplit(url: str) -> Datasplit:
    """The datasplit in the CSV (name ending ``.csv``) or JSON file at ``url``, its relative volume paths taken
    relative to the file's folder; errors name the file and row or key."""
    if url.lower().endswith(".csv"):
        return _read_csv(url)
    return from_dict(Datasplit, anchored(read_json(url), folder_of(url)), url)


def anchored(data, folder: str):
    """The JSON form of a datasplit with its relative volume paths taken relative to ``folder``; anything
    else (including malformed data, left for the schema to report) unchanged."""
    if not isinstance(data, dict):
        return data
    moved = dict(data)
    for role in ("train", "validate"):
        if isinstance(data.get(role), list):
            moved[role] = [{**d, **{k: anchor(d[k], folder) for k in ("raw", "labels", "mask")
                                    if isinstance(d.get(k), str)}} if isinstance(d, dict) else d
                           for d in data[role]]
    return moved


def resolve_normalisations(split: Datasplit, seed: int = 0) -> Datasplit:
    """``split`` with every percentile normalisation replaced by the minmax measured on its raw volume.

    A run stores the result, so its normalisation is measured once and never differently.
    """

    def resolved(dataset: Dataset) -> Dataset:
        if not isinstance(dataset.normalisation, Percentile):
            return dataset
        measured = dataset.normalisation.measure(open_volume(dataset.raw), seed)
        return dataclasses.replace(dataset, normalisation=measured)

    return Datasplit(train=[resolved(d) for d in split.train], validate=[resolved(d) for d in split.validate])


@dataclass(frozen=True)
class DatasetGeometry:
    """Where a dataset can be sampled, from :func:`check_dataset`.

    ``region`` is where raw and labels both exist, shrunk to whole raw voxels. The raw grid lies
    on the labels grid (and so on the mask's), so a region of whole raw voxels starting on a raw
    voxel corner inside ``region`` is aligned to every volume of the dataset. ``channels`` is the
    length of raw's channel axis (1 where it has none).
    """

    name: str
    raw_voxel_size: Coordinate
    labels_voxel_size: Coordinate
    region: Roi
    channels: int


def check_dataset(dataset: Dataset, upsample_factor: Sequence[int] | None = None) -> DatasetGeometry:
    """The geometry of ``dataset``'s volumes; a :class:`UserError` naming the URLs and voxel sizes where they disagree.

    Labels must have raw's voxel size divided by ``upsample_factor`` (default 1 per axis, i.e.
    equal; e.g. ``(1, 2, 2)`` for labels twice as fine in y and x); a mask the labels' voxel
    size. Labels and mask have no channel axis, raw at most one. The raw and mask voxel grids
    lie on the labels grid, and labels overlap raw by at least one raw voxel.
    """
    raw, labels = open_volume(dataset.raw), open_volume(dataset.labels)
    mask = open_volume(dataset.mask) if dataset.mask else None
    dims = len(raw.voxel_size)
    factor = Coordinate(upsample_factor or (1,) * dims)
    if len(labels.voxel_size) != dims or len(factor) != dims or labels.voxel_size * factor != raw.voxel_size:
        raise UserError(f"labels {_describe(labels)} must have the voxel size of raw {_describe(raw)} "
                        f"divided by the upsample factor {tuple(factor)}")
    for volume in [labels] + ([mask] if mask else []):
        if volume.geometry.channel_dims:
            raise UserError(f"{volume.url.url} has channel axes {list(volume.geometry.axis_names)}; "
                            "labels and masks must have none")
    if raw.geometry.channel_dims > 1:
        raise UserError(f"raw {raw.url.url} has channel axes {list(raw.geometry.axis_names)}; at most one is read")
    if mask and mask.voxel_size != labels.voxel_size:
        raise UserError(f"mask {_describe(mask)} must have the voxel size of labels {_describe(labels)}")
    for volume in [raw] + ([mask] if mask else []):
        if any((volume.offset - labels.offset) % labels.voxel_size):
            raise UserError(f"{_describe(volume)} is shifted by a fraction of a voxel against labels "
                            f"{_describe(labels)}")
    region = _shrink_to_grid(raw.roi.intersect(labels.roi), raw.offset, raw.voxel_size)
    if region is None:
        raise UserError(f"labels {_describe(labels)} do not overlap raw {_describe(raw)} by a whole raw voxel")
    channels = raw.channel_shape[0] if raw.channel_shape else 1
    return DatasetGeometry(dataset.name, raw.voxel_size, labels.voxel_size, region, channels)


def _describe(volume: Volume) -> str:
    return (f"{volume.url.url} (voxel size {tuple(volume.voxel_size)}, "
            f"region {format_roi(volume.roi)})")


def _shrink_to_grid(roi: Roi, origin: Coordinate, step: Coordinate) -> Roi | None:
    """The largest region of whole voxels of the grid ``origin + i * step`` inside ``roi``, or None."""
    if roi.empty:
        return None
    begin = origin - ((origin - roi.begin) // step) * step
    end = origin + ((roi.end - origin) // step) * step
    if any(e <= b for b, e in zip(begin, end, strict=True)):
        return None
    return Roi(begin, end - begin)


def _read_csv(url: str) -> Datasplit:
    import fsspec

    folder = folder_of(url)
    try:
        with fsspec.open(url, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{url}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{url}: not UTF-8 text ({e})") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        optional = ",".join(CSV_COLUMNS[len(CSV_REQUIRED):])
        raise ConfigError(f"{url}: row 1: the header must name columns {','.join(CSV_REQUIRED)} and optionally "
                          f"{optional}, each once; got {','.join(header) or 'nothing'}")
    roles: dict[str, list[Dataset]] = {"train": [], "validate": []}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{url}: row {reader.line_num}"
        if len(row) > len(header):
            raise ConfigError(f"{where}: {len(row)} cells, but the header names {len(header)} columns")
        cells = {column: cell.strip() for column, cell in zip(header, row, strict=False)}  # short rows: empty cells
        role = cells["role"]
        if role not in roles:
            raise ConfigError(f"{where}: role must be train or validate, got {role!r}")
        for column in ("raw", "labels"):
            if not cells.get(column):
                raise ConfigError(f"{where}: column {column} is empty")
        try:
            weight = float(cells.get("weight") or 1.0)
        except ValueError:
            raise ConfigError(f"{where}: column weight: expected a number, got {cells['weight']!r}") from None
        try:
            mask = cells.get("mask") or None
            roles[role].append(Dataset(raw=anchor(cells["raw"], folder), labels=anchor(cells["labels"], folder),
                                       mask=mask and anchor(mask, folder), weight=weight,
                                       name=cells.get("name") or None))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    try:
        return Datasplit(**roles)
    except ValueError as e:
        raise ConfigError(f"{url}: {e}") from None
