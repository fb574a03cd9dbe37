"""Model selection: for every metric, the best iteration and post-processing parameters.

``RUN/best.json`` (written whole or not at all)::

    {"main_metric": "voi", "degenerate_rows": 0,
     "metrics": {"voi": {"average": ENTRY, "datasets": {"val0": ENTRY, ...}}, ...}}

    ENTRY = {"iteration": 3000, "method": "mutex_watershed", "params": {"bias": -0.5},
             "channels": [0, 3] | null, "metric": "voi", "value": 0.41, "scores": {metric: value}}

``average`` is the best of the parameter sets scored on every validation dataset, by the mean
of the metric over the datasets (``scores`` then holds the means); each dataset's entry is the
best on that dataset alone. Whether higher is better comes from
:data:`~alfine.evaluation.HIGHER_IS_BETTER`; NaN never wins.

A *degenerate* segmentation is never chosen: an instance segmentation with fewer than
:data:`MIN_OBJECTS` objects on the scored truth where the truth has at least :data:`MANY_OBJECTS`
(everything one object, or nothing at all; such a segmentation can still have the lowest VOI of a
poorly trained network). Its row carries ``"degenerate": true``; a parameter set degenerate on any
dataset has no average. When no candidate is left for a metric, its ``average`` is null and
``"none_because"`` says why; ``"degenerate_rows"`` counts the rows left out.
"""

from __future__ import annotations

import json
import math

from ..evaluation import better
from ..runs import RunDirectory
from ..runs.best import FILE
from .scores import flat_scores

MAIN_METRIC = {"instance": "voi", "semantic": "f1"}
MIN_OBJECTS = 2
"""A segmentation with fewer objects than this on the scored truth is degenerate when the truth has many."""
MANY_OBJECTS = 5
"""How many truth objects make a one-object (or empty) segmentation degenerate rather than plausible."""
DEGENERATE = f"fewer than {MIN_OBJECTS} objects where the truth has {MANY_OBJECTS} or more"


def main_metric(evaluation: str) -> str:
    """The criterion 'best' means when none is named: VOI for instances, mean F1 over classes for semantics."""
    return MAIN_METRIC[evaluation]


def is_degenerate(scores: dict) -> bool:
    """Whether the instance ``scores`` (with the ``truth_objects`` and ``predicted_objects`` counts of
    :func:`~alfine.evaluation.evaluate_instances`) are those of a degenerate segmentation (see the module).
    Semantic scores, and scores without those counts, are never degenerate."""
    truth, predicted = scores.get("truth_objects"), scores.get("predicted_objects")
    if not isinstance(truth, int | float) or not isinstance(predicted, int | float):
        return False
    return truth >= MANY_OBJECTS and predicted < MIN_OBJECTS


def _key(row: dict) -> str:
    return json.dumps([row["iteration"], row["method"], row["params"], row.get("channels")], sort_keys=True)


def _entry(row: dict, metric: str, scores: dict[str, float]) -> dict:
    return {"iteration": row["iteration"], "method": row["method"], "params": row["params"],
            "channels": row.get("channels"), "metric": metric, "value": scores[metric], "scores": scores}


def _best_of(candidates: list[tuple[dict, dict[str, float]]], metric: str) -> dict | None:
    """The entry of the best candidate (the first on ties; latest iteration first is not implied)."""
    chosen = None
    for row, scores in candidates:
        if metric not in scores:
            continue
        if chosen is None or better(metric.partition("/")[0], scores[metric], chosen[1][metric]):
            chosen = (row, scores)
    return None if chosen is None else _entry(chosen[0], metric, chosen[1])


def select_best(rows: list[dict]) -> dict[str, dict]:
    """For every metric in ``rows``: ``{"average": ENTRY | None, "datasets": {name: ENTRY}}``, plus
    ``"none_because"`` when ``average`` is None (see module). Rows marked ``"degenerate"`` are never chosen."""
    all_flat = [(row, flat_scores(row["scores"])) for row in rows]
    flat = [(row, scores) for row, scores in all_flat if not row.get("degenerate")]
    datasets = sorted({row["dataset"] for row in rows})
    metrics = sorted({metric for _, scores in all_flat for metric in scores})
    groups: dict[str, list[tuple[dict, dict[str, float]]]] = {}
    for row, scores in all_flat:
        groups.setdefault(_key(row), []).append((row, scores))
    averaged = []
    for members in groups.values():
        if sorted(row["dataset"] for row, _ in members) != datasets:
            continue  # scored on only some datasets: not comparable
        if any(row.get("degenerate") for row, _ in members):
            continue  # these parameters collapse on some dataset
        common = set.intersection(*(set(scores) for _, scores in members))
        means = {m: math.fsum(scores[m] for _, scores in members) / len(members) for m in sorted(common)}
        averaged.append((members[0][0], means))
    best = {}
    for metric in metrics:
        per_dataset = {name: _best_of([(r, s) for r, s in flat if r["dataset"] == name], metric) for name in datasets}
        best[metric] = {"average": _best_of(averaged, metric),
                        "datasets": {name: entry for name, entry in per_dataset.items() if entry is not None}}
        if best[metric]["average"] is None:
            best[metric]["none_because"] = _none_because(all_flat, metric)
    return best


def _none_because(flat: list[tuple[dict, dict[str, float]]], metric: str) -> str:
    """Why no parameter set is the best on average for ``metric``, for people."""
    scored = [row for row, scores in flat if metric in scores and not math.isnan(scores[metric])]
    if scored and all(row.get("degenerate") for row in scored):
        return f"every validated segmentation is degenerate ({DEGENERATE})"
    if any(row.get("degenerate") for row in scored):
        return f"every parameter set is degenerate ({DEGENERATE}) or unscored on some validation dataset"
    return "no parameter set has a score on every validation dataset"


def degenerate_rows(rows: list[dict]) -> int:
    """How many of ``rows`` are marked degenerate (left out of the selection)."""
    return sum(1 for row in rows if row.get("degenerate"))


def write_best(run_dir: RunDirectory, best: dict[str, dict], main: str, degenerate: int = 0) -> None:
    """Store ``best`` (from :func:`select_best`) as ``RUN/best.json``, atomically, with how many rows were
    ``degenerate`` (left out)."""
    stored = {"main_metric": main, "metrics": best, "degenerate_rows": degenerate}
    run_dir.write_text(FILE, json.dumps(stored, indent=1, sort_keys=True) + "\n")


def keep_iterations(best: dict[str, dict], latest: int) -> set[int]:
    """The iterations whose validation outputs are worth keeping: best for some criterion, and the latest."""
    keep = {latest}
    for choice in best.values():
        entries = [choice["average"], *choice["datasets"].values()]
        keep |= {entry["iteration"] for entry in entries if entry is not None}
    return keep
