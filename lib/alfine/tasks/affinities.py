"""The ``affinities`` task: short- and long-range affinities, optionally with LSDs the model predicts too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from funlib.geometry import Coordinate

from ..postprocess.registry import AGGLOMERATE_THRESHOLDS, TIDY_GRID
from .base import OutputGroup, Postprocessing, TaskConfig, linspace
from .targets.affinities import affinities, affinity_context
from .targets.lsds import local_shape_descriptors, lsd_context

LSD_NAMES = {3: ("lsd_offset_z", "lsd_offset_y", "lsd_offset_x", "lsd_var_z", "lsd_var_y", "lsd_var_x",
                 "lsd_corr_zy", "lsd_corr_zx", "lsd_corr_yx", "lsd_size"),
             2: ("lsd_offset_y", "lsd_offset_x", "lsd_var_y", "lsd_var_x", "lsd_corr_yx", "lsd_size")}


def _nearest_neighbours() -> list[list[int]]:
    return [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


@dataclass(kw_only=True)
class AffinitiesTask(TaskConfig):
    """Channel ``c`` at voxel ``v`` is 1 where ``v`` and ``v + neighborhood[c]`` lie in one object.

    Offsets are in voxels, any range, 2D or 3D. With ``lsds``, the model also predicts the local
    shape descriptors under a Gaussian window of ``lsd_sigma`` world units, weighted by ``lsd_weight``.
    """

    kind: ClassVar[str] = "affinities"
    neighborhood: list[list[int]] = field(default_factory=_nearest_neighbours)
    background_as_object: bool = False
    lsds: bool = False
    lsd_sigma: float = 80.0
    lsd_weight: float = 1.0

    def __post_init__(self):
        if not self.neighborhood:
            raise ValueError("neighborhood must hold at least one offset")
        dims = {len(o) for o in self.neighborhood}
        if len(dims) != 1 or dims.pop() not in (2, 3):
            raise ValueError("neighborhood offsets must all have 2 or all have 3 entries")
        if any(not any(o) for o in self.neighborhood):
            raise ValueError("neighborhood must not contain the zero offset")
        if self.lsd_sigma <= 0 or self.lsd_weight < 0:
            raise ValueError("lsd_sigma must be positive and lsd_weight non-negative")

    @property
    def dims(self) -> int:
        return len(self.neighborhood[0])

    @property
    def num_affinities(self) -> int:
        return len(self.neighborhood)

    def outputs(self) -> list[OutputGroup]:
        names = tuple("aff_" + "_".join(map(str, o)) for o in self.neighborhood)
        groups = [OutputGroup("affinities", names, "sigmoid", "bce", balance="binary")]
        if self.lsds:
            groups.append(OutputGroup("lsds", LSD_NAMES[self.dims], "sigmoid", "mse", weight=self.lsd_weight))
        return groups

    def targets(self, labels, voxel_size, mask=None):
        affs, known = affinities(labels, self.neighborhood, self.background_as_object, mask)
        if not self.lsds:
            return affs, known
        lsds, lsds_known = local_shape_descriptors(labels, self.lsd_sigma, voxel_size, mask)
        return np.concatenate([affs, lsds]), np.concatenate([known, lsds_known])

    def context(self, voxel_size) -> Coordinate:
        context = np.asarray(affinity_context(self.neighborhood, voxel_size))
        if self.lsds:
            context = np.maximum(context, lsd_context(self.lsd_sigma, voxel_size))
        return Coordinate(context.astype(int))

    def postprocessing(self) -> list[Postprocessing]:
        """Mutex watershed and agglomeration (thresholds: :data:`~alfine.postprocess.registry.AGGLOMERATE_THRESHOLDS`),
        each at 3 levels x 2 fragment sizes x 2 fills (12 runs).

        ``fill`` 0.25 keeps voxels whose affinities are all low as background (true background has
        affinity ~0 to everything unless ``background_as_object``); ``fill`` 0 gives every voxel an object.
        """
        affs = slice(0, self.num_affinities)
        return [Postprocessing("mutex_watershed", {"bias": linspace(-0.7, -0.3, 3), **TIDY_GRID}, affs),
                Postprocessing("agglomerate", {"threshold": AGGLOMERATE_THRESHOLDS, **TIDY_GRID}, affs)]
