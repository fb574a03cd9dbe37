"""Which torch device a run's model uses (imports torch when called)."""

from __future__ import annotations

from ..errors import UserError


def choose_device(name: str):
    """The ``torch.device`` ``name`` means: ``auto``, CUDA when present, else the CPU; otherwise the named device
    (a :class:`UserError` when it is a CUDA device and there is none here)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device here (torch {torch.__version__})")
    return device
