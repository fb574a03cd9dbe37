"""Checkpoints: everything needed to continue a run exactly, saved whole and loaded safely."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from ..errors import UserError
from ..runs import RunDirectory


def save(run_dir: RunDirectory, iteration: int, model, optimizer, scheduler, scaler) -> str:
    """Save the state after ``iteration`` iterations; returns the checkpoint's path."""
    state = {
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_rng": _numpy_state(),
        "python_rng": list(random.getstate()[1]),
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    name = f"checkpoints/{iteration}.pt"
    run_dir.write_bytes(name, buffer.getvalue())
    return run_dir.file(name)


def read(url: str) -> dict:
    """A checkpoint or state dict at ``url``, loaded with ``weights_only=True`` (no code runs); a
    :class:`UserError` naming ``url`` when it cannot be loaded."""
    import fsspec

    with fsspec.open(url, "rb") as f:
        data = f.read()
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, damaged, or not a checkpoint: torch's own words are obscure
        raise UserError(f"{url}: not a readable checkpoint ({len(data)} bytes; truncated or damaged?): "
                        f"{type(e).__name__}: {e}") from None


def restore(state: dict, model, optimizer, scheduler, scaler) -> int:
    """Put a checkpoint's state back; returns its iteration."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    keys, position, has_gauss, cached = state["numpy_rng"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    random.setstate((3, tuple(state["python_rng"]), None))
    return int(state["iteration"])


def _numpy_state() -> list:
    """numpy's global generator state as plain numbers (loadable with ``weights_only=True``)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    return [keys.tolist(), int(position), int(has_gauss), float(cached)]
