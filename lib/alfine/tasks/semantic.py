"""Semantic tasks: ``binary`` (independent sigmoid channels) and ``semantic`` (one-hot softmax)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import ClassSelection, OutputGroup, Postprocessing, TaskConfig, linspace
from .targets.semantic import binary_channels, one_hot


@dataclass(kw_only=True)
class BinaryTask(ClassSelection, TaskConfig):
    """One sigmoid channel per class: channel ``name`` is 1 where the class volume equals ``classes[name]``."""

    kind: ClassVar[str] = "binary"
    evaluation: ClassVar[str] = "semantic"

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("classes", tuple(self.classes), "sigmoid", "bce", balance="binary")]

    def targets(self, labels, voxel_size, mask=None):
        return binary_channels(self.class_map(labels), self.class_ids, mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("threshold", {"threshold": linspace(0.1, 0.9, 9)}),
                Postprocessing("connected_components", {"threshold": linspace(0.3, 0.7, 5)})]


@dataclass(kw_only=True)
class SemanticTask(ClassSelection, TaskConfig):
    """A softmax over ``background`` and the named classes; class ids not listed count as background."""

    kind: ClassVar[str] = "semantic"
    evaluation: ClassVar[str] = "semantic"

    def __post_init__(self):
        super().__post_init__()
        if "background" in self.classes or 0 in self.classes.values():
            raise ValueError("classes must not name background (class 0): it is channel 0 already")

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("classes", ("background", *self.classes), "softmax", "cross_entropy", balance="classes")]

    def channel_of_class(self, classes: np.ndarray) -> np.ndarray:
        """Class ids as channel indices: ``classes[i]`` → ``i + 1``, anything else → 0 (background)."""
        lookup = {cid: i + 1 for i, cid in enumerate(self.class_ids)}
        out = np.zeros(classes.shape, dtype=np.uint8)
        for cid, channel in lookup.items():
            out[classes == cid] = channel
        return out

    def targets(self, labels, voxel_size, mask=None):
        channels = self.channel_of_class(self.class_map(labels))
        return one_hot(channels, len(self.classes) + 1, mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("argmax", {})]
