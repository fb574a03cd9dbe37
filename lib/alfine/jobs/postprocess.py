"""postprocess-block: a post-processing method applied to a predictions volume block by block, ids unique across
blocks.

The method and its parameters come from the flags and ``--params-from model.json`` (:func:`recipe`); bad
parameters are refused on a small trial prediction before anything is written (:func:`check_recipe`). The
blocks are those of the output's chunks grown to about :data:`~alfine.segmentation.per_block.BLOCK_VOXELS`
voxels; each runs :class:`~alfine.segmentation.per_block.PostprocessBlock`. The output's attribute
``alfine_postprocess`` records the method, the layout and how ``alfine-relabel`` joins objects across faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from funlib.geometry import Coordinate

from ..blockwise import WHOLE, BlockRequest, read_ahead
from ..blockwise import contract as blockwise
from ..errors import UserError
from ..geometry import format_roi
from ..postprocess import METHODS, Method
from ..postprocess.registry import methods_help  # noqa: F401  (the help of postprocess-block)
from ..segmentation.per_block import (
    ATTRIBUTE,
    PostprocessBlock,
    apply,
    default_block_shape,
    is_user_function,
    load_user_function,
    prediction_of,
)

FRAGMENTS_COMPRESSION = "lz4"
"""The default compression of instance labels: per-block fragments are an intermediate that ``alfine-relabel``
reads once and rewrites (in its own output's compression and chunks, zstd by default), so they are stored for
speed, not size: blosc lz4 writes uint64 labels about 4x and reads them about 1.5x faster than zstd, to files
about 3x larger (:data:`alfine.volumes.prepare.LZ4_LEVEL`). For the same reason their chunks default to the
default block shape (one chunk a block: an lz4 write of a 128^3 block took 20 ms of CPU as one chunk, 33 ms
as 8 chunks of 64^3; its read 14 and 15 ms)."""


FRAGMENT_GRANULE = 8
"""Fragments in default blocks have the blocks as their chunks, so a block's sides need not be whole input chunks:
they are whole multiples of this many voxels. A 160^3 volume is 2 blocks of 80x160x160, nothing padded, not 9 of
64x64x192 storing 7.1 million voxels for 4.1 million (postprocess-block and relabel: 0.31 -> 0.25 s). Sides of 8
keep a pyramid's coarser levels whole voxels per chunk down to a factor of 8."""


def method_of(name: str) -> Method:
    """The registry's method ``name``, or a user's function (``module:function``, ``file.py:function``) as a
    method that returns instances and reads no context by default."""
    if is_user_function(name):
        return Method(load_user_function(name), {}, output="instances")
    return METHODS[name]


@dataclass
class Recipe:
    """What every block runs: a method, its parameters, affinity offsets, the channels it reads."""

    method: str
    params: dict
    offsets: list | None
    channels: list | None
    min_size: float | None  # instance methods: applied by relabel on the objects' global sizes


def recipe(method: str | None, params: dict | None, params_from: str | None, task: dict | None) -> Recipe:
    """The method and parameters from the flags and ``--params-from model.json``; flags win.

    ``task`` is the input's ``alfine_task`` attribute (affinity offsets from its
    ``neighborhood`` when neither ``params["offsets"]`` nor the model's task has them).
    """
    from ..configs import read_json

    model = {}
    if params_from:
        model = read_json(params_from)
        if not isinstance(model, dict) or not isinstance(model.get("postprocessing", {}), dict):
            raise UserError(f"--params-from {params_from}: expected a model.json with a \"postprocessing\" object")
    post = model.get("postprocessing") or {}
    method = method or post.get("method")
    if not method:
        raise UserError("no post-processing method: give --method or --params-from model.json")
    if not is_user_function(method) and method not in METHODS:
        raise UserError(f"unknown post-processing method {method!r}; valid methods: {', '.join(METHODS)}, "
                        "or a function as package.module:function or path/file.py:function")
    chosen = dict(post.get("params") or {}) if method == post.get("method") else {}
    chosen.update(params or {})
    offsets = chosen.pop("offsets", None)
    for source in (model.get("task"), task):
        if offsets is None and isinstance(source, dict):
            offsets = source.get("neighborhood")
    channels = post.get("channels")
    if channels is not None and (not isinstance(channels, list) or len(channels) != 2):
        raise UserError(f"--params-from {params_from}: postprocessing.channels must be [start, stop] or null")
    min_size = None
    if not is_user_function(method) and METHODS[method].instances and "min_size" in chosen:
        min_size = chosen.pop("min_size")
        if isinstance(min_size, bool) or not isinstance(min_size, int | float) or min_size < 0:
            raise UserError(f"min_size must be a non-negative number, got {min_size!r}")
    return Recipe(method, chosen, offsets, channels, min_size)


def check_recipe(chosen: Recipe, channels: int, ndim: int) -> bool:
    """Whether the method returns instances; bad parameters are a :class:`UserError` before anything is written.

    A registry method is tried on a small all-zero prediction of ``channels`` channels.
    """
    if is_user_function(chosen.method):
        load_user_function(chosen.method)  # a missing file, module or function is an error now
        return True
    try:  # larger than the longest offset (mwatershed panics otherwise); bad offsets fail in the trial
        reach = int(np.abs(np.asarray(chosen.offsets, dtype=np.int64)).max()) if chosen.offsets else 0
    except (TypeError, ValueError):
        reach = 0
    trial = np.zeros((channels,) + (max(4, 2 * reach + 2),) * ndim, np.float32)
    try:
        apply(chosen.method, trial, chosen.params, chosen.offsets)
    except UserError as e:
        raise UserError(f"--method {chosen.method} --params {chosen.params}: {e}") from None
    except Exception as e:  # a parameter of the wrong type
        raise UserError(f"--method {chosen.method}: bad parameters {chosen.params}: {type(e).__name__}: {e}") from None
    return METHODS[chosen.method].instances


def postprocess_blocks(input_url: str, output: str, *, method: str | None = None, params: dict | None = None,
                       params_from: str | None = None, context: tuple[int, ...] | None = None,
                       request: BlockRequest = WHOLE, storage: dict | None = None) -> dict:
    """Segment the predictions at ``input_url`` into ``output`` block by block with ``method`` and ``params``
    (defaults from the model.json ``params_from``; the flags win), each block reading ``context`` voxels beyond
    its write region (one number or one per axis; default: the method's), over the blocks ``request`` asks for
    (default shape: :func:`~alfine.segmentation.per_block.default_block_shape`), stored as ``storage`` says
    (chunks default to the input's, for instance labels in default blocks to the block shape; compression
    ``None``: :data:`FRAGMENTS_COMPRESSION` for instance labels, zstd otherwise); a summary."""
    from ..volumes import open_volume, prepare_volume

    storage = blockwise.storage_of(storage, chunk_shape=None, compression=None)
    given_context = context

    source = open_volume(input_url)
    chosen = recipe(method, params, params_from, source.array.attrs.get("alfine_task"))
    ndim = source.roi.dims
    if ndim not in (2, 3):
        raise UserError(f"{input_url}: expected 2 or 3 spatial axes, found {ndim}")
    channels = prediction_of(np.zeros(source.channel_shape + (1,) * ndim, np.float32),
                             source.geometry.channel_dims, chosen.channels).shape[0]
    if channels == 0:
        raise UserError(f"{input_url}: no channels to read (channels {chosen.channels} of {source.channel_shape})")
    instances = check_recipe(chosen, channels, ndim)
    context = _context(given_context, chosen, ndim)
    roi = blockwise.region(source, request.roi)
    chunks_given = storage["chunk_shape"] is not None
    storage["chunk_shape"] = storage["chunk_shape"] or tuple(source.chunk_shape)
    unit = storage["shards"] or storage["chunk_shape"]
    block_shape = request.block_shape
    earlier = None if block_shape is not None or storage["overwrite"] else _earlier_layout(output, roi)
    if earlier is not None:  # a run to resume: its blocks and chunks, whatever today's defaults would be
        block_shape = earlier[0]
        if not chunks_given and not storage["shards"]:
            storage["chunk_shape"] = unit = earlier[1]
    elif block_shape is None and len(unit) == ndim:
        own_chunks = instances and not chunks_given and not storage["shards"]  # fragments: one chunk a block
        block_shape = default_block_shape(unit, roi.shape / source.voxel_size, context=tuple(context),
                                          granule=(FRAGMENT_GRANULE,) * ndim if own_chunks else None,
                                          read_chunks=tuple(source.chunk_shape))
        if own_chunks:
            storage["chunk_shape"] = unit = block_shape  # see FRAGMENTS_COMPRESSION
    blocks = blockwise.layout(roi, source.voxel_size, block_shape, unit, context * source.voxel_size)
    if request.list_blocks:
        return blockwise.print_blocks(blocks, source.voxel_size)
    blockwise.check_distinct(input=input_url, output=output)
    blockwise.check_plan(blocks, output, unit, source.voxel_size, request.block_id, request.workers)
    block_voxels = int(np.prod(blocks.block_shape / source.voxel_size))
    if instances and len(blocks) * block_voxels >= 2**64:
        raise UserError(f"{len(blocks)} blocks of {block_voxels} voxels exceed the uint64 ids; use larger blocks")
    join = method_of(chosen.method).join_rule(chosen.params, context, ndim) if instances else None
    attributes = {ATTRIBUTE: {
        "method": chosen.method, "params": chosen.params, "offsets": chosen.offsets, "channels": chosen.channels,
        "instances": instances, "min_size": chosen.min_size, "roi": format_roi(roi),
        "block_shape": list(blocks.block_shape / source.voxel_size), "context": list(context),
        "id_stride": block_voxels if instances else None, "join": join, "block_records": instances,
    }}
    dtype, out_channels = method_of(chosen.method).output_type(chosen.params, channels)
    storage["compression"] = storage["compression"] or (FRAGMENTS_COMPRESSION if instances else "zstd")
    process = PostprocessBlock(input_url, output, chosen.method, chosen.params, chosen.offsets,
                               chosen.channels, instances, block_voxels, format_roi(roi),
                               views=bool(join and join["rule"] == "overlap"))
    process.share(input_url, "r", source)
    blockwise.read_first_block_ahead(process, blocks, request.workers, request.block_id, request.launcher)
    with read_ahead.dropped_on_error():
        segmentation = prepare_volume(output, roi, source.voxel_size, dtype, channels=out_channels,
                                      label=not out_channels, **storage)
        segmentation.array.attrs.update(attributes)
        process.share(output, "r+", segmentation)
        counts = blockwise.run("postprocess-block", blocks, segmentation, process, request.workers,
                               request.block_id, request.launcher)
    return {"output": output, "method": chosen.method, "params": chosen.params, "instances": instances,
            "join": join, "context": list(context), "min_size": chosen.min_size, **counts}


def _earlier_layout(output: str, roi) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The block shape and chunk shape (voxels) that an earlier postprocess-block run over ``roi`` recorded in the
    existing ``output``; None where there is none (a re-run without ``--block-shape`` resumes with the blocks it
    started with, even where this version's default would differ)."""
    from ..errors import VolumeError
    from ..volumes import open_volume

    try:
        existing = open_volume(output)
    except VolumeError:
        return None
    info = existing.array.attrs.get(ATTRIBUTE)
    if not isinstance(info, dict) or info.get("roi") != format_roi(roi) or not info.get("block_shape"):
        return None
    return tuple(int(v) for v in info["block_shape"]), tuple(int(v) for v in existing.chunk_shape)


def _context(given, chosen: Recipe, ndim: int) -> Coordinate:
    """``--context`` (one number or one per axis, voxels) or the method's default."""
    if given is None:
        return Coordinate((method_of(chosen.method).default_context(chosen.offsets),) * ndim)
    values = tuple(given) * ndim if len(given) == 1 else tuple(given)
    if len(values) != ndim or any(v < 0 for v in values):
        raise UserError(f"--context {','.join(map(str, given))}: expected one or {ndim} non-negative numbers")
    if chosen.method == "connected_components" and any(values):
        raise UserError("--context: connected_components needs no context (relabel joins components exactly)")
    return Coordinate(values)
