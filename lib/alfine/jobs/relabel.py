"""relabel: one consistent segmentation from a per-block one, in three resumable steps.

The steps (faces, numbering, write) and their records are those of :mod:`alfine.segmentation.relabel`; this
module checks the request, claims the records for its input and layout, and runs each step over the blocks.
"""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..blockwise import (
    WHOLE,
    BlockLayout,
    BlockRequest,
    DoneMarkers,
    check_chunk_aligned,
    check_request,
    markers_url_for,
    read_ahead,
    run_blocks,
)
from ..blockwise import contract as blockwise
from ..blockwise.forked import forks
from ..errors import UserError
from ..geometry import format_roi, parse_roi
from ..segmentation import records
from ..segmentation.numbering import number_objects
from ..segmentation.per_block import ATTRIBUTE
from ..segmentation.relabel import (
    FACES_IN_PROCESS,
    FacesOfBlock,
    WriteBlock,
    faces_url,
    mapping_url,
    step_markers,
    work_url,
)


def relabel(input_url: str, output: str, *, min_size: float | None = None, request: BlockRequest = WHOLE,
            storage: dict | None = None) -> dict:
    """Relabel the per-block segmentation at ``input_url`` into ``output`` (may be the same array), dropping
    objects smaller than ``min_size`` voxels over the whole volume (default: the ``min_size`` postprocess-block
    recorded, else 0), over the blocks ``request`` asks for (those of postprocess-block when the input records
    them), stored as ``storage`` says (chunks default to the block shape); a summary."""
    from ..volumes import open_volume

    storage = blockwise.storage_of(storage, chunk_shape=None)
    source = open_volume(input_url)
    info = source.array.attrs.get(ATTRIBUTE)
    _check_input(source, info, input_url)
    roi, block_shape = _layout_of(source, info, request)
    layout = BlockLayout(roi, block_shape * source.voxel_size, Coordinate((0,) * roi.dims))
    if request.list_blocks:
        return blockwise.print_blocks(layout, source.voxel_size)
    join = (info or {}).get("join") or {"rule": "adjacency", "connectivity": 4 if roi.dims == 2 else 6}
    if min_size is not None and not min_size >= 0:
        raise UserError(f"--min-size {min_size:g}: expected a number of voxels, 0 or more")
    min_size = min_size if min_size is not None else (info or {}).get("min_size") or 0
    work = work_url(output)
    in_place = _same(input_url, output)
    check_request(layout, request.block_id, request.workers)
    storage["chunk_shape"] = storage["chunk_shape"] or tuple(block_shape)
    from_records = bool((info or {}).get("block_records"))
    faces = FacesOfBlock(input_url, work, join, layout, tuple(source.voxel_size), from_records)
    write = WriteBlock(input_url, output, work, in_place)
    write.share(input_url, "r", source)
    if request.block_id is None and not forks(faces, len(layout), request.workers):
        # the first block's labels are read while the output is made and the faces and numbering run (not where
        # the faces fork their workers: this process must not have started tensorstore then)
        blockwise.read_first_block_ahead(write, layout, request.workers, None, request.launcher)
    with read_ahead.dropped_on_error():
        return _steps(source, info, input_url, output, roi, layout, join, min_size, request, storage, faces, write)


def _steps(source, info, input_url, output, roi, layout, join, min_size, request, storage, faces, write) -> dict:
    """:func:`relabel` once the request is checked: make the output, then run the three steps."""
    from ..volumes import open_volume, prepare_volume

    work, in_place = write.work, write.in_place
    if in_place:
        check_chunk_aligned(layout, source.chunk_shape * source.voxel_size, source.offset, output)
        target = open_volume(output, mode="r+")
    else:
        chunks = Coordinate(storage["shards"] or storage["chunk_shape"])
        check_chunk_aligned(layout, chunks * source.voxel_size, roi.begin, output)
        target = prepare_volume(output, roi, source.voxel_size, np.uint64, label=True, **storage)
    check_chunk_aligned(layout, target.chunk_shape * target.voxel_size, target.offset, output)
    _claim(work, input_url, layout)

    faces_markers = DoneMarkers(step_markers(output)["faces"], layout)
    if request.block_id is None or len(faces_markers.done_ids()) < len(layout):
        here = faces.records and len(layout) <= FACES_IN_PROCESS  # reads no volume data: no workers to launch
        counts = run_blocks("relabel (faces)", layout, faces, faces_markers, workers=request.workers,
                            block_id=request.block_id, launcher=None if here else request.launcher)
        if request.block_id is not None:
            return {"output": output, "step": "faces", "records": work,
                    **blockwise.geometry(layout, source.voxel_size), **counts}
    write_markers = DoneMarkers(step_markers(output)["write"], layout)
    summary = _numbering(work, layout, min_size, write_markers)
    if in_place and (info or {}).get("block_records"):  # the ids change: postprocess-block's records go stale
        target.array.attrs[ATTRIBUTE] = {**info, "block_records": False}
    write.share(output, "r+", target)
    counts = run_blocks("relabel (write)", layout, write, write_markers, workers=request.workers,
                        block_id=request.block_id, launcher=request.launcher)
    target.array.attrs.update({"alfine_relabel": {"objects": summary["objects"], "min_size": min_size,
                                                  "records": work}})
    return {"output": output, "step": "write", "in_place": in_place, "join": join, **summary,
            "records": work, **blockwise.geometry(layout, source.voxel_size), **counts}


