"""Model selection: for every metric, the best iteration and post-processing parameters.

``RUN/best.json`` (written whole or not at all)::

    {"main_metric": "voi",
     "metrics": {"voi": {"average": ENTRY, "datasets": {"val0": ENTRY, ...}}, ...}}

    ENTRY = {"iteration": 3000, "method": "mutex_watershed", "params": {"bias": -0.5},
             "channels": [0, 3] | null, "metric": "voi", "value": 0.41, "scores": {metric: value}}

``average`` is the best of the parameter sets scored on every validation dataset, by the mean
of the metric over the datasets (``scores`` then holds the means); each dataset's entry is the
best on that dataset alone. Whether higher is better comes from
:data:`~alfine.evaluation.HIGHER_IS_BETTER`; NaN never wins.
"""

from __future__ import annotations

import json
import math

from ..errors import UserError
from ..evaluation import better
from ..training.rundir import RunDirectory
from .scores import flat_scores

FILE = "best.json"
MAIN_METRIC = {"instance": "voi", "semantic": "f1"}


def main_metric(evaluation: str) -> str:
    """The criterion 'best' means when none is named: VOI for instances, mean F1 over classes for semantics."""
    return MAIN_METRIC[evaluation]


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
    """For every metric in ``rows``: ``{"average": ENTRY | None, "datasets": {name: ENTRY}}`` (see module)."""
    flat = [(row, flat_scores(row["scores"])) for row in rows]
    datasets = sorted({row["dataset"] for row in rows})
    metrics = sorted({metric for _, scores in flat for metric in scores})
    groups: dict[str, list[tuple[dict, dict[str, float]]]] = {}
    for row, scores in flat:
        groups.setdefault(_key(row), []).append((row, scores))
    averaged = []
    for members in groups.values():
        if sorted(row["dataset"] for row, _ in members) != datasets:
            continue  # scored on only some datasets: not comparable
        common = set.intersection(*(set(scores) for _, scores in members))
        means = {m: math.fsum(scores[m] for _, scores in members) / len(members) for m in sorted(common)}
        averaged.append((members[0][0], means))
    best = {}
    for metric in metrics:
        per_dataset = {name: _best_of([(r, s) for r, s in flat if r["dataset"] == name], metric) for name in datasets}
        best[metric] = {"average": _best_of(averaged, metric),
                        "datasets": {name: entry for name, entry in per_dataset.items() if entry is not None}}
    return best


def write_best(run_dir: RunDirectory, best: dict[str, dict], main: str) -> None:
    """Store ``best`` (from :func:`select_best`) as ``RUN/best.json``, atomically."""
    run_dir.write_text(FILE, json.dumps({"main_metric": main, "metrics": best}, indent=1, sort_keys=True) + "\n")


def read_best(run_url: str) -> dict:
    """The run's ``best.json``; a :class:`UserError` when the run has not been validated."""
    run_dir = RunDirectory(run_url)
    path = run_dir.file(FILE)
    if not run_dir.fs.exists(path):
        raise UserError(f"{run_url} has no {FILE}: run alfine-validate --run {run_url} first")
    return json.loads(run_dir.fs.cat_file(path))


def best_for(run_url: str, criterion: str | None = None) -> dict:
    """The best ENTRY averaged over the validation datasets for ``criterion`` (default: the run's main
    metric); a :class:`UserError` naming the known criteria for an unknown one."""
    best = read_best(run_url)
    criterion = criterion or best["main_metric"]
    if criterion not in best["metrics"] or best["metrics"][criterion]["average"] is None:
        known = ", ".join(m for m, b in best["metrics"].items() if b["average"] is not None)
        raise UserError(f"{run_url}/{FILE} has no best iteration for criterion {criterion!r}; known: {known}")
    return best["metrics"][criterion]["average"]


def keep_iterations(best: dict[str, dict], latest: int) -> set[int]:
    """The iterations whose validation outputs are worth keeping: best for some criterion, and the latest."""
    keep = {latest}
    for choice in best.values():
        entries = [choice["average"], *choice["datasets"].values()]
        keep |= {entry["iteration"] for entry in entries if entry is not None}
    return keep
