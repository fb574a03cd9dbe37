"""Learning quality: held-out scores on several volumes after a fixed training time, next to the ceiling.

alfine: the demo's model (``examples/configs/run.json``: architecture, task, trainer) trained on
one synthetic volume for ``--seconds`` of wall time (2 cores: about twice that in CPU time), in rounds
of resumed training; validation on a second volume (another seed, the demo's validation shape) chooses
the iteration and the post-processing by VOI (what ``alfine-export-model --iteration best`` exports); the
model then predicts held-out volumes of seeds ``--heldout`` (never trained or validated on; the demo
checks seed 3 alone) and each prediction is post-processed with validation's choice and scored inside its
mask (VOI, adapted Rand error, F1 of matched objects): their mean and their worst. One held-out volume
says little: one false merge of two large cells moves its adapted Rand error by 0.1 or more. Reference
(the ceiling): the chosen method's grid on each held-out volume's true affinities, its best setting per
metric, the worst of those over the volumes. Iterations per second are reported too.
Run: ``.venv/bin/python tests/benchmarks/bench_learning.py [--scale S] [--seconds T] [--heldout 3,4,...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from alfine.datasplits import Dataset, Datasplit  # noqa: E402
from alfine.evaluation import HIGHER_IS_BETTER, better, evaluate_instances  # noqa: E402
from alfine.inference import predict_volume, run_predictor_spec  # noqa: E402
from alfine.jobs.validate import validate  # noqa: E402
from alfine.postprocess import grid  # noqa: E402
from alfine.postprocess import run as run_method  # noqa: E402
from alfine.runs import RunDirectory  # noqa: E402
from alfine.synthetic import SyntheticParams  # noqa: E402
from alfine.synthetic.writer import synthesize  # noqa: E402
from alfine.tasks.targets.affinities import affinities  # noqa: E402
from alfine.training.config import run_from_file  # noqa: E402
from alfine.training.trainer import train  # noqa: E402
from alfine.validation import best_for  # noqa: E402
from alfine.volumes import open_volume  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("voi", "adapted_rand_error", "match_f1")
ROUND = 100  # iterations between checks of the time budget (and validations)
SHAPE, VALIDATE_SHAPE = (96, 128, 128), (96, 160, 160)  # examples/local.sh's SHAPE and VALIDATE_SHAPE


def _volumes(root: str, heldout: list[int]) -> dict[str, str]:
    """Train and validate volumes (seeds 1 and 2) and a held-out volume per seed of ``heldout``, as in the demo."""
    containers = {}
    roles = [("train", 1, SHAPE), ("validate", 2, VALIDATE_SHAPE)] + [(f"heldout{s}", s, SHAPE) for s in heldout]
    for role, seed, shape in roles:
        containers[role] = f"{root}/{role}.zarr"
        synthesize(containers[role], shape, (8, 8, 8), params=SyntheticParams(seed=seed))
    return containers


def _run(containers: dict[str, str]):
    run = run_from_file(str(ROOT / "examples" / "configs" / "run.json"))

    def dataset(role):
        return Dataset(raw=f"{containers[role]}/raw", labels=f"{containers[role]}/labels",
                       mask=f"{containers[role]}/mask")
    return dataclasses.replace(run, datasplit=Datasplit(train=[dataset("train")], validate=[dataset("validate")]),
                               checkpoint_interval=ROUND, validation_interval=0, snapshot_interval=0)


def _scores(labels, mask, segmentation) -> dict[str, float]:
    return {m: v for m, v in evaluate_instances(labels, segmentation, mask).items() if m in METRICS}


def _worst(metric: str, values: list[float]) -> float:
    return min(values) if HIGHER_IS_BETTER[metric] else max(values)


def _heldout(run, url: str, chosen: dict, container: str, out: str) -> tuple[dict, dict]:
    """Validation's choice on one held-out volume, and the ceiling there (the chosen method's grid on the
    true affinities, best setting per metric)."""
    labels, mask = open_volume(f"{container}/labels").read(), open_volume(f"{container}/mask").read()
    offsets = run.task.neighborhood
    spec = run_predictor_spec(url, chosen["iteration"], "cpu")
    predict_volume(spec, f"{container}/raw", run.datasplit.train[0].normalisation, out, workers=1)
    prediction = open_volume(out).read()
    channels = slice(*chosen["channels"]) if chosen["channels"] else slice(None)
    segmentation = run_method(chosen["method"], prediction[channels], chosen["params"], offsets=offsets)
    scores = _scores(labels, mask, segmentation)

    true, _ = affinities(labels, offsets, False, None)
    ceiling = {}
    for post in run.task.postprocessing():
        if post.method != chosen["method"]:
            continue
        for params in grid(post.method, post.grid):
            segmentation = run_method(post.method, true[post.channels].astype(np.float32), params, offsets=offsets)
            for metric, value in _scores(labels, mask, segmentation).items():
                if metric not in ceiling or better(metric, value, ceiling[metric]):
                    ceiling[metric] = value
    return scores, ceiling


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the training time")
    parser.add_argument("--seconds", type=float, default=300.0, help="training wall time at scale 1")
    parser.add_argument("--heldout", default="3,4,5,6,7,8", help="seeds of the held-out volumes")
    args = parser.parse_args()
    budget = args.seconds * args.scale
    seeds = [int(s) for s in args.heldout.split(",")]
    with tempfile.TemporaryDirectory() as root:
        containers = _volumes(root, seeds)
        run = _run(containers)
        url = f"{root}/run"
        began, iterations = time.perf_counter(), 0
        while time.perf_counter() - began < budget:
            iterations += ROUND
            train(run, url, device="cpu", iterations=iterations)
        seconds = time.perf_counter() - began
        steps = RunDirectory(url).read_stats()
        per_second = len(steps) / sum(s["step_time"] for s in steps)
        validate(url, every=True, device="cpu", report=False)
        chosen = best_for(url, "voi")  # what alfine-export-model --iteration best exports, as the demo does
        heldout = {seed: _heldout(run, url, chosen, containers[f"heldout{seed}"], f"{root}/predictions.zarr/{seed}")
                   for seed in seeds}

    per_seed = {seed: scores for seed, (scores, _) in heldout.items()}
    mean = {m: float(np.mean([s[m] for s in per_seed.values()])) for m in METRICS}
    worst = {m: _worst(m, [s[m] for s in per_seed.values()]) for m in METRICS}
    ceiling = {m: _worst(m, [c[m] for _, c in heldout.values()]) for m in METRICS}
    choice = f"{chosen['method']} {json.dumps(chosen['params'], sort_keys=True)} at iteration {chosen['iteration']}"
    volumes = f"{len(seeds)} held-out volumes (seeds {args.heldout})"
    rows = [{"name": f"learning: held-out {name} after {seconds:.0f} s of training ({len(steps)} iterations, "
                     f"{per_second:.2f} it/s), {volumes}, validation's choice by VOI: mean (worst)",
             "alfine": f"{mean[metric]:.3f} ({worst[metric]:.3f})",
             "reference": f"ceiling (true affinities, best setting; worst volume): {ceiling[metric]:.3f}",
             "ratio": round(worst[metric] / ceiling[metric], 3) if metric == "match_f1" else "-"}
            for metric, name in zip(METRICS, ("VOI", "adapted Rand error", "match F1"), strict=True)]
    result = {"benchmark": "learning", "seconds": round(seconds, 1), "iterations": len(steps),
              "iterations_per_second": round(per_second, 3), "heldout": per_seed, "mean": mean, "worst": worst,
              "ceiling": ceiling, "choice": choice, "rows": rows}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
