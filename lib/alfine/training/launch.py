"""Which run a train command means: a config file, a stored run, or one assembled from named parts."""

from __future__ import annotations

from ..configs import read_json
from ..errors import UserError
from .config import PARTS, assemble_run, load_run, run_from_dict


def resolve_run(options) -> tuple:
    """``(run config, run directory URL)`` from the train command's options; unclear requests are refused."""
    parts = {p: getattr(options, p) for p in PARTS if getattr(options, p)}
    ways = [bool(options.run_config), bool(options.name), bool(parts)]
    if sum(ways) != 1:
        raise UserError("give exactly one of --run-config FILE, --name NAME (with --store), or "
                        "--datasplit/--architecture/--task/--trainer names (with --store)")
    if options.run_config:
        run = run_from_dict(read_json(options.run_config), options.run_config)
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
