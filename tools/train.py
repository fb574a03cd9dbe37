"""alfine-train: train a model from a run config into a run directory."""

import dataclasses
from typing import Optional

from alfine.cli import Common, flag, flags, not_available, run

DESCRIPTION = """Train a model: the run config names a datasplit, architecture, task and trainer. The run
directory receives checkpoints, training stats, validation scores and plots; re-running the
same command resumes from the latest checkpoint.

example:
  alfine-train --run-config run.json --run runs/affs-unet"""


@dataclasses.dataclass(kw_only=True)
class Options(Common):
    run_config: str = flag(help="the run config (datasplit, architecture, task, trainer, iterations)", metavar="FILE")
    run: str = flag(help="the run directory to write (resumed when it exists)", metavar="DIR")
    iterations: Optional[int] = flag(None, "train up to this iteration (default: the run config's)", metavar="N",
                                     parse=int)
    device: str = flags.device()
    seed: int = flags.seed()
    workers: int = flag(2, "data-loading worker processes", metavar="N", parse=int)


def main(argv=None) -> int:
    return run(Options, not_available("alfine-train", 4), DESCRIPTION, argv)
