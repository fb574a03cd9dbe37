"""alfine-evaluate: blockwise scores equal independent whole-volume references."""

import json

import numpy as np
import pytest
from funlib.geometry import Roi
from skimage.metrics import adapted_rand_error, variation_of_information

import alfine.jobs.evaluate as job
from alfine.evaluation import ConfusionCounts
from alfine.synthetic import SyntheticParams, generate_block
from alfine.volumes import prepare_volume
from alfine_tools.evaluate import main

VOXEL = (8, 4, 4)
SHAPE = (20, 40, 36)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    arrays = generate_block(SHAPE, VOXEL, (0, 0, 0), (0, 0, 0), SHAPE, SyntheticParams(seed=2, cell_size=90.0))
    rng = np.random.default_rng(0)
    # A flawed segmentation: one cell split in two, two cells merged, some voxels unassigned.
    seg = arrays["labels"].copy()
    ids, sizes = np.unique(seg[(arrays["mask"] != 0) & (seg != 0)], return_counts=True)
    largest = ids[np.argsort(sizes)[::-1]]  # the flaws must lie inside the mask to count
    half = (seg == largest[0]) & (np.indices(SHAPE)[2] > np.median(np.nonzero(seg == largest[0])[2]))
    seg[half] = seg.max() + 1  # small ids: the scikit-image reference builds a table as wide as the largest id
    seg[seg == largest[2]] = largest[1]
    seg[rng.random(SHAPE) < 0.02] = 0
    classes_pred = arrays["classes"].copy()
    classes_pred[rng.random(SHAPE) < 0.05] = 1
    roi = Roi((0, 0, 0), tuple(s * v for s, v in zip(SHAPE, VOXEL, strict=True)))
    for name, data in {"labels": arrays["labels"], "seg": seg, "mask": arrays["mask"], "classes": arrays["classes"],
                       "classes_pred": classes_pred}.items():
        prepare_volume(f"{root}/d.zarr/{name}", roi, VOXEL, data.dtype, (10, 20, 18)).write(roi, data)
    return root, arrays, seg, classes_pred


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(job, "BLOCK_EDGE", 8)  # many blocks, partial ones at the ends


def _evaluate(capsys, *args):
    code = main(["--no-progress", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_instance_scores_equal_scikit_image(data, capsys):
    root, arrays, seg, _ = data
    summary = _evaluate(capsys, "--truth", f"{root}/d.zarr/labels", "--prediction", f"{root}/d.zarr/seg",
                        "--mask", f"{root}/d.zarr/mask")
    scores = summary["scores"]
    inside = (arrays["mask"] != 0) & (arrays["labels"] != 0)
    truth, pred = arrays["labels"][inside], seg[inside]
    split, merge = variation_of_information(truth, pred)  # H(pred|truth), H(truth|pred)
    assert scores["voi_split"] == pytest.approx(split, abs=1e-9)
    assert scores["voi_merge"] == pytest.approx(merge, abs=1e-9)
    assert scores["voi"] == pytest.approx(split + merge, abs=1e-9)
    error, skimage_precision, skimage_recall = adapted_rand_error(truth, pred)
    assert scores["adapted_rand_error"] == pytest.approx(error, abs=1e-9)
    # scikit-image returns precision and recall the other way round (its issue #6485)
    assert scores["rand_precision"] == pytest.approx(skimage_recall)
    assert scores["rand_recall"] == pytest.approx(skimage_precision)
    assert scores["voxels"] == int(inside.sum())
    assert scores["false_splits"] >= 1 and scores["false_merges"] >= 1
    assert summary["higher_is_better"]["voi"] is False and summary["higher_is_better"]["match_f1"] is True


def test_semantic_counts_equal_a_brute_force_count(data, capsys):
    root, arrays, _, classes_pred = data
    summary = _evaluate(capsys, "--kind", "semantic", "--classes", "1,2", "--truth", f"{root}/d.zarr/classes",
                        "--prediction", f"{root}/d.zarr/classes_pred", "--mask", f"{root}/d.zarr/mask")
    counted = arrays["mask"] != 0
    for c in (1, 2):
        t, p = (arrays["classes"] == c)[counted], (classes_pred == c)[counted]
        tp, fp, fn = (t & p).sum(), (~t & p).sum(), (t & ~p).sum()
        assert summary["scores"][str(c)]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert summary["scores"][str(c)]["jaccard"] == pytest.approx(tp / (tp + fp + fn))


def test_semantic_tolerance_blockwise_equals_whole_volume(data, capsys):
    root, arrays, _, classes_pred = data
    summary = _evaluate(capsys, "--kind", "semantic", "--classes", "2", "--tolerance", "8", "--hausdorff",
                        "--truth", f"{root}/d.zarr/classes", "--prediction", f"{root}/d.zarr/classes_pred")
    whole = ConfusionCounts(8.0, VOXEL)
    whole.add(arrays["classes"] == 2, classes_pred == 2)
    expected = whole.scores()
    for metric in ("f1", "precision", "recall", "jaccard"):
        assert summary["scores"]["2"][metric] == pytest.approx(expected[metric]), metric
    assert summary["scores"]["2"]["hausdorff"] >= 0


def test_metric_filter_and_task_classes(data, capsys, tmp_path):
    root, _, _, _ = data
    (tmp_path / "task.json").write_text(json.dumps({"kind": "semantic", "classes": {"cell": 1}}))
    summary = _evaluate(capsys, "--task", str(tmp_path / "task.json"), "--truth", f"{root}/d.zarr/classes",
                        "--prediction", f"{root}/d.zarr/classes_pred", "--metrics", "f1,recall")
    assert summary["kind"] == "semantic" and set(summary["scores"]["1"]) <= {"f1", "recall", "voxels"}
    assert set(summary["higher_is_better"]) == {"f1", "recall"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kind", "semantic"], "semantic evaluation needs --classes"),
        (["--metrics", "vio"], "--metrics: unknown metric 'vio'"),
        (["--roi", "0,0,0:8,8,800"], "is not inside"),
    ],
)
def test_bad_requests_exit_2(data, capsys, args, message):
    root, _, _, _ = data
    code = main(["--truth", f"{root}/d.zarr/labels", "--prediction", f"{root}/d.zarr/seg", *args])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err and captured.out == ""
