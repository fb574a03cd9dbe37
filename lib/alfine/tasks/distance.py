"""Distance tasks: ``distance`` (signed, per class), ``inner_distance`` (per instance), ``hot_distance``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from .base import ClassSelection, OutputGroup, Postprocessing, TaskConfig, linspace
from .targets.distance import CLIP_IN_SCALES, distance_context, distance_targets, inner_distance
from .targets.semantic import binary_channels


@dataclass(kw_only=True)
class _DistanceSettings:
    """``scale`` of the tanh and the distance clip, both in world units (clip default: 3 scales)."""

    scale: float = 50.0
    clip_distance: Optional[float] = None

    def __post_init__(self):
        getattr(super(), "__post_init__", lambda: None)()
        if self.scale <= 0:
            raise ValueError("scale must be positive (world units)")
        if self.clip_distance is not None and self.clip_distance <= 0:
            raise ValueError("clip_distance must be positive (world units)")

    @property
    def clip(self) -> float:
        return CLIP_IN_SCALES * self.scale if self.clip_distance is None else self.clip_distance

    def context(self, voxel_size):
        from funlib.geometry import Coordinate

        return Coordinate(distance_context(self.clip, voxel_size))


# Thresholds on the tanh output, i.e. tanh(d / scale): the network's own scale, not world units.
_TANH_THRESHOLDS = linspace(-0.5, 0.5, 5)


@dataclass(kw_only=True)
class DistanceTask(_DistanceSettings, ClassSelection, TaskConfig):
    """Per class, ``tanh(d / scale)`` of the signed distance ``d`` (world units, positive inside) to its boundary."""

    kind: ClassVar[str] = "distance"
    evaluation: ClassVar[str] = "semantic"

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("distance", tuple(self.classes), "tanh", "mse", balance="inside_outside")]

    def targets(self, labels, voxel_size, mask=None):
        return distance_targets(self.class_map(labels), self.class_ids, voxel_size, self.scale, self.clip, mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("threshold", {"threshold": _TANH_THRESHOLDS}),
                Postprocessing("connected_components", {"threshold": _TANH_THRESHOLDS})]


@dataclass(kw_only=True)
class InnerDistanceTask(_DistanceSettings, TaskConfig):
    """``tanh(d / scale)`` of each instance voxel's distance to its own object's boundary; 0 on background."""

    kind: ClassVar[str] = "inner_distance"

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("inner_distance", ("inner_distance",), "tanh", "mse", balance="inside_outside")]

    def targets(self, labels, voxel_size, mask=None):
        return inner_distance(labels, voxel_size, self.scale, self.clip, mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("watershed", {"seed_threshold": linspace(0.3, 0.7, 3),
                                             "mask_threshold": linspace(0.0, 0.2, 3)}),
                Postprocessing("connected_components", {"threshold": linspace(0.1, 0.5, 5)})]


@dataclass(kw_only=True)
class HotDistanceTask(_DistanceSettings, ClassSelection, TaskConfig):
    """Per class, a sigmoid one-hot channel and a tanh signed-distance channel, trained together."""

    kind: ClassVar[str] = "hot_distance"
    evaluation: ClassVar[str] = "semantic"
    distance_weight: float = 1.0

    def outputs(self) -> list[OutputGroup]:
        names = tuple(self.classes)
        return [OutputGroup("classes", names, "sigmoid", "bce", balance="binary"),
                OutputGroup("distance", tuple(f"{n}_distance" for n in names), "tanh", "mse",
                            balance="inside_outside", weight=self.distance_weight)]

    def targets(self, labels, voxel_size, mask=None):
        classes = self.class_map(labels)
        hot, hot_known = binary_channels(classes, self.class_ids, mask)
        distance, distance_known = distance_targets(classes, self.class_ids, voxel_size, self.scale, self.clip, mask)
        return np.concatenate([hot, distance]), np.concatenate([hot_known, distance_known])

    def postprocessing(self) -> list[Postprocessing]:
        hot = slice(0, len(self.classes))
        return [Postprocessing("threshold", {"threshold": linspace(0.1, 0.9, 9)}, hot),
                Postprocessing("connected_components", {"threshold": linspace(0.3, 0.7, 5)}, hot)]
