"""A tiny trained-looking run for the export and predict-block tests: raw volume, run.json, checkpoints."""

from __future__ import annotations

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from alfine.architectures import ArchitectureConfig
from alfine.configs import from_dict
from alfine.datasplits import Dataset, Datasplit, MinMax, normalise
from alfine.runs import RunDirectory
from alfine.tasks import BinaryTask
from alfine.training.config import RunConfig
from alfine.volumes import open_volume, prepare_volume

NORM = MinMax(min=-50, max=200)  # raw 0 (the fill outside the volume) normalises to -0.6: neither 0 nor clipped
TASK = BinaryTask(classes={"a": 1, "b": 2})
VOXEL_SIZE = (2, 1, 1)
ONNX_MODELS = "onnx-models"
"""The xdist group of the test modules reading conftest's ``onnx_models``: one worker runs them, so one export
serves them all."""


def unet(**fields) -> ArchitectureConfig:
    defaults = {"kind": "unet", "num_fmaps": 2, "input_shape": [20, 20, 20], "downsample_factors": [[2, 2, 2]],
                "activation": "leaky_relu"}  # no dead units: the output varies with the input
    return from_dict(ArchitectureConfig, {**defaults, **fields}, "arch.json")


def save_weights(path, architecture, seed=0, iteration=7) -> str:
    """Random weights large enough that the output varies clearly with the input."""
    torch.manual_seed(seed)
    model = architecture.build(TASK.num_channels)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    torch.save({"model": model.state_dict(), "iteration": iteration}, str(path))
    return str(path)


def make_raw(url: str, shape, voxel_size=VOXEL_SIZE, offset=(4, -3, 5), seed=1, chunk=5) -> str:
    roi = Roi(offset, Coordinate(shape) * Coordinate(voxel_size))
    volume = prepare_volume(url, roi, voxel_size, np.uint8, (chunk,) * len(shape))
    volume.write(roi, np.random.default_rng(seed).integers(0, 256, tuple(shape), dtype=np.uint8))
    return url


def make_run(root, architecture=None, iterations=(5, 10)) -> str:
    """A run directory under ``root`` trained (in name) on ``root/data.zarr/raw``, with checkpoints ``iterations``."""
    architecture = architecture or unet()
    raw = make_raw(f"{root}/data.zarr/raw", (10, 9, 7))
    split = Datasplit(train=[Dataset(raw=raw, labels=f"{root}/data.zarr/labels", normalisation=NORM)],
                      validate=[Dataset(raw=raw, labels=f"{root}/data.zarr/labels", normalisation=NORM)])
    run_dir = RunDirectory(f"{root}/run")
    run_dir.write_config(RunConfig(name="r", datasplit=split, architecture=architecture, task=TASK))
    (root / "run" / "checkpoints").mkdir(parents=True, exist_ok=True)
    for seed, iteration in enumerate(iterations):
        save_weights(root / "run" / "checkpoints" / f"{iteration}.pt", architecture, seed, iteration)
    return run_dir.url


def whole_prediction(architecture, weights, raw_url, roi) -> np.ndarray:
    """The torch model applied once to ``roi``'s raw grown by the context (the whole volume mirrored
    across its faces by ``np.pad``, then normalised)."""
    raw = open_volume(raw_url)
    context = Coordinate(architecture.context())
    factor = Coordinate(architecture.upsample_factor())
    smallest, step = architecture.valid_sizes()
    needed = roi.shape / raw.voxel_size + context * 2
    shape = [s + -(-(n - s) // t) * t for n, s, t in zip(needed, smallest, step, strict=True)]
    read = Roi(roi.begin - context * raw.voxel_size, Coordinate(shape) * raw.voxel_size)
    margin = max(shape) + max(roi.shape / raw.voxel_size)
    mirrored = np.pad(raw.read(), margin, mode="reflect")
    begin = (read.begin - raw.roi.begin) / raw.voxel_size + Coordinate((margin,) * len(shape))
    x = torch.from_numpy(normalise(mirrored[tuple(slice(b, b + n) for b, n in zip(begin, shape, strict=True))],
                                   NORM))[None, None]
    model = architecture.build(TASK.num_channels)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    with torch.no_grad():
        out = torch.sigmoid(model.eval()(x))[0].numpy()
    keep = roi.shape / raw.voxel_size * factor
    return out[(slice(None),) + tuple(slice(0, k) for k in keep)]
