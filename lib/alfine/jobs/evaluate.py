"""evaluate: score a segmentation against the truth, block by block in bounded memory.

Instance scores come from a contingency table and semantic counts from per-class confusion
counts, both accumulated one block at a time, so any volume can be scored. A boundary
tolerance reads each block grown by the tolerance (the margin masked out). The Hausdorff
distances need the whole region in memory and are computed only when asked for.
"""

from __future__ import annotations

import numpy as np
from funlib.geometry import Coordinate, Roi

from .. import progress
from ..blockwise import BlockLayout
from ..blockwise import contract as blockwise
from ..errors import UserError
from ..evaluation import HIGHER_IS_BETTER, ConfusionCounts, Contingency, hausdorff
from ..geometry import format_roi, region_mask
from ..tasks import load_task
from ..tasks.base import round_up
from ..volumes import Volume, open_volume

BLOCK_EDGE = 128
"""Voxels along each axis of the blocks scores are accumulated over."""


def _read(volume: Volume, roi: Roi, known: Roi) -> np.ndarray:
    """``roi`` of ``volume``, 0 outside ``known`` (the region being scored)."""
    data = volume.read(roi, fill_value=0)
    if known.contains(roi):
        return data
    return np.where(region_mask(known, roi, volume.voxel_size), data, 0)


def _classes(classes, task_url: str | None) -> list[int]:
    """The class ids to score: ``classes``, else those the task at ``task_url`` names."""
    if classes:
        return list(classes)
    if task_url:
        task = load_task(task_url)
        if hasattr(task, "classes"):
            return list(task.classes.values())
    raise UserError("semantic evaluation needs --classes (class ids) or a --task that names its classes")


def evaluate(truth_url: str, prediction_url: str, *, mask_url: str | None = None, kind: str | None = None,
             task: str | None = None, classes=None, tolerance: float = 0.0, with_hausdorff: bool = False,
             metrics: list[str] | None = None, roi: Roi | None = None) -> dict:
    """Scores of the segmentation at ``prediction_url`` against the truth at ``truth_url``, inside ``mask_url``
    and ``roi`` (default: the truth's region); a JSON-ready summary.

    ``kind`` is ``instance`` or ``semantic`` (default: the evaluation of the task config at ``task``, else
    instance); semantic scores are per class id of ``classes`` (default: the task's), within a boundary
    ``tolerance`` (world units), with the Hausdorff distances when ``with_hausdorff``. ``metrics`` keeps only
    those metrics."""
    truth, prediction = open_volume(truth_url), open_volume(prediction_url)
    mask = open_volume(mask_url) if mask_url else None
    for flag, volume in (("--truth", truth), ("--mask", mask)):
        if volume is not None and not (np.issubdtype(volume.dtype, np.integer) or volume.dtype == bool):
            raise UserError(f"{flag} {volume.url.url}: evaluate needs integer labels (ids or classes), found "
                            f"{volume.dtype}")
    if truth.geometry.channel_dims:
        raise UserError(f"--truth {truth_url}: expected labels without channels, found shape {truth.shape}")
    for other in (prediction, mask):
        if other is not None and tuple(other.voxel_size) != tuple(truth.voxel_size):
            raise UserError(f"{other.url.url} has voxel size {tuple(other.voxel_size)}, the truth "
                            f"{tuple(truth.voxel_size)}: evaluate on one grid")
        if other is not None and other.geometry.channel_dims:
            raise UserError(f"{other.url.url}: expected a segmentation without channels, found shape {other.shape}")
    kind = kind or (load_task(task).evaluation if task else "instance")
    roi = blockwise.region(truth, roi)
    if not prediction.roi.contains(roi):
        raise UserError(f"--prediction {prediction_url} ({format_roi(prediction.roi)}) does not cover the "
                        f"scored region {format_roi(roi)}")
    voxel_size = truth.voxel_size
    margin = round_up(np.full(roi.dims, tolerance), voxel_size) if kind == "semantic" else None
    blocks = BlockLayout(roi, Coordinate((BLOCK_EDGE,) * roi.dims) * voxel_size,
                         margin if margin is not None else Coordinate((0,) * roi.dims))

    if kind == "instance":
        table = Contingency()
        for block in progress.bar(blocks, total=len(blocks), desc="evaluate", unit="block"):
            table.add(truth.read(block.write_roi), prediction.read(block.write_roi),
                      None if mask is None else mask.read(block.write_roi))
        scores = table.scores()
    elif kind == "semantic":
        class_ids = _classes(classes, task)
        counts = {c: ConfusionCounts(tolerance, voxel_size) for c in class_ids}
        for block in progress.bar(blocks, total=len(blocks), desc="evaluate", unit="block"):
            t, p = _read(truth, block.read_roi, roi), _read(prediction, block.read_roi, roi)
            counted = _read(mask, block.read_roi, roi) != 0 if mask is not None else np.ones(t.shape, bool)
            counted &= region_mask(block.write_roi, block.read_roi, voxel_size)  # margins: their own blocks
            for c, count in counts.items():
                count.add(t == c, p == c, counted)
        scores = {str(c): count.scores() for c, count in counts.items()}
        if with_hausdorff:
            t, p = truth.read(roi), prediction.read(roi)
            inside = mask.read(roi) != 0 if mask is not None else True
            for c in class_ids:
                scores[str(c)] |= hausdorff((t == c) & inside, (p == c) & inside, voxel_size)
    else:
        raise UserError(f"--kind must be instance or semantic, not {kind!r}")
    if metrics:
        scores = _only(scores, metrics)
    return {"truth": truth_url, "prediction": prediction_url, "mask": mask_url, "kind": kind,
            "roi": format_roi(roi), "scores": scores,
            "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in _metric_names(scores)}}


def _metric_names(scores: dict) -> set[str]:
    names = set()
    for key, value in scores.items():
        names |= _metric_names(value) if isinstance(value, dict) else ({key} if key in HIGHER_IS_BETTER else set())
    return names


def _only(scores: dict, metrics: list[str]) -> dict:
    unknown = sorted(set(metrics) - set(HIGHER_IS_BETTER))
    if unknown:
        raise UserError(f"--metrics: unknown metric {unknown[0]!r}; known: {', '.join(sorted(HIGHER_IS_BETTER))}")
    out = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            out[key] = _only(value, metrics)
        elif key in metrics or key not in HIGHER_IS_BETTER:
            out[key] = value
    return out
