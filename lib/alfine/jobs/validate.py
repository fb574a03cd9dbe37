"""validate: score a run's checkpoints on its validation datasets and record the best per criterion.

Each chosen iteration is validated by :func:`alfine.validation.run.validate_iteration` (predict, sweep the
task's post-processing grid, score); its rows replace the iteration's rows in ``validation.jsonl``, then
``best.json`` is recomputed, ``validation.png`` redrawn and validation outputs pruned to the best iterations
and the latest.
"""

from __future__ import annotations

import logging

from ..errors import UserError
from ..runs import RunDirectory
from ..validation import ValidationLog, keep_iterations, main_metric, select_best, write_best
from ..validation.plot import validation_png
from ..validation.run import choose_iterations, prune, validate_iteration
from ..validation.selection import DEGENERATE, degenerate_rows

log = logging.getLogger(__name__)


def validate(run_url: str, iteration: int | None = None, every: bool = False, device: str = "auto",
             workers: int = 1, report: bool = True) -> dict:
    """Validate the chosen iterations of the run at ``run_url`` (default: its latest checkpoint); the
    summary holds the best iteration, post-processing and value per criterion, averaged over datasets
    (also logged for people when ``report``)."""
    run_dir = RunDirectory(run_url)
    run = run_dir.config()
    if not run.datasplit.validate:
        raise UserError(f"{run_url}: the run's datasplit has no validate datasets; add some (role validate) to "
                        f"validate, or export a checkpoint by number (alfine-export-model --run {run_url} "
                        "--iteration N)")
    scores_log = ValidationLog(run_dir)
    chosen = choose_iterations(run_dir, iteration, every)
    for it in chosen:
        log.info("validating iteration %d on %d dataset(s)", it, len(run.datasplit.validate))
        scores_log.replace(it, validate_iteration(run_dir, run, it, device, workers))
    rows = scores_log.rows()
    main = main_metric(run.task.evaluation)
    summary = {"run": run_url, "validated": chosen, "main_metric": main,
               "scored_regions": {row["dataset"]: row["scored_roi"] for row in rows if "scored_roi" in row}}
    if not rows:
        return summary | {"best": {}}
    best = select_best(rows)
    degenerate = degenerate_rows(rows)
    write_best(run_dir, best, main, degenerate)
    run_dir.write_bytes("validation.png", validation_png(rows, run.task.evaluation))
    prune(run_dir, keep_iterations(best, max(scores_log.iterations())))
    averages = {metric: choice["average"] for metric, choice in best.items() if choice["average"] is not None}
    no_best = {metric: choice["none_because"] for metric, choice in best.items() if choice["average"] is None}
    if degenerate:
        log.warning("%d of %d validation segmentations are degenerate (%s) and never chosen", degenerate,
                    len(rows), DEGENERATE)
    if main in no_best:  # said even when not reporting: nothing can be exported or applied as 'best'
        log.warning("no best %s: %s", main, no_best[main])
    if report:
        _log_summary(averages, main)
    for entry in averages.values():
        entry.pop("scores")
    return summary | {"best": averages, "no_best": no_best, "degenerate_rows": degenerate,
                      "best_json": f"{run_url}/best.json", "plot": f"{run_url}/validation.png"}


def _log_summary(averages: dict[str, dict], main: str) -> None:
    """The best per criterion, for people, on stderr (the main metric first)."""
    for metric in sorted(averages, key=lambda m: (m != main, m)):
        entry = averages[metric]
        if "/" in metric or metric not in (main, "voi", "adapted_rand_error", "match_f1", "f1", "jaccard"):
            continue
        params = ", ".join(f"{k}={v}" for k, v in entry["params"].items()) or "no parameters"
        log.info("best %s: %.4f at iteration %d with %s (%s)", metric, entry["value"], entry["iteration"],
                 entry["method"], params)
