"""The validation scores of a run: ``RUN/validation.jsonl``, one row per (iteration, dataset, parameters).

A row is ``{"iteration", "dataset", "method", "params", "channels", "scores", "scored_roi",
"degenerate"}``; ``scores`` are the evaluator's (instance metrics and counts, or per-class semantic
ones keyed by class id), ``scored_roi`` the region they cover (world units, ``BEGIN:END`` as
``--roi`` takes it) and ``degenerate`` whether model selection leaves the row out (rows written
before these two fields lack them). Rows of an iteration are replaced as a whole when it is
validated again, never appended twice.
"""

from __future__ import annotations

import json
import math

from ..evaluation import COUNTS, HIGHER_IS_BETTER
from ..runs import RunDirectory

FILE = "validation.jsonl"


def flat_scores(scores: dict) -> dict[str, float]:
    """Every metric of ``scores`` as one number: instance metrics as they are; per-class semantic
    metrics as ``"f1/1"`` (metric/class id) and, over all classes, their mean as ``"f1"``.
    Counts (e.g. ``voxels``) and unknown keys are left out."""
    flat: dict[str, float] = {}
    per_class: dict[str, list[float]] = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            for metric, number in value.items():
                if metric in HIGHER_IS_BETTER:
                    flat[f"{metric}/{key}"] = float(number)
                    per_class.setdefault(metric, []).append(float(number))
        elif key in HIGHER_IS_BETTER and key not in COUNTS:
            flat[key] = float(value)
    for metric, values in per_class.items():
        flat[metric] = math.fsum(values) / len(values)
    return flat


def metric_direction(metric: str) -> bool:
    """Whether higher is better for a flat metric name (``"f1/1"`` points as ``"f1"``)."""
    return HIGHER_IS_BETTER[metric.partition("/")[0]]


class ValidationLog:
    """The rows of ``RUN/validation.jsonl``."""

    def __init__(self, run_dir: RunDirectory):
        self.run_dir = run_dir

    def rows(self) -> list[dict]:
        """All rows, in the order of their iterations (rows of one iteration in the order written)."""
        path = self.run_dir.file(FILE)
        if not self.run_dir.fs.exists(path):
            return []
        text = self.run_dir.fs.cat_file(path).decode()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return sorted(rows, key=lambda row: row["iteration"])

    def iterations(self) -> list[int]:
        """The validated iterations, ascending."""
        return sorted({row["iteration"] for row in self.rows()})

    def replace(self, iteration: int, rows: list[dict]) -> None:
        """Make ``rows`` the only rows of ``iteration`` (the file is rewritten whole, atomically)."""
        if any(row["iteration"] != iteration for row in rows):
            raise ValueError(f"rows of another iteration than {iteration} given")
        kept = [row for row in self.rows() if row["iteration"] != iteration]
        merged = sorted(kept + rows, key=lambda row: row["iteration"])
        self.run_dir.write_text(FILE, "".join(json.dumps(row, sort_keys=True) + "\n" for row in merged))
