"""``validation.png``: the chosen metrics over iterations, one line per validation dataset."""

from __future__ import annotations

import io

from .scores import flat_scores, metric_direction

SHOWN = {"instance": ("voi", "adapted_rand_error", "match_f1"), "semantic": ("f1", "jaccard")}


def best_per_iteration(rows: list[dict], dataset: str, metric: str) -> tuple[list[int], list[float]]:
    """For ``dataset``, the best value of ``metric`` over the post-processing parameters, per iteration
    (degenerate segmentations left out, as model selection leaves them out)."""
    values: dict[int, float] = {}
    higher = metric_direction(metric)
    for row in rows:
        if row["dataset"] != dataset or row.get("degenerate"):
            continue
        value = flat_scores(row["scores"]).get(metric)
        if value is None or value != value:  # missing or NaN
            continue
        it = row["iteration"]
        if it not in values or (value > values[it] if higher else value < values[it]):
            values[it] = value
    iterations = sorted(values)
    return iterations, [values[i] for i in iterations]


def validation_png(rows: list[dict], evaluation: str) -> bytes:
    """A PNG with one panel per shown metric of the ``evaluation`` kind (best over parameters per iteration)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    metrics = SHOWN[evaluation]
    datasets = sorted({row["dataset"] for row in rows})
    figure, axes = pyplot.subplots(len(metrics), 1, figsize=(8, 2.5 * len(metrics)), sharex=True, squeeze=False)
    for axis, metric in zip(axes[:, 0], metrics, strict=True):
        for dataset in datasets:
            iterations, values = best_per_iteration(rows, dataset, metric)
            axis.plot(iterations, values, marker="o", markersize=3, label=dataset)
        arrow = "higher" if metric_direction(metric) else "lower"
        axis.set_ylabel(f"{metric}\n({arrow} is better)")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    axes[-1, 0].set_xlabel("iteration")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
