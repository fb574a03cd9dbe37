"""make-targets: a task's targets (and where they are known) from a labels volume, block by block.

Each block reads its labels grown by the task's context (``task.context``), so the result
equals computing the targets of the whole volume at once. Outside the labels volume and
where the mask is 0, labels are unknown: targets that depend on them are marked unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from funlib.geometry import Roi

from ..configs import to_dict
from ..errors import UserError
from ..geometry import region_mask, voxel_slices
from ..tasks import TaskConfig, load_task, task_from_dict
from ..volumes import open_volume, prepare_volume
from . import blocks as blockwise


def known_labels(labels_url: str, mask_url: str | None, roi: Roi) -> tuple[np.ndarray, np.ndarray]:
    """The labels of ``roi`` (0 outside the volume) and where they are known (inside it, and in the mask)."""
    labels = open_volume(labels_url)
    data = labels.read(roi, fill_value=0)
    known = region_mask(labels.roi, roi, labels.voxel_size)
    if mask_url:
        known &= open_volume(mask_url).read(roi, fill_value=0) != 0
    return data, known


@dataclass
class TargetsOfBlock:
    """The block function of make-targets (picklable: configs and URLs only)."""

    task: dict
    labels: str
    mask: str | None
    output: str
    known_output: str | None

    def __call__(self, block) -> None:
        task = task_from_dict(self.task)
        labels, known = known_labels(self.labels, self.mask, block.read_roi)
        voxel_size = open_volume(self.output).voxel_size
        target, target_known = task.targets(labels, voxel_size, known)
        crop = (slice(None),) + voxel_slices(block.write_roi, block.read_roi.begin, voxel_size)
        open_volume(self.output, mode="r+").write(block.write_roi, target[crop])
        if self.known_output:
            open_volume(self.known_output, mode="r+").write(block.write_roi, target_known[crop].astype(np.uint8))


def make_targets(options) -> dict:
    """Write the targets of ``options.task`` for ``options.labels`` into ``options.output``; a summary."""
    task: TaskConfig = load_task(options.task)
    blockwise.check_distinct(labels=options.labels, mask=options.mask, output=options.output, weights=options.weights)
    labels = open_volume(options.labels)
    if labels.geometry.channel_dims:
        raise UserError(f"{options.labels}: labels must have no channel axis, found {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{options.labels}: targets need integer labels (instance ids or classes), found "
                        f"{labels.dtype}")
    if options.mask and tuple(open_volume(options.mask).voxel_size) != tuple(labels.voxel_size):
        raise UserError(f"--mask {options.mask} has another voxel size than --labels {options.labels}")
    if task.dims not in (None, labels.roi.dims):
        raise UserError(f"{options.task}: a {task.dims}D task for the {labels.roi.dims}D labels {options.labels}")
    roi = blockwise.region(labels, options.roi)
    storage = options.storage()
    blocks = blockwise.layout(roi, labels.voxel_size, options.block_shape, storage["shards"] or storage["chunk_shape"],
                              task.context(labels.voxel_size))
    if options.list_blocks:
        return blockwise.print_blocks(blocks)
    blockwise.check_plan(blocks, options.output, storage["shards"] or storage["chunk_shape"], labels.voxel_size,
                         options.block_id, options.workers)
    names = task.channel_names()
    attributes = {"channel_names": names, "alfine_task": to_dict(task)}
    output = prepare_volume(options.output, roi, labels.voxel_size, np.float32, channels=(len(names),), **storage)
    output.array.attrs.update(attributes)
    if options.weights:
        known = prepare_volume(options.weights, roi, labels.voxel_size, np.uint8, channels=(len(names),), **storage)
        known.array.attrs.update(attributes)
    process = TargetsOfBlock(to_dict(task), options.labels, options.mask, options.output, options.weights)
    counts = blockwise.run("make-targets", blocks, output, process, options.workers, options.block_id,
                           options.launcher)
    return {"output": options.output, "weights": options.weights, "task": task.kind, "channel_names": names,
            "context": list(task.context(labels.voxel_size)), **counts}
