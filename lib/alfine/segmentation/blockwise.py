"""alfine-postprocess-block: a post-processing method applied block by block, ids unique across blocks.

Each block reads its write region grown by ``context`` voxels (within the volume), runs the method (a function of
:mod:`alfine.postprocess` or a user's function; it knows nothing about blocks), and writes the
write region only. Instance labels are numbered ``block id * voxels per block + local id``
(local ids 1..n), so ids never collide and need no coordination. The output's attribute
``alfine_postprocess`` records the method and how ``alfine-relabel`` joins objects across faces
(:mod:`.faces`): the adjacency rule without context, the overlap rule with it, for which each
block also keeps its *views* (its labels of the layer beyond each upper face, see
:func:`views_url`). ``min_size`` of an instance method is not applied per block: relabel
applies it to the objects' sizes over the whole volume.

Each block of instances also keeps a small record (:func:`block_record_url`): its ids and their
voxel counts, its ids on faces towards other blocks, and its outer voxel layers towards them
(:func:`.faces.outer_layers`): all that relabel's faces step needs, so it reads no volume data.
The attribute's ``block_records`` says they exist (relabel in place turns it off: the ids change).

Blocks default to about :data:`BLOCK_VOXELS` voxels (:func:`default_block_shape`): small blocks
cost more in per-block overheads (start-up, records, seams) than they save in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from funlib.geometry import Coordinate

from ..errors import UserError
from ..geometry import format_roi, voxel_slices
from . import records

log = logging.getLogger(__name__)

ATTRIBUTE = "alfine_postprocess"
OVERLAP_FRACTION = 0.5
DEFAULT_CONTEXT = 16  # voxels per side for the watershed-type methods
BLOCK_VOXELS = 2**21  # a default block: 128^3 voxels (float32 input 8 MiB, uint64 labels 16 MiB)
_AFFINITY_METHODS = ("mutex_watershed", "agglomerate")
_SEMANTIC_METHODS = ("threshold", "argmax")


def is_user_function(method: str) -> bool:
    """Whether ``method`` names a user's function (``module:function`` or ``file.py:function``)."""
    return ":" in method


def views_url(volume_url: str, block_id: int) -> str:
    """Where block ``block_id`` of the per-block segmentation ``volume_url`` keeps its views."""
    return f"{records.records_url(volume_url, 'views')}/{block_id}.npz"


def block_record_url(volume_url: str, block_id: int) -> str:
    """Where block ``block_id`` of the per-block segmentation ``volume_url`` keeps what relabel needs of it."""
    return f"{records.records_url(volume_url, 'segments')}/{block_id}.npz"


def default_block_shape(unit, region, budget: int = BLOCK_VOXELS) -> tuple[int, ...]:
    """A block shape (voxels) of whole ``unit`` s (the output's chunk or shard shape): ``unit`` doubled
    along its shortest axis, then the next, while that keeps it within ``budget`` voxels and the axis
    is still shorter than the ``region`` (voxels)."""
    shape = [int(u) for u in unit]
    while True:
        growable = [a for a in range(len(shape)) if shape[a] < region[a]]
        if not growable or 2 * int(np.prod(shape)) > budget:
            return tuple(shape)
        shape[min(growable, key=lambda a: (shape[a], a))] *= 2


def default_context(method: str, offsets: list | None) -> int:
    """Voxels of context per side that ``method`` reads by default (0: none needed)."""
    if method in _AFFINITY_METHODS:
        reach = int(np.abs(np.asarray(offsets)).max()) if offsets else 0
        return max(DEFAULT_CONTEXT, 2 * reach)
    if method == "watershed":
        return DEFAULT_CONTEXT
    return 0


def join_rule(method: str, params: dict, context: Coordinate, ndim: int) -> dict:
    """How relabel joins this method's objects across faces (see :mod:`.faces`)."""
    from ..postprocess.arrays import check_connectivity

    if any(context):
        return {"rule": "overlap", "fraction": OVERLAP_FRACTION}
    connectivity = params.get("connectivity") if method == "connected_components" else None
    return {"rule": "adjacency", "connectivity": check_connectivity(connectivity, ndim)}


_FUNCTIONS: dict[str, Any] = {}


def _function(method: str):
    """A user's function, loaded once per process."""
    from ..postprocess import load_function

    if method not in _FUNCTIONS:
        _FUNCTIONS[method] = load_function(method)
    return _FUNCTIONS[method]


def apply(method: str, prediction: np.ndarray, params: dict, offsets: list | None) -> np.ndarray:
    """``method`` (a registry name or a user's function) applied to ``prediction`` ``[C, *spatial]``."""
    from ..postprocess import run

    if is_user_function(method):
        return np.asarray(_function(method)(prediction, **params))
    return run(method, prediction, params, offsets)


