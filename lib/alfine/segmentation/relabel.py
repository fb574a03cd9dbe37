"""relabel's block functions: one consistent segmentation from a per-block one, in three resumable steps.

1. **faces** (blockwise): each block records its ids and voxel counts, its face ids, and the pairs
   of ids its faces join (:mod:`.faces`; the rule is the one the input's ``alfine_postprocess``
   attribute names, adjacency with face connectivity for other inputs). From the records that
   ``alfine-postprocess-block`` keeps per block (its ids, counts and outer voxel layers) when the
   input has them: no volume data is read, and with a launcher up to :data:`FACES_IN_PROCESS` blocks
   still run in this process (cheaper than launching workers). Otherwise (other inputs, or a record missing) a block
   reads its labels grown by one voxel beyond its upper faces; both ways find the same pairs.
2. **numbering** (one process, after all blocks): union-find over the face ids, global sizes,
   ``--min-size``, consecutive ids from 1 (:mod:`.numbering`); writes each block's id map and
   the objects' sizes.
3. **write** (blockwise): each block maps its ids (:func:`map_ids`, vectorised) and writes them (in
   place when output = input; the input's block records are then marked stale first, and each block keeps
   its old labels under ``originals/N.npz`` until ``written/N.json`` says it holds new ids, so a re-run
   after a kill at any moment maps old ids, never new ones: :class:`WriteBlock`).

Records live under ``OUTPUT_CONTAINER/.alfine-relabel/OUTPUT_PATH``: ``faces/N.arrays`` (step 1),
``mapping/N.arrays`` (old ``ids`` -> ``new_ids`` of block N; both packed, :func:`.records.save_packed`: read
with :func:`.records.load_arrays`), ``objects.npz`` (``sizes[new_id - 1]``)
and ``objects.json`` (the summary; its presence marks step 2 done). Each step's finished blocks
are recorded, so a killed run re-run finishes the job. Without a launcher relabelling launches no workers: the
write step runs in ``--workers`` threads of this process (its blocks spend their time in zarr's codecs and numpy,
which release the GIL); the faces step, whose numpy over small arrays holds the GIL, forks its workers from this
process where there are many blocks and otherwise runs its blocks in this thread (:mod:`alfine.blockwise.runner`).
With ``--block-id N`` a run does block N of step 1 until all blocks have done step 1, then (numbering first, when
missing) block N of step 3.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..blockwise import BlockLayout, read_ahead, write_behind
from . import faces, records
from .opened import OpensVolumes
from .per_block import block_record_url, views_url

log = logging.getLogger(__name__)

FACES_IN_PROCESS = 256  # blocks: a faces step from records this small launches no workers


def work_url(output_url: str) -> str:
    """Where relabel keeps its records for the output ``output_url``."""
    return records.records_url(output_url, "relabel")


def faces_url(work: str, block_id: int) -> str:
    """Block ``block_id``'s record of step 1 (its ids, counts, face ids and pairs)."""
    return f"{work}/faces/{block_id}.arrays"


def mapping_url(work: str, block_id: int) -> str:
    """Block ``block_id``'s map of step 2 (its old ``ids`` and their ``new_ids``)."""
    return f"{work}/mapping/{block_id}.arrays"


def step_markers(output_url: str) -> dict[str, str]:
    """The done markers of relabel's blockwise steps into ``output_url``: faces (1) and write (3)."""
    work = work_url(output_url)
    return {"faces": f"{work}/faces-done", "write": f"{work}/write-done"}


