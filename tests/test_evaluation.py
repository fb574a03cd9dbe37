"""alfine.evaluation: instance and semantic scores against scikit-image, scipy and brute force."""

import collections
import itertools
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist, directed_hausdorff
from skimage.metrics import adapted_rand_error, variation_of_information
from skimage.segmentation import relabel_sequential

from alfine.errors import UserError
from alfine.evaluation import (
    COUNTS,
    HIGHER_IS_BETTER,
    ConfusionCounts,
    Contingency,
    best,
    better,
    distance_to,
    evaluate_instances,
    evaluate_semantic,
    hausdorff,
)
from alfine.evaluation import instance as instance_module

SHAPE = (12, 15, 18)


def boxes(shape, box, shift=(0, 0, 0), first_id=1, step=1):
    """Labels of a grid of boxes of size ``box`` shifted by ``shift``; ids first_id + step * k."""
    index = [(np.arange(n) + s) // b for n, b, s in zip(shape, box, shift, strict=True)]
    grid = np.ix_(*index)
    counts = [i.max() + 1 for i in index]
    linear = (grid[0] * counts[1] + grid[1]) * counts[2] + grid[2]
    return (np.uint64(first_id) + np.uint64(step) * linear.astype(np.uint64)).astype(np.uint64)


def structured_pair():
    """Big uint64 ids, truth with unlabelled 0 walls; a prediction with splits, merges and 0s."""
    truth = boxes(SHAPE, (4, 5, 6), first_id=1 << 40, step=7919)
    truth[:, :, ::6] = 0
    prediction = boxes(SHAPE, (6, 5, 3), shift=(1, 2, 1), first_id=(1 << 50) + 3, step=104729)
    prediction[:2] = 0
    return truth, prediction


def noisy_copy(truth, fraction, seed):
    """``truth`` with objects 1 and 2 merged, object 5 split in two, and a fraction of voxels
    given a random id of the volume (or 0)."""
    rng = np.random.default_rng(seed)
    prediction = truth.copy()
    prediction[prediction == 2] = 1
    prediction[(prediction == 5) & (np.indices(truth.shape)[0] % 4 < 2)] = 1000
    flip = rng.random(truth.shape) < fraction
    ids = np.append(np.unique(truth), np.uint64(0))
    prediction[flip] = rng.choice(ids, int(flip.sum()))
    return prediction


def random_pair(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, SHAPE).astype(np.uint64), rng.integers(0, 7, SHAPE).astype(np.uint64)


def random_mask(seed=1):
    return np.random.default_rng(seed).random(SHAPE) < 0.7


CASES = {
    "random": (*random_pair(), None),
    "random-masked": (*random_pair(), random_mask()),
    "structured": (*structured_pair(), None),
    "structured-masked": (*structured_pair(), random_mask()),
    "noisy-masked": (boxes(SHAPE, (4, 5, 6)), noisy_copy(boxes(SHAPE, (4, 5, 6)), 0.15, 2), random_mask()),
}


@pytest.mark.parametrize("name", CASES)
def test_instance_scores_equal_scikit_image(name):
    truth, prediction, mask = CASES[name]
    scores = evaluate_instances(truth, prediction, mask)
    # scikit-image indexes a sparse matrix by id: renumber (0 stays 0), and ignore truth 0 and masked voxels.
    reference_truth = relabel_sequential(np.where(True if mask is None else mask, truth, 0))[0]
    reference_prediction = relabel_sequential(prediction)[0]
    split, merge = variation_of_information(reference_truth, reference_prediction, ignore_labels=[0])
    error, swapped_precision, swapped_recall = adapted_rand_error(reference_truth, reference_prediction)
    assert scores["voi_split"] == pytest.approx(split, abs=1e-12)
    assert scores["voi_merge"] == pytest.approx(merge, abs=1e-12)
    assert scores["voi"] == pytest.approx(split + merge, abs=1e-12)
    assert scores["adapted_rand_error"] == pytest.approx(error, abs=1e-12)
    # scikit-image returns precision and recall the other way round (scikit-image issue #6485).
    assert scores["rand_precision"] == pytest.approx(swapped_recall, abs=1e-12)
    assert scores["rand_recall"] == pytest.approx(swapped_precision, abs=1e-12)
    assert scores["voxels"] == np.count_nonzero(reference_truth)
    assert split > 0 and merge > 0


def test_pairs_equal_brute_force_count():
    truth, prediction = structured_pair()
    mask = random_mask()
    table = Contingency()
    table.add(truth, prediction, mask)
    keep = (truth != 0) & mask
    expected = collections.Counter(zip(truth[keep].tolist(), prediction[keep].tolist(), strict=True))
    t, p, c = table.pairs()
    assert t.dtype == p.dtype == np.uint64
    assert dict(zip(zip(t.tolist(), p.tolist(), strict=True), c.tolist(), strict=True)) == expected


def split_into_blocks(parts):
    """Slices cutting a volume into ``parts`` blocks of unequal sizes along the first two axes."""
    cuts = {2: [(slice(0, 5), slice(None)), (slice(5, None), slice(None))]}
    cuts[4] = [(z, y) for z, _ in cuts[2] for y in (slice(0, 9), slice(9, None))]
    return cuts[parts]


@pytest.mark.parametrize("parts", [2, 4])
@pytest.mark.parametrize("name", ["random-masked", "structured-masked", "noisy-masked"])
def test_blockwise_instance_scores_equal_one_block(name, parts, monkeypatch):
    truth, prediction, mask = CASES[name]
    whole_table = Contingency()
    whole_table.add(truth, prediction, mask)
    whole = whole_table.scores()
    added, merged = Contingency(), Contingency()
    for block in split_into_blocks(parts):
        added.add(truth[block], prediction[block], mask[block])
        separate = Contingency()
        separate.add(truth[block], prediction[block], mask[block])
        merged = merged + separate
    monkeypatch.setattr(instance_module, "_CONSOLIDATE_MIN_PAIRS", 0)  # fold whenever the queue outgrows the table
    folded = Contingency()
    for block in reversed(split_into_blocks(parts)):
        folded.add(truth[block], prediction[block], mask[block])
    for table in (added, merged, folded):
        assert table.scores() == pytest.approx(whole, abs=1e-12)
        assert [column.tolist() for column in table.pairs()] == [column.tolist() for column in whole_table.pairs()]


def test_split_raises_split_terms_only():
    truth = np.array([1, 1, 1, 1, 2, 2, 2, 2], np.uint64)
    prediction = np.array([5, 5, 6, 6, 7, 7, 7, 7], np.uint64)  # object 1 split in two halves
    scores = evaluate_instances(truth, prediction)
    assert scores["voi_split"] == pytest.approx(0.5)  # half the voxels have one bit of doubt
    assert scores["voi_merge"] == 0
    assert (scores["false_splits"], scores["false_merges"]) == (1, 0)
    assert scores["rand_precision"] == 1
    assert scores["rand_recall"] == pytest.approx((2 * 1 + 2 * 1 + 4 * 3) / (4 * 3 * 2))


def test_merge_raises_merge_terms_only():
    truth = np.array([1, 1, 2, 2, 3, 3, 3, 3], np.uint64)
    prediction = np.array([5, 5, 5, 5, 7, 7, 7, 7], np.uint64)  # objects 1 and 2 merged
    scores = evaluate_instances(truth, prediction)
    assert scores["voi_merge"] == pytest.approx(0.5)
    assert scores["voi_split"] == 0
    assert (scores["false_splits"], scores["false_merges"]) == (0, 1)
    assert scores["rand_recall"] == 1
    assert scores["rand_precision"] == pytest.approx((2 * 1 + 2 * 1 + 4 * 3) / (4 * 3 * 2))


def test_slivers_are_not_splits_or_merges_but_fragments_are():
    truth = np.repeat(np.array([1, 2, 3], np.uint64), 20)
    prediction = np.repeat(np.array([11, 12, 13], np.uint64), 20)
    prediction[19] = 12  # one voxel of truth 1 leaks into prediction 12: a sliver
    prediction[40:42] = 99  # a 2-voxel fragment inside truth 3: a split however small
    scores = evaluate_instances(truth, prediction)
    assert (scores["false_splits"], scores["false_merges"]) == (1, 0)
    prediction[15:20] = 12  # a quarter of truth 1 now lies in prediction 12: significant
    scores = evaluate_instances(truth, prediction)
    assert (scores["false_splits"], scores["false_merges"]) == (2, 1)


def brute_force_objects(truth, prediction, mask, overlap=0.25):
    """Matches at IoU > 0.5 and significant overlaps by looping over every pair of objects."""
    counted = (truth != 0) & mask
    truth_ids = np.unique(truth[counted])
    prediction_ids = [j for j in np.unique(prediction[counted]) if j != 0]
    matches, significant = [], []
    for i, j in itertools.product(truth_ids, prediction_ids):
        a, b = (truth == i) & counted, (prediction == j) & counted
        intersection = np.count_nonzero(a & b)
        if intersection / np.count_nonzero(a | b) > 0.5:
            matches.append((i, j))
        if intersection and intersection >= overlap * min(a.sum(), b.sum()):
            significant.append((i, j))
    return truth_ids, prediction_ids, matches, significant


@pytest.mark.parametrize("name", ["structured-masked", "noisy-masked"])
def test_matching_and_split_counts_equal_brute_force(name):
    truth, prediction, mask = CASES[name]
    truth_ids, prediction_ids, matches, significant = brute_force_objects(truth, prediction, mask)
    scores = evaluate_instances(truth, prediction, mask)
    assert len({i for i, _ in matches}) == len({j for _, j in matches}) == len(matches)  # unique
    assert scores["match_precision"] == pytest.approx(len(matches) / len(prediction_ids))
    assert scores["match_recall"] == pytest.approx(len(matches) / len(truth_ids))
    assert scores["match_f1"] == pytest.approx(2 * len(matches) / (len(prediction_ids) + len(truth_ids)))
    per_truth = collections.Counter(i for i, _ in significant)
    per_prediction = collections.Counter(j for _, j in significant)
    assert scores["false_splits"] == sum(n - 1 for n in per_truth.values())
    assert scores["false_merges"] == sum(n - 1 for n in per_prediction.values())
    if name == "noisy-masked":
        assert 0 < len(matches) < len(prediction_ids)


def test_instance_empty_cases():
    truth = np.zeros((3, 4), np.uint64)
    scores = evaluate_instances(truth, np.ones((3, 4), np.uint64))
    perfect = {"rand_precision", "rand_recall", "match_precision", "match_recall", "match_f1"}
    assert scores == {key: float(key in perfect) for key in scores}
    truth[:2] = 3
    unassigned = evaluate_instances(truth, np.zeros_like(truth))  # 0 is a segment, never an object
    assert (unassigned["voi"], unassigned["adapted_rand_error"]) == (0.0, 0.0)
    assert (unassigned["match_precision"], unassigned["match_recall"], unassigned["match_f1"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        Contingency().add(truth, truth[:1])


def brute_force_confusion(truth, prediction, mask):
    counts = collections.Counter()
    for t, p, m in zip(truth.ravel().tolist(), prediction.ravel().tolist(), mask.ravel().tolist(), strict=True):
        if m:
            counts[(bool(t), bool(p))] += 1
    return counts[(True, True)], counts[(False, True)], counts[(True, False)], counts[(False, False)]


def test_confusion_counts_equal_brute_force_and_formulas():
    rng = np.random.default_rng(3)
    truth, mask = rng.random(SHAPE) < 0.3, random_mask()
    prediction = rng.integers(0, 4, SHAPE) * (rng.random(SHAPE) < 0.4)  # nonzero is foreground
    counts = ConfusionCounts()
    counts.add(truth, prediction, mask)
    tp, fp, fn, tn = brute_force_confusion(truth, prediction, mask)
    counted = (counts.true_positives, counts.false_positives, counts.false_negatives, counts.true_negatives)
    assert counted == (tp, fp, fn, tn)
    assert counts.scores() == pytest.approx(
        {
            "f1": 2 * tp / (2 * tp + fp + fn),
            "jaccard": tp / (tp + fp + fn),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "false_positive_rate": fp / (fp + tn),
            "false_negative_rate": fn / (fn + tp),
        },
        abs=1e-12,
    )
    blockwise = ConfusionCounts()
    for block in split_into_blocks(4):
        part = ConfusionCounts()
        part.add(truth[block], prediction[block], mask[block])
        blockwise = blockwise + part
    assert blockwise.scores() == counts.scores()


def test_semantic_empty_cases():
    empty, full = np.zeros((4, 5), bool), np.ones((4, 5), bool)
    both_empty = ConfusionCounts()
    both_empty.add(empty, empty)
    rates = {"false_positive_rate", "false_negative_rate"}
    assert both_empty.scores() == {key: float(key not in rates) for key in both_empty.scores()}
    nothing_predicted = ConfusionCounts()
    nothing_predicted.add(full, empty)
    assert nothing_predicted.scores() == {key: float(key == "false_negative_rate") for key in both_empty.scores()}
    assert hausdorff(empty, empty, (1, 1)) == {"hausdorff": 0.0, "hausdorff95": 0.0}
    assert hausdorff(full, empty, (1, 1)) == {"hausdorff": math.inf, "hausdorff95": math.inf}


def test_distance_to_equals_scipy():
    foreground = np.random.default_rng(4).random(SHAPE) < 0.02
    expected = ndimage.distance_transform_edt(~foreground, sampling=(4, 2, 2))
    assert distance_to(foreground, (4, 2, 2)) == pytest.approx(expected, rel=1e-6)
    assert np.isinf(distance_to(np.zeros((3, 3), bool), (1, 1))).all()


def test_tolerance_forgives_near_misses_only():
    truth = np.zeros((8, 8, 20), bool)
    truth[2:6, 2:6, 5:10] = True
    shifted_x = np.roll(truth, 1, axis=2)  # one voxel along x: 2 nm away
    shifted_z = np.roll(truth, 1, axis=0)  # one voxel along z: 4 nm away
    far = shifted_x.copy()
    far[2:4, 2:4, 16:18] = True  # a blob 7 voxels (14 nm) from the truth

    def counts(prediction, tolerance):
        result = ConfusionCounts(tolerance, (4, 2, 2))
        result.add(truth, prediction)
        return result.true_positives, result.false_positives, result.false_negatives, result.true_negatives

    assert counts(shifted_x, 0) == (64, 16, 16, truth.size - 96)
    assert counts(shifted_x, 1.9) == counts(shifted_x, 0)
    assert counts(shifted_x, 2) == (64, 0, 0, truth.size - 96)  # the 32 near misses are not counted
    assert counts(shifted_z, 2) == counts(shifted_z, 0)
    assert counts(shifted_z, 4)[1:3] == (0, 0)
    assert counts(far, 2) == (64, 8, 0, truth.size - 104)


def test_tolerance_blockwise_with_context_equals_whole():
    rng = np.random.default_rng(5)
    truth = ndimage.gaussian_filter(rng.random(SHAPE), 1.5) > 0.5
    prediction = ndimage.gaussian_filter(rng.random(SHAPE), 1.5) > 0.5
    mask = random_mask()
    whole = ConfusionCounts(4, (4, 2, 2))
    whole.add(truth, prediction, mask)
    blockwise, margin = ConfusionCounts(4, (4, 2, 2)), 1  # 1 voxel of 4 nm along z covers the tolerance
    for begin, end in [(0, 5), (5, 12)]:
        grown = slice(max(begin - margin, 0), min(end + margin, SHAPE[0]))
        core = np.zeros(SHAPE, bool)
        core[begin:end] = True
        blockwise.add(truth[grown], prediction[grown], (mask & core)[grown])
    assert vars(blockwise) == vars(whole)
    assert whole.false_positives > 0 and whole.false_negatives > 0


def surface_points(foreground, voxel_size):
    """World coordinates of foreground voxels with a face neighbour outside the foreground."""
    padded = np.pad(foreground, 1)
    inner = tuple(slice(1, -1) for _ in foreground.shape)
    exposed = np.zeros_like(foreground)
    for axis, step in itertools.product(range(foreground.ndim), (-1, 1)):
        exposed |= ~np.roll(padded, step, axis=axis)[inner]
    return np.argwhere(foreground & exposed) * np.asarray(voxel_size, float)


@pytest.mark.parametrize("voxel_size", [(4, 2, 2), (1, 3, 1)])
def test_hausdorff_equals_scipy_on_surface_points(voxel_size):
    rng = np.random.default_rng(6)
    truth = ndimage.gaussian_filter(rng.random((10, 14, 16)), 2) > 0.5
    prediction = ndimage.gaussian_filter(rng.random((10, 14, 16)), 2) > 0.52
    a, b = surface_points(truth, voxel_size), surface_points(prediction, voxel_size)
    distances = cdist(a, b)
    pooled = np.concatenate([distances.min(axis=1), distances.min(axis=0)])
    result = hausdorff(truth, prediction, voxel_size)
    assert result["hausdorff"] == pytest.approx(max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0]), rel=1e-6)
    assert result["hausdorff95"] == pytest.approx(np.percentile(pooled, 95), rel=1e-6)
    assert 0 < result["hausdorff95"] < result["hausdorff"]
    assert hausdorff(prediction, truth, voxel_size) == pytest.approx(result)


def test_evaluate_semantic_per_class():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, SHAPE)
    prediction = np.where(rng.random(SHAPE) < 0.8, truth, rng.integers(0, 3, SHAPE))
    mask = random_mask()
    scores = evaluate_semantic(truth, prediction, [1, 2], (4, 2, 2), mask=mask, tolerance=0)
    assert list(scores) == [1, 2]
    for class_id, class_scores in scores.items():
        counts = ConfusionCounts()
        counts.add(truth == class_id, prediction == class_id, mask)
        expected = counts.scores() | hausdorff((truth == class_id) & mask, (prediction == class_id) & mask, (4, 2, 2))
        assert class_scores == expected