@dataclass
class PostprocessBlock:
    """The block function of postprocess-block (picklable: plain values and URLs only)."""

    input: str
    output: str
    method: str
    params: dict
    offsets: list | None
    channels: list | None
    instances: bool
    stride: int
    region: str  # the layout's region (format_roi): views exist only towards blocks inside it
    views: bool
    records: bool = True  # instances: keep the block's record for relabel (block_record_url)

    def __call__(self, block) -> None:
        from ..volumes import open_volume

        source = open_volume(self.input)
        read_roi = block.read_roi.intersect(source.roi)  # at the volume's border, what a whole-volume run sees
        prediction = prediction_of(source.read(read_roi), source.geometry.channel_dims, self.channels)
        result = apply(self.method, prediction, self.params, self.offsets)
        spatial = prediction.shape[1:]
        if tuple(result.shape[-len(spatial):]) != tuple(spatial):
            raise UserError(f"{self.method} returned shape {result.shape} for a prediction of shape "
                             f"{prediction.shape}; expected the spatial shape {spatial}")
        crop = voxel_slices(block.write_roi, read_roi.begin, source.voxel_size)
        output = open_volume(self.output, mode="r+")
        if not self.instances:
            output.write(block.write_roi, result[(slice(None),) * (result.ndim - len(spatial)) + crop])
            return
        labels, local, counts = _block_unique(result[crop], block.id, self.stride)
        if self.views:
            views = self._views(result, crop, local, block)
            records.save_arrays(views_url(self.output, block.id), **views)
        if self.records:
            records.save_arrays(block_record_url(self.output, block.id), compress=True,
                                **self._record(labels, counts, block))
        output.write(block.write_roi, labels)

    def _record(self, labels: np.ndarray, counts: np.ndarray, block) -> dict[str, np.ndarray]:
        """What relabel's faces step needs of this block (see :func:`block_record_url`)."""
        from ..geometry import parse_roi
        from .faces import nonzero_unique, outer_layers

        region = parse_roi(self.region)
        lower = tuple(b > r for b, r in zip(block.write_roi.begin, region.begin, strict=True))
        upper = tuple(e < r for e, r in zip(block.write_roi.end, region.end, strict=True))
        first, last = outer_layers(labels, lower, upper)
        base = np.uint64(block.id) * np.uint64(self.stride)
        record = {"ids": np.arange(1, len(counts) + 1, dtype=np.uint64) + base, "counts": counts,
                  "face": nonzero_unique([*first.values(), *last.values()])}
        record.update({f"first{a}": layer for a, layer in first.items()})
        if not self.views:  # adjacency: the block's own side of its upper faces (overlap uses its views)
            record.update({f"last{a}": layer for a, layer in last.items()})
        return record

    def _views(self, result: np.ndarray, crop: tuple, local: dict, block) -> dict[str, np.ndarray]:
        """The block's ids on the layer beyond each upper face that has a neighbour (others 0)."""
        import fastremap

        from ..geometry import parse_roi

        region = parse_roi(self.region)
        views = {}
        for axis, piece in enumerate(crop):
            if block.write_roi.end[axis] >= region.end[axis] or piece.stop >= result.shape[axis]:
                continue
            layer = tuple(slice(piece.stop, piece.stop + 1) if a == axis else s for a, s in enumerate(crop))
            view = fastremap.mask_except(np.ascontiguousarray(result[layer]), list(local))
            view = fastremap.remap(view, local, preserve_missing_labels=True).astype(np.uint64)
            views[f"axis{axis}"] = np.where(view != 0, view + np.uint64(block.id * self.stride), 0).astype(np.uint64)
        return views


def prediction_of(data: np.ndarray, channel_dims: int, channels: list | None) -> np.ndarray:
    """A volume's data as a prediction ``[C, *spatial]``: one channel axis added if it has none."""
    if channel_dims == 0:
        data = data[None]
    elif channel_dims > 1:
        data = data.reshape((-1,) + data.shape[channel_dims:])
    if channels is not None:
        data = data[channels[0]:channels[1]]
    return data


def block_unique(labels: np.ndarray, block_id: int, stride: int) -> tuple[np.ndarray, dict]:
    """``labels`` renumbered 1..n (C order of first appearance) plus ``block_id * stride``, as uint64.

    Returns the labels and the map from the method's ids to the local ones (0 stays 0).
    """
    unique, mapping, _ = _block_unique(labels, block_id, stride)
    return unique, {int(k): int(v) for k, v in mapping.items()}


