"""Blockwise prediction of a raw volume: seam-free, resumable, one model per worker process.

Every block runs the network on its full input (raw grown by the network's context, 0
outside the volume, then normalised) and writes the part of the output inside its write
region, so the result equals predicting the whole region at once. The output is float32
``[channels, *spatial]`` on the output grid (raw voxel size / upsample factor), chunked by
the block shape so no two blocks share a chunk; done markers beside it make a re-run skip
finished blocks.

Which model predicts is a *predictor spec*: a small, picklable, torch-free frozen dataclass with
a ``kind``, ``architecture`` and ``task`` (config dicts: the shapes and channel names),
``architecture_config()``/``task_config()``, ``describe()`` (JSON, the cache key) and ``build()``,
which returns a callable ``raw [C_in, *input] -> [C_out, *output]`` (float32, activated).
:class:`TorchSpec` adds a weights URL and a device; an ONNX kind (issue #6) adds its own spec
with the model's URL and ``build()``, and nothing else here changes. A worker process builds
the predictor of a spec once and keeps it (:func:`predictor_for`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from funlib.geometry import Roi

from ..architectures import ArchitectureConfig
from ..blockwise import BlockLayout
from ..configs import from_dict, to_dict
from ..datasplits import Normalisation, Percentile, normalise
from ..errors import UserError
from ..geometry import check_aligned, format_roi
from ..jobs.blocks import run
from ..tasks import TaskConfig
from ..volumes import open_volume, prepare_volume
from .layout import full_read_roi, prediction_layout


@dataclass(frozen=True)
class TorchSpec:
    """A torch model: ``architecture`` and ``task`` configs (dicts), the weights at ``weights`` (a state
    dict or checkpoint URL), run on ``device``."""

    kind: ClassVar[str] = "torch"
    architecture: dict
    task: dict
    weights: str
    device: str = "auto"

    def architecture_config(self) -> ArchitectureConfig:
        return from_dict(ArchitectureConfig, self.architecture, f"{self.weights} (architecture)")

    def task_config(self) -> TaskConfig:
        return from_dict(TaskConfig, self.task, f"{self.weights} (task)")

    def describe(self) -> dict:
        """A JSON-ready description, also the cache key of :func:`predictor_for`."""
        return {"kind": self.kind, **asdict(self)}

    def build(self):
        """A fresh :class:`~alfine.inference.torch_model.TorchPredictor` (imports torch)."""
        from .torch_model import TorchPredictor

        return TorchPredictor(self.architecture_config(), self.task_config(), self.weights, self.device)


def run_predictor_spec(run_url: str, iteration: int | None = None, device: str = "auto") -> TorchSpec:
    """The spec of the run at ``run_url`` (its ``run.json``) with checkpoint ``iteration`` (default: the
    latest); a :class:`UserError` where there is no run, no checkpoint, or not that one."""
    from ..training.rundir import RunDirectory

    run_dir = RunDirectory(run_url)
    run = run_dir.read_config()
    if run is None:
        raise UserError(f"{run_url} is not a run directory (no run.json)")
    available = run_dir.checkpoints()
    if not available:
        raise UserError(f"{run_url} has no checkpoints yet")
    if iteration is None:
        iteration = available[-1]
    elif iteration not in available:
        raise UserError(f"{run_url} has no checkpoint {iteration}; it has {available}")
    weights = run_dir.fs.unstrip_protocol(run_dir.checkpoint_path(iteration))
    return TorchSpec(to_dict(run.architecture), to_dict(run.task), weights, device)


_CACHE: dict[str, Any] = {}


def predictor_for(spec) -> Any:
    """The predictor of ``spec``, built on the first call in this process and reused after; only the
    latest spec's predictor is kept (so a process moving on to another model frees the previous)."""
    key = json.dumps(spec.describe(), sort_keys=True)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = spec.build()
    return _CACHE[key]


@dataclass
class PredictBlock:
    """The block function of a prediction (picklable: a spec, URLs and configs)."""

    spec: Any
    raw: str
    normalisation: Normalisation
    output: str
    layout: BlockLayout

    def __call__(self, block) -> None:
        raw = open_volume(self.raw)
        data = normalise(raw.read(full_read_roi(self.layout, block), fill_value=0), self.normalisation)
        if not raw.geometry.channel_dims:
            data = data[None]
        prediction = predictor_for(self.spec)(data)
        output = open_volume(self.output, mode="r+")
        keep = tuple(slice(0, s) for s in block.write_roi.shape / output.voxel_size)
        output.write(block.write_roi, prediction[(slice(None),) + keep])


def predict_volume(
    spec,
    raw_url: str,
    normalisation: Normalisation,
    output_url: str,
    roi: Roi | None = None,
    input_shape: list[int] | None = None,
    workers: int = 1,
    block_id: int | None = None,
    chunk_shape: list[int] | None = None,
    zarr_format: int = 2,
    compression: str = "zstd",
) -> dict:
    """Predict ``roi`` (world units; default all of the raw volume) of ``raw_url`` with ``spec`` into
    ``output_url``, one network input of ``input_shape`` (default the architecture's) per block.

    ``chunk_shape`` (output voxels; default the block's output) must divide the block. ``block_id``
    runs that block alone; otherwise every block not yet done runs on ``workers`` processes.
    Returns a summary with the block counts of :func:`~alfine.blockwise.run_blocks`.
    """
    architecture, task = spec.architecture_config(), spec.task_config()
    raw = open_volume(raw_url)
    channels = int(np.prod(raw.channel_shape))
    if raw.roi.dims != architecture.dims() or len(raw.channel_shape) > 1 or channels != architecture.fmaps_in:
        raise UserError(f"{raw_url}: raw of shape {raw.shape} ({raw.roi.dims}D) does not fit the "
                        f"{architecture.dims()}D architecture with {architecture.fmaps_in} input channel(s)")
    roi = raw.roi if roi is None else roi
    check_aligned(Roi(roi.begin, raw.voxel_size), raw.voxel_size, raw.offset, f"region {format_roi(roi)}")
    if isinstance(normalisation, Percentile):
        normalisation = normalisation.measure(raw)
    layout, voxel_size = prediction_layout(architecture, raw.voxel_size, roi, input_shape)
    block_voxels = layout.block_shape / voxel_size
    chunks = tuple(chunk_shape) if chunk_shape else tuple(block_voxels)
    names = task.channel_names()
    output = prepare_volume(output_url, roi, voxel_size, np.float32, chunks, channels=(len(names),),
                            zarr_format=zarr_format, compression=compression)
    output.array.attrs.update({"channel_names": names, "alfine_task": spec.task, "alfine_predictor": spec.describe()})
    process = PredictBlock(spec, raw_url, normalisation, output_url, layout)
    counts = run("predict", layout, output, process, workers=workers, block_id=block_id)
    return {"output": output_url, "raw": raw_url, "roi": format_roi(roi), "voxel_size": list(voxel_size),
            "block_shape": list(block_voxels), "context": list(architecture.context()),
            "channel_names": names, "predictor": spec.describe(), **counts}
