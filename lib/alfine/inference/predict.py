"""Blockwise prediction of a raw volume: seam-free, resumable, one model per worker process.

Every block runs the network on its full input (raw grown by the network's context, mirrored
across the volume's faces where it reaches past them, then normalised) and writes the part of
the output inside its write region, so the result equals predicting the whole region at once. The output is float32
``[channels, *spatial]`` on the output grid (raw voxel size / upsample factor), chunked by
the block shape so no two blocks share a chunk; done markers beside it make a re-run skip
finished blocks.

Which model predicts is a *predictor spec*: a small, picklable, torch-free frozen dataclass with
a ``kind``, ``architecture`` and ``task`` (config dicts: the shapes and channel names),
``architecture_config()``/``task_config()``, ``describe()`` (JSON, the cache key) and ``build()``,
which returns a callable ``raw [C_in, *input] -> [C_out, *output]`` (float32, activated).
:class:`TorchSpec` adds a weights URL and a device; :class:`~alfine.inference.onnx_model.OnnxSpec`
the model's URL. A worker process builds the predictor of a spec once and keeps it
(:func:`predictor_for`); its ``threads`` are the cores of one worker, so workers do not
oversubscribe the machine. In the single-process loop the next block's input is read and
normalised in a thread while the current block is predicted (:meth:`PredictBlock.prefetch`).

The output is float32, or uint8/uint16 quantised (``alfine_scale``/``alfine_offset`` attributes,
undone by :meth:`alfine.volumes.Volume.read`) for tasks whose outputs are bounded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
from funlib.geometry import Roi

from ..architectures import ArchitectureConfig
from ..blockwise import BlockLayout, read_ahead, write_behind
from ..blockwise.contract import check_plan, print_blocks, read_first_block_ahead, run
from ..configs import from_dict, to_dict
from ..datasplits import Normalisation, Percentile, normalise
from ..errors import UserError
from ..geometry import check_aligned, format_roi
from ..tasks import TaskConfig
from ..volumes import open_volume, prepare_volume
from .layout import full_read_roi, prediction_layout


@dataclass(frozen=True)
class TorchSpec:
    """A torch model: ``architecture`` and ``task`` configs (dicts), the weights at ``weights`` (a state
    dict or checkpoint URL), run on ``device`` with ``threads`` CPU threads (0: torch's default)."""

    kind: ClassVar[str] = "torch"
    architecture: dict
    task: dict
    weights: str
    device: str = "auto"
    threads: int = 0

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

        return TorchPredictor(self.architecture_config(), self.task_config(), self.weights, self.device,
                              self.threads)


def run_predictor_spec(run_url: str, iteration: int | None = None, device: str = "auto") -> TorchSpec:
    """The spec of the run at ``run_url`` (its ``run.json``) with checkpoint ``iteration`` (default: the
    latest); a :class:`UserError` where there is no run, no checkpoint, or not that one."""
    from ..runs import RunDirectory

    run_dir = RunDirectory(run_url)
    run = run_dir.config()
    weights = run_dir.checkpoint_url(run_dir.choose_checkpoint(iteration))
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
    """The block function of a prediction (picklable: a spec, URLs and configs; the volumes it opens are
    kept for the blocks that follow in the same process, never pickled)."""

    spec: Any
    raw: str
    normalisation: Normalisation
    output: str
    layout: BlockLayout
    _opened: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_opened"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _opened={})

    def _volume(self, url: str, mode: str):
        if (url, mode) not in self._opened:
            self._opened[url, mode] = open_volume(url, mode=mode)
        return self._opened[url, mode]

    def read_input(self, block) -> np.ndarray:
        """The normalised network input of ``block``, ``[C_in, *input]`` (mirrored outside the volume)."""
        raw = self._volume(self.raw, "r")
        data = normalise(raw.read_mirrored(full_read_roi(self.layout, block)), self.normalisation)
        return data if raw.geometry.channel_dims else data[None]

    def prefetch(self, block) -> None:
        """Start reading ``block``'s input (:mod:`~alfine.blockwise.read_ahead`); the call processing it takes it."""
        read_ahead.start(read_ahead.key(self.raw, block), lambda: self.read_input(block))

    def __call__(self, block) -> None:
        predictor = predictor_for(self.spec)  # built by the first block while its input is read ahead
        data = read_ahead.take(read_ahead.key(self.raw, block), lambda: self.read_input(block))
        prediction = predictor(data)
        output = self._volume(self.output, "r+")
        keep = tuple(slice(0, s) for s in block.write_roi.shape / output.voxel_size)
        write_behind.write(output, block.write_roi, prediction[(slice(None),) + keep])


OUTPUT_DTYPES = ("float32", "uint8", "uint16")


def output_scale(task: TaskConfig, dtype: str) -> tuple[float, float] | None:
    """``(scale, offset)`` storing the task's outputs in ``dtype`` (None for float32): [0, 1] for sigmoid and
    softmax outputs, [-1, 1] where one is tanh; a :class:`UserError` for unbounded (identity) outputs."""
    if dtype == "float32":
        return None
    if dtype not in OUTPUT_DTYPES:
        raise UserError(f"--output-dtype {dtype}: choose one of {', '.join(OUTPUT_DTYPES)}")
    activations = {group.activation for group in task.outputs()}
    if "identity" in activations:
        raise UserError(f"--output-dtype {dtype}: the {task.kind} task has unbounded outputs; use float32")
    low = -1.0 if "tanh" in activations else 0.0
    return (1.0 - low) / np.iinfo(dtype).max, low


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
    shards: list[int] | None = None,
    overwrite: bool = False,
    output_dtype: str = "float32",
    list_blocks: bool = False,
    launcher: str | None = None,
) -> dict:
    """Predict ``roi`` (world units; default all of the raw volume) of ``raw_url`` with ``spec`` into
    ``output_url``, one network input of ``input_shape`` (default the architecture's) per block.

    ``chunk_shape`` (output voxels; default the block's output) must divide the block, as must
    ``shards``. ``block_id`` runs that block alone; otherwise every block not yet done runs on
    ``workers`` processes; ``list_blocks`` prints the blocks and writes nothing. ``output_dtype``:
    see :func:`output_scale`. Returns a summary with the block counts of
    :func:`~alfine.blockwise.run_blocks`.
    """
    architecture, task = spec.architecture_config(), spec.task_config()
    raw = open_volume(raw_url)
    channels = int(np.prod(raw.channel_shape))
    if raw.roi.dims != architecture.dims() or len(raw.channel_shape) > 1 or channels != architecture.fmaps_in:
        raise UserError(f"{raw_url}: raw of shape {raw.shape} ({raw.roi.dims}D) does not fit the "
                        f"{architecture.dims()}D architecture with {architecture.fmaps_in} input channel(s)")
    roi = raw.roi if roi is None else roi
    check_aligned(Roi(roi.begin, raw.voxel_size), raw.voxel_size, raw.offset, f"region {format_roi(roi)}")
    layout, voxel_size = prediction_layout(architecture, raw.voxel_size, roi, input_shape)
    block_voxels = layout.block_shape / voxel_size
    if list_blocks:
        return print_blocks(layout, voxel_size)
    scale = output_scale(task, output_dtype)
    if isinstance(normalisation, Percentile):
        normalisation = normalisation.measure(raw)
    chunks = tuple(chunk_shape) if chunk_shape else tuple(block_voxels)
    check_plan(layout, output_url, shards or chunks, voxel_size, block_id, workers)
    names = task.channel_names()
    process = PredictBlock(spec, raw_url, normalisation, output_url, layout)
    read_first_block_ahead(process, layout, workers, block_id, launcher)
    with read_ahead.dropped_on_error():
        output = prepare_volume(output_url, roi, voxel_size, np.dtype(output_dtype), chunks, channels=(len(names),),
                                zarr_format=zarr_format, compression=compression, shards=shards,
                                overwrite=overwrite, scale=scale)
        output.array.attrs.update({"channel_names": names, "alfine_task": spec.task,
                                   "alfine_predictor": spec.describe()})
        counts = run("predict", layout, output, process, workers=workers, block_id=block_id, launcher=launcher)
    return {"output": output_url, "raw": raw_url, "context": list(architecture.context()),
            "channel_names": names, "dtype": output_dtype, "predictor": spec.describe(), **counts}
