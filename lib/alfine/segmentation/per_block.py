"""postprocess-block's block function: a post-processing method applied to one block, ids unique across blocks.

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

from ..blockwise import read_ahead, write_behind
from ..errors import UserError
from ..geometry import voxel_slices
from . import records
from .opened import OpensVolumes

log = logging.getLogger(__name__)

ATTRIBUTE = "alfine_postprocess"
BLOCK_VOXELS = 2**21  # a default block: 128^3 voxels (float32 input 8 MiB, uint64 labels 16 MiB)


def is_user_function(method: str) -> bool:
    """Whether ``method`` names a user's function (``module:function`` or ``file.py:function``)."""
    return ":" in method


def views_url(volume_url: str, block_id: int) -> str:
    """Where block ``block_id`` of the per-block segmentation ``volume_url`` keeps its views."""
    return f"{records.records_url(volume_url, 'views')}/{block_id}.npz"


def block_record_url(volume_url: str, block_id: int) -> str:
    """Where block ``block_id`` of the per-block segmentation ``volume_url`` keeps what relabel needs of it."""
    return f"{records.records_url(volume_url, 'segments')}/{block_id}.arrays"


BLOCK_COST_VOXELS = BLOCK_VOXELS // 2
"""A block's fixed cost (its start, records, faces, first writes), in voxels of work: measured on 2 cores, a
161^3 volume took 0.55 s in 27 blocks of 64^3 and 0.34 s in 9 of 64x64x192 covering the same voxels, about 12 ms
more a block, the time of about 10^6 voxels."""

READ_COST = 0.5
"""What a voxel decoded from the input costs, in voxels of a block's work. A block whose sides are not whole input
chunks decodes the chunks it cuts whole: 320^3 in 16 blocks of 40x160x320 over 64^3 input chunks (2.9 times the
block decoded) took 1.33 s against 1.09 s in 25 blocks of 64x64x320, 403^3 in 36 of 104x136x136 2.70 s against
2.26 s in 49 of 64x64x448; weighed at half a voxel, both choose the latter."""


def default_block_shape(unit, region, budget: int = BLOCK_VOXELS, context=None, granule=None,
                        read_chunks=None) -> tuple[int, ...]:
    """A block shape (voxels) of whole ``unit`` s (the output's chunk or shard shape) within ``budget`` voxels
    for a ``region`` (voxels) whose blocks read ``context`` voxels (per axis, default none) beyond their own from
    an input of ``read_chunks`` (default ``unit``).

    The shape is ``unit`` doubled along its shortest axis, then the next, while that keeps it within ``budget``
    and the axis is still shorter than the region; unless another shape costs at least 10 % less
    (:func:`_layout_costs`: voxels computed on and stored, edge blocks' padding to whole chunks included,
    voxels decoded from the input, and each block's fixed cost). A 161^3 region gets 9 blocks of 64x64x192
    storing 7.1 million voxels, not 8 of 128^3 storing 16.8 million. The other shapes' sides are whole units,
    or whole ``granule`` s (voxels per axis) where the output's chunks will be the blocks themselves and need
    not be whole units of anything (postprocess-block's fragments: 160^3 in 2 blocks of 80x160x160, nothing
    padded)."""
    shape = [int(u) for u in unit]
    while True:
        growable = [a for a in range(len(shape)) if shape[a] < region[a]]
        if not growable or 2 * int(np.prod(shape)) > budget:
            break
        shape[min(growable, key=lambda a: (shape[a], a))] *= 2
    shapes = _fitting_shapes(unit, unit if granule is None else granule, region, budget)
    if not len(shapes):  # the unit alone exceeds the budget
        return tuple(shape)
    context = np.zeros(len(shape)) if context is None else np.asarray(context, np.float64)
    read_chunks = np.asarray(unit if read_chunks is None else read_chunks, np.int64)
    costs = _layout_costs(shapes, region, context, read_chunks)
    best = int(np.lexsort((*shapes.T[::-1], costs))[0])  # the cheapest; of equals, the first in C order
    if costs[best] < 0.9 * _layout_costs(np.array([shape]), region, context, read_chunks)[0]:
        return tuple(int(v) for v in shapes[best])
    return tuple(shape)


def _layout_costs(shapes: np.ndarray, region, context: np.ndarray, read_chunks: np.ndarray) -> np.ndarray:
    """For each row of ``shapes``: voxels its blocks over ``region`` compute on (with ``context``) and store
    (whole blocks), plus :data:`READ_COST` for each voxel they decode from an input of ``read_chunks``, plus
    :data:`BLOCK_COST_VOXELS` a block. A block that reads ``e`` voxels along an axis, at starts that fall every
    ``g`` voxels of chunks of ``c``, decodes about ``e + c - g`` of it. Floats: teravoxel regions of small
    blocks overflow 64-bit integers."""
    steps = np.gcd(np.asarray(shapes, np.int64), read_chunks)
    shapes = np.asarray(shapes, np.float64)
    blocks = np.prod(np.ceil(np.asarray(region, np.float64) / shapes), axis=1)
    decoded = np.prod(shapes + 2 * context + read_chunks - steps, axis=1)
    return blocks * (np.prod(shapes + 2 * context, axis=1) + READ_COST * decoded + BLOCK_COST_VOXELS)


