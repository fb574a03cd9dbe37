"""The U-Net as a torch module, built from a :class:`~alfine.architectures.unet_config.UNetConfig`.

The layers follow the config's docstring exactly; the config's shape arithmetic is what
this module computes, which the tests check on real tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .unet_config import UNetConfig

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _transposed(dims: int) -> type[nn.Module]:
    return nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d


def _norm(kind: str | None, dims: int, channels: int) -> list[nn.Module]:
    """The normalisation layer (none, or one); group norm takes 4 groups, or fewer that divide ``channels``."""
    if kind == "batch":
        return [(nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)]
    if kind == "instance":
        return [(nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)]
    if kind == "group":
        return [nn.GroupNorm(next(g for g in (4, 3, 2, 1) if channels % g == 0), channels)]
    return []


class ConvPass(nn.Sequential):
    """Convolutions with the given kernels, each followed by normalisation, activation and dropout."""

    def __init__(self, config: UNetConfig, in_channels: int, out_channels: int, kernels: Sequence[tuple[int, ...]]):
        dims = config.dims()
        layers: list[nn.Module] = []
        for kernel in kernels:
            padding = [(k - 1) // 2 for k in kernel] if config.padding == "same" else 0
            layers.append(_conv(dims)(in_channels, out_channels, kernel, padding=padding))
            layers.extend(_norm(config.norm, dims, out_channels))
            layers.append(_ACTIVATIONS[config.activation]())
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            in_channels = out_channels
        super().__init__(*layers)


def _upsample(dims: int, in_channels: int, out_channels: int, factor: Sequence[int], nearest: bool) -> nn.Module:
    if nearest:
        return nn.Sequential(nn.Upsample(scale_factor=tuple(float(f) for f in factor), mode="nearest"),
                             _conv(dims)(in_channels, out_channels, 1))
    return _transposed(dims)(in_channels, out_channels, tuple(factor), stride=tuple(factor))


class Downsample(nn.Module):
    """Max-pooling by ``factor``; a ``ValueError`` unless the size is divisible (else tiles would not stitch)."""

    def __init__(self, dims: int, factor: Sequence[int]):
        super().__init__()
        self.factor = tuple(factor)
        self.pool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(self.factor, stride=self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % f for s, f in zip(x.shape[2:], self.factor, strict=True)):
            raise ValueError(f"feature map {tuple(x.shape[2:])} is not divisible by the downsample factor "
                             f"{self.factor}: the input shape is not valid for this U-Net")
        return self.pool(x)


def centre_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The centre ``shape`` of ``x``'s spatial axes."""
    begins = [(s - t) // 2 for s, t in zip(x.shape[2:], shape, strict=True)]
    return x[(slice(None), slice(None)) + tuple(slice(b, b + t) for b, t in zip(begins, shape, strict=True))]


def initialise(module: nn.Module, activation: str) -> None:
    """He (Kaiming-normal, fan-in) weights and zero biases for every convolution in ``module``.

    PyTorch's default (uniform, gain 1/sqrt(3)) shrinks the signal at every layer, so a fresh deep
    U-Net's output is nearly constant in space and the first hundreds of steps are spent leaving
    that plateau; He initialisation keeps the activations' variance through the ReLU layers.
    """
    nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity=nonlinearity)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class UNet(nn.Module):
    """``[B, fmaps_in, *input]`` -> logits ``[B, out_channels, *config.output_shape(input)]``."""

    def __init__(self, config: UNetConfig, out_channels: int):
        super().__init__()
        dims, levels = config.dims(), len(config.downsample_factors)
        nearest = config.upsample == "nearest"
        channels = [config.fmaps_in] + [config.channels(level) for level in range(levels + 1)]
        self.down = nn.ModuleList(ConvPass(config, channels[level], channels[level + 1], config.down_kernels[level])
                                  for level in range(levels + 1))
        self.pool = nn.ModuleList(Downsample(dims, factor) for factor in config.downsample_factors)
        self.upsample = nn.ModuleList(
            _upsample(dims, channels[level + 2], channels[level + 1], factor, nearest)
            for level, factor in enumerate(config.downsample_factors))
        self.up = nn.ModuleList(ConvPass(config, 2 * channels[level + 1], channels[level + 1], config.up_kernels[level])
                                for level in range(levels))
        self.tail = nn.Sequential(*(
            nn.Sequential(_upsample(dims, config.num_fmaps, config.num_fmaps, factor, nearest=False),
                          ConvPass(config, config.num_fmaps, config.num_fmaps, config.down_kernels[0]))
            for factor in config.upsample_factors or []))
        self.crop = config.output_crop()
        self.head = _conv(dims)(config.num_fmaps, out_channels, 1)
        initialise(self, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down, pool in zip(self.down, self.pool, strict=False):
            x = down(x)
            skips.append(x)
            x = pool(x)
        x = self.down[-1](x)
        for upsample, up in zip(reversed(self.upsample), reversed(self.up), strict=True):
            x = upsample(x)
            x = up(torch.cat([centre_crop(skips.pop(), x.shape[2:]), x], dim=1))  # the skip is freed once used
        x = self.tail(x)
        x = centre_crop(x, [s - 2 * c for s, c in zip(x.shape[2:], self.crop, strict=True)])
        return self.head(x)
