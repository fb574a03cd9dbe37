"""alfine-train: train a model from a run config into a run directory."""

import dataclasses
import os
from typing import Optional

# numpy's BLAS in the loader workers must not oversubscribe the cores: set before anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from alfine.cli import Common, flag, flags, run

DESCRIPTION = """Train a model. A run = datasplit + architecture + task + trainer + iterations, given as one JSON
file (--run-config), by name from a config store (--name --store), or assembled from named parts
of a store (--datasplit --architecture --task --trainer --store [--repetition K]: a grid of runs is
a shell loop over names; --repetition changes only the seed and the run name).

The run directory (--run, any fsspec URL; default STORE/runs/<name>, else runs/<name>)
receives run.json, checkpoints/, stats.jsonl, loss.png and snapshots.zarr. Re-running the same
command, or --run DIR alone, resumes from the last checkpoint; a killed trainer loses only the
iterations since then.

examples:
  alfine-train --run-config run.json --run runs/affs
  alfine-train --run runs/affs --iterations 20000
  alfine-train --store configs --datasplit fib1 --architecture unet3 --task affs --trainer adam --repetition 2"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    run_config: Optional[str] = flag(None, "the run config (JSON)", metavar="FILE")
    store: Optional[str] = flag(None, "config store (directory or URL) with named parts and runs", metavar="URL")
    name: Optional[str] = flag(None, "a run stored in --store", metavar="NAME")
    datasplit: Optional[str] = flag(None, "a datasplit stored in --store", metavar="NAME")
    architecture: Optional[str] = flag(None, "an architecture stored in --store", metavar="NAME")
    task: Optional[str] = flag(None, "a task stored in --store", metavar="NAME")
    trainer: Optional[str] = flag(None, "a trainer stored in --store", metavar="NAME")
    repetition: int = flag(0, "repetition of an assembled run (changes its seed and name)", metavar="K", parse=int)
    allow_code: bool = flags.allow_code()
    run: Optional[str] = flag(None, "the run directory (resumed when it exists; alone: the run in its run.json)",
                              metavar="DIR")
    iterations: Optional[int] = flag(None, "train up to this iteration (default: the run config's)", metavar="N",
                                     parse=int)
    device: str = flags.device()


def body(o: Options) -> dict:
    from alfine.jobs.train import train

    parts = {"datasplit": o.datasplit, "architecture": o.architecture, "task": o.task, "trainer": o.trainer}
    return train(run_config=o.run_config, store=o.store, name=o.name, parts=parts,
                 repetition=o.repetition, run=o.run, iterations=o.iterations, device=o.device)


def main(argv=None) -> int:
    return run(Options, body, DESCRIPTION, argv)
