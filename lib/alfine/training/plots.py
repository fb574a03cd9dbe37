"""The loss curve of a run as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import io

import numpy as np


def loss_png(stats: list[dict]) -> bytes:
    """A PNG of the loss per iteration (and its running mean) and the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    iterations = np.array([s["iteration"] for s in stats])
    loss = np.array([s["loss"] for s in stats])
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    top.plot(iterations, loss, color="0.75", linewidth=0.8, label="loss")
    window = max(1, len(loss) // 50)
    if len(loss) >= window > 1:
        mean = np.convolve(loss, np.ones(window) / window, mode="valid")
        top.plot(iterations[window - 1:], mean, color="C0", label=f"mean of {window}")
    top.set_yscale("log")
    top.set_ylabel("loss")
    top.legend()
    bottom.plot(iterations, [s["learning_rate"] for s in stats], color="C1")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("iteration")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