def test_registry_covers_every_score_and_picks_the_best():
    truth, prediction, mask = CASES["structured-masked"]
    perfect = evaluate_instances(truth, truth, mask) | evaluate_semantic(truth % 2, truth % 2, [1], (4, 2, 2))[1]
    imperfect = evaluate_semantic(truth % 2, prediction % 2, [1], (4, 2, 2))[1]
    noisy = evaluate_instances(truth, prediction, mask) | imperfect
    assert not COUNTS & HIGHER_IS_BETTER.keys()
    assert set(perfect) == HIGHER_IS_BETTER.keys() | COUNTS
    for metric in HIGHER_IS_BETTER:
        assert better(metric, perfect[metric], noisy[metric]), metric
        assert not better(metric, noisy[metric], perfect[metric]), metric
        assert best(metric, {"noisy": noisy[metric], "perfect": perfect[metric], "nan": math.nan}) == "perfect"
    assert best("voi", {"a": 1.0, "b": 1.0}) == "a"
    assert best("f1", {"a": math.nan}) == "a"
    with pytest.raises(UserError, match="voi_split"):
        better("accuracy", 1, 0)
    with pytest.raises(UserError):
        best("voxels", {"a": 1})


def test_any_integer_dtype_gives_the_same_scores():
    """Signed and narrow ids (int64 from numpy, uint16 from a file) score like uint64 ones; no -0.0."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 6, (12, 12, 12))
    prediction = truth * 2 + (rng.random(truth.shape) < 0.1)
    expected = evaluate_instances(truth.astype(np.uint64), prediction.astype(np.uint64))
    for dtype in (np.int64, np.int32, np.uint16):
        assert evaluate_instances(truth.astype(dtype), prediction.astype(dtype)) == expected
    perfect = evaluate_instances(truth, truth)
    assert math.copysign(1.0, perfect["voi"]) == 1.0 and perfect["voi"] == 0.0
