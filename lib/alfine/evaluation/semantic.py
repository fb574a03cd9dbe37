"""Semantic (per-class, binary) segmentation scores: voxel counts and surface distances.

A class is a binary mask: nonzero is foreground. :class:`ConfusionCounts` adds up true and
false positives and negatives block by block, so a volume of any size is scored one block at
a time; :func:`hausdorff` needs the whole region at once. Distances are in world units
(``voxel_size`` per axis, in array axis order) and are computed with the ``edt`` package in
float32, for 1-D to 3-D arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np
from scipy import ndimage

_DISTANCE_SLACK = 1e-6
"""Relative slack on distance comparisons: float32 distances are exact to about 1e-7."""


def precision_recall_f1(true_positives: float, predicted: float, actual: float) -> tuple[float, float, float]:
    """Precision = TP / predicted, recall = TP / actual, F1 = 2 TP / (predicted + actual).

    When nothing is predicted, precision is 1 if nothing is actual either (perfect agreement)
    and 0 otherwise; recall likewise when nothing is actual; F1 is 1 when both are empty.
    """
    both_empty = predicted == 0 and actual == 0
    precision = true_positives / predicted if predicted else float(both_empty)
    recall = true_positives / actual if actual else float(both_empty)
    f1 = 2 * true_positives / (predicted + actual) if predicted + actual else 1.0
    return float(precision), float(recall), float(f1)


class ConfusionCounts:
    """True/false positive/negative voxel counts of one binary class, added block by block.

    With ``tolerance`` > 0 (world units), a predicted foreground voxel within ``tolerance`` of a
    truth foreground voxel is not a false positive, and a truth foreground voxel within
    ``tolerance`` of a predicted foreground voxel is not a false negative: such voxels are not
    counted at all, like masked ones. The distances are computed within the block passed to
    :meth:`add`, so blockwise, pass each block grown by the tolerance on every side, with a mask
    that is 0 on the added margin. ``voxel_size`` defaults to 1 per axis.
    """

    def __init__(self, tolerance: float = 0.0, voxel_size: Sequence[float] | None = None) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.tolerance = float(tolerance)
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        self.true_positives = self.false_positives = self.false_negatives = self.true_negatives = 0

    def add(self, truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count one block: nonzero is foreground; voxels where ``mask == 0`` are not counted."""
        truth, prediction = np.asarray(truth) != 0, np.asarray(prediction) != 0
        counted = np.ones(truth.shape, bool) if mask is None else np.asarray(mask) != 0
        if not truth.shape == prediction.shape == counted.shape:
            raise ValueError(f"shapes differ: truth {truth.shape}, prediction {prediction.shape}, mask {counted.shape}")
        if self.tolerance > 0:
            voxel_size = self.voxel_size or (1.0,) * truth.ndim
            forgiven_positive = prediction & ~truth & _within(distance_to(truth, voxel_size), self.tolerance)
            forgiven_negative = truth & ~prediction & _within(distance_to(prediction, voxel_size), self.tolerance)
            counted &= ~(forgiven_positive | forgiven_negative)
        true_positives = int(np.count_nonzero(truth & prediction & counted))
        false_positives = int(np.count_nonzero(prediction & ~truth & counted))
        false_negatives = int(np.count_nonzero(truth & ~prediction & counted))
        self.true_positives += true_positives
        self.false_positives += false_positives
        self.false_negatives += false_negatives
        self.true_negatives += int(np.count_nonzero(counted)) - true_positives - false_positives - false_negatives

    def merge(self, other: ConfusionCounts) -> ConfusionCounts:
        """Add ``other``'s counts into these (same tolerance and voxel size); returns ``self``."""
        if (self.tolerance, self.voxel_size) != (other.tolerance, other.voxel_size):
            raise ValueError("cannot merge counts made with different tolerance or voxel size")
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.true_negatives += other.true_negatives
        return self

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.tolerance, self.voxel_size).merge(self).merge(other)

    def scores(self) -> dict[str, float]:
        """``f1`` (= Dice), ``jaccard`` (IoU), ``precision``, ``recall`` and the two error rates.

        Empty cases: precision, recall and F1 as :func:`precision_recall_f1` (F1 and Jaccard
        are 1 when there is neither truth nor predicted foreground); ``false_positive_rate`` =
        FP / (FP + TN) and ``false_negative_rate`` = FN / (TP + FN) are 0 when they have no
        voxels to be computed on.
        """
        tp, fp, fn, tn = self.true_positives, self.false_positives, self.false_negatives, self.true_negatives
        precision, recall, f1 = precision_recall_f1(tp, tp + fp, tp + fn)
        return {
            "f1": f1,
            "jaccard": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
            "precision": precision,
            "recall": recall,
            "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
            "false_negative_rate": fn / (tp + fn) if tp + fn else 0.0,
        }


