"""``RUN/best.json``: validation's best iteration, post-processing and value per criterion (written by
:func:`alfine.validation.selection.write_best`), read here by whoever means a run's ``best`` checkpoint."""

from __future__ import annotations

import json

from ..errors import UserError
from .directory import RunDirectory

FILE = "best.json"


def read_best(run_url: str) -> dict:
    """The run's ``best.json``; a :class:`UserError` when the run has not been validated."""
    run_dir = RunDirectory(run_url)
    path = run_dir.file(FILE)
    if not run_dir.fs.exists(path):
        checkpoints = run_dir.checkpoints()
        by_number = f"or choose a checkpoint by number (--iteration N; it has {checkpoints})" if checkpoints else \
            f"and it has no checkpoints yet: train it first (alfine-train --run {run_url})"
        config = run_dir.read_config()
        if config is not None and not config.datasplit.validate:
            raise UserError(f"{run_url} has no {FILE}: its datasplit has no validate datasets, so no best "
                            f"iteration can be chosen; add some (role validate) {by_number}")
        raise UserError(f"{run_url} has no {FILE}: run alfine-validate --run {run_url} first, {by_number}")
    return json.loads(run_dir.fs.cat_file(path))


def best_for(run_url: str, criterion: str | None = None) -> dict:
    """The best ENTRY averaged over the validation datasets for ``criterion`` (default: the run's main
    metric); a :class:`UserError` naming the known criteria for an unknown one."""
    best = read_best(run_url)
    criterion = criterion or best["main_metric"]
    choice = best["metrics"].get(criterion)
    if choice is not None and choice["average"] is None and choice.get("none_because"):
        raise UserError(f"{run_url}/{FILE} has no best iteration for criterion {criterion!r}: "
                        f"{choice['none_because']}; train longer or widen the post-processing grid")
    if choice is None or choice["average"] is None:
        known = ", ".join(m for m, b in best["metrics"].items() if b["average"] is not None) or "none"
        raise UserError(f"{run_url}/{FILE} has no best iteration for criterion {criterion!r}; known: {known}")
    return choice["average"]
