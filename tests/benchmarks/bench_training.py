"""Training throughput against the bare model step, measured in the same run.

alfine: ``train()`` on a synthetic volume (random crops, augmentation, targets computed on the fly
in loader workers). Reference: the same model, loss and optimiser stepping on one in-memory batch
of the same shape. Reports iterations/s of both, their ratio, and the share of alfine's step time
spent waiting for data. Run: ``.venv/bin/python tests/benchmarks/bench_training.py [--scale S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from funlib.geometry import Roi  # noqa: E402

from alfine.runs import RunDirectory  # noqa: E402
from alfine.synthetic import SyntheticParams, generate_block  # noqa: E402
from alfine.tasks.losses import TaskLoss  # noqa: E402
from alfine.training.config import run_from_dict  # noqa: E402
from alfine.training.trainer import train  # noqa: E402
from alfine.volumes import prepare_volume  # noqa: E402


def _volume(root: str, shape: tuple[int, ...]) -> None:
    roi = Roi((0, 0, 0), tuple(s * 8 for s in shape))
    params = SyntheticParams(seed=0)
    for name in ("raw", "labels"):
        prepare_volume(f"{root}/d.zarr/{name}", roi, (8, 8, 8), np.uint8 if name == "raw" else np.uint64, (64, 64, 64))
    arrays = generate_block(shape, (8, 8, 8), (0, 0, 0), (0, 0, 0), shape, params)
    for name in ("raw", "labels"):
        prepare_volume(f"{root}/d.zarr/{name}", roi, (8, 8, 8), arrays[name].dtype, (64, 64, 64)).write(
            roi, arrays[name])


def _run(root: str, iterations: int, workers: int, input_size: int):
    return run_from_dict({
        "name": "bench",
        "datasplit": {"train": [{"raw": f"{root}/d.zarr/raw", "labels": f"{root}/d.zarr/labels"}]},
        "architecture": {"kind": "unet", "input_shape": [input_size] * 3, "num_fmaps": 12, "fmap_inc_factor": 3,
                         "downsample_factors": [[2, 2, 2], [2, 2, 2]]},
        "task": {"kind": "affinities", "neighborhood": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0], [0, 3, 0],
                                                          [0, 0, 3]]},
        "trainer": {"batch_size": 1, "num_workers": workers, "learning_rate": 1e-4},
        "iterations": iterations, "checkpoint_interval": iterations,
    }, "bench")


def bare_steps_per_second(run, iterations: int) -> float:
    """The model, loss and optimiser stepping on one in-memory batch: the reference."""
    model = run.architecture.build(run.task.num_channels)
    loss_fn = TaskLoss(run.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    shape = run.architecture.output_shape(run.architecture.input_shape)
    raw = torch.rand(1, 1, *run.architecture.input_shape)
    target = (torch.rand(1, run.task.num_channels, *shape) > 0.5).float()
    weights = torch.ones_like(target)
    for i in range(iterations + 2):
        if i == 2:
            began = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(raw), target, weights).backward()
        optimizer.step()
    return iterations / (time.perf_counter() - began)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="grow the volume and the iteration count")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    iterations = int(30 * args.scale)
    shape = tuple(int(s * args.scale ** (1 / 3)) for s in (96, 160, 160))
    with tempfile.TemporaryDirectory() as root:
        _volume(root, shape)
        run = _run(root, iterations + 3, args.workers, 84)
        train(run, f"{root}/warm", device="cpu", iterations=3)  # start-up and first batches
        summary = train(run, f"{root}/warm", device="cpu")
        stats = RunDirectory(f"{root}/warm").read_stats()[3:]
        alfine = len(stats) / sum(s["step_time"] for s in stats)
        wait_share = sum(s["data_wait"] for s in stats) / sum(s["step_time"] for s in stats)
        bare = bare_steps_per_second(run, iterations)
    result = {
        "benchmark": "training", "iterations": len(stats), "input_shape": run.architecture.input_shape,
        "volume_shape": list(shape), "loader_workers": args.workers,
        "alfine_iterations_per_second": round(alfine, 3), "bare_step_iterations_per_second": round(bare, 3),
        "ratio_alfine_to_bare": round(alfine / bare, 3), "data_wait_share": round(wait_share, 3),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "trainer_summary_iterations_per_second": summary["iterations_per_second"],
        "rows": [{"name": f"training: UNet {run.architecture.input_shape[0]}³ input, affinities, "
                          f"{args.workers} loader workers (data wait {wait_share:.1%})",
                  "alfine": f"{alfine:.3f} it/s", "reference": f"bare model step, in-memory batch: {bare:.3f} it/s",
                  "ratio": round(alfine / bare, 3)}],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
