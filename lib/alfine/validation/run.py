"""Validating a run: predict each validation dataset, sweep post-processing, score, select the best.

For an iteration, every validation dataset's labelled region is predicted by the blockwise
inference that ``alfine-predict-block`` uses (seam-free, with the network's context; a region
smaller than the network's input is predicted from one input, mirrored across its faces), every
parameter set of the task's post-processing grid is applied, and each result is scored against
the labels inside the mask and inside the *scored region* (:func:`scored_region`): the labels'
region less the border band where the network's context reached beyond the raw, so that it saw
padding rather than data (as it does nowhere inside a volume it is applied to). Each row records its
``"scored_roi"`` (world units, as ``--roi`` takes it) and whether its segmentation is
``"degenerate"`` (:func:`~alfine.validation.selection.is_degenerate`; never selected). The
iteration's rows in ``validation.jsonl`` are replaced (never duplicated), ``best.json`` is
recomputed, ``validation.png`` redrawn, and validation outputs are kept only for the best
iterations and the latest::

    RUN/validation/ITERATION.zarr/DATASET/prediction   the network's output on the labelled region
    RUN/validation/ITERATION.zarr/DATASET/METHOD       the segmentation of METHOD's best parameters
                                                        (by the main metric) on this dataset
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
from funlib.geometry import Coordinate, Roi

from ..errors import UserError
from ..evaluation import ConfusionCounts, better, evaluate_instances
from ..geometry import format_roi, region_mask
from ..postprocess import METHODS, grid
from ..postprocess import run as run_method
from ..runs import RunDirectory
from ..volumes import open_volume, prepare_volume
from .scores import ValidationLog, flat_scores
from .selection import (
    is_degenerate,
    main_metric,
)

log = logging.getLogger(__name__)

OUTPUTS = "validation"
MEMORY_BYTES = 2**30
"""Activation memory one validation forward may use: bigger inputs than training's waste less on context."""


def choose_iterations(run_dir: RunDirectory, iteration: int | None, every: bool) -> list[int]:
    """The checkpoints to validate: ``iteration``, every one not validated yet (``every``), or the latest."""
    if every:
        run_dir.choose_checkpoint()  # a run without checkpoints is an error
        done = set(ValidationLog(run_dir).iterations())
        return [i for i in run_dir.checkpoints() if i not in done]
    return [run_dir.choose_checkpoint(iteration)]


def predicted_masks(task, method: str, params: dict, segmentation: np.ndarray, spatial_dims: int) -> dict:
    """For a semantic task, each class id's predicted mask in ``segmentation`` of ``method``:
    a channel of a per-channel mask (threshold), a channel index of a class map (argmax; channel 0 is
    background when the task's first channel is), or the foreground of instance labels (for the class
    of the thresholded channel)."""
    names = task.channel_names()
    shift = 1 if names and names[0] == "background" else 0
    if method in METHODS and METHODS[method].instances:
        class_id = task.class_ids[min(int(params.get("channel", 0)), len(task.class_ids) - 1)]
        return {class_id: segmentation > 0}
    if segmentation.ndim > spatial_dims:
        return {class_id: segmentation[i] != 0 for i, class_id in enumerate(task.class_ids) if i < len(segmentation)}
    return {class_id: segmentation == i + shift for i, class_id in enumerate(task.class_ids)}


def score(task, method: str, params: dict, labels: np.ndarray, mask: np.ndarray | None,
          segmentation: np.ndarray) -> dict:
    """The task's evaluation of one segmentation: instance scores, or semantic scores per class id."""
    if task.evaluation == "instance":
        return evaluate_instances(labels, segmentation, mask)
    classes = task.class_map(labels)
    scores = {}
    for class_id, predicted in predicted_masks(task, method, params, segmentation, labels.ndim).items():
        counts = ConfusionCounts()
        counts.add(classes == class_id, predicted, mask)
        scores[str(class_id)] = counts.scores()
    return scores