def _block_unique(labels: np.ndarray, block_id: int, stride: int) -> tuple[np.ndarray, dict, np.ndarray]:
    """:func:`block_unique` and the voxel counts of the local ids 1..n (int64)."""
    import fastremap

    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise UserError(f"instance labels must be integers, got {labels.dtype}")
    local, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
    objects = len(mapping) - (0 in mapping)
    if objects > stride:
        raise ValueError(f"{objects} objects in a block of {stride} voxels")
    flat = local.reshape(-1)
    counts = np.bincount(flat if flat.dtype.itemsize < 8 else flat.astype(np.int64), minlength=objects + 1)
    unique = local.astype(np.uint64)
    base = np.uint64(block_id) * np.uint64(stride)
    if base:
        np.add(unique, base, out=unique, where=local != 0)
    return unique, mapping, counts[1:].astype(np.int64)


# -- planning a run ---------------------------------------------------------------------------


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
    from ..postprocess import METHODS

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
    from ..postprocess import METHODS

    if is_user_function(chosen.method):
        _function(chosen.method)  # a missing file, module or function is an error now
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


def postprocess_blocks(options) -> dict:
    """Run ``options.method`` over ``options.input`` block by block into ``options.output``; a summary."""
    from ..jobs import blocks as blockwise
    from ..volumes import open_volume, prepare_volume

    source = open_volume(options.input)
    chosen = recipe(options.method, options.params, options.params_from, source.array.attrs.get("alfine_task"))
    ndim = source.roi.dims
    if ndim not in (2, 3):
        raise UserError(f"{options.input}: expected 2 or 3 spatial axes, found {ndim}")
    channels = prediction_of(np.zeros(source.channel_shape + (1,) * ndim, np.float32),
                             source.geometry.channel_dims, chosen.channels).shape[0]
    if channels == 0:
        raise UserError(f"{options.input}: no channels to read (channels {chosen.channels} of {source.channel_shape})")
    instances = check_recipe(chosen, channels, ndim)
    context = _context(options.context, chosen, ndim)
    roi = blockwise.region(source, options.roi)
    storage = options.storage()
    storage["chunk_shape"] = storage["chunk_shape"] or tuple(source.chunk_shape)
    unit = storage["shards"] or storage["chunk_shape"]
    block_shape = options.block_shape
    if block_shape is None and len(unit) == ndim:
        block_shape = default_block_shape(unit, roi.shape / source.voxel_size)
    blocks = blockwise.layout(roi, source.voxel_size, block_shape, unit, context * source.voxel_size)
    if options.list_blocks:
        return blockwise.print_blocks(blocks)
    blockwise.check_distinct(input=options.input, output=options.output)
    blockwise.check_plan(blocks, options.output, unit, source.voxel_size, options.block_id, options.workers)
    block_voxels = int(np.prod(blocks.block_shape / source.voxel_size))
    if instances and len(blocks) * block_voxels >= 2**64:
        raise UserError(f"{len(blocks)} blocks of {block_voxels} voxels exceed the uint64 ids; use larger blocks")
    join = join_rule(chosen.method, chosen.params, context, ndim) if instances else None
    attributes = {ATTRIBUTE: {
        "method": chosen.method, "params": chosen.params, "offsets": chosen.offsets, "channels": chosen.channels,
        "instances": instances, "min_size": chosen.min_size, "roi": format_roi(roi),
        "block_shape": list(blocks.block_shape / source.voxel_size), "context": list(context),
        "id_stride": block_voxels if instances else None, "join": join, "block_records": instances,
    }}
    dtype, out_channels = _output_type(chosen, instances, channels)
    output = prepare_volume(options.output, roi, source.voxel_size, dtype, channels=out_channels, **storage)
    output.array.attrs.update(attributes)
    process = PostprocessBlock(options.input, options.output, chosen.method, chosen.params, chosen.offsets,
                               chosen.channels, instances, block_voxels, format_roi(roi),
                               views=bool(join and join["rule"] == "overlap"))
    counts = blockwise.run("postprocess-block", blocks, output, process, options.workers, options.block_id,
                           options.launcher)
    return {"output": options.output, "method": chosen.method, "params": chosen.params, "instances": instances,
            "join": join, "context": list(context), "min_size": chosen.min_size, **counts}


def _context(given, chosen: Recipe, ndim: int) -> Coordinate:
    """``--context`` (one number or one per axis, voxels) or the method's default."""
    if given is None:
        return Coordinate((default_context(chosen.method, chosen.offsets),) * ndim)
    values = tuple(given) * ndim if len(given) == 1 else tuple(given)
    if len(values) != ndim or any(v < 0 for v in values):
        raise UserError(f"--context {','.join(map(str, given))}: expected one or {ndim} non-negative numbers")
    if chosen.method == "connected_components" and any(values):
        raise UserError("--context: connected_components needs no context (relabel joins components exactly)")
    return Coordinate(values)


def _output_type(chosen: Recipe, instances: bool, channels: int) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and channel axes of the written segmentation."""
    if instances:
        return np.dtype(np.uint64), ()
    if chosen.method == "argmax":
        return np.min_scalar_type(channels - 1), ()
    return np.dtype(np.uint8), (() if chosen.params.get("channel") is not None else (channels,))