@dataclass
class FacesOfBlock:
    """Step 1 for one block (picklable)."""

    input: str
    work: str
    join: dict
    layout: BlockLayout
    voxel_size: tuple
    records: bool = False  # the input has postprocess-block's block records
    threads: ClassVar[bool] = True  # safe to run in threads (see alfine.blockwise.runner)
    holds_gil: ClassVar[bool] = True  # numpy over small arrays: many blocks fork their workers (512³: 0.15 -> 0.07 s)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_layers", "_lock")}

    def __call__(self, block) -> None:
        found = self._from_records(block) if self.records else None
        if found is None:
            found = self._from_volume(block)
        records.save_packed(faces_url(self.work, block.id), **found)

    def _from_records(self, block) -> dict[str, np.ndarray] | None:
        """The block's faces record from its block record and its upper neighbours' (None: one is missing)."""
        grid = self.layout.grid_shape
        ndim = len(grid)
        # not its first layers: the blocks below read those (decompressing them here cost 7 % of this step)
        wanted = ["ids", "counts", "face", *(f"last{a}" for a in range(ndim))]
        own = records.load_arrays_if_any(block_record_url(self.input, block.id), wanted)
        if own is None:
            return None
        index = np.unravel_index(block.id, grid)
        overlap = self.join["rule"] == "overlap"
        steps = ([tuple(int(a == b) for b in range(ndim)) for a in range(ndim)] if overlap
                 else [s for s in itertools.product((0, 1), repeat=ndim) if any(s)])
        neighbours = {}
        for step in steps:
            position = tuple(i + s for i, s in zip(index, step, strict=True))
            if any(p >= g for p, g in zip(position, grid, strict=True)):
                continue
            first = self._first_layers(int(np.ravel_multi_index(position, grid)), ndim)
            if first is None:
                return None
            neighbours[step] = first
        if overlap:
            views = self._views(block.id)
            found = [faces.overlap_pairs(views[f"axis{a}"], neighbours[step][a], self.join.get("fraction", 0.5))
                     for a, step in enumerate(steps) if f"axis{a}" in views and step in neighbours]
        else:
            shape = tuple(int(s) for s in block.write_roi.shape / Coordinate(self.voxel_size))
            offsets = faces.half_neighbourhood(ndim, self.join["connectivity"])
            found = [faces.slab_pairs(faces.layer_slab(shape, a, own[f"last{a}"], neighbours), a, offsets)
                     for a in range(ndim) if f"last{a}" in own]
        pairs = faces.unique_pairs(np.concatenate([np.zeros((0, 2), np.uint64), *found]))
        return {"ids": own["ids"], "counts": own["counts"], "face": own["face"], "pairs": pairs}

    def _first_layers(self, block_id: int, ndim: int) -> dict[int, np.ndarray] | None:
        """Block ``block_id``'s first layers from its record (None: no record), the last few kept: blocks
        go in id order, so the next block needs about half of this one's neighbours again."""
        cache = self.__dict__.setdefault("_layers", {})
        lock = self.__dict__.setdefault("_lock", threading.Lock())  # setdefault: atomic, one lock for all threads
        with lock:
            if block_id in cache:
                return cache[block_id]
        names = [f"first{a}" for a in range(ndim)]
        found = records.load_arrays_if_any(block_record_url(self.input, block_id), names)
        if found is None:
            return None
        layers = {int(name[5:]): layer for name, layer in found.items()}
        with lock:
            if len(cache) >= 2 ** (ndim + 1):
                del cache[next(iter(cache))]  # the oldest
            cache[block_id] = layers
        return layers

    def _from_volume(self, block) -> dict[str, np.ndarray]:
        """The block's faces record from its labels grown by one voxel beyond its upper faces."""
        from ..volumes import open_volume

        source = open_volume(self.input)
        voxel = source.voxel_size
        region = self.layout.roi
        grown_roi = Roi(block.write_roi.begin, block.write_roi.shape + voxel)
        grown = source.read(grown_roi, fill_value=0)
        outside = tuple(slice(0, None) if e < region.end[a] else slice(0, -1)
                        for a, e in enumerate(block.write_roi.end))
        beyond = np.zeros_like(grown)
        beyond[outside] = grown[outside]  # nothing beyond the region being relabelled
        grown = beyond
        inner = grown[tuple(slice(0, s - 1) for s in grown.shape)]
        ids, counts = _unique(inner)
        if self.join["rule"] == "overlap":
            pairs = self._overlap(grown, block.id)
        else:
            offsets = faces.half_neighbourhood(grown.ndim, self.join["connectivity"])
            pairs = faces.adjacent_pairs(grown, offsets)
        return {"ids": ids, "counts": counts, "face": faces.boundary_ids(inner), "pairs": pairs}

    def _views(self, block_id: int) -> dict[str, np.ndarray]:
        return records.load_arrays_if_any(views_url(self.input, block_id)) or {}

    def _overlap(self, grown: np.ndarray, block_id: int) -> np.ndarray:
        views = self._views(block_id)
        found = [np.zeros((0, 2), np.uint64)]
        for axis in range(grown.ndim):
            view = views.get(f"axis{axis}")
            if view is None:
                continue
            layer = grown[tuple(slice(s - 1, s) if a == axis else slice(0, s - 1)
                                for a, s in enumerate(grown.shape))]
            found.append(faces.overlap_pairs(view, layer, self.join.get("fraction", 0.5)))
        return faces.unique_pairs(np.concatenate(found))


