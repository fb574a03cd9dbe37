"""Training samples: crop, augment, compute targets; sample ``i`` of a run is a pure function of (seed, i).

Raw is cut at the network's input shape and labels at its output shape grown by the task's
context, both centred on one world point; one augmentation moves raw, labels and mask together
before targets are computed, so targets never see interpolated labels. Crops may reach past their
dataset by ``trainer.border_padding`` raw voxels (default: as far as lets the output reach the
dataset's faces): raw there is the data mirrored across the faces, exactly as inference reads
past a volume's faces, and labels there are unknown, so the loss ignores them. So the network learns the
faces it will predict, not only the interior.
Because every sample draws from its own random generator seeded by (run seed, sample index),
batches do not depend on how many loader workers there are, or on where a run resumed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..datasplits import CropSampler, check_dataset, normalise
from ..errors import UserError
from ..volumes import Volume, open_volume
from .augment import Augmentation, AugmentConfig
from .config import RunConfig


@dataclass(frozen=True)
class SampleShapes:
    """The grids of one sample: raw at the input shape, targets at the output shape, labels with context."""

    raw_voxel_size: Coordinate
    label_voxel_size: Coordinate
    input_shape: Coordinate
    output_shape: Coordinate
    context: Coordinate  # world units the targets need beyond the output, per side

    def rois(self, centre: Coordinate) -> tuple[Roi, Roi, Roi]:
        """(raw roi, output roi, labels roi) around ``centre``, on their grids."""
        half_in = Coordinate(s // 2 for s in self.input_shape) * self.raw_voxel_size
        half_out = Coordinate(s // 2 for s in self.output_shape) * self.label_voxel_size
        raw = Roi(centre - half_in, self.input_shape * self.raw_voxel_size)
        output = Roi(centre - half_out, self.output_shape * self.label_voxel_size)
        return raw, output, output.grow(self.context, self.context)

    def needed_extent(self, augment: AugmentConfig) -> Coordinate:
        """World extent around a centre that holds every source an augmentation may read."""
        raw, _, labels = self.rois(Coordinate((0,) * len(self.input_shape)))
        extent = np.maximum(np.asarray(raw.shape, float), np.asarray(labels.shape, float))
        voxel = np.asarray(self.raw_voxel_size, float)
        plane = np.flatnonzero(voxel == voxel.min())  # the isotropic axes rotations and elastic act in
        if augment.rotate > 0 and len(plane) >= 2:
            turned = plane if augment.rotate_3d and len(plane) == len(voxel) else plane[-2:]
            extent[turned] = math.sqrt(float((extent[turned] ** 2).sum()))
        if augment.elastic > 0:  # the field is bounded by 3 standard deviations at its lattice points
            extent[plane] += 2 * 3 * augment.elastic_magnitude
        extent += 4 * voxel  # interpolation neighbours and snapping
        grid = np.asarray(self.raw_voxel_size) * 2
        return Coordinate((np.ceil(extent / grid) * grid).astype(int))


def sample_shapes(run: RunConfig, label_voxel_size: Coordinate, raw_voxel_size: Coordinate) -> SampleShapes:
    architecture = run.architecture
    input_shape = Coordinate(architecture.input_shape)
    architecture.check_input_shape(input_shape)
    output_shape = Coordinate(architecture.output_shape(input_shape))
    return SampleShapes(raw_voxel_size, label_voxel_size, input_shape, output_shape,
                        Coordinate(run.task.context(label_voxel_size)))


class SampleMaker:
    """Makes sample ``i`` of a run (picklable: volumes are opened lazily in each process)."""

    def __init__(self, run: RunConfig):
        self.run = run

    @cached_property
    def _datasets(self):
        factor = self.run.architecture.upsample_factor()
        geometries = [check_dataset(d, factor) for d in self.run.datasplit.train]
        raw_sizes = {tuple(g.raw_voxel_size) for g in geometries}
        label_sizes = {tuple(g.labels_voxel_size) for g in geometries}
        if len(raw_sizes) > 1 or len(label_sizes) > 1:
            raise UserError(f"all training datasets need one voxel size; found raw {sorted(raw_sizes)} "
                            f"and labels {sorted(label_sizes)}")
        return geometries

    @cached_property
    def shapes(self) -> SampleShapes:
        g = self._datasets[0]
        return sample_shapes(self.run, g.labels_voxel_size, g.raw_voxel_size)

    @cached_property
    def border_padding(self) -> Coordinate:
        """World units per side by which a crop's needed extent may reach past its dataset's region.

        ``trainer.border_padding`` raw voxels; by default as far as lets the output crop reach the
        region's faces: the raw input (grown by what augmentations read) then lies past them as far
        as inference reads past a volume's faces, or further.
        """
        padding = self.run.trainer.border_padding
        shapes = self.shapes
        if padding is not None:
            return Coordinate((padding,) * len(shapes.input_shape)) * shapes.raw_voxel_size
        needed = np.asarray(shapes.needed_extent(self.run.trainer.augment))
        output_half = np.asarray(shapes.output_shape) // 2 * np.asarray(shapes.label_voxel_size)
        voxel = np.asarray(shapes.raw_voxel_size)
        return Coordinate(np.maximum(needed // 2 - output_half, 0) // voxel * voxel)

    @cached_property
    def _sampler(self) -> CropSampler:
        padding = self.border_padding
        datasets = [(d.weight, replace(g, region=g.region.grow(padding, padding)),
                     open_volume(d.mask) if d.mask else None)
                    for d, g in zip(self.run.datasplit.train, self._datasets, strict=True)]
        return CropSampler(datasets, self.shapes.needed_extent(self.run.trainer.augment),
                           min_masked=self.run.trainer.min_masked, label_shape=self.shapes.output_shape)

    def _volume(self, url: str) -> Volume:
        """The volume at ``url``, opened once in each process (a loader worker opens its own)."""
        if self.__dict__.get("_opened_in") != os.getpid():
            self._opened, self._opened_in = {}, os.getpid()
        if url not in self._opened:
            self._opened[url] = open_volume(url)
        return self._opened[url]

    def prepare(self) -> SampleShapes:
        """Open and check the datasets and build the crop sampler now (before loader workers fork)."""
        _ = self._sampler
        return self.shapes

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index``: raw ``[C_in, *input]``, target and weights ``[C, *output]``, labels ``[*output]``."""
        rng = np.random.default_rng([self.run.seed, index])
        which, centre = self._sampler.sample(rng)
        dataset = self.run.datasplit.train[which]
        shapes = self.shapes
        raw_roi, output_roi, labels_roi = shapes.rois(centre)
        augmentation = Augmentation.draw(self.run.trainer.augment, rng, tuple(shapes.raw_voxel_size), centre=centre)

        raw_source = augmentation.source_roi(raw_roi, shapes.raw_voxel_size)
        raw = normalise(self._volume(dataset.raw).read_mirrored(raw_source), dataset.normalisation)
        raw = augmentation.warp(raw, raw_source, raw_roi, shapes.raw_voxel_size, order=1)
        raw = augmentation.intensity(raw, rng).astype(np.float32)
        if raw.ndim == len(shapes.input_shape):
            raw = raw[np.newaxis]

        labels_source = augmentation.source_roi(labels_roi, shapes.label_voxel_size)
        labels_volume = self._volume(dataset.labels)
        labels = labels_volume.read(labels_source, fill_value=0)
        known = _known(labels_source, labels_volume, self._volume(dataset.mask) if dataset.mask else None,
                       shapes.label_voxel_size)
        labels = augmentation.warp(labels, labels_source, labels_roi, shapes.label_voxel_size, order=0)
        known = augmentation.warp(known, labels_source, labels_roi, shapes.label_voxel_size, order=0) != 0
        if dataset.class_of_label:
            from ..tasks.targets.semantic import classes_from_labels

            labels = classes_from_labels(labels, dataset.label_classes())

        target, target_known = self.run.task.targets(labels, shapes.label_voxel_size, known)
        crop = tuple(slice(c // v, c // v + s) for c, v, s in
                     zip(shapes.context, shapes.label_voxel_size, shapes.output_shape, strict=True))
        target, target_known = target[(slice(None),) + crop], target_known[(slice(None),) + crop]
        return {"raw": raw, "target": target, "weights": self.run.task.weights(target, target_known),
                "labels": labels[crop].astype(np.int64), "output_begin": np.asarray(output_roi.begin),
                "raw_begin": np.asarray(raw_roi.begin)}


def _known(roi: Roi, labels: Volume, mask: Volume | None, voxel_size: Coordinate) -> np.ndarray:
    """Where labels are known within ``roi``: inside the ``labels`` volume, and in the ``mask`` if there is one."""
    from ..geometry import region_mask

    known = region_mask(labels.roi, roi, voxel_size)
    if mask is not None:
        known &= mask.read(roi, fill_value=0) != 0
    return known.astype(np.uint8)
