"""predict-block: a raw volume's predictions by an exported ONNX model or a run's checkpoint, block by block.

The model decides the blocks: a fixed ONNX graph writes exactly its output shape per block; a
dynamic graph or a checkpoint takes ``--block-shape`` (the write size in output voxels), or the
largest input whose activations fit ``--memory``, or else its training input shape. Each block
reads its write region grown by the model's context, so blocks equal one whole-volume prediction
(:func:`alfine.inference.predict_volume`). A 2D model applies to a 3D volume slice by slice
(:mod:`alfine.inference.slices`). Everything is checked before anything is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from funlib.geometry import Coordinate

from ..blockwise import WHOLE, BlockRequest
from ..blockwise import contract as blockwise
from ..datasplits.normalise import check_raw_dtype
from ..errors import UserError
from ..volumes import open_volume

log = logging.getLogger(__name__)

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_memory(text: str) -> int:
    """``"8GB"``, ``"512MiB"``, ``"2g"`` or ``"1000000"`` in bytes; a :class:`UserError` otherwise."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = found.group(2).lower() if found else None
    if not found or unit not in _UNITS:
        raise UserError(f"--memory {text!r}: expected a size such as 8GB, 512MiB or 2000000000")
    return int(float(found.group(1)) * _UNITS[unit])


def choose_input_shape(architecture, block_shape: Sequence[int] | None, memory: str | None,
                       out_channels: int) -> tuple[int, ...]:
    """The network input of one block: see the module. A :class:`UserError` for a ``block_shape`` the
    model cannot write (naming the input it would need and why that is not valid)."""
    context, factor = Coordinate(architecture.context()), Coordinate(architecture.upsample_factor())
    fixed = not any(architecture.valid_sizes()[1])
    if block_shape is not None:
        block = Coordinate(block_shape)
        if len(block) != architecture.dims():
            raise UserError(f"--block-shape {tuple(block)} has {len(block)} axes; the model is {architecture.dims()}D")
        if any(b % f for b, f in zip(block, factor, strict=True)):
            raise UserError(f"--block-shape {tuple(block)} is not a multiple of the model's upsample factor "
                            f"{tuple(factor)}")
        needed = block / factor + context * 2
        problem = architecture.input_shape_problem(needed)
        if problem:
            default = architecture.output_shape(architecture.input_shape)
            hint = (f"this model's graph is fixed: leave --block-shape out (it writes {default}) or export it "
                    "with --dynamic" if fixed else "choose a --block-shape whose input is valid")
            raise UserError(f"--block-shape {tuple(block)} needs a network input of {tuple(needed)} "
                            f"(context {tuple(context)} per side): {problem}; {hint}")
        return tuple(needed)
    if memory is not None and not fixed:
        shape = architecture.largest_input_shape(parse_memory(memory), out_channels)
        log.info("blocks of input %s fit --memory %s", shape, memory)
        return tuple(shape)
    return tuple(architecture.input_shape)


def slice_by_slice(spec, block_shape: Sequence[int] | None, slices: int):
    """A 2D model's spec applied per z slice; blocks are ``block_shape[0]`` slices deep, else as deep as the
    2D block is wide (at most the region's ``slices``)."""
    from ..inference.slices import SliceSpec

    plane = spec.architecture_config()
    depth = block_shape[0] if block_shape else min(max(plane.output_shape(plane.input_shape)), max(1, slices))
    log.info("a 2D model on a 3D volume: predicting slice by slice, %d slices per block", depth)
    return SliceSpec(spec, int(depth))


def predict_blocks(model_name: str, input_url: str, output: str, *, device: str = "cpu",
                   memory: str | None = None, output_dtype: str = "float32", request: BlockRequest = WHOLE,
                   storage: dict | None = None) -> dict:
    """Predict the raw volume ``input_url`` into ``output`` with the model ``model_name`` (an ONNX file, or ``RUN``,
    ``RUN@N``, ``RUN@best``) on ``device``, over the blocks ``request`` asks for (their shape: see the module;
    ``memory`` a budget such as ``8GB``), stored as ``output_dtype`` and ``storage`` say (chunks default to one
    block's output); a summary."""
    from ..inference import predict_volume
    from ..inference.onnx_model import worker_threads
    from ..inference.resolve import resolve_model

    storage = blockwise.storage_of(storage, chunk_shape=None)
    # Local workers share this machine's cores; a launched worker (another host or job) has its own.
    blockwise.check_distinct(input=input_url, output=output)
    one_process = request.block_id is not None or request.list_blocks or request.workers <= 1 or request.launcher
    model = resolve_model(model_name, device, worker_threads(1 if one_process else request.workers))
    if memory is not None:
        parse_memory(memory)  # a bad size is refused even where the model ignores it
    raw = open_volume(input_url)
    check_raw_dtype(model.normalisation, raw.dtype, input_url)
    roi = blockwise.region(raw, request.roi)
    spec = model.spec
    architecture = spec.architecture_config()
    if architecture.dims() == 2 and roi.dims == 3:
        spec = slice_by_slice(spec, request.block_shape, roi.shape[0] // raw.voxel_size[0])
        architecture = spec.architecture_config()
    voxel_size = tuple(raw.voxel_size)[-len(model.input_voxel_size or ()):]
    if model.input_voxel_size is not None and voxel_size != tuple(model.input_voxel_size):
        raise UserError(f"--input_url {input_url} has voxel size {tuple(raw.voxel_size)}, the model "
                        f"{model_name} was trained on {tuple(model.input_voxel_size)}")
    input_shape = choose_input_shape(architecture, request.block_shape, memory,
                                     spec.task_config().num_channels)
    summary = predict_volume(
        spec, input_url, model.normalisation, output, roi=roi, input_shape=list(input_shape),
        workers=request.workers, block_id=request.block_id, chunk_shape=storage["chunk_shape"],
        zarr_format=storage["zarr_format"], compression=storage["compression"], shards=storage["shards"],
        overwrite=storage["overwrite"], output_dtype=output_dtype, list_blocks=request.list_blocks,
        launcher=request.launcher)
    if request.list_blocks:
        return summary
    return {**summary, "model": model_name, "input_shape": list(input_shape)}
