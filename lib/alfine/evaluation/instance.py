"""Instance segmentation scores from a sparse contingency table, accumulated block by block.

A :class:`Contingency` counts, for every pair (truth id, prediction id), how many voxels carry
both. Every score here (variation of information, adapted Rand error, split and merge counts,
object matching) is a function of that table alone, so a volume of any size is scored by
adding its blocks one at a time (or in separate workers whose tables are then merged) and
asking for :meth:`Contingency.scores` once. The table holds one entry per distinct pair that
occurs, never a dense matrix: memory grows with the number of overlapping object pairs, not
with the volume or with the size of the ids.

Conventions (they follow CREMI and scikit-image):

- Truth id 0 is *unlabelled*: its voxels are not counted at all, as are voxels where the mask
  is 0. Only voxels with a nonzero truth id inside the mask are *counted voxels*.
- Prediction id 0 means *unassigned*. For VOI and Rand it is an ordinary segment (a
  prediction that leaves a truth object unassigned is penalised like one that gives it a
  single wrong id). It is never an object: it is not matched and not counted in splits or
  merges, but its voxels still belong to the truth objects' sizes.
- Object sizes are sums over counted voxels: a prediction segment's size is its number of
  voxels on labelled truth inside the mask.
"""

from __future__ import annotations

import fastremap
import numpy as np

from .semantic import precision_recall_f1

SIGNIFICANT_OVERLAP = 0.25
"""Default fraction of the smaller object that an overlap must cover to count as a split or merge."""

_CONSOLIDATE_MIN_PAIRS = 1 << 16


