"""Model selection from staged validation scores: direction of each metric, averages, re-validation, pruning,
degenerate segmentations; the scored region."""

import json
import math

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi

from alfine.errors import UserError
from alfine.evaluation import evaluate_instances
from alfine.runs import RunDirectory
from alfine.validation import ValidationLog, best_for, flat_scores, keep_iterations, select_best, write_best
from alfine.validation.plot import best_per_iteration, validation_png
from alfine.validation.run import scored_region
from alfine.validation.selection import MANY_OBJECTS, degenerate_rows, is_degenerate


def row(iteration, dataset, threshold, **scores):
    return {"iteration": iteration, "dataset": dataset, "method": "connected_components",
            "params": {"threshold": threshold}, "channels": None, "scores": scores}


STAGED = [
    # voi (lower is better) is best at iteration 200, threshold 0.5 on average;
    # match_f1 (higher is better) is best at iteration 300, threshold 0.7
    row(100, "a", 0.5, voi=2.0, match_f1=0.2, voxels=10), row(100, "b", 0.5, voi=2.2, match_f1=0.3, voxels=10),
    row(200, "a", 0.5, voi=0.4, match_f1=0.5, voxels=10), row(200, "b", 0.5, voi=0.6, match_f1=0.4, voxels=10),
    row(200, "a", 0.7, voi=0.9, match_f1=0.6, voxels=10), row(200, "b", 0.7, voi=0.3, match_f1=0.6, voxels=10),
    row(300, "a", 0.7, voi=1.5, match_f1=0.9, voxels=10), row(300, "b", 0.7, voi=1.0, match_f1=0.8, voxels=10),
]


def test_lower_and_higher_is_better_metrics_pick_their_own_best():
    best = select_best(STAGED)
    voi, f1 = best["voi"]["average"], best["match_f1"]["average"]
    assert (voi["iteration"], voi["params"], voi["value"]) == (200, {"threshold": 0.5}, pytest.approx(0.5))
    assert (f1["iteration"], f1["params"], f1["value"]) == (300, {"threshold": 0.7}, pytest.approx(0.85))
    # per dataset, b alone prefers threshold 0.7 at iteration 200 for voi
    assert best["voi"]["datasets"]["b"]["params"] == {"threshold": 0.7}
    assert best["voi"]["datasets"]["a"]["params"] == {"threshold": 0.5}
    assert "voxels" not in best  # a count, not a metric


def test_nan_never_wins_and_partial_parameter_sets_are_not_averaged():
    rows = [row(1, "a", 0.5, voi=math.nan), row(1, "b", 0.5, voi=math.nan),
            row(2, "a", 0.5, voi=3.0), row(2, "b", 0.5, voi=3.0),
            row(3, "a", 0.5, voi=0.1)]  # only on one dataset: not comparable on average
    best = select_best(rows)["voi"]
    assert best["average"]["iteration"] == 2
    assert best["datasets"]["a"]["iteration"] == 3


def test_semantic_scores_flatten_per_class_and_average_over_classes():
    scores = {"1": {"f1": 0.5, "jaccard": 0.2}, "2": {"f1": 0.9, "jaccard": 0.4}}
    flat = flat_scores(scores)
    assert flat["f1/1"] == 0.5 and flat["f1/2"] == 0.9 and flat["f1"] == pytest.approx(0.7)
    rows = [{"iteration": 1, "dataset": "a", "method": "threshold", "params": {"threshold": t}, "channels": None,
             "scores": {"1": {"f1": f}, "2": {"f1": g}}} for t, f, g in ((0.3, 0.9, 0.1), (0.5, 0.6, 0.7))]
    best = select_best(rows)
    assert best["f1/1"]["average"]["params"] == {"threshold": 0.3}
    assert best["f1"]["average"]["params"] == {"threshold": 0.5}


def test_revalidating_replaces_rows_and_best_json_answers_best_for(tmp_path):
    run_dir = RunDirectory(str(tmp_path / "run"))
    scores = ValidationLog(run_dir)
    for iteration in (100, 200, 300):
        scores.replace(iteration, [r for r in STAGED if r["iteration"] == iteration])
    scores.replace(200, [r for r in STAGED if r["iteration"] == 200])
    assert len(scores.rows()) == len(STAGED) and scores.iterations() == [100, 200, 300]
    scores.replace(100, [])  # an iteration can lose its rows
    assert scores.iterations() == [200, 300]
    with pytest.raises(UserError, match="run alfine-validate"):
        best_for(run_dir.url)
    write_best(run_dir, select_best(scores.rows()), "voi")
    assert best_for(run_dir.url)["iteration"] == 200
    assert best_for(run_dir.url, "match_f1")["iteration"] == 300
    with pytest.raises(UserError, match="no best iteration for criterion 'dice'"):
        best_for(run_dir.url, "dice")
    stored = json.loads((tmp_path / "run" / "best.json").read_text())
    assert stored["main_metric"] == "voi"


def test_only_best_and_latest_iterations_are_kept():
    best = select_best([r for r in STAGED if r["iteration"] in (100, 200)])
    # 200 wins every criterion on average and per dataset; 100 loses everywhere
    assert keep_iterations(best, 400) == {200, 400}


