"""What every task provides, without torch.

A task config (a :class:`~alfine.configs.Tagged` dataclass chosen by ``"kind"``) says:

- ``outputs()``: the network's output channels as groups, each with its activation and loss
  (the torch side, :mod:`alfine.tasks.losses`, builds heads and losses from these);
- ``targets(labels, voxel_size, mask)``: targets and where they are known, from labels (numpy,
  on the fly, correct for any crop: what depends on unseen labels is unknown);
- ``weights(target, known)``: loss weights balancing each output group as it declares (a
  per-crop statistic, so separate from the targets, which are exact for any crop);
- ``context(voxel_size)``: how much more than a block a target computation must read so the
  block's targets equal those of the whole volume;
- ``postprocessing()``: the post-processing methods and parameter grids validation sweeps,
  on the network's output scale;
- ``evaluation``: ``"instance"`` or ``"semantic"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from funlib.geometry import Coordinate

from ..configs import Tagged

Activation = Literal["sigmoid", "softmax", "tanh", "identity"]
Loss = Literal["bce", "cross_entropy", "mse"]
Balance = Literal["none", "binary", "classes", "inside_outside"]


@dataclass(frozen=True)
class OutputGroup:
    """Consecutive output channels that share an activation and a loss."""

    name: str
    channel_names: tuple[str, ...]
    activation: Activation
    loss: Loss
    balance: Balance = "none"
    weight: float = 1.0

    @property
    def channels(self) -> int:
        return len(self.channel_names)


@dataclass(frozen=True)
class Postprocessing:
    """A post-processing method, the parameter grid validation sweeps, and the channels it reads."""

    method: str
    grid: dict[str, list]
    channels: slice = field(default_factory=lambda: slice(None))


class TaskConfig(Tagged):
    """Base of task configs; subclasses are the task kinds."""

    evaluation: ClassVar[str] = "instance"

    def outputs(self) -> list[OutputGroup]:
        raise NotImplementedError

    def channel_names(self) -> list[str]:
        return [name for group in self.outputs() for name in group.channel_names]

    @property
    def num_channels(self) -> int:
        return len(self.channel_names())

    @property
    def dims(self) -> int | None:
        """The spatial dimensions the task is for, or None for any."""
        return None

    def targets(self, labels: np.ndarray, voxel_size, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(target, known)``, float32 ``[num_channels, *labels.shape]``; ``known`` is 0 where a
        target depends on labels outside the array or outside ``mask``."""
        raise NotImplementedError

    def weights(self, target: np.ndarray, known: np.ndarray, clip: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
        """Loss weights: ``known``, balanced within each output group as the group declares."""
        from .targets.weights import balance_binary, balance_classes

        out = np.empty_like(known, dtype=np.float32)
        start = 0
        for group in self.outputs():
            part = slice(start, start + group.channels)
            start += group.channels
            if group.balance == "binary":
                out[part] = balance_binary(target[part], known[part], clip)
            elif group.balance == "inside_outside":
                out[part] = balance_binary(target[part] > 0, known[part], clip)
            elif group.balance == "classes":
                classes = np.argmax(target[part], axis=0)
                out[part] = balance_classes(classes, group.channels, known[part][0], (clip[0] / 5, 1.0))[None]
            else:
                out[part] = known[part]
        return out

    def context(self, voxel_size) -> Coordinate:
        """World units a block must read beyond its write region on each side (0 for voxelwise targets)."""
        return Coordinate((0,) * len(voxel_size))

    def postprocessing(self) -> list[Postprocessing]:
        raise NotImplementedError


def linspace(start: float, stop: float, num: int) -> list[float]:
    """Evenly spaced values, rounded for readable configs and reports."""
    return [round(float(v), 4) for v in np.linspace(start, stop, num)]


def round_up(world: np.ndarray, voxel_size) -> Coordinate:
    """World distances rounded up to whole voxels, per axis."""
    voxel_size = np.asarray(voxel_size, dtype=float)
    return Coordinate((np.ceil(np.asarray(world, dtype=float) / voxel_size) * voxel_size).astype(int))


def _default_classes() -> dict[str, int]:
    return {"foreground": 1}


@dataclass(kw_only=True)
class ClassSelection:
    """The classes a semantic task learns: channel names → class ids of the class volume.

    With ``from_instances``, the labels are instance ids and every non-zero id is class 1.
    """

    classes: dict[str, int] = field(default_factory=_default_classes)
    from_instances: bool = False

    def __post_init__(self):
        if not self.classes:
            raise ValueError("classes must name at least one class")

    @property
    def class_ids(self) -> list[int]:
        return list(self.classes.values())

    def class_map(self, labels: np.ndarray) -> np.ndarray:
        """A class volume: the labels themselves, or 1 wherever an instance id is non-zero."""
        return (labels > 0).astype(np.uint8) if self.from_instances else labels
