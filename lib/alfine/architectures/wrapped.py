"""The ``wrapped`` architecture: any ``torch.nn.Module`` named as ``"package.module:Class"``.

alfine cannot compute such a module's shapes, so the config says what it cannot find out:
``context_per_side`` (input voxels lost per side; default 0, as for same padding) and
``input_step`` (the sizes the input may grow or shrink by per axis, e.g. the module's total
downsampling; without it only ``input_shape`` is valid). The output shape is found by a dry
run (zeros through a freshly built module under ``torch.no_grad()``, cached) and must equal
``input - 2 * context_per_side``: wrapped modules output at the input's resolution.

Output channels: with ``out_channels_arg`` the module is built with that keyword set to
the task's number of channels and must output raw logits; without it a 1x1 convolution
head is appended mapping the module's output channels (found by the dry run) to them.
The class is imported with :mod:`importlib`; nothing is ever evaluated. A command imports it only
with ``--allow-code`` (:mod:`alfine.code_gate`): a config that names code is refused otherwise.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple

from .. import code_gate
from ..errors import UserError
from .base import BYTES_PER_VALUE, ArchitectureConfig

_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(kw_only=True)
class WrappedConfig(ArchitectureConfig):
    """A user's module class and its keyword arguments; see the module's docstring."""

    kind: ClassVar[str] = "wrapped"
    module: str
    input_shape: list[int]
    kwargs: dict[str, Any] = field(default_factory=dict)
    fmaps_in: int = 1
    context_per_side: list[int] | None = None
    input_step: list[int] | None = None
    out_channels_arg: str | None = None

    def __post_init__(self):
        dims = len(self.input_shape)
        if dims not in (2, 3):
            raise ValueError(f"input_shape must have 2 or 3 entries, got {dims}")
        if not _NAME.match(self.module):
            raise ValueError(f"module must look like \"package.module:Class\", got {self.module!r}")
        for name in ("context_per_side", "input_step"):
            value = getattr(self, name)
            if value is not None and (len(value) != dims or any(v < 0 for v in value)):
                raise ValueError(f"{name} must have {dims} non-negative entries, one per axis of input_shape")
        refused = code_gate.refusal(self.module, "wrapped architecture module")
        if refused:
            raise ValueError(refused)
        if self.fmaps_in < 1:
            raise ValueError(f"fmaps_in must be at least 1, got {self.fmaps_in}")
        if any(s <= 2 * c for s, c in zip(self.input_shape, self.context(), strict=True)):
            raise ValueError("input_shape must be larger than twice context_per_side on every axis")
        if self.out_channels_arg is not None and self.out_channels_arg in self.kwargs:
            raise ValueError(f"kwargs must not set {self.out_channels_arg!r}: out_channels_arg gives it the task's "
                             "number of channels")

    def context(self) -> tuple[int, ...]:
        return tuple(self.context_per_side or [0] * self.dims())

    def upsample_factor(self) -> tuple[int, ...]:
        return (1,) * self.dims()

    def valid_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Sizes ``input_shape + k * input_step`` (any integer ``k``) whose output is not empty."""
        step = tuple(self.input_step or [0] * self.dims())
        smallest = tuple(s - (s - 2 * c - 1) // t * t if t else s
                         for s, c, t in zip(self.input_shape, self.context(), step, strict=True))
        return smallest, step

    def activation_bytes(self, input_shape, out_channels: int, batch_size: int = 1) -> int:
        """Scaled by voxels from the dry run on ``input_shape``: the input plus every leaf layer's output there
        (an upper bound: a no_grad forward frees most of them as it goes), plus the logits."""
        run = self._dry_run(tuple(self.input_shape))
        voxels = math.prod(input_shape)
        per_voxel = run.elements / math.prod(self.input_shape)
        logits = out_channels * math.prod(s - 2 * c for s, c in zip(input_shape, self.context(), strict=True))
        return BYTES_PER_VALUE * batch_size * (math.ceil(per_voxel * voxels) + logits)

    def build(self, out_channels: int):
        """The module (with the head appended unless ``out_channels_arg`` is set)."""
        if self.out_channels_arg is not None:
            return load_module_class(self.module)(**{**self.kwargs, self.out_channels_arg: out_channels})
        from torch import nn

        conv = nn.Conv2d if self.dims() == 2 else nn.Conv3d
        channels = self._dry_run(tuple(self.input_shape)).channels
        return nn.Sequential(load_module_class(self.module)(**self.kwargs), conv(channels, out_channels, 1))

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self._dry_run(input_shape).shape

    def _dry_run(self, input_shape: tuple[int, ...]) -> _DryRun:
        kwargs = dict(self.kwargs)
        if self.out_channels_arg is not None:
            kwargs[self.out_channels_arg] = 1
        run = _dry_run(self.module, json.dumps(kwargs, sort_keys=True), self.fmaps_in, input_shape)
        expected = tuple(s - 2 * c for s, c in zip(input_shape, self.context(), strict=True))
        if run.shape != expected:
            raise UserError(f"the wrapped module {self.module} outputs {run.shape} for the input {input_shape}; "
                            f"with context_per_side {self.context()} it must output {expected} (set "
                            "context_per_side to the voxels it loses per side)")
        return run


class _DryRun(NamedTuple):
    channels: int
    shape: tuple[int, ...]
    elements: int  # per sample: the input and every leaf module's output


@lru_cache(maxsize=32)
def _dry_run(name: str, kwargs_json: str, fmaps_in: int, input_shape: tuple[int, ...]) -> _DryRun:
    """Zeros ``[1, fmaps_in, *input_shape]`` through a freshly built module in eval mode."""
    import torch

    module = load_module_class(name)(**json.loads(kwargs_json)).eval()
    elements = [fmaps_in * math.prod(input_shape)]

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            elements.append(output[0].numel())

    leaves = [m for m in module.modules() if not any(m.children())]
    hooks = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        with torch.no_grad():
            output = module(torch.zeros((1, fmaps_in, *input_shape)))
    except Exception as e:  # the user's module: any failure means this input does not suit it
        raise UserError(f"the wrapped module {name} fails on an input of shape {input_shape}: {e}") from e
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(output, torch.Tensor) or output.dim() != len(input_shape) + 2:
        raise UserError(f"the wrapped module {name} must return one tensor [batch, channels, *spatial]")
    return _DryRun(output.shape[1], tuple(output.shape[2:]), sum(elements))


def load_module_class(name: str) -> type:
    """The ``torch.nn.Module`` subclass named ``"package.module:Class"``; a :class:`UserError` if there is none."""
    import torch

    code_gate.check(name, "wrapped architecture module")
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"architecture module {name}: cannot import {module_name} ({e})") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UserError(f"architecture module {name}: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise UserError(f"architecture module {name}: {class_name} is not a torch.nn.Module subclass")
    return cls