class Contingency:
    """Sparse counts of (truth id, prediction id) voxel pairs, added block by block.

    ``a.merge(b)`` adds ``b``'s counts into ``a``; ``a + b`` returns a new table with both.
    Adding blocks in any order or grouping gives the same table, hence the same scores.
    """

    def __init__(self) -> None:
        empty_ids = np.zeros(0, np.uint64)
        self._truth, self._prediction, self._counts = empty_ids, empty_ids, np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_pairs = 0

    def add(self, truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count the voxel pairs of one block.

        ``truth`` and ``prediction`` are integer id arrays of the same (any) shape; voxels where
        ``truth == 0`` or ``mask == 0`` are ignored (see the module docstring).
        """
        truth, prediction = np.asarray(truth), np.asarray(prediction)
        if truth.shape != prediction.shape:
            raise ValueError(f"truth shape {truth.shape} differs from prediction shape {prediction.shape}")
        keep = truth != 0
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != truth.shape:
                raise ValueError(f"mask shape {mask.shape} differs from truth shape {truth.shape}")
            keep &= mask != 0
        if keep.all():
            self._append(*_count_pairs(truth.ravel(), prediction.ravel()))
        else:
            self._append(*_count_pairs(truth[keep], prediction[keep]))

    def merge(self, other: Contingency) -> Contingency:
        """Add ``other``'s counts into this table (``other`` is unchanged); returns ``self``."""
        self._append(*other.pairs())
        return self

    def __add__(self, other: Contingency) -> Contingency:
        return Contingency().merge(self).merge(other)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The table as ``(truth ids, prediction ids, voxel counts)``: one entry per distinct pair, sorted."""
        if self._pending:
            self._pending.append((self._truth, self._prediction, self._counts))
            self._truth, self._prediction, self._counts = _sum_pairs(
                *(np.concatenate(column) for column in zip(*self._pending, strict=True))
            )
            self._pending, self._pending_pairs = [], 0
        return self._truth, self._prediction, self._counts

    def _append(self, truth: np.ndarray, prediction: np.ndarray, counts: np.ndarray) -> None:
        """Queue a block's pairs; they are folded into the table once the queue outgrows it.

        Folding only when the queue is larger than the table keeps the total cost of many
        ``add`` calls near-linear, and the memory within a small factor of the distinct pairs.
        """
        self._pending.append((truth, prediction, counts))
        self._pending_pairs += len(counts)
        if self._pending_pairs > max(len(self._counts), _CONSOLIDATE_MIN_PAIRS):
            self.pairs()

    def scores(self, overlap: float = SIGNIFICANT_OVERLAP) -> dict[str, float]:
        """All instance scores of the counted voxels.

        - ``voi_split`` = H(prediction | truth) and ``voi_merge`` = H(truth | prediction), in bits;
          ``voi`` is their sum. Splitting a truth object into several predictions raises
          ``voi_split``; one prediction covering several truth objects raises ``voi_merge``.
          (scikit-image's ``variation_of_information(truth, prediction)`` returns them in this order.)
        - ``rand_precision``: of the pairs of distinct voxels that share a prediction id, the
          fraction that also share a truth id (false merges lower it); ``rand_recall``: of the
          pairs that share a truth id, the fraction that also share a prediction id (false
          splits lower it); ``adapted_rand_error`` = 1 - their harmonic mean (SNEMI3D, as
          scikit-image's ``adapted_rand_error``, whose second and third outputs are these two
          the other way round: scikit-image issue #6485).
        - An overlap of truth object i and prediction object j (id != 0) is *significant* when
          it covers at least ``overlap`` of the smaller of the two: n_ij >= overlap * min(n_i, n_j).
          ``false_splits`` = sum over truth objects of max(0, significant predictions - 1);
          ``false_merges`` = sum over prediction objects of max(0, significant truth objects - 1).
          A sliver where two objects touch is ignored; a fragment lying inside a truth object
          is a split however small, as a proofreader has to merge it.
        - ``match_precision``, ``match_recall``, ``match_f1``: a truth and a prediction object
          match when IoU = n_ij / (n_i + n_j - n_ij) > 0.5 (strictly, so that every object has
          at most one match); precision = matches / prediction objects, recall = matches /
          truth objects.
        - ``voxels``: the number of counted voxels; ``truth_objects``: the truth objects with counted voxels;
          ``predicted_objects``: the prediction objects (id != 0) on counted voxels. These three are counts
          (:data:`~alfine.evaluation.registry.COUNTS`), not metrics.

        Empty cases: with no counted voxels both VOI terms are 0. Precision (Rand pairs or
        matched objects) with nothing predicted is 1 when the truth is empty too and 0
        otherwise; recall likewise with no truth; F1 is 1 when both are empty, and
        ``adapted_rand_error`` = 1 - Rand F1.
        """
        truth, prediction, counts = self.pairs()
        counts = counts.astype(np.float64)
        _, truth_sizes, truth_index = _sizes(truth, counts)
        prediction_ids, prediction_sizes, prediction_index = _sizes(prediction, counts)
        pair_truth_sizes, pair_prediction_sizes = truth_sizes[truth_index], prediction_sizes[prediction_index]
        voxels = counts.sum()

        voi_split = _conditional_entropy(counts, pair_truth_sizes, voxels)
        voi_merge = _conditional_entropy(counts, pair_prediction_sizes, voxels)
        rand_precision, rand_recall, rand_f1 = precision_recall_f1(
            _same_label_pairs(counts), _same_label_pairs(prediction_sizes), _same_label_pairs(truth_sizes)
        )

        is_object = prediction != 0
        significant = is_object & (counts >= overlap * np.minimum(pair_truth_sizes, pair_prediction_sizes))
        matches = np.count_nonzero(is_object & (3 * counts > pair_truth_sizes + pair_prediction_sizes))
        match_precision, match_recall, match_f1 = precision_recall_f1(
            matches, np.count_nonzero(prediction_ids), len(truth_sizes)
        )
        return {
            "voi_split": voi_split,
            "voi_merge": voi_merge,
            "voi": voi_split + voi_merge,
            "adapted_rand_error": 1.0 - rand_f1,
            "rand_precision": rand_precision,
            "rand_recall": rand_recall,
            "false_splits": _excess(truth_index[significant]),
            "false_merges": _excess(prediction_index[significant]),
            "match_precision": match_precision,
            "match_recall": match_recall,
            "match_f1": match_f1,
            "voxels": int(voxels),
            "truth_objects": len(truth_sizes),
            "predicted_objects": int(np.count_nonzero(prediction_ids)),
        }


def evaluate_instances(
    truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None, overlap: float = SIGNIFICANT_OVERLAP
) -> dict[str, float]:
    """:meth:`Contingency.scores` of one block (conventions as in the module docstring)."""
    table = Contingency()
    table.add(truth, prediction, mask)
    return table.scores(overlap)


def _count_pairs(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (truth, prediction) pairs of two 1-D id arrays, sorted as :func:`_sum_pairs`, and their counts.

    Both id arrays are renumbered to 0..n-1 (a hash map, linear in the voxels) so that a pair
    fits one uint64 key whatever the ids.
    """
    truth_new, truth_old = _renumber(truth)
    prediction_new, prediction_old = _renumber(prediction)
    width = np.uint64(max(len(prediction_old), 1))
    # with return_counts numpy sorts; its plain (hash) unique is far slower on many distinct keys
    keys, counts = np.unique(truth_new.astype(np.uint64) * width + prediction_new.astype(np.uint64), return_counts=True)
    return _sum_pairs(truth_old[keys // width], prediction_old[keys % width], counts.astype(np.int64))


def _sum_pairs(
    truth: np.ndarray, prediction: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs sorted by truth id, then prediction id, with the counts of equal pairs summed."""
    order = np.lexsort((prediction, truth))
    truth, prediction, counts = truth[order], prediction[order], counts[order]
    starts = np.ones(len(counts), bool)
    starts[1:] = (truth[1:] != truth[:-1]) | (prediction[1:] != prediction[:-1])
    starts = np.flatnonzero(starts)
    return truth[starts], prediction[starts], np.add.reduceat(counts, starts)


def _renumber(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(new, old)``: ``ids`` renumbered to 0..n-1 and the uint64 id each new number stands for."""
    if ids.size == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    new, mapping = fastremap.renumber(ids, start=0, preserve_zero=False)
    old = np.empty(len(mapping), np.uint64)
    old[np.fromiter(mapping.values(), np.int64, len(mapping))] = np.fromiter(mapping.keys(), np.uint64, len(mapping))
    return new, old


def _sizes(ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ids, the summed counts of each, and for every entry the index of its id."""
    distinct, index = np.unique(ids, return_inverse=True)
    return distinct, np.bincount(index, weights=counts, minlength=len(distinct)), index


def _conditional_entropy(counts: np.ndarray, given_sizes: np.ndarray, voxels: float) -> float:
    """H(A | B) in bits from the joint counts n_ab and, per entry, the size n_b of its B object."""
    if voxels == 0:
        return 0.0
    return float(-np.sum(counts / voxels * np.log2(counts / given_sizes))) + 0.0  # never -0.0


def _same_label_pairs(sizes: np.ndarray) -> float:
    """Ordered pairs of distinct voxels within the same group: sum of n * (n - 1)."""
    return float(np.sum(sizes * (sizes - 1)))


def _excess(owner_index: np.ndarray) -> int:
    """Sum over owners of max(0, number of entries they own - 1)."""
    return int(len(owner_index) - np.count_nonzero(np.bincount(owner_index)))
