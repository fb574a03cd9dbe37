"""Semantic tasks: ``binary`` (independent sigmoid channels) and ``semantic`` (one-hot softmax)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .base import OutputGroup, Postprocessing, TaskConfig, linspace, with_classes
from .targets.semantic import binary_channels, one_hot


def _default_classes() -> dict[str, int]:
    return {"foreground": 1}


@dataclass(kw_only=True)
class BinaryTask(TaskConfig):
    """One sigmoid channel per class: channel ``name`` is 1 where the class volume equals ``classes[name]``.

    With ``from_instances``, the labels are instance ids and every non-zero id is class 1.
    """

    kind: ClassVar[str] = "binary"
    evaluation: ClassVar[str] = "semantic"
    classes: dict[str, int] = field(default_factory=_default_classes)
    from_instances: bool = False

    def __post_init__(self):
        if not self.classes:
            raise ValueError("classes must name at least one class")

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("classes", tuple(self.classes), "sigmoid", "bce", balance="binary")]

    def targets(self, labels, voxel_size, mask=None):
        return binary_channels(with_classes(labels, self.from_instances), list(self.classes.values()), mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("threshold", {"threshold": linspace(0.1, 0.9, 9)}),
                Postprocessing("connected_components", {"threshold": linspace(0.3, 0.7, 5)})]


@dataclass(kw_only=True)
class SemanticTask(TaskConfig):
    """A softmax over ``background`` and the named classes; class ids not listed count as background."""

    kind: ClassVar[str] = "semantic"
    evaluation: ClassVar[str] = "semantic"
    classes: dict[str, int] = field(default_factory=_default_classes)
    from_instances: bool = False

    def __post_init__(self):
        if not self.classes:
            raise ValueError("classes must name at least one class")
        if "background" in self.classes or 0 in self.classes.values():
            raise ValueError("classes must not name background (class 0): it is channel 0 already")

    def outputs(self) -> list[OutputGroup]:
        return [OutputGroup("classes", ("background", *self.classes), "softmax", "cross_entropy", balance="classes")]

    def channel_of_class(self, classes: np.ndarray) -> np.ndarray:
        """Class ids as channel indices: ``classes[i]`` → ``i + 1``, anything else → 0 (background)."""
        lookup = {cid: i + 1 for i, cid in enumerate(self.classes.values())}
        out = np.zeros(classes.shape, dtype=np.uint8)
        for cid, channel in lookup.items():
            out[classes == cid] = channel
        return out

    def targets(self, labels, voxel_size, mask=None):
        channels = self.channel_of_class(with_classes(labels, self.from_instances))
        return one_hot(channels, len(self.classes) + 1, mask)

    def postprocessing(self) -> list[Postprocessing]:
        return [Postprocessing("argmax", {})]