def _unique(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted nonzero ids of ``labels`` (uint64) and their voxel counts."""
    import fastremap

    ids, counts = fastremap.unique(np.ascontiguousarray(labels), return_counts=True)
    keep = ids != 0
    return ids[keep].astype(np.uint64), counts[keep].astype(np.int64)


@dataclass
class WriteBlock(OpensVolumes):
    """Step 3 for one block (picklable; the volumes are opened once per process).

    In place (output = input) the block's old ids are overwritten, so a block written but not yet
    marked done must not be mapped again from its new ids. The block therefore keeps, in order:
    ``originals/N.npz`` (its old labels, saved whole before the volume is touched), then the write,
    then ``written/N`` (its volume holds new ids), then the original is removed. A re-run finds the
    block in one of these states and finishes it correctly: ``written/N`` present: nothing to do;
    an original present: mapped from it (the volume may hold any mix of old and new ids); neither:
    the volume was not touched yet.
    """

    input: str
    output: str
    work: str
    in_place: bool = False
    threads: ClassVar[bool] = True  # safe to run in threads (see alfine.blockwise.runner)

    def _labels(self, block) -> np.ndarray:
        """The block's labels as the input holds them (uint64)."""
        return np.ascontiguousarray(self.volume(self.input).read(block.write_roi)).astype(np.uint64, copy=False)

    def _mapping(self, block) -> dict:
        return records.load_packed_or_npz(mapping_url(self.work, block.id))

    def prefetch(self, block) -> None:
        """Start reading ``block``'s labels (:mod:`~alfine.blockwise.read_ahead`), unless in place (where a block's
        labels may come from its saved original instead). Its id map is read when the block is processed, so the
        first blocks' labels may be read while the steps before make the maps."""
        if not self.in_place:
            read_ahead.start(read_ahead.key(self.input, block), lambda: self._labels(block))

    def __call__(self, block) -> None:
        if not self.in_place:
            labels = read_ahead.take(read_ahead.key(self.input, block), lambda: self._labels(block))
            self._write(block, labels, self._mapping(block))
            return
        if records.exists(written_url(self.work, block.id)):
            return
        original = f"{self.work}/originals/{block.id}.npz"
        saved = records.load_arrays_if_any(original)
        if saved is not None:
            labels = saved["labels"]
        else:
            labels = self._labels(block)
            records.save_arrays(original, compress=True, labels=labels)
        self._write(block, labels, self._mapping(block))
        records.save_json(written_url(self.work, block.id), {"block": block.id})
        records.remove(original)

    def _write(self, block, labels: np.ndarray, mapping: dict) -> None:
        """The block's labels with their new ids, written to the output: left running (:mod:`~alfine.blockwise.
        write_behind`), except in place, where the block's record says they are written once this returns."""
        out = map_ids(labels, mapping["ids"], mapping["new_ids"], overwrite=labels.flags.writeable)
        output = self.volume(self.output, mode="r+")
        if self.in_place:
            output.write(block.write_roi, out)
        else:
            write_behind.write(output, block.write_roi, out)


def written_url(work: str, block_id: int) -> str:
    """The record that block ``block_id`` of an in-place relabel holds new ids (see :class:`WriteBlock`)."""
    return f"{work}/written/{block_id}.json"


def map_ids(labels: np.ndarray, ids: np.ndarray, new_ids: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """``labels`` with each of the sorted ``ids`` replaced by its ``new_ids`` entry, anything else by 0 (uint64).

    Ids that span a range not much larger than their number (a block of postprocess-block: one run
    of consecutive ids) go through a lookup table in one compiled pass (:func:`.kernels.map_through`), others
    through a binary search; no Python loop.
    ``overwrite``: ``labels`` (uint64) may be changed, and the result may be written into it (no new block of
    memory: on these machines the first touch of fresh memory can cost more than the mapping).
    """
    labels = np.asarray(labels, np.uint64)
    ids, new_ids = np.asarray(ids, np.uint64), np.asarray(new_ids, np.uint64)
    if len(ids) == 0:
        return np.zeros(labels.shape, np.uint64)
    low, span = int(ids[0]), int(ids[-1] - ids[0]) + 1
    if span <= 4 * len(ids) + 1024:
        from .kernels import map_through

        table = np.zeros(span, np.uint64)
        table[(ids - ids[0]).astype(np.intp)] = new_ids
        flat = np.ascontiguousarray(labels).reshape(-1)  # a copy where labels are not contiguous: ours to change
        into = flat if overwrite or not labels.flags.c_contiguous else None
        return map_through(flat, low, table, out=into).reshape(labels.shape)
    where = np.minimum(np.searchsorted(ids, labels), len(ids) - 1)
    return np.where(ids[where] == labels, new_ids[where], np.uint64(0))
