"""Which run a train command means: a config file, a stored run, one assembled from named parts, or the run
already recorded in the ``--run`` directory."""

from __future__ import annotations

from ..errors import UserError
from .config import PARTS, assemble_run, load_run, run_from_file
from .rundir import RunDirectory


def resolve_run(options) -> tuple:
    """``(run config, run directory URL)`` from the train command's options; unclear requests are refused.

    With none of ``--run-config``, ``--name`` or the parts, ``--run DIR`` alone means the run recorded in
    ``DIR/run.json`` (resumed); a directory without one is refused, and nothing is created."""
    parts = {p: getattr(options, p) for p in PARTS if getattr(options, p)}
    ways = [bool(options.run_config), bool(options.name), bool(parts)]
    if sum(ways) == 0 and options.run:
        return _recorded_run(options.run), options.run
    if sum(ways) != 1:
        raise UserError("give exactly one of --run-config FILE, --name NAME (with --store), or "
                        "--datasplit/--architecture/--task/--trainer names (with --store), or --run DIR alone "
                        "to resume a run")
    if options.run_config:
        run = run_from_file(options.run_config)
    else:
        if not options.store:
            raise UserError("--store is needed to find runs and parts by name")
        if options.name:
            run = load_run(options.store, options.name)
        else:
            missing = [f"--{p}" for p in PARTS if p not in parts]
            if missing:
                raise UserError(f"an assembled run needs every part; missing {', '.join(missing)}")
            run = assemble_run(options.store, parts, options.repetition)
    default_root = f"{options.store.rstrip('/')}/runs" if options.store else "runs"  # beside runs/NAME.json
    return run, options.run or f"{default_root}/{run.name}"


def _recorded_run(run_url: str):
    """The config in ``run_url``'s run.json; a :class:`UserError` naming the directory when there is none."""
    run = RunDirectory(run_url).read_config()
    if run is None:
        raise UserError(f"{run_url} has no run.json to resume; give --run-config FILE, --name NAME (with "
                        "--store) or the parts of a run to start one there")
    return run
