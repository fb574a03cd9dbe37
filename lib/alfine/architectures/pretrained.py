"""Loading saved weights into a model by name and shape (imports torch).

Files are read with ``torch.load(..., map_location="cpu", weights_only=True)`` always: a file
holding anything but tensors and plain containers is refused, so no code from it runs.
Nothing is silently re-initialised: what could not be loaded is reported for the caller to log.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterable, Mapping

import torch

from ..errors import UserError


def read_state_dict(source: str) -> dict[str, torch.Tensor]:
    """The state dict in ``source`` (a path or fsspec URL): a plain state dict, or an alfine checkpoint's
    ``"model"``; a :class:`UserError` for a missing file, a file that is not one, or one holding other objects."""
    import fsspec

    try:
        with fsspec.open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UserError(f"{source}: no such file") from None
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise UserError(f"{source}: refused: it holds a {found.group(1)} object; weights are only loaded as "
                            "tensors (torch.load with weights_only=True) so that no code from a file runs") from None
        raise UserError(f"{source}: not a PyTorch weights file ({str(e).splitlines()[0]})") from None
    except Exception as e:  # truncated or damaged (EOFError, RuntimeError, ValueError: negative seek value, ...)
        raise UserError(f"{source}: not a readable PyTorch weights file or checkpoint ({len(data)} bytes; truncated "
                        f"or damaged?): {type(e).__name__}: {e or 'empty'}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise UserError(f"{source}: holds no state dict (names to tensors), nor a checkpoint with one as \"model\"")
    return dict(loaded)


def strip_prefix(state: Mapping[str, torch.Tensor], names: Iterable[str]) -> dict[str, torch.Tensor]:
    """``state`` with a dotted prefix common to all its names (like DataParallel's ``module.``) removed,
    if that makes more of them match ``names``; else ``state`` unchanged."""
    names = set(names)
    best, hits = dict(state), len(names.intersection(state))
    keys = list(state)
    parts = keys[0].split(".") if keys else []
    for length in range(1, len(parts)):
        prefix = ".".join(parts[:length]) + "."
        if not all(k.startswith(prefix) for k in keys):
            break
        stripped = {k[len(prefix):]: v for k, v in state.items()}
        if len(names.intersection(stripped)) > hits:
            best, hits = stripped, len(names.intersection(stripped))
    return best


def load_pretrained(model: torch.nn.Module, source: str) -> dict[str, list[str]]:
    """Copy the tensors saved in ``source`` into ``model`` where name and shape match (after
    :func:`strip_prefix`); everything else in ``model`` is left as it is.

    Returns ``{"loaded", "shape_mismatch", "unexpected", "missing"}``: names loaded, names in
    both with different shapes (left untouched), names only in the file, names only in the model.
    """
    own = model.state_dict()
    saved = strip_prefix(read_state_dict(source), own)
    loaded = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(loaded, strict=False)
    return {
        "loaded": [k for k in own if k in loaded],
        "shape_mismatch": [k for k in own if k in saved and k not in loaded],
        "unexpected": [k for k in saved if k not in own],
        "missing": [k for k in own if k not in saved],
    }
