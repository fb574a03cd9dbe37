"""A 2D model applied to a 3D volume slice by slice (no torch).

:class:`SliceSpec` wraps any 2D predictor spec: its blocks are ``depth`` z slices of the 2D
model's block, read without context in z (each slice is predicted on its own), so the result
equals predicting every slice of the volume whole. The voxel size in z is kept (upsampling acts
on y and x only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..architectures import ArchitectureConfig


class SliceArchitecture:
    """The 3D shapes of a 2D architecture applied per z slice: any depth ``>= 1``, no context in z."""

    check_input_shape = ArchitectureConfig.check_input_shape
    input_shape_problem = ArchitectureConfig.input_shape_problem
    largest_input_shape = ArchitectureConfig.largest_input_shape

    def __init__(self, plane, depth: int = 1):
        self.plane = plane
        self.kind = f"{plane.kind} (slice by slice)"
        self.fmaps_in = plane.fmaps_in
        self.input_shape = [int(depth), *plane.input_shape]

    def dims(self) -> int:
        return 3

    def valid_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        smallest, step = self.plane.valid_sizes()
        return (1, *smallest), (1, *step)

    def context(self) -> tuple[int, ...]:
        return (0, *self.plane.context())

    def upsample_factor(self) -> tuple[int, ...]:
        return (1, *self.plane.upsample_factor())

    def activation_bytes(self, input_shape: Sequence[int], out_channels: int, batch_size: int = 1) -> int:
        return self.plane.activation_bytes(input_shape[1:], out_channels, batch_size)  # one slice at a time

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        self.check_input_shape(input_shape)
        return (int(input_shape[0]), *self.plane.output_shape(input_shape[1:]))


@dataclass(frozen=True)
class SliceSpec:
    """The 2D spec ``plane`` applied to ``depth`` z slices per block (see the module)."""

    kind: ClassVar[str] = "slices"
    plane: Any
    depth: int = 1

    @property
    def task(self) -> dict:
        return self.plane.task

    def architecture_config(self) -> SliceArchitecture:
        return SliceArchitecture(self.plane.architecture_config(), self.depth)

    def task_config(self):
        return self.plane.task_config()

    def describe(self) -> dict:
        return {"kind": self.kind, "depth": self.depth, "plane": self.plane.describe()}

    def build(self) -> SlicePredictor:
        return SlicePredictor(self.plane.build())


class SlicePredictor:
    """``raw [C_in, Z, *input]`` → ``[C_out, Z, *output]``: the 2D predictor on every z slice."""

    def __init__(self, plane):
        self.plane = plane

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.stack([self.plane(raw[:, z]) for z in range(raw.shape[1])], axis=1)
