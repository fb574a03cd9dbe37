"""make-targets: a task's targets (and where they are known) from a labels volume, block by block.

Each block reads its labels grown by the task's context (``task.context``), so the result
equals computing the targets of the whole volume at once. Outside the labels volume and
where the mask is 0, labels are unknown: targets that depend on them are marked unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from funlib.geometry import Roi

from ..blockwise import WHOLE, BlockRequest
from ..blockwise import contract as blockwise
from ..configs import to_dict
from ..errors import UserError
from ..geometry import region_mask, voxel_slices
from ..tasks import TaskConfig, load_task, task_from_dict
from ..volumes import open_volume, prepare_volume


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


def make_targets(labels_url: str, task_url: str, output: str, *, weights: str | None = None, mask: str | None = None,
                 request: BlockRequest = WHOLE, storage: dict | None = None) -> dict:
    """Write the targets of the task config at ``task_url`` for the labels at ``labels_url`` into ``output`` (and
    where they are known into ``weights``), known only inside ``mask``, over the blocks ``request`` asks for,
    stored as ``storage`` says (``prepare_volume``'s keywords); a summary."""
    storage = blockwise.storage_of(storage)
    task: TaskConfig = load_task(task_url)
    blockwise.check_distinct(labels=labels_url, mask=mask, output=output, weights=weights)
    labels = open_volume(labels_url)
    if labels.geometry.channel_dims:
        raise UserError(f"{labels_url}: labels must have no channel axis, found {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{labels_url}: targets need integer labels (instance ids or classes), found "
                        f"{labels.dtype}")
    if mask and tuple(open_volume(mask).voxel_size) != tuple(labels.voxel_size):
        raise UserError(f"--mask {mask} has another voxel size than --labels {labels_url}")
    if task.dims not in (None, labels.roi.dims):
        raise UserError(f"{task_url}: a {task.dims}D task for the {labels.roi.dims}D labels {labels_url}")
    roi = blockwise.region(labels, request.roi)
    blocks = blockwise.layout(roi, labels.voxel_size, request.block_shape, storage["shards"] or storage["chunk_shape"],
                              task.context(labels.voxel_size))
    if request.list_blocks:
        return blockwise.print_blocks(blocks, labels.voxel_size)
    blockwise.check_plan(blocks, output, storage["shards"] or storage["chunk_shape"], labels.voxel_size,
                         request.block_id, request.workers)
    names = task.channel_names()
    attributes = {"channel_names": names, "alfine_task": to_dict(task)}
    targets = prepare_volume(output, roi, labels.voxel_size, np.float32, channels=(len(names),), **storage)
    targets.array.attrs.update(attributes)
    if weights:
        known = prepare_volume(weights, roi, labels.voxel_size, np.uint8, channels=(len(names),), **storage)
        known.array.attrs.update(attributes)
    process = TargetsOfBlock(to_dict(task), labels_url, mask, output, weights)
    counts = blockwise.run("make-targets", blocks, targets, process, request.workers, request.block_id,
                           request.launcher)
    return {"output": output, "weights": weights, "task": task.kind, "channel_names": names,
            "context": list(task.context(labels.voxel_size)), **counts}