def _fitting_shapes(unit, granule, region, budget: int) -> np.ndarray:
    """Shapes (rows) within ``budget`` of sides that are the unit times a power of two, or the fewest whole
    granules that cover the region's axis in 1 to 8 blocks (padding more than that is at most an eighth of a
    block)."""
    sides = []
    for u, g, r in zip(unit, granule, region, strict=True):
        u, g, r = int(u), int(g), int(r)
        granules = max(1, -(-r // g))
        covering = {g * -(-granules // m) for m in range(1, min(granules, 8) + 1)}
        doubled = {u << k for k in range(max(1, budget // u).bit_length()) if u << k <= max(u, g * granules)}
        sides.append(sorted(covering | doubled))  # (not numpy's unique: its first call in a process takes 9 ms)
    grid = np.stack(np.meshgrid(*sides, indexing="ij"), -1).reshape(-1, len(sides)).astype(np.int64)
    return grid[np.prod(grid.astype(np.float64), axis=1) <= budget]


_FUNCTIONS: dict[str, Any] = {}


def load_user_function(method: str):
    """A user's function, loaded once per process."""
    from ..postprocess import load_function

    if method not in _FUNCTIONS:
        _FUNCTIONS[method] = load_function(method)
    return _FUNCTIONS[method]


def apply(method: str, prediction: np.ndarray, params: dict, offsets: list | None) -> np.ndarray:
    """``method`` (a registry name or a user's function) applied to ``prediction`` ``[C, *spatial]``."""
    from ..postprocess import run

    if is_user_function(method):
        return np.asarray(load_user_function(method)(prediction, **params))
    return run(method, prediction, params, offsets)


@dataclass
class PostprocessBlock(OpensVolumes):
    """The block function of postprocess-block (picklable: plain values and URLs only; the volumes are opened
    once per process)."""

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

    @property
    def threads(self) -> bool:
        """Whether blocks may run in threads of one process (a registry method that says so)."""
        from ..postprocess import METHODS

        return not is_user_function(self.method) and METHODS[self.method].threads

    @property
    def holds_gil(self) -> bool:
        """Whether the method's main work holds the GIL (cc3d): see :class:`~alfine.postprocess.registry.Method`."""
        from ..postprocess import METHODS

        return self.threads and METHODS[self.method].holds_gil

    def _read(self, block):
        """The block's input as it is stored, and the region it covers: at the volume's border, what a whole-volume
        run sees."""
        source = self.volume(self.input)
        read_roi = block.read_roi.intersect(source.roi)
        return source.read(read_roi), read_roi

    def prefetch(self, block) -> None:
        """Start reading ``block``'s input (:mod:`~alfine.blockwise.read_ahead`); the call processing it takes it."""
        read_ahead.start(read_ahead.key(self.input, block), lambda: self._read(block))

    def __call__(self, block) -> None:
        source = self.volume(self.input)
        data, read_roi = read_ahead.take(read_ahead.key(self.input, block), lambda: self._read(block))
        prediction = prediction_of(data, source.geometry.channel_dims, self.channels)
        result = apply(self.method, prediction, self.params, self.offsets)
        spatial = prediction.shape[1:]
        if tuple(result.shape[-len(spatial):]) != tuple(spatial):
            raise UserError(f"{self.method} returned shape {result.shape} for a prediction of shape "
                             f"{prediction.shape}; expected the spatial shape {spatial}")
        crop = voxel_slices(block.write_roi, read_roi.begin, source.voxel_size)
        output = self.volume(self.output, mode="r+")
        if not self.instances:
            write_behind.write(output, block.write_roi, result[(slice(None),) * (result.ndim - len(spatial)) + crop])
            return
        whole = all(c == slice(0, n) for c, n in zip(crop, spatial, strict=True))
        # a registry method's labels are 1..n in C order already (finish_instances); a crop of them is not, and
        # views need the map
        consecutive = whole and not self.views and not is_user_function(self.method)
        labels, local, counts = _block_unique(result[crop], block.id, self.stride, consecutive=consecutive)
        if self.views:
            views = self._views(result, crop, local, block)
            records.save_arrays(views_url(self.output, block.id), **views)
        if self.records:
            records.save_packed(block_record_url(self.output, block.id), **self._record(labels, counts, block))
        write_behind.write(output, block.write_roi, labels)

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


def _block_unique(labels: np.ndarray, block_id: int, stride: int, consecutive: bool = False
                  ) -> tuple[np.ndarray, dict | None, np.ndarray]:
    """:func:`block_unique` and the voxel counts of the local ids 1..n (int64).

    ``consecutive``: ``labels`` are known to be 1..n in C order of first appearance already (uint64, as a
    registry method returns them), so they are not renumbered (one pass over the block less) and the map is
    None; ``labels`` may then be changed in place.
    """
    import fastremap

    from .kernels import count_and_offset

    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise UserError(f"instance labels must be integers, got {labels.dtype}")
    if consecutive and labels.dtype == np.uint64:
        local, mapping = np.ascontiguousarray(labels), None
        objects = int(local.max(initial=0))
    else:
        local, mapping = fastremap.renumber(np.ascontiguousarray(labels), preserve_zero=True, in_place=False)
        objects = len(mapping) - (0 in mapping)
    if objects > stride:
        raise ValueError(f"{objects} objects in a block of {stride} voxels")
    # uint64 labels are ours to change (see above): the ids are raised in place, no fresh memory to touch
    ours = local.dtype == np.uint64 and local.flags.c_contiguous and local.flags.writeable
    unique = local if ours else local.astype(np.uint64)
    counts = count_and_offset(unique.reshape(-1), objects, int(block_id) * int(stride))
    return unique, mapping, counts[1:]
