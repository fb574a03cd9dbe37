"""What every architecture config provides, without torch.

An architecture config (a :class:`~alfine.configs.Tagged` dataclass chosen by ``"kind"``) has
``input_shape`` (the training input in voxels) and ``fmaps_in`` (raw channels), and says:

- which input shapes are valid: per axis, the sizes ``smallest + n * step`` (``n >= 0``;
  :meth:`valid_sizes`); axes are independent;
- :meth:`output_shape` for a valid input, :meth:`context` (input voxels lost per side) and
  :meth:`upsample_factor` (output voxel size = input voxel size / factor), related by
  ``output = (input - 2 * context) * upsample_factor``;
- :meth:`activation_bytes`, an estimate of the activation memory of inference, and from it
  :meth:`largest_input_shape`;
- :meth:`build`: the torch module mapping ``[B, fmaps_in, *input]`` to raw logits
  ``[B, out_channels, *output]`` (torch is imported there, never at module level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..configs import Tagged
from ..errors import UserError

if TYPE_CHECKING:
    import torch

BYTES_PER_VALUE = 4  # activations are float32


class ArchitectureConfig(Tagged):
    """Base of architecture configs; subclasses are the architecture kinds (dataclasses)."""

    input_shape: list[int]
    fmaps_in: int

    def dims(self) -> int:
        """The number of spatial dimensions, 2 or 3."""
        return len(self.input_shape)

    def valid_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(smallest, step)`` per axis: the valid sizes are ``smallest + n * step``; a step of 0 allows one size."""
        raise NotImplementedError

    def context(self) -> tuple[int, ...]:
        """Input voxels lost on each side of each axis (0 for same padding)."""
        raise NotImplementedError

    def upsample_factor(self) -> tuple[int, ...]:
        """Per axis, how many output voxels span one input voxel (1 unless the model super-resolves)."""
        raise NotImplementedError

    def activation_bytes(self, input_shape: Sequence[int], out_channels: int, batch_size: int = 1) -> int:
        """Estimated peak bytes of activations of a ``torch.no_grad()`` forward on a valid ``input_shape``
        (float32; weights, convolution workspaces and the CUDA context are not included)."""
        raise NotImplementedError

    def build(self, out_channels: int) -> torch.nn.Module:
        """A fresh module mapping ``[B, fmaps_in, *input]`` to logits ``[B, out_channels, *output]``."""
        raise NotImplementedError

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """The output's shape in output voxels for ``input_shape``; a :class:`UserError` if that is not valid."""
        self.check_input_shape(input_shape)
        return self._output_shape(tuple(int(s) for s in input_shape))

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        """Nothing if ``input_shape`` is valid; else a :class:`UserError` naming the nearest valid sizes per axis."""
        problem = self.input_shape_problem(input_shape)
        if problem:
            raise UserError(problem)

    def check_input_array(self, shape: Sequence[int]) -> None:
        """Nothing if an array of ``shape`` is one valid network input ``[fmaps_in, *spatial]``; else a
        :class:`UserError` saying what the network needs."""
        if len(shape) != self.dims() + 1 or shape[0] != self.fmaps_in:
            raise UserError(f"the network needs input [{self.fmaps_in}, *spatial] ({self.dims()}D), "
                            f"got an array of shape {tuple(shape)}")
        self.check_input_shape(shape[1:])

    def input_shape_problem(self, input_shape: Sequence[int]) -> str | None:
        """Why ``input_shape`` is not valid (naming, per bad axis, the nearest valid sizes below and above), or None."""
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != self.dims():
            return f"input shape {shape} has {len(shape)} axes; this architecture is {self.dims()}D"
        smallest, step = self.valid_sizes()
        problems = []
        for axis, (size, first, stride) in enumerate(zip(shape, smallest, step, strict=True)):
            if stride == 0 and size != first:
                problems.append(f"axis {axis}: {size} is not valid, the only valid size is {first}")
            elif size < first:
                problems.append(f"axis {axis}: {size} is too small, the smallest valid size is {first}")
            elif stride and (size - first) % stride:
                below = first + (size - first) // stride * stride
                problems.append(f"axis {axis}: {size} is not valid, the nearest valid sizes are {below} and "
                                f"{below + stride}")
        if not problems:
            return None
        return f"input shape {shape} is not valid for this {self.kind} ({'; '.join(problems)})"

    def largest_input_shape(self, memory_bytes: int, out_channels: int, batch_size: int = 1) -> tuple[int, ...]:
        """The largest valid input shape whose :meth:`activation_bytes` fits in ``memory_bytes``.

        Every axis grows by the same number of steps ``n`` (steps are the total downsampling per
        axis, so anisotropic downsampling gives an input balanced in world units, isotropic a
        cube); then axes take one more step where that still fits, last axis first. A
        :class:`UserError` if even the smallest valid input does not fit.
        """
        smallest, step = self.valid_sizes()

        def shape(steps: Sequence[int]) -> tuple[int, ...]:
            return tuple(s + n * t for s, n, t in zip(smallest, steps, step, strict=True))

        def fits(steps: Sequence[int]) -> bool:
            return self.activation_bytes(shape(steps), out_channels, batch_size) <= memory_bytes

        dims = self.dims()
        if not fits([0] * dims):
            needed = self.activation_bytes(smallest, out_channels, batch_size)
            raise UserError(f"the smallest valid input {smallest} needs about {_mib(needed)} of activations, "
                            f"more than the {_mib(memory_bytes)} given")
        if not any(step):
            return shape([0] * dims)
        low, high = 0, 1
        while fits([high] * dims):
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits([middle] * dims) else (low, middle)
        steps = [low] * dims
        for axis in reversed(range(dims)):
            more = steps[:axis] + [steps[axis] + 1] + steps[axis + 1:]
            if step[axis] and fits(more):
                steps = more
        return shape(steps)


def _mib(size: int) -> str:
    return f"{math.ceil(size / 2**20)} MiB"
