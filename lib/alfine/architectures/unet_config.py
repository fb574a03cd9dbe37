"""The ``unet`` architecture: a U-Net's config and its shape arithmetic, without torch.

The network (built by :mod:`alfine.architectures.unet`), level ``l`` having
``num_fmaps * fmap_inc_factor**l`` channels (rounded, at least 1):

- down: at each level the convolutions of ``kernel_size_down[l]``, then max-pooling by
  ``downsample_factors[l]`` (the size must be divisible by it); at the bottom the
  convolutions of ``kernel_size_down[-1]``;
- up: upsampling (a transposed convolution, or nearest neighbours and a 1x1 convolution) to
  level ``l``'s channels, concatenation with level ``l``'s feature map centre-cropped to the
  same size, the convolutions of ``kernel_size_up[l]``;
- an optional super-resolution tail: per entry of ``upsample_factors`` a transposed
  convolution by that factor and the convolutions of ``kernel_size_down[0]``;
- a centre crop (valid padding only, see below) and a 1x1 convolution to the output channels.

Each convolution is followed by the normalisation, the activation and dropout. With
``"valid"`` padding a kernel ``k`` loses ``k - 1`` voxels, so for every valid input
``output = (input - 2 * context) * upsample_factor`` with a constant context. Tiles of an
input on a grid whose spacing is a multiple of the total downsampling ``step`` (per axis
the product of the downsampling factors) give exactly the output of the whole: the final
crop makes every output a multiple of ``step`` (times the upsample factor) so that
adjacent output tiles lie on that grid. Valid sizes per axis are ``smallest + n * step``.
With ``"same"`` padding the output is the input times the upsample factor, the context is 0
and an input is valid when each axis is a multiple of ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Literal, NamedTuple

import numpy as np

from .base import BYTES_PER_VALUE, ArchitectureConfig

Kernel = int | list[int]


class _Grid(NamedTuple):
    smallest: np.ndarray
    step: np.ndarray
    context: np.ndarray
    crop: np.ndarray  # output voxels cropped per side at the end
    upsample: np.ndarray


@dataclass(kw_only=True)
class UNetConfig(ArchitectureConfig):
    """A U-Net for 2D or 3D inputs (the number of axes of ``input_shape``); see the module's docstring."""

    kind: ClassVar[str] = "unet"
    input_shape: list[int]
    downsample_factors: list[list[int]]
    fmaps_in: int = 1
    num_fmaps: int = 12
    fmap_inc_factor: int | float = 2
    kernel_size_down: list[list[Kernel]] | None = None
    kernel_size_up: list[list[Kernel]] | None = None
    padding: Literal["valid", "same"] = "valid"
    upsample: Literal["transposed", "nearest"] = "transposed"
    norm: Literal["batch", "instance", "group"] | None = None
    activation: Literal["relu", "leaky_relu", "gelu"] = "relu"
    dropout: float = 0.0
    upsample_factors: list[list[int]] | None = None

    def __post_init__(self):
        dims = len(self.input_shape)
        if dims not in (2, 3):
            raise ValueError(f"input_shape must have 2 or 3 entries, got {len(self.input_shape)}")
        if self.fmaps_in < 1 or self.num_fmaps < 1 or self.fmap_inc_factor <= 0:
            raise ValueError("fmaps_in and num_fmaps must be at least 1 and fmap_inc_factor positive")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        _check_factors("downsample_factors", self.downsample_factors, dims)
        _check_factors("upsample_factors", self.upsample_factors or [], dims)
        levels = len(self.downsample_factors)
        _check_kernels("kernel_size_down", self.kernel_size_down, levels + 1, dims, "one per level plus the bottom")
        _check_kernels("kernel_size_up", self.kernel_size_up, levels, dims, "one per level above the bottom")
        problem = self.input_shape_problem(self.input_shape)
        if problem:
            raise ValueError(f"input_shape: {problem}")

    def channels(self, level: int) -> int:
        """The number of feature maps at ``level`` (0 is the top)."""
        return max(1, round(self.num_fmaps * self.fmap_inc_factor**level))

    @cached_property
    def down_kernels(self) -> list[list[tuple[int, ...]]]:
        """Per level (the last is the bottom), the kernel shape of each convolution on the way down."""
        return self._kernels(self.kernel_size_down, len(self.downsample_factors) + 1)

    @cached_property
    def up_kernels(self) -> list[list[tuple[int, ...]]]:
        """Per level above the bottom, the kernel shape of each convolution on the way up."""
        return self._kernels(self.kernel_size_up, len(self.downsample_factors))

    def output_crop(self) -> tuple[int, ...]:
        """Output voxels cropped from each side before the head (see the module's docstring)."""
        return tuple(int(c) for c in self._grid.crop)

    def valid_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(int(s) for s in self._grid.smallest), tuple(int(s) for s in self._grid.step)

    def context(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self._grid.context)

    def upsample_factor(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self._grid.upsample)

    def activation_bytes(self, input_shape, out_channels: int, batch_size: int = 1) -> int:
        """The peak of a layer-by-layer walk of the forward pass: at each layer its input and output, the
        network's input (its caller keeps it) and the skip connections held for the way up; each convolution
        counts twice, the second time for its normalised and activated copy."""
        walk = self._walk(input_shape, self._grid.crop, out_channels)
        return BYTES_PER_VALUE * batch_size * walk.peak

    def build(self, out_channels: int):
        from .unet import UNet

        return UNet(self, out_channels)

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(int(s) for s in self._walk(input_shape, self._grid.crop).size)

    def _kernels(self, given: list[list[Kernel]] | None, levels: int) -> list[list[tuple[int, ...]]]:
        dims = self.dims()
        return [[(k,) * dims if isinstance(k, int) else tuple(k) for k in level]
                for level in (given if given is not None else [[3, 3]] * levels)]

    def _walk(self, input_shape, crop: np.ndarray, out_channels: int = 1) -> _Walk:
        """The forward pass on ``input_shape``, every axis at once, ending with ``crop`` and the head."""
        walk = _Walk(input_shape, self.fmaps_in, self.padding == "valid")
        levels = len(self.downsample_factors)
        for level, factor in enumerate(self.downsample_factors):
            walk.convs(self.channels(level), self.down_kernels[level])
            walk.pool(factor)
        walk.convs(self.channels(levels), self.down_kernels[levels])
        for level in reversed(range(levels)):
            walk.upsample(self.channels(level), self.downsample_factors[level], self.upsample == "nearest")
            walk.concat()
            walk.convs(self.channels(level), self.up_kernels[level])
        for factor in self.upsample_factors or []:
            walk.upsample(self.num_fmaps, factor, nearest=False)
            walk.convs(self.num_fmaps, self.down_kernels[0])
        walk.crop(crop)
        walk.layer(out_channels, walk.size)
        return walk

    @cached_property
    def _grid(self) -> _Grid:
        """Per axis: the valid sizes, the context, the final crop and the upsample factor, by walking the network."""
        dims = self.dims()
        step = np.prod(np.array(self.downsample_factors, dtype=np.int64).reshape(-1, dims), axis=0)
        upsample = np.prod(np.array(self.upsample_factors or [], dtype=np.int64).reshape(-1, dims), axis=0)
        no_crop = np.zeros(dims, dtype=np.int64)
        first = np.zeros(dims, dtype=np.int64)  # per axis, the smallest size the network accepts
        size = 0
        while not first.all():
            size += 1
            first[(first == 0) & self._walk([size] * dims, no_crop).ok] = size
        lost = first * upsample - self._walk(first, no_crop).size  # output voxels; the same for all valid sizes
        context = -(-lost // (2 * upsample))
        # Grow the context until every output is a multiple of step; odd kernels make that possible.
        while ((first - 2 * context) % step).any():
            context += (first - 2 * context) % step != 0
        smallest = first + step * np.maximum(0, -(-(2 * context + 1 - first) // step))
        return _Grid(smallest, step, context, (2 * context * upsample - lost) // 2, upsample)


class _Walk:
    """Feature map sizes (a vector: all axes at once) and live activations through a forward pass."""

    def __init__(self, input_shape, channels: int, valid: bool):
        self.size = np.asarray(input_shape, dtype=np.int64)
        self.channels = channels
        self.valid = valid
        self.ok = self.size >= 1  # per axis: every size so far is positive and divisible where it must be
        self.kept = _elements(channels, self.size)  # the caller holds the input throughout
        self.held: list[tuple[int, np.ndarray]] = []  # skip connections waiting for the way up
        self.current_counted = True  # the current map is the input or a held one
        self.peak = self.kept

    def layer(self, channels: int, size: np.ndarray) -> None:
        """A layer makes a new feature map from the current one: both live, with the input and the held ones."""
        live = self.kept + sum(_elements(*held) for held in self.held) + _elements(channels, size)
        if not self.current_counted:
            live += _elements(self.channels, self.size)
        self.peak = max(self.peak, live)
        self.channels, self.size, self.current_counted = channels, size, False
        self.ok &= size >= 1

    def convs(self, channels: int, kernels: list[tuple[int, ...]]) -> None:
        for kernel in kernels:
            self.layer(channels, self.size - (np.asarray(kernel) - 1 if self.valid else 0))
            self.layer(channels, self.size)

    def pool(self, factor: list[int]) -> None:
        self.ok &= self.size % factor == 0
        self.held.append((self.channels, self.size))
        self.current_counted = True
        self.layer(self.channels, self.size // factor)

    def upsample(self, channels: int, factor: list[int], nearest: bool) -> None:
        """A transposed convolution, or nearest-neighbour upsampling and then a 1x1 convolution."""
        if nearest:
            self.layer(self.channels, self.size * factor)
            self.layer(channels, self.size)
        else:
            self.layer(channels, self.size * factor)

    def concat(self) -> None:
        self.layer(self.channels + self.held[-1][0], self.size)
        self.held.pop()

    def crop(self, per_side: np.ndarray) -> None:
        self.size = self.size - 2 * per_side
        self.ok &= self.size >= 1


def _elements(channels: int, size: np.ndarray) -> int:
    return channels * math.prod(max(int(s), 0) for s in size)


def _check_factors(name: str, factors: list[list[int]], dims: int) -> None:
    for i, factor in enumerate(factors):
        if len(factor) != dims:
            raise ValueError(f"{name}[{i}] has {len(factor)} entries; expected {dims}, one per axis of input_shape")
        if any(f < 1 for f in factor):
            raise ValueError(f"{name}[{i}]: factors must be at least 1, got {factor}")


def _check_kernels(name: str, kernels: list[list[Kernel]] | None, levels: int, dims: int, which: str) -> None:
    if kernels is None:
        return
    if len(kernels) != levels:
        raise ValueError(f"{name} has {len(kernels)} levels; expected {levels}, {which} of downsample_factors")
    for i, level in enumerate(kernels):
        if not level:
            raise ValueError(f"{name}[{i}] is empty; every level needs at least one convolution")
        for j, kernel in enumerate(level):
            sizes = [kernel] * dims if isinstance(kernel, int) else kernel
            if len(sizes) != dims:
                raise ValueError(f"{name}[{i}][{j}] has {len(sizes)} entries; expected {dims}")
            if any(k < 1 or k % 2 == 0 for k in sizes):
                raise ValueError(f"{name}[{i}][{j}]: kernel sizes must be odd and positive (crops stay centred), "
                                 f"got {kernel}")
