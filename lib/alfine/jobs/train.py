"""train: which run a train command means (a config file, a stored run, one assembled from named parts, or the
run already recorded in the ``--run`` directory), trained in its run directory and validated every
``validation_interval`` iterations by :func:`alfine.jobs.validate.validate`."""

from __future__ import annotations

import logging

from ..errors import UserError
from ..runs import RunDirectory
from ..training.config import PARTS, RunConfig, assemble_run, load_run, run_from_file

log = logging.getLogger(__name__)


def train(*, run_config: str | None = None, store: str | None = None, name: str | None = None,
          parts: dict[str, str] | None = None, repetition: int = 0, run: str | None = None,
          iterations: int | None = None, device: str = "auto") -> dict:
    """Train the run that :func:`resolve_run` finds for these arguments up to ``iterations`` (default: the
    run's) on ``device``, validating at the run's validation interval; the trainer's summary."""
    from ..training.trainer import train as train_run

    config, run_url = resolve_run(run_config=run_config, store=store, name=name, parts=parts,
                                  repetition=repetition, run=run)
    return train_run(config, run_url, device=device, iterations=iterations, validate=validate_checkpoint)


def validate_checkpoint(run_url: str, iteration: int, device: str) -> None:
    """Validate checkpoint ``iteration`` of the run at ``run_url`` in this process and log the best so far."""
    from .validate import validate

    best = validate(run_url, iteration=iteration, device=device, report=False)["best"]
    shown = {m: round(b["value"], 4) for m, b in best.items() if m in ("voi", "adapted_rand_error", "match_f1", "f1")}
    log.info("validated iteration %d: best so far %s", iteration, shown)


def resolve_run(*, run_config: str | None = None, store: str | None = None, name: str | None = None,
                parts: dict[str, str] | None = None, repetition: int = 0,
                run: str | None = None) -> tuple[RunConfig, str]:
    """``(run config, run directory URL)``: the run in the file ``run_config``, the run ``name`` of the config
    ``store``, or the one assembled from the named ``parts`` of ``store`` (``repetition`` changes its seed and
    name); unclear requests are refused. The directory is ``run``, else ``STORE/runs/NAME``, else ``runs/NAME``.

    With none of ``run_config``, ``name`` or ``parts``, ``run`` alone means the run recorded in
    ``RUN/run.json`` (resumed); a directory without one is refused, and nothing is created."""
    parts = {p: parts[p] for p in PARTS if (parts or {}).get(p)}
    ways = [bool(run_config), bool(name), bool(parts)]
    if sum(ways) == 0 and run:
        return _recorded_run(run), run
    if sum(ways) != 1:
        raise UserError("give exactly one of --run-config FILE, --name NAME (with --store), or "
                        "--datasplit/--architecture/--task/--trainer names (with --store), or --run DIR alone "
                        "to resume a run")
    if run_config:
        config = run_from_file(run_config)
    else:
        if not store:
            raise UserError("--store is needed to find runs and parts by name")
        if name:
            config = load_run(store, name)
        else:
            missing = [f"--{p}" for p in PARTS if p not in parts]
            if missing:
                raise UserError(f"an assembled run needs every part; missing {', '.join(missing)}")
            config = assemble_run(store, parts, repetition)
    default_root = f"{store.rstrip('/')}/runs" if store else "runs"  # beside runs/NAME.json
    return config, run or f"{default_root}/{config.name}"


def _recorded_run(run_url: str):
    """The config in ``run_url``'s run.json; a :class:`UserError` naming the directory when there is none."""
    run = RunDirectory(run_url).read_config()
    if run is None:
        raise UserError(f"{run_url} has no run.json to resume; give --run-config FILE, --name NAME (with "
                        "--store) or the parts of a run to start one there")
    return run
