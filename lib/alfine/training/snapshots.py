"""Snapshots: one sample of a batch written as zarr volumes at its world position (for neuroglancer)."""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..volumes import prepare_volume


def write_snapshot(url: str, batch: dict, prediction: np.ndarray, shapes) -> None:
    """Write raw, labels, target, weights and prediction of the batch's first sample under ``url``."""
    raw_roi = Roi(Coordinate(batch["raw_begin"][0].tolist()), shapes.input_shape * shapes.raw_voxel_size)
    out_roi = Roi(Coordinate(batch["output_begin"][0].tolist()), shapes.output_shape * shapes.label_voxel_size)
    arrays = {
        "raw": (raw_roi, shapes.raw_voxel_size, batch["raw"][0].numpy()),
        "labels": (out_roi, shapes.label_voxel_size, batch["labels"][0].numpy().astype(np.uint64)),
        "target": (out_roi, shapes.label_voxel_size, batch["target"][0].numpy()),
        "weights": (out_roi, shapes.label_voxel_size, batch["weights"][0].numpy()),
        "prediction": (out_roi, shapes.label_voxel_size, prediction[0]),
    }
    for name, (roi, voxel_size, data) in arrays.items():
        channels = data.shape[: data.ndim - roi.dims]
        chunks = tuple(min(64, s) for s in data.shape[data.ndim - roi.dims:])
        volume = prepare_volume(f"{url}/{name}", roi, voxel_size, data.dtype, chunks, channels=channels,
                                overwrite=True)
        volume.write(roi, data)