def distance_to(foreground: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """For every voxel, the world distance (float32) to the nearest foreground voxel; inf if there is none."""
    foreground = np.asarray(foreground, bool)
    if not 1 <= foreground.ndim <= 3 or len(voxel_size) != foreground.ndim:
        raise ValueError(
            f"need a 1-D to 3-D array and one voxel size per axis, got {foreground.ndim}-D and {voxel_size}"
        )
    if not foreground.any():
        return np.full(foreground.shape, np.inf, np.float32)
    sizes = tuple(float(v) for v in voxel_size)
    return edt.edt(np.ascontiguousarray(~foreground), anisotropy=sizes[0] if foreground.ndim == 1 else sizes)


def surface(foreground: np.ndarray) -> np.ndarray:
    """Foreground voxels with a face neighbour in the background; outside the array is background."""
    foreground = np.asarray(foreground, bool)
    faces = ndimage.generate_binary_structure(foreground.ndim, 1)
    return foreground & ~ndimage.binary_erosion(foreground, structure=faces, border_value=0)


def hausdorff(truth: np.ndarray, prediction: np.ndarray, voxel_size: Sequence[float]) -> dict[str, float]:
    """Symmetric surface distances of two binary masks (nonzero is foreground), in world units.

    The distances are from every :func:`surface` voxel of each mask to the nearest surface
    voxel of the other. ``hausdorff`` is their maximum; ``hausdorff95`` their 95th percentile
    (numpy's linear interpolation) over both directions pooled, as MedPy's ``hd95``. Both are 0
    when both masks are empty and inf when exactly one is.
    """
    truth_surface, prediction_surface = surface(np.asarray(truth) != 0), surface(np.asarray(prediction) != 0)
    if not truth_surface.any() and not prediction_surface.any():
        return {"hausdorff": 0.0, "hausdorff95": 0.0}
    if not truth_surface.any() or not prediction_surface.any():
        return {"hausdorff": float("inf"), "hausdorff95": float("inf")}
    distances = np.concatenate(
        [
            distance_to(prediction_surface, voxel_size)[truth_surface],
            distance_to(truth_surface, voxel_size)[prediction_surface],
        ]
    ).astype(np.float64)
    return {"hausdorff": float(distances.max()), "hausdorff95": float(np.percentile(distances, 95))}


def evaluate_semantic(
    truth_classes: np.ndarray,
    pred_classes: np.ndarray,
    classes: Sequence[int],
    voxel_size: Sequence[float],
    mask: np.ndarray | None = None,
    tolerance: float = 0.0,
) -> dict[int, dict[str, float]]:
    """Per class id, :meth:`ConfusionCounts.scores` and :func:`hausdorff` of one block.

    Class ``c`` is the binary mask ``classes_array == c`` in truth and prediction. Voxels where
    ``mask == 0`` are not counted and are background for the Hausdorff distances.
    """
    inside = True if mask is None else np.asarray(mask) != 0
    scores = {}
    for class_id in classes:
        truth, prediction = np.asarray(truth_classes) == class_id, np.asarray(pred_classes) == class_id
        counts = ConfusionCounts(tolerance, voxel_size)
        counts.add(truth, prediction, mask)
        scores[int(class_id)] = counts.scores() | hausdorff(truth & inside, prediction & inside, voxel_size)
    return scores


def _within(distances: np.ndarray, tolerance: float) -> np.ndarray:
    """Voxels whose distance is at most ``tolerance``, allowing for float32 rounding."""
    return distances <= tolerance * (1 + _DISTANCE_SLACK)