def covering_input_shape(architecture, region_voxels, out_channels: int,
                         memory_bytes: int = MEMORY_BYTES) -> tuple[int, ...]:
    """The smallest valid input whose output covers ``region_voxels`` (output voxels) on every axis, but no
    larger per axis than the largest input whose activations fit in ``memory_bytes``: few forwards, little
    context recomputed."""
    smallest, step = architecture.valid_sizes()
    try:
        cap = architecture.largest_input_shape(memory_bytes, out_channels)
    except UserError:
        cap = smallest
    shape = list(smallest)
    for axis, (region, limit) in enumerate(zip(region_voxels, cap, strict=True)):
        while step[axis] and shape[axis] + step[axis] <= limit and (
                architecture.output_shape(shape)[axis] < region):
            shape[axis] += step[axis]
    return tuple(shape)


def scored_region(labels_roi: Roi, voxel_size, raw_roi: Roi, context) -> Roi | None:
    """The part of ``labels_roi`` whose every voxel the network predicted from real raw across its whole
    ``context`` (world units, per side and axis): ``labels_roi`` intersected with ``raw_roi`` shrunk by
    ``context``, shrunk further to the labels' voxel grid. A face is therefore left as it is where the raw
    extends at least ``context`` beyond it, shrunk by ``context`` where the raw ends with the labels, and by
    the missing part where the raw extends less. None when nothing is left on some axis."""
    begin, end = [], []
    for axis in range(labels_roi.dims):
        start, stop, step = labels_roi.begin[axis], labels_roi.end[axis], voxel_size[axis]
        low = max(start, raw_roi.begin[axis] + context[axis])
        high = min(stop, raw_roi.end[axis] - context[axis])
        low = start + -(-(low - start) // step) * step  # inward, onto the labels' voxels
        high = start + (high - start) // step * step
        if high <= low:
            return None
        begin.append(low)
        end.append(high)
    return Roi(begin, [e - b for b, e in zip(begin, end, strict=True)])


def scoring_mask(dataset_name: str, labels_volume, raw_roi: Roi, context, labels: np.ndarray,
                 mask: np.ndarray | None, instances: bool) -> tuple[Roi, np.ndarray | None]:
    """``(scored region, mask to score with)`` of a validation dataset: ``mask`` (may be None) restricted to
    :func:`scored_region`. When that region is empty or holds no voxel the evaluation counts (labelled, for
    instances, and inside ``mask``), the whole labels' region is scored instead, with a warning."""
    roi = labels_volume.roi
    region = scored_region(roi, labels_volume.voxel_size, raw_roi, context)
    if region is not None and region != roi:
        inside = region_mask(region, roi, labels_volume.voxel_size)
        narrowed = inside if mask is None else inside & (mask != 0)
        counted = narrowed & (labels != 0) if instances else narrowed
        if counted.any():
            log.info("%s: scoring %s, the labels' region %s less the border where the network's context "
                     "(%s per side) reaches beyond the raw", dataset_name, format_roi(region), format_roi(roi),
                     tuple(context))
            return region, narrowed
    if region is None or region != roi:
        log.warning("%s: the labels' region %s leaves nothing to score once the border where the network's "
                    "context (%s per side) reaches beyond the raw is excluded; scoring the whole region, whose "
                    "border was predicted from padding", dataset_name, format_roi(roi), tuple(context))
    return roi, mask


def _channels(selection: slice) -> list[int] | None:
    """A post-processing channel slice as JSON (``[start, stop]``, or None for all channels)."""
    if selection == slice(None):
        return None
    return [selection.start or 0, selection.stop]


def _folder(dataset_name: str) -> str:
    return dataset_name.replace("/", "_")


def validate_iteration(run_dir: RunDirectory, run, iteration: int, device: str, workers: int) -> list[dict]:
    """Rows of scores of ``iteration`` on every validation dataset and every post-processing parameter set;
    writes the prediction and each method's best segmentation under ``RUN/validation/ITERATION.zarr``."""
    from ..inference import predict_volume, run_predictor_spec
    from ..inference.layout import output_voxel_size

    spec = run_predictor_spec(run_dir.url, iteration, device)
    offsets = getattr(run.task, "neighborhood", None)
    main = main_metric(run.task.evaluation)
    _remove(run_dir, iteration)  # a checkpoint validated again is predicted again
    rows = []
    for dataset in run.datasplit.validate:
        labels_volume, raw_volume = open_volume(dataset.labels), open_volume(dataset.raw)
        out = f"{run_dir.url}/{OUTPUTS}/{iteration}.zarr/{_folder(dataset.name)}"
        predicted_voxel = output_voxel_size(run.architecture, raw_volume.voxel_size)
        if tuple(predicted_voxel) != tuple(labels_volume.voxel_size):
            raise UserError(f"{dataset.labels}: labels of voxel size {tuple(labels_volume.voxel_size)} cannot "
                            f"score predictions of voxel size {tuple(predicted_voxel)}")
        region = labels_volume.roi.shape / labels_volume.voxel_size
        shape = covering_input_shape(run.architecture, region, run.task.num_channels)
        predict_volume(spec, dataset.raw, dataset.normalisation, f"{out}/prediction", roi=labels_volume.roi,
                       input_shape=list(shape), workers=workers)
        prediction = open_volume(f"{out}/prediction").read()
        labels = labels_volume.read()
        if dataset.class_of_label:
            from ..tasks.targets.semantic import classes_from_labels

            labels = classes_from_labels(labels, dataset.label_classes())
        mask = open_volume(dataset.mask).read(labels_volume.roi, fill_value=0) if dataset.mask else None
        context = Coordinate(run.architecture.context()) * raw_volume.voxel_size
        region, mask = scoring_mask(dataset.name, labels_volume, raw_volume.roi, context, labels, mask,
                                    run.task.evaluation == "instance")
        for post in run.task.postprocessing():
            best = None  # (degenerate, value, segmentation, params): a degenerate one only when all are
            for params in grid(post.method, post.grid):
                segmentation = run_method(post.method, prediction[post.channels], params, offsets=offsets)
                scores = score(run.task, post.method, params, labels, mask, segmentation)
                degenerate = is_degenerate(scores)
                rows.append({"iteration": iteration, "dataset": dataset.name, "method": post.method,
                             "params": params, "channels": _channels(post.channels), "scores": scores,
                             "scored_roi": format_roi(region), "degenerate": degenerate})
                value = flat_scores(scores).get(main, float("nan"))
                if best is None or _preferred(main, (degenerate, value), best[:2]):
                    best = (degenerate, value, segmentation, params)
            _write_segmentation(f"{out}/{post.method}", labels_volume, best[2],
                                {"method": post.method, "params": best[3], main: best[1], "degenerate": best[0],
                                 "scored_roi": format_roi(region)})
    return rows


def _preferred(metric: str, candidate: tuple[bool, float], incumbent: tuple[bool, float]) -> bool:
    """Whether a ``(degenerate, value)`` segmentation beats another: not degenerate first, then ``metric``."""
    if candidate[0] != incumbent[0]:
        return not candidate[0]
    return better(metric, candidate[1], incumbent[1])


def _write_segmentation(url: str, labels, segmentation: np.ndarray, attrs: dict) -> None:
    """``segmentation`` on the labels' grid (channels first when it has more axes than the labels)."""
    channels = segmentation.shape[: segmentation.ndim - labels.roi.dims]
    chunks = Coordinate(min(64, s) for s in segmentation.shape[len(channels):])
    volume = prepare_volume(url, labels.roi, labels.voxel_size, segmentation.dtype, chunks, channels=channels,
                            overwrite=True, label=segmentation.dtype.kind in "ui" and not channels)
    volume.write(labels.roi, segmentation)
    volume.array.attrs.update({"alfine_validation": attrs})


def _remove(run_dir: RunDirectory, iteration: int) -> None:
    """Delete the validation outputs of ``iteration`` (its container, done markers included)."""
    path = run_dir.file(f"{OUTPUTS}/{iteration}.zarr")
    if run_dir.fs.exists(path):
        if run_dir.local:
            shutil.rmtree(path, ignore_errors=True)
        else:
            run_dir.fs.rm(path, recursive=True)


def prune(run_dir: RunDirectory, keep: set[int]) -> None:
    """Remove validation outputs of iterations that are neither best for a criterion nor the latest."""
    folder = run_dir.file(OUTPUTS)
    if not run_dir.fs.exists(folder):
        return
    for path in run_dir.fs.ls(folder, detail=False):
        name = path.rstrip("/").rpartition("/")[2].removesuffix(".zarr")
        if name.isdigit() and int(name) not in keep:
            _remove(run_dir, int(name))