def test_the_plot_shows_the_best_value_per_iteration():
    assert best_per_iteration(STAGED, "b", "voi") == ([100, 200, 300], [2.2, 0.3, 1.0])
    assert best_per_iteration(STAGED, "a", "match_f1") == ([100, 200, 300], [0.2, 0.6, 0.9])
    assert validation_png(STAGED, "instance")[:8] == b"\x89PNG\r\n\x1a\n"


def counted(row_, truth_objects, predicted_objects, degenerate):
    row_["scores"] |= {"truth_objects": truth_objects, "predicted_objects": predicted_objects}
    return row_ | {"degenerate": degenerate}


def test_a_degenerate_segmentation_is_never_chosen_even_with_the_best_voi(tmp_path):
    # threshold 0.9 merges everything into one object: the lowest VOI of an untrained network, and useless
    rows = [counted(row(100, "a", 0.9, voi=0.1, match_f1=0.0), 40, 1, True),
            counted(row(100, "b", 0.9, voi=0.2, match_f1=0.0), 30, 1, True),
            counted(row(100, "a", 0.5, voi=1.0, match_f1=0.3), 40, 12, False),
            counted(row(100, "b", 0.5, voi=1.2, match_f1=0.2), 30, 9, False),
            counted(row(200, "a", 0.9, voi=0.3, match_f1=0.1), 40, 25, False),  # b collapses with these params
            counted(row(200, "b", 0.9, voi=0.05, match_f1=0.0), 30, 0, True)]
    best = select_best(rows)
    assert best["voi"]["average"]["params"] == {"threshold": 0.5} and best["voi"]["average"]["iteration"] == 100
    assert best["voi"]["datasets"]["a"]["iteration"] == 200 and best["voi"]["datasets"]["b"]["iteration"] == 100
    assert "none_because" not in best["voi"]
    run_dir = RunDirectory(str(tmp_path / "run"))
    write_best(run_dir, best, "voi", degenerate_rows(rows))
    assert best_for(run_dir.url)["params"] == {"threshold": 0.5}
    assert json.loads((tmp_path / "run" / "best.json").read_text())["degenerate_rows"] == 3
    assert keep_iterations(best, 200) == {100, 200}


def test_when_every_segmentation_is_degenerate_there_is_no_best_and_best_for_says_why(tmp_path):
    rows = [counted(row(1, "a", t, voi=v), 8, n, True) for t, v, n in ((0.5, 0.3, 1), (0.7, 0.2, 0))]
    best = select_best(rows)
    assert best["voi"]["average"] is None and best["voi"]["datasets"] == {}
    assert "every validated segmentation is degenerate" in best["voi"]["none_because"]
    run_dir = RunDirectory(str(tmp_path / "run"))
    write_best(run_dir, best, "voi", degenerate_rows(rows))
    with pytest.raises(UserError, match="no best iteration for criterion 'voi': every validated segmentation "
                                        "is degenerate"):
        best_for(run_dir.url)
    assert keep_iterations(best, 1) == {1}


def test_degenerate_means_fewer_than_two_objects_where_the_truth_has_many():
    assert is_degenerate({"voi": 0.1, "truth_objects": MANY_OBJECTS, "predicted_objects": 1})
    assert is_degenerate({"voi": 0.1, "truth_objects": 50, "predicted_objects": 0})
    assert not is_degenerate({"voi": 0.1, "truth_objects": 50, "predicted_objects": 2})
    assert not is_degenerate({"voi": 0.1, "truth_objects": MANY_OBJECTS - 1, "predicted_objects": 1})
    assert not is_degenerate({"voi": 0.1})  # rows of before the counts, and semantic scores
    scores = evaluate_instances(np.arange(1, 9).reshape(2, 2, 2), np.ones((2, 2, 2), np.uint64))
    assert (scores["truth_objects"], scores["predicted_objects"]) == (8, 1) and is_degenerate(scores)
    assert "truth_objects" not in flat_scores(scores)  # counts, not metrics


def test_the_scored_region_leaves_out_the_context_band_only_where_the_raw_ends():
    labels = Roi((0, 0, 0), (160, 160, 160))
    voxel, context = Coordinate(8, 8, 8), Coordinate(32, 32, 32)  # a context of 4 voxels per side
    assert scored_region(labels, voxel, labels, context) == Roi((32, 32, 32), (96, 96, 96))
    assert scored_region(labels, voxel, labels.grow(context, context), context) == labels
    assert scored_region(labels, voxel, labels.grow(context * 2, context * 2), context) == labels
    # raw beyond the labels on z's low face only, and 2 voxels (of the 4) beyond on x's high face
    raw = Roi((-32, 0, 0), (192, 160, 176))
    assert scored_region(labels, voxel, raw, context) == Roi((0, 32, 32), (128, 96, 112))
    # a context not a multiple of the voxel size leaves out whole voxels
    assert scored_region(labels, voxel, labels, Coordinate(20, 0, 0)) == Roi((24, 0, 0), (112, 160, 160))
    assert scored_region(Roi((0, 0, 0), (56, 160, 160)), voxel, Roi((0, 0, 0), (56, 160, 160)), context) is None