def _numbering(work: str, layout: BlockLayout, min_size: float, write_markers: DoneMarkers) -> dict:
    """Step 2, unless done with the same ``min_size``; refused when step 3 started with another one."""
    done = records.load_json(f"{work}/objects.json")
    if done is not None and done["min_size"] == min_size:
        return done
    if done is not None and (write_markers.done_ids() or records.exists(f"{work}/written")):
        raise UserError(f"relabel: {work} was written with --min-size {done['min_size']}, this run asks for "
                        f"{min_size}; use another --output, or remove it and its records to start over")

    def record(block: int) -> dict:
        return records.load_packed_or_npz(faces_url(work, block))

    total = 0

    def save(block: int, ids: np.ndarray, new_ids: np.ndarray) -> None:
        nonlocal total
        total += len(ids)
        records.save_packed(mapping_url(work, block), ids=ids, new_ids=new_ids)

    sizes = number_objects(range(len(layout)), record, min_size, save)
    records.save_arrays(f"{work}/objects.npz", sizes=sizes)
    summary = {"objects": len(sizes), "min_size": min_size, "block_ids": total,
               "voxels": int(sizes.sum()), "largest": int(sizes.max()) if len(sizes) else 0}
    records.save_json(f"{work}/objects.json", summary)
    return summary


def _check_input(source, info: dict | None, url: str) -> None:
    if source.geometry.channel_dims or not np.issubdtype(source.dtype, np.integer):
        raise UserError(f"{url}: relabel needs integer labels without channels, found {source.dtype} "
                        f"{source.shape}")
    if info is None:
        return
    if not info.get("instances"):
        raise UserError(f"{url}: written by --method {info.get('method')}, a class map, not instance labels: "
                        "nothing to relabel")
    markers = records.load_json(f"{markers_url_for(url)}/layout.json")
    if markers is not None:
        layout = BlockLayout.from_json(markers)
        done = len(DoneMarkers(markers_url_for(url), layout).done_ids())
        if done < len(layout):
            raise UserError(f"{url}: alfine-postprocess-block finished {done} of {len(layout)} blocks; "
                            "re-run it to finish before relabelling")


def _layout_of(source, info: dict | None, request: BlockRequest) -> tuple[Roi, Coordinate]:
    """The region and block shape (voxels): those of the postprocess run when the input has them."""
    if info is None:
        roi = blockwise.region(source, request.roi)
        shape = Coordinate(request.block_shape or source.chunk_shape)
        if len(shape) != roi.dims:
            raise UserError(f"--block-shape {tuple(shape)} has {len(shape)} axes, the volume {roi.dims}")
        return roi, shape
    roi, shape = parse_roi(info["roi"]), Coordinate(info["block_shape"])
    if request.roi is not None and request.roi != roi:
        raise UserError(f"--roi {format_roi(request.roi)}: relabel covers the region postprocess-block wrote, "
                        f"{format_roi(roi)}")
    if request.block_shape is not None and Coordinate(request.block_shape) != shape:
        raise UserError(f"--block-shape {tuple(request.block_shape)}: the blocks must be those postprocess-block "
                        f"used, {tuple(shape)} (its ids are unique per block)")
    return roi, shape


def _same(a: str, b: str) -> bool:
    from ..volumes import parse_volume_url

    x, y = parse_volume_url(a), parse_volume_url(b)
    return (x.container.rstrip("/"), x.path) == (y.container.rstrip("/"), y.path)


def _claim(work: str, input_url: str, layout: BlockLayout) -> None:
    """Record which input the records belong to; refuse records of another input or layout."""
    mine = {"input": input_url, **layout.to_json()}
    theirs = records.load_json(f"{work}/input.json")
    if theirs is None:
        records.save_json(f"{work}/input.json", mine)
    elif theirs != mine:
        raise UserError(f"{work}: records of relabelling {theirs['input']} ({theirs}) are there; this run relabels "
                        f"{mine}. Use another --output, or remove it and its records to start over")
