"""The torch side of a task: the output activation and the weighted loss (imports torch).

Both act on the network's raw output (logits) ``[B, C, *spatial]`` group by group, in the
order of ``task.outputs()``. Losses are computed from logits where that is numerically
stable (binary cross-entropy with logits, cross-entropy over softmax logits); MSE compares
the activated output with the target. Each group's loss is ``mean(weights * loss)`` over
its voxels and channels, times the group's ``weight``; the task's loss is their sum.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from .base import OutputGroup, TaskConfig


def _activate(group: OutputGroup, logits: torch.Tensor) -> torch.Tensor:
    if group.activation == "sigmoid":
        return torch.sigmoid(logits)
    if group.activation == "tanh":
        return torch.tanh(logits)
    if group.activation == "softmax":
        return torch.softmax(logits, dim=1)
    return logits


def _splits(task: TaskConfig) -> list[tuple[OutputGroup, slice]]:
    out, start = [], 0
    for group in task.outputs():
        out.append((group, slice(start, start + group.channels)))
        start += group.channels
    return out


class TaskActivation(nn.Module):
    """Logits → the task's outputs (sigmoid, softmax, tanh per group); exported with the model."""

    def __init__(self, task: TaskConfig):
        super().__init__()
        self.groups = _splits(task)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([_activate(group, logits[:, part]) for group, part in self.groups], dim=1)


class TaskLoss(nn.Module):
    """Weighted loss of logits against ``target`` with ``weights`` (all ``[B, C, *spatial]``).

    ``forward`` returns the total; ``parts`` after a call holds each group's (detached) loss.
    """

    def __init__(self, task: TaskConfig):
        super().__init__()
        self.groups = _splits(task)
        self.parts: dict[str, float] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape or target.shape != weights.shape:
            raise ValueError(f"logits {tuple(logits.shape)}, target {tuple(target.shape)} and weights "
                             f"{tuple(weights.shape)} must have one shape")
        total = logits.new_zeros(())
        self.parts = {}
        for group, part in self.groups:
            x, y, w = logits[:, part], target[:, part], weights[:, part]
            if group.loss == "bce":
                loss = functional.binary_cross_entropy_with_logits(x, y, reduction="none")
            elif group.loss == "cross_entropy":
                # one loss per voxel; a voxel's weight is the same on every channel of the group
                loss = functional.cross_entropy(x, y.argmax(dim=1), reduction="none").unsqueeze(1)
                w = w[:, :1]
            else:
                loss = (_activate(group, x) - y) ** 2
            value = group.weight * (w * loss).mean()
            self.parts[group.name] = float(value.detach())
            total = total + value
        return total
