"""Architectures: the networks mapping raw to output channels, and their shapes.

One config kind per module, chosen by ``"kind"``: ``unet`` (:class:`UNetConfig`) and
``wrapped`` (:class:`WrappedConfig`, any ``torch.nn.Module``). Configs and shape arithmetic
need no torch; ``config.build(out_channels)`` and :func:`load_pretrained` /
:func:`strip_prefix` (from :mod:`alfine.architectures.pretrained`, imported on first use) do.
"""

from .base import ArchitectureConfig
from .unet_config import UNetConfig
from .wrapped import WrappedConfig

_TORCH_ONLY = {"load_pretrained", "read_state_dict", "strip_prefix"}


def __getattr__(name: str):
    if name in _TORCH_ONLY:
        from . import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ArchitectureConfig", "UNetConfig", "WrappedConfig", *sorted(_TORCH_ONLY)]
